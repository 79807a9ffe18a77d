/* The one way libvirt's XML is loaded and read, for domain XML (domain.c)
 * and node device XML (topology.c) alike: the same parser options, DOCTYPE
 * refused before any declaration is read, elements matched only in no
 * namespace, attributes read without a namespace, numbers read as libvirt
 * reads them.  Part of the libvirt layer: the model never includes it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "error.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDocPtr, xmlFreeDoc)

/* No NOENT and no DTDLOAD: entities are never expanded and no external DTD
 * is fetched; NONET on top in case a future libxml2 default changes.
 * NOERROR/NOWARNING keep libxml2 from printing: the error comes back in
 * struct zr_error instead.  BIG_LINES so xmlGetLineNo() stays right past
 * line 65535. */
#define ZR_XML_PARSE_OPTIONS                                                                       \
    (XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |              \
     XML_PARSE_BIG_LINES)

/* For a tree that is read, never edited: COMPACT keeps short text inside
 * its node (fewer allocations; such a node must not be modified). */
#define ZR_XML_READ_ONLY (ZR_XML_PARSE_OPTIONS | XML_PARSE_COMPACT)

/* What is loaded and where its errors go. */
struct zr_xml_input {
    const char *what; /* the input's name in messages */
    struct zr_error *err;
    /* Messages without libxml2's detail ("not well-formed XML", "DOCTYPE
     * declaration refused"): node device XML, which libvirt wrote. */
    bool terse;
    /* Optional: replaces SAX handlers of the context before the parse (a
     * filter that builds part of the tree); its handlers find `filter_data`
     * with zr_xml_filter_data(). */
    void (*filter)(xmlParserCtxtPtr ctxt);
    void *filter_data;
};

/* Before threads parse XML at once (libxml2's global state). */
void zr_xml_init(void);

/* Parses `len` bytes with `options` (ZR_XML_PARSE_OPTIONS or
 * ZR_XML_READ_ONLY).  0 and *out set, or -EINVAL with the input's error
 * set: no XML, too large, a DOCTYPE, not well-formed. */
int zr_xml_load(const struct zr_xml_input *in, const char *xml, size_t len, int options,
                xmlDocPtr *out);

/* In a SAX handler installed by a filter: its filter_data. */
void *zr_xml_filter_data(void *ctx);

/* The node's line, 0 when unknown. */
unsigned zr_xml_line(const xmlNode *node);

/* libvirt looks its elements up with un-prefixed XPath, which only matches
 * elements in no namespace; so do these: a foreign <x:hostdev> is never
 * taken for libvirt's. */
bool zr_xml_is_element(const xmlNode *node, const char *name);
/* The first such child of `parent` (NULL: none, also for a NULL parent). */
xmlNode *zr_xml_child(const xmlNode *parent, const char *name);

/* An attribute in no namespace as a malloc()ed string, NULL when absent. */
char *zr_xml_prop(const xmlNode *node, const char *name);

/* The same without a copy where the tree holds the value as one string:
 * valid while the tree is; when a copy was needed it is in *owned too, for
 * the caller to free(). */
const char *zr_xml_prop_peek(const xmlNode *node, const char *name, char **owned);

/* A number as libvirt reads it with strtoul() (virXMLPropUInt,
 * virStrToLong_uip): base 0 makes "0x21" hex, "021" octal and "33" decimal;
 * '-' is refused and the value must fit an unsigned int.  0, -EINVAL when
 * malformed, -ERANGE above `max`. */
int zr_xml_uint(const char *s, int base, unsigned long max, uint32_t *out);
