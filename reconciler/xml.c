/* Loading and reading libvirt's XML.  See xml.h. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>

#include "xml.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlParserCtxtPtr, xmlFreeParserCtxt)

/* What the parse context carries: the DOCTYPE guard's finding and the
 * filter's own data. */
struct load_state {
    bool doctype;
    unsigned doctype_line;
    size_t len;
    startDocumentSAXFunc start_document; /* libxml2's own */
    void *filter_data;
};

void zr_xml_init(void)
{
    xmlInitParser();
}

void *zr_xml_filter_data(void *ctx)
{
    const struct load_state *s = ((xmlParserCtxtPtr)ctx)->_private;
    return s->filter_data;
}

/* Replaces libxml2's internalSubset SAX handler: it runs when the DOCTYPE
 * name is read, before any declaration inside it, so stopping here means
 * no entity is ever declared, let alone expanded. */
static void refuse_doctype(void *user, const xmlChar *name, const xmlChar *external_id,
                           const xmlChar *system_id)
{
    xmlParserCtxtPtr ctxt = user;
    struct load_state *s = ctxt->_private;
    s->doctype = true;
    s->doctype_line = ctxt->input && ctxt->input->line > 0 ? (unsigned)ctxt->input->line : 0;
    xmlStopParser(ctxt);
}

/* The whole input is in memory, and libxml2 2.9's reader for it only says
 * "no more" (xmlInputReadCallbackNop); yet within 250 bytes of the end each
 * GROW asks it again, through xmlParserInputBufferGrow and xmlBufGrow: 90
 * times a domain, 7 % of the instructions of a plan.  Without a read
 * callback xmlParserInputGrow returns at once (libxml2 2.12 leaves memory
 * input without one itself).  Once the XML declaration is read: only input
 * that is not decoded (a decoder fills the buffer on those calls) and below
 * the lookup limit (xmlGROW exempts only the Nop reader from it). */
static void start_document(void *user)
{
    xmlParserCtxtPtr ctxt = user;
    const struct load_state *s = ctxt->_private;
    s->start_document(user);
    xmlParserInputBufferPtr buf = ctxt->input ? ctxt->input->buf : NULL;
    if (ctxt->inputNr == 1 && buf && !buf->encoder && s->len < XML_MAX_LOOKUP_LIMIT)
        buf->readcallback = NULL;
}

static int fail(const struct zr_xml_input *in, unsigned line, const char *terse, const char *detail,
                int n)
{
    if (in->terse)
        zr_error_set(in->err, in->what, 0, 0, "%s", terse);
    else
        zr_error_set(in->err, in->what, line, 0, "%s%s%.*s", terse, detail ? ": " : "",
                     detail ? n : 0, detail ? detail : "");
    return -EINVAL;
}

static int not_well_formed(const struct zr_xml_input *in, xmlParserCtxtPtr ctxt)
{
    const xmlError *e = xmlCtxtGetLastError(ctxt);
    const char *msg = e && e->message ? e->message : "unknown error";
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    return fail(in, e && e->line > 0 ? (unsigned)e->line : 0, "not well-formed XML", msg, (int)n);
}

int zr_xml_load(const struct zr_xml_input *in, const char *xml, size_t len, int options,
                xmlDocPtr *out)
{
    if (!xml) {
        zr_error_set(in->err, in->what, 0, 0, "no XML");
        return -EINVAL;
    }
    if (len > INT_MAX) {
        zr_error_set(in->err, in->what, 0, 0, "XML too large (%zu bytes)", len);
        return -EINVAL;
    }
    _cleanup_(xmlFreeParserCtxtp) xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt || !ctxt->sax)
        abort();
    struct load_state state = {
        .len = len,
        .start_document = ctxt->sax->startDocument,
        .filter_data = in->filter_data,
    };
    ctxt->_private = &state;
    ctxt->sax->internalSubset = refuse_doctype;
    if (state.start_document)
        ctxt->sax->startDocument = start_document;
    if (in->filter)
        in->filter(ctxt);

    _cleanup_(xmlFreeDocp) xmlDocPtr doc =
        xmlCtxtReadMemory(ctxt, xml, (int)len, NULL, NULL, options);
    if (state.doctype)
        return fail(in, state.doctype_line, "DOCTYPE declaration refused",
                    "libvirt never writes one, and its entities and external DTD must not be "
                    "processed",
                    INT_MAX);
    if (!doc)
        return not_well_formed(in, ctxt);
    *out = TAKE_PTR(doc);
    return 0;
}

unsigned zr_xml_line(const xmlNode *node)
{
    long line = node ? xmlGetLineNo(node) : -1;
    return line > 0 && line <= (long)UINT_MAX ? (unsigned)line : 0;
}

bool zr_xml_is_element(const xmlNode *node, const char *name)
{
    return node && node->type == XML_ELEMENT_NODE && !node->ns &&
           xmlStrEqual(node->name, BAD_CAST name);
}

xmlNode *zr_xml_child(const xmlNode *parent, const char *name)
{
    for (xmlNode *c = parent ? parent->children : NULL; c; c = c->next)
        if (zr_xml_is_element(c, name))
            return c;
    return NULL;
}

/* xmlGetNoNsProp's copy, in memory of malloc(). */
static char *prop_copy(const xmlNode *node, const char *name)
{
    xmlChar *v = xmlGetNoNsProp(node, BAD_CAST name);
    if (!v)
        return NULL;
    char *s = zr_strdup((const char *)v);
    xmlFree(v);
    return s;
}

const char *zr_xml_prop_peek(const xmlNode *node, const char *name, char **owned)
{
    *owned = NULL;
    /* The usual attribute holds one text node: its content is the value.
     * Anything else (entity references, a DTD's default) goes the long
     * way. */
    const xmlAttr *a = xmlHasNsProp(node, BAD_CAST name, NULL);
    if (!a)
        return NULL;
    const xmlNode *t = a->type == XML_ATTRIBUTE_NODE ? a->children : NULL;
    if (t && !t->next && t->type == XML_TEXT_NODE && t->content)
        return (const char *)t->content;
    return *owned = prop_copy(node, name);
}

char *zr_xml_prop(const xmlNode *node, const char *name)
{
    char *owned;
    const char *v = zr_xml_prop_peek(node, name, &owned);
    return owned ? owned : v ? zr_strdup(v) : NULL;
}

int zr_xml_uint(const char *s, int base, unsigned long max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, base);
    if (end == s || *end || errno || memchr(s, '-', (size_t)(end - s)) || v > UINT_MAX)
        return -EINVAL;
    if (v > max)
        return -ERANGE;
    *out = (uint32_t)v;
    return 0;
}
