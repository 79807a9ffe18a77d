#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "domain.h"
#include "util.h"
#include "xml.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlBufferPtr, xmlBufferFree)

#define ZR_USER_ALIAS_PREFIX "ua-" /* libvirt keeps these in definitions */

struct spans;

/* Where messages point: the input's name and the caller's error; and where
 * the device elements stand in the input (NULL: nowhere known). */
struct reader {
    const char *what;
    struct zr_error *err;
    const struct spans *spans;
};

_printf_(3, 4) static int reader_fail(const struct reader *r, const xmlNode *node,
                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = zr_vasprintf(fmt, ap);
    va_end(ap);
    zr_error_set(r->err, r->what, zr_xml_line(node), 0, "%s", msg);
    return -EINVAL;
}

/* 1 when set, 0 when absent, -EINVAL (err filled) when malformed. */
static int prop_uint(const struct reader *r, const xmlNode *node, const char *name, int base,
                     unsigned long max, uint32_t *out)
{
    _cleanup_free_ char *owned = NULL;
    const char *v = zr_xml_prop_peek(node, name, &owned);
    if (!v)
        return 0;
    int ret = zr_xml_uint(v, base, max, out);
    if (ret == -ERANGE)
        return reader_fail(r, node, "<%s %s='%s'>: out of range (at most %#lx)",
                           (const char *)node->name, name, v, max);
    if (ret < 0)
        return reader_fail(r, node, "<%s %s='%s'>: not a non-negative %sinteger",
                           (const char *)node->name, name, v, base == 10 ? "decimal " : "");
    return 1;
}

static int read_managed(const struct reader *r, const xmlNode *node, bool *out)
{
    _cleanup_free_ char *v = zr_xml_prop(node, "managed");
    /* Absent means no: that is libvirt's default for hostdevs. */
    if (!v || strcmp(v, "no") == 0) {
        *out = false;
        return 0;
    }
    if (strcmp(v, "yes") == 0) {
        *out = true;
        return 0;
    }
    return reader_fail(r, node, "<%s managed='%s'>: expected 'yes' or 'no'",
                       (const char *)node->name, v);
}

/* domain, bus, slot and function of an <address>.  A missing one is 0
 * (libvirt's rule) unless `required_by` names the device element: its host
 * source needs all four.  libvirt always writes all four there, so a
 * missing one means the input is not what libvirt wrote, and the source is
 * the device's identity: guessing it could detach the wrong device. */
static int read_pci_attrs(const struct reader *r, const xmlNode *addr,
                          const xmlNode *required_by, struct zr_pci_addr *out)
{
    static const struct {
        const char *name;
        unsigned long max;
    } fields[] = {
        {"domain", UINT32_MAX},
        {"bus", ZR_PCI_BUS_MAX},
        {"slot", ZR_PCI_SLOT_MAX},
        {"function", ZR_PCI_FUNCTION_MAX},
    };
    uint32_t v[ELEMENTSOF(fields)] = {0};

    for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
        int ret = prop_uint(r, addr, fields[i].name, 0, fields[i].max, &v[i]);
        if (ret < 0)
            return ret;
        if (ret == 0 && required_by)
            return reader_fail(r, addr, "<%s>: source <address> has no '%s' attribute",
                               (const char *)required_by->name, fields[i].name);
    }
    *out = (struct zr_pci_addr){
        .domain = v[0],
        .bus = (uint8_t)v[1],
        .slot = (uint8_t)v[2],
        .function = (uint8_t)v[3],
    };
    return 0;
}

/* The guest side: <address type='pci' ...> with an optional <zpci>. */
static int read_guest_address(const struct reader *r, const xmlNode *device, struct zr_device *d)
{
    xmlNode *addr = zr_xml_child(device, "address");
    if (!addr)
        return 0;
    _cleanup_free_ char *type = zr_xml_prop(addr, "type");
    /* 'unassigned', 'ccw', ...: no guest PCI address to compare. */
    if (!zr_streq(type, "pci"))
        return 0;

    struct zr_pci_addr a;
    int ret = read_pci_attrs(r, addr, NULL, &a);
    if (ret < 0)
        return ret;
    /* libvirt's virPCIDeviceAddressIsEmpty(): with domain, bus and slot all
     * zero it assigns a slot itself, so such an address requests nothing. */
    d->has_guest_address = a.domain || a.bus || a.slot;
    if (d->has_guest_address)
        d->guest_address = a;

    xmlNode *zpci = zr_xml_child(addr, "zpci");
    if (!zpci)
        return 0;
    /* Parsed like libvirt's XML reader does (any unsigned int); the range
     * rules (uid 1..0xffff) belong to libvirt's validation, and a domain
     * libvirt returned has passed them. */
    if ((ret = prop_uint(r, zpci, "uid", 0, UINT32_MAX, &d->zpci_uid)) < 0)
        return ret;
    d->has_zpci_uid = ret > 0;
    if ((ret = prop_uint(r, zpci, "fid", 0, UINT32_MAX, &d->zpci_fid)) < 0)
        return ret;
    d->has_zpci_fid = ret > 0;
    return 0;
}

static void read_common(const xmlNode *device, struct zr_device *d)
{
    xmlNode *n;
    if ((n = zr_xml_child(device, "driver")))
        d->driver = zr_xml_prop(n, "name");
    if ((n = zr_xml_child(device, "alias")))
        d->alias = zr_xml_prop(n, "name");
}

static int read_mac(const struct reader *r, const xmlNode *device, struct zr_device *d)
{
    xmlNode *mac = zr_xml_child(device, "mac");
    if (!mac)
        return 0;
    _cleanup_free_ char *v = zr_xml_prop(mac, "address");
    if (!v)
        return 0;
    int ret = zr_mac_parse(v, &d->mac);
    if (ret == -EDOM)
        return reader_fail(r, mac, "<mac address='%s'>: multicast, not a NIC address", v);
    if (ret < 0)
        return reader_fail(r, mac, "<mac address='%s'>: not a MAC address", v);
    d->has_mac = true;
    return 0;
}

static int read_vlan(const struct reader *r, const xmlNode *device, struct zr_device *d)
{
    xmlNode *vlan = zr_xml_child(device, "vlan");
    if (!vlan)
        return 0;

    size_t n_tags = 0;
    bool native = false;
    uint32_t first = 0;
    for (xmlNode *c = vlan->children; c; c = c->next) {
        if (!zr_xml_is_element(c, "tag"))
            continue;
        uint32_t id;
        /* libvirt reads tag ids in base 10 only. */
        int ret = prop_uint(r, c, "id", 10, ZR_VLAN_MAX, &id);
        if (ret < 0)
            return ret;
        if (ret == 0)
            return reader_fail(r, c, "<vlan><tag>: no 'id' attribute");
        if (n_tags++ == 0)
            first = id;
        if (xmlHasProp(c, BAD_CAST "nativeMode"))
            native = true;
    }
    _cleanup_free_ char *trunk = zr_xml_prop(vlan, "trunk");
    bool is_trunk = trunk && strcasecmp(trunk, "yes") == 0;

    /* The inventory says "vlan: N": one tag, no trunk, no native VLAN.
     * Anything richer is kept out of has_vlan so it never compares equal
     * and export can say what it left out. */
    if (n_tags == 1 && !native && !is_trunk) {
        d->has_vlan = true;
        d->vlan = first;
    } else {
        d->vlan_unrepresentable = true;
    }
    return 0;
}

static int read_virtualport(const struct reader *r, const xmlNode *device, struct zr_device *d)
{
    xmlNode *vp = zr_xml_child(device, "virtualport");
    if (!vp)
        return 0;
    _cleanup_free_ char *type = zr_xml_prop(vp, "type");
    xmlNode *params = zr_xml_child(vp, "parameters");
    struct zr_virtualport *v = &d->vport;

    if (zr_streq(type, "802.1Qbh")) {
        v->type = ZR_VPORT_8021QBH;
        v->profileid = params ? zr_xml_prop(params, "profileid") : NULL;
        return 0;
    }
    if (!zr_streq(type, "802.1Qbg")) {
        /* openvswitch, midonet, or no type: libvirt accepts some of these
         * in a definition, the inventory cannot say them. */
        d->vport_unrepresentable = true;
        return 0;
    }

    v->type = ZR_VPORT_8021QBG;
    if (!params)
        return 0;
    int ret;
    if ((ret = prop_uint(r, params, "managerid", 0, ZR_VPORT_MANAGERID_MAX, &v->managerid)) < 0)
        return ret;
    v->has_managerid = ret > 0;
    if ((ret = prop_uint(r, params, "typeid", 0, ZR_VPORT_TYPEID_MAX, &v->typeid)) < 0)
        return ret;
    v->has_typeid = ret > 0;
    if ((ret = prop_uint(r, params, "typeidversion", 0, ZR_VPORT_TYPEIDVERSION_MAX,
                         &v->typeidversion)) < 0)
        return ret;
    v->has_typeidversion = ret > 0;

    _cleanup_free_ char *instanceid = zr_xml_prop(params, "instanceid");
    if (instanceid) {
        if (zr_uuid_parse(instanceid, &v->instanceid) < 0)
            return reader_fail(r, params, "<parameters instanceid='%s'>: not a UUID",
                               instanceid);
        v->has_instanceid = true;
    }
    return 0;
}

/* <boot order='N'/>: libvirt reads it as a non-zero unsigned int. */
static int read_boot(const struct reader *r, const xmlNode *device, struct zr_device *d)
{
    xmlNode *boot = zr_xml_child(device, "boot");
    if (!boot)
        return 0;
    int ret = prop_uint(r, boot, "order", 0, UINT32_MAX, &d->boot_order);
    if (ret < 0)
        return ret;
    d->has_boot_order = ret > 0;
    return 0;
}

/* 1 set, 0 absent, -EINVAL: an on/off or yes/no attribute. */
static int prop_switch(const struct reader *r, const xmlNode *node, const char *name,
                       const char *yes, const char *no, bool *out)
{
    _cleanup_free_ char *v = zr_xml_prop(node, name);
    if (!v)
        return 0;
    if (strcmp(v, yes) == 0 || strcmp(v, no) == 0) {
        *out = strcmp(v, yes) == 0;
        return 1;
    }
    return reader_fail(r, node, "<%s %s='%s'>: expected '%s' or '%s'", (const char *)node->name,
                       name, v, yes, no);
}

static int read_rom(const struct reader *r, const xmlNode *device, struct zr_device *d)
{
    xmlNode *rom = zr_xml_child(device, "rom");
    if (!rom)
        return 0;
    int ret;
    if ((ret = prop_switch(r, rom, "bar", "on", "off", &d->rom.bar)) < 0)
        return ret;
    d->rom.has_bar = ret > 0;
    if ((ret = prop_switch(r, rom, "enabled", "yes", "no", &d->rom.enabled)) < 0)
        return ret;
    d->rom.has_enabled = ret > 0;
    d->rom.file = zr_xml_prop(rom, "file");
    d->rom.has_file = d->rom.file != NULL;
    return 0;
}

/* Children the model reads (or libvirt generates, like <alias>); any other
 * is something format v1 cannot say. */
static bool known_child(const xmlNode *c, zr_kind kind)
{
    static const char *const common[] = {"driver", "source", "address", "alias", "boot", "rom"};
    static const char *const interface[] = {"mac", "vlan", "virtualport"};
    for (size_t i = 0; i < ELEMENTSOF(common); i++)
        if (zr_xml_is_element(c, common[i]))
            return true;
    for (size_t i = 0; kind == ZR_KIND_INTERFACE && i < ELEMENTSOF(interface); i++)
        if (zr_xml_is_element(c, interface[i]))
            return true;
    return false;
}

static bool name_in(const xmlChar *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (xmlStrEqual(name, BAD_CAST names[i]))
            return true;
    return false;
}

/* Text opened only once something is written: most devices have nothing
 * the model cannot carry, and opening a memstream cost more than the rest
 * of reading such a device. */
struct lazy_text {
    FILE *f;
    char *s;
    size_t len;
};

static FILE *lazy_file(struct lazy_text *t)
{
    if (!t->f && !(t->f = open_memstream(&t->s, &t->len)))
        abort();
    return t->f;
}

/* The text written, NULL when nothing was. */
static char *lazy_take(struct lazy_text *t)
{
    if (t->f && fclose(t->f) != 0)
        abort();
    return t->s;
}

/* Writes "NAME='VALUE'" for each attribute of `n` not in `skip`, the first
 * after `lead`, the others after a space; whether any. */
static bool write_attrs(struct lazy_text *t, const xmlNode *n, const char *const *skip,
                        size_t n_skip, const char *lead)
{
    bool any = false;
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        if (name_in(a->name, skip, n_skip))
            continue;
        _cleanup_free_ char *v = zr_xml_prop(n, (const char *)a->name);
        fprintf(lazy_file(t), "%s%s='%s'", any ? " " : lead, (const char *)a->name, v ? v : "");
        any = true;
    }
    return any;
}

/* What libvirt 11 can add beyond format v1: attributes of the device element
 * (a PCI hostdev's display='on' ramfb='on') and a <driver> that says more
 * than name='vfio' (a VFIO variant driver, <driver model='vfio-pci-igb'/>).
 * Named as " display='on'" and "<driver model='vfio-pci-igb'>". */
static bool write_unrepresentable_attrs(struct lazy_text *t, const xmlNode *device, bool any)
{
    static const char *const device_attrs[] = {"mode", "type", "managed"};
    any = write_attrs(t, device, device_attrs, ELEMENTSOF(device_attrs), any ? ", " : "") || any;

    xmlNode *driver = zr_xml_child(device, "driver");
    _cleanup_free_ char *name = driver ? zr_xml_prop(driver, "name") : NULL;
    bool plain = driver && (!driver->properties ||
                            (zr_streq(name, "vfio") && !driver->properties->next));
    if (driver && !plain) {
        fprintf(lazy_file(t), "%s<driver", any ? ", " : "");
        write_attrs(t, driver, NULL, 0, " ");
        fputc('>', lazy_file(t));
        any = true;
    }
    return any;
}

/* Lists what the device has that the model does not carry, so export can
 * name it and people know a replacement keeps it. */
static void read_unrepresentable(const xmlNode *device, struct zr_device *d)
{
    struct lazy_text t = {0};
    bool any = write_unrepresentable_attrs(&t, device, false);
    for (xmlNode *c = device->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (zr_xml_is_element(c, "address")) {
            _cleanup_free_ char *type = zr_xml_prop(c, "type");
            if (!zr_streq(type, "pci")) {
                fprintf(lazy_file(&t), "%s%s %s address", any ? ", " : "",
                        type && strchr("aeiou", type[0]) ? "an" : "a", type ? type : "untyped");
                any = true;
            }
            continue;
        }
        if (known_child(c, d->kind))
            continue;
        fprintf(lazy_file(&t), "%s<%s%s%s>", any ? ", " : "",
                c->ns && c->ns->prefix ? (const char *)c->ns->prefix : "",
                c->ns && c->ns->prefix ? ":" : "", (const char *)c->name);
        any = true;
    }
    d->unrepresentable = lazy_take(&t);
}

/* Where a device element stands in the input: bytes [start, end). */
struct span {
    size_t start, end;
};

/* The input and where its device elements stand, recorded during the parse
 * (struct pruner): each such element's node has its span's index + 1 in
 * _private. */
struct spans {
    const char *text;
    size_t len;
    struct span *items;
    size_t n;
};

/* The element as the input has it; NULL when its place is not known (the
 * input was decoded from another encoding, or was not a domain). */
static char *span_text(const struct spans *s, const xmlNode *node)
{
    uintptr_t i = (uintptr_t)node->_private;
    if (!s || i == 0 || i > s->n)
        return NULL;
    const struct span *sp = &s->items[i - 1];
    return zr_strndup(s->text + sp->start, sp->end - sp->start);
}

static char *node_to_string(xmlNode *node)
{
    _cleanup_(xmlBufferFreep) xmlBufferPtr buf = xmlBufferCreate();
    if (!buf)
        abort();
    /* format=1: elements without text children come out indented the way
     * libvirt writes them, whatever whitespace the input had. */
    if (xmlNodeDump(buf, node->doc, node, 0, 1) < 0)
        abort();
    return zr_strdup((const char *)xmlBufferContent(buf));
}

/* The kind-specific parts; parse_element() adds what every device has. */
static int read_hostdev(const struct reader *r, const xmlNode *node, struct zr_device *d)
{
    int ret;
    d->kind = ZR_KIND_HOSTDEV;
    if ((ret = read_managed(r, node, &d->managed)) < 0)
        return ret;
    xmlNode *src = zr_xml_child(node, "source");
    if (!src)
        return reader_fail(r, node, "<hostdev type='pci'>: no <source>");
    xmlNode *addr = zr_xml_child(src, "address");
    if (!addr)
        return reader_fail(r, src, "<hostdev type='pci'>: <source> has no <address>");
    return read_pci_attrs(r, addr, node, &d->source);
}

static int read_interface(const struct reader *r, const xmlNode *node, struct zr_device *d)
{
    int ret;
    d->kind = ZR_KIND_INTERFACE;
    xmlNode *src = zr_xml_child(node, "source");
    if (!src)
        return reader_fail(r, node, "<interface type='hostdev'>: no <source>");
    xmlNode *addr = zr_xml_child(src, "address");
    if (!addr) {
        /* libvirt takes <source><vendor> as a USB device. */
        if (zr_xml_child(src, "vendor"))
            return -ENOENT;
        return reader_fail(r, src, "<interface type='hostdev'>: <source> has no <address>");
    }
    _cleanup_free_ char *type = zr_xml_prop(addr, "type");
    if (!type)
        return reader_fail(r, addr,
                           "<interface type='hostdev'>: source <address> has no 'type'");
    if (strcmp(type, "pci") != 0)
        return -ENOENT;

    if ((ret = read_managed(r, node, &d->managed)) < 0 ||
        (ret = read_pci_attrs(r, addr, node, &d->source)) < 0 ||
        (ret = read_mac(r, node, d)) < 0 || (ret = read_vlan(r, node, d)) < 0)
        return ret;
    return read_virtualport(r, node, d);
}

/* 0 parsed, -ENOENT out of scope, -EINVAL malformed (err filled). */
static int parse_element(const struct reader *r, xmlNode *node, struct zr_device *out)
{
    _cleanup_(zr_device_finish) struct zr_device d = {0};
    int ret;

    if (zr_xml_is_element(node, "hostdev")) {
        _cleanup_free_ char *mode = zr_xml_prop(node, "mode");
        _cleanup_free_ char *type = zr_xml_prop(node, "type");
        /* libvirt defaults a missing mode to subsystem. */
        if ((mode && strcmp(mode, "subsystem") != 0) || !zr_streq(type, "pci"))
            return -ENOENT;
        ret = read_hostdev(r, node, &d);
    } else if (zr_xml_is_element(node, "interface")) {
        _cleanup_free_ char *type = zr_xml_prop(node, "type");
        if (!zr_streq(type, "hostdev"))
            return -ENOENT;
        ret = read_interface(r, node, &d);
    } else {
        return -ENOENT;
    }
    if (ret < 0 || (ret = read_guest_address(r, node, &d)) < 0 ||
        (ret = read_boot(r, node, &d)) < 0 || (ret = read_rom(r, node, &d)) < 0)
        return ret;
    read_common(node, &d);
    read_unrepresentable(node, &d);
    d.xml = span_text(r->spans, node);
    if (!d.xml)
        d.xml = node_to_string(node);

    *out = d;
    d = (struct zr_device){0};
    return 0;
}

/* What an out-of-scope device holds that a wanted device could ask for.
 * Read leniently: a value libvirt would not write is simply not held. */
static void read_held(xmlNode *node, struct zr_device_list *out)
{
    struct zr_held h = {0};
    const struct reader quiet = {"domain XML", NULL, NULL};
    xmlNode *addr = zr_xml_child(node, "address");
    _cleanup_free_ char *type = addr ? zr_xml_prop(addr, "type") : NULL;
    if (addr && zr_streq(type, "pci")) {
        struct zr_pci_addr a;
        if (read_pci_attrs(&quiet, addr, NULL, &a) == 0 && (a.domain || a.bus || a.slot)) {
            h.has_guest_address = true;
            h.guest_address = a;
        }
        xmlNode *zpci = zr_xml_child(addr, "zpci");
        if (zpci) {
            h.has_zpci_uid = prop_uint(&quiet, zpci, "uid", 0, UINT32_MAX, &h.zpci_uid) > 0;
            h.has_zpci_fid = prop_uint(&quiet, zpci, "fid", 0, UINT32_MAX, &h.zpci_fid) > 0;
        }
    }
    xmlNode *boot = zr_xml_child(node, "boot");
    if (boot)
        h.has_boot_order = prop_uint(&quiet, boot, "order", 0, UINT32_MAX, &h.boot_order) > 0;
    if (!h.has_guest_address && !h.has_zpci_uid && !h.has_zpci_fid && !h.has_boot_order)
        return;
    h.what = zr_asprintf("<%s>", (const char *)node->name);
    *ZR_APPEND(out->held, out->n_held) = h;
}

/* libxml2's SAX2 tree builder, fed only the elements that
 * zr_domain_parse_devices() reads: the root; <os> and its <boot>;
 * <devices> and each device element; the whole of a <hostdev> or
 * <interface>; of any other device its <address> (whole) and <boot>.  The
 * rest is parsed all the same (it must be well-formed) but builds no node:
 * on a plan most of the CPU time is this parse. */
struct pruner {
    xmlSAXHandler sax2;       /* libxml2's handlers, called for kept nodes */
    unsigned depth;           /* of the element last opened; the root is 1 */
    unsigned skip_from;       /* depth of the outermost skipped element, or 0 */
    unsigned whole_from;      /* depth from which everything is kept, or 0 */
    bool in_devices;          /* the depth-2 element open is <devices> */
    bool keep_all;            /* the whole tree: nothing is pruned */
    struct spans *spans;      /* where the device elements stand */
    size_t open_start;        /* where the device element open starts, or SIZE_MAX */
};

static bool named(const xmlChar *name, const char *what)
{
    return strcmp((const char *)name, what) == 0;
}

/* Whether the element `name` opened at p->depth builds a node. */
static bool prune_keep(struct pruner *p, const xmlChar *name)
{
    if (p->whole_from && p->depth >= p->whole_from)
        return true;
    switch (p->depth) {
    case 1:
        return true;
    case 2:
        return p->in_devices || named(name, "os");
    case 3:
        if (!p->in_devices)
            return named(name, "boot");
        if (named(name, "hostdev") || named(name, "interface"))
            p->whole_from = 3;
        return true;
    case 4:
        if (named(name, "address"))
            p->whole_from = 4;
        return p->whole_from == 4 || named(name, "boot");
    default:
        return false;
    }
}

/* Whether the element `name` at p->depth is a device element whose text
 * parse_element() keeps. */
static bool at_device(const struct pruner *p, const xmlChar *name)
{
    return p->spans && p->depth == 3 && p->in_devices &&
           (named(name, "hostdev") || named(name, "interface"));
}

/* Offsets are the input's own bytes only when nothing was decoded (libvirt
 * writes UTF-8 without a declaration). */
static long input_offset(xmlParserCtxtPtr ctxt, const struct spans *s)
{
    if (ctxt->inputNr != 1 || !ctxt->input->buf || ctxt->input->buf->encoder)
        return -1;
    long at = xmlByteConsumed(ctxt);
    return at > 0 && (size_t)at <= s->len ? at : -1;
}

/* Called once the start tag is read, up to its '>' or "/>": the tag starts
 * at the last '<' before (none can stand inside an attribute value). */
static void span_open(struct pruner *p, xmlParserCtxtPtr ctxt)
{
    long at = input_offset(ctxt, p->spans);
    const char *lt = at > 0 ? memrchr(p->spans->text, '<', (size_t)at) : NULL;
    p->open_start = lt ? (size_t)(lt - p->spans->text) : SIZE_MAX;
}

/* Called once the end tag (or the "/>") is read, before the node is
 * closed: ctxt->node is the element. */
static void span_close(struct pruner *p, xmlParserCtxtPtr ctxt)
{
    struct spans *s = p->spans;
    long at = input_offset(ctxt, s);
    if (at < 0 || p->open_start == SIZE_MAX || (size_t)at <= p->open_start ||
        s->text[at - 1] != '>' || !ctxt->node)
        return;
    *ZR_APPEND(s->items, s->n) = (struct span){p->open_start, (size_t)at};
    ctxt->node->_private = (void *)(uintptr_t)s->n;
}

/* Whether the element open at p->depth is built with its attributes and
 * text: the reader takes whole a <hostdev>, an <interface> and another
 * device's <address>, and reads another device's <boot order>; of the root,
 * <os>, its <boot>, <devices> and the other devices it needs the names
 * alone (namespace declarations stay: they give the names). */
static bool builds_all(const struct pruner *p)
{
    return p->keep_all || p->whole_from || p->depth >= 4;
}

static void prune_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                        const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
                        int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct pruner *p = zr_xml_filter_data(ctxt);
    p->depth++;
    if (p->depth == 2)
        p->in_devices = named(localname, "devices");
    if (!p->keep_all && (p->skip_from || !prune_keep(p, localname))) {
        if (!p->skip_from)
            p->skip_from = p->depth;
        return;
    }
    if (!builds_all(p))
        nb_attributes = nb_defaulted = 0;
    p->sax2.startElementNs(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes,
                           nb_defaulted, attributes);
    if (at_device(p, localname))
        span_open(p, ctxt);
}

static void prune_end(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                      const xmlChar *uri)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct pruner *p = zr_xml_filter_data(ctxt);
    if (!p->skip_from && at_device(p, localname))
        span_close(p, ctxt);
    if (!p->skip_from)
        p->sax2.endElementNs(ctx, localname, prefix, uri);
    if (p->skip_from == p->depth)
        p->skip_from = 0;
    if (p->whole_from == p->depth)
        p->whole_from = 0;
    p->depth--;
}

/* Text, CDATA, comments and processing instructions inside a skipped
 * element would land on its kept parent: dropped, and so are those the
 * reader does not read (builds_all()). */
static void prune_characters(void *ctx, const xmlChar *ch, int len)
{
    struct pruner *p = zr_xml_filter_data(ctx);
    if (!p->skip_from && builds_all(p))
        p->sax2.characters(ctx, ch, len);
}

static void prune_cdata(void *ctx, const xmlChar *ch, int len)
{
    struct pruner *p = zr_xml_filter_data(ctx);
    if (!p->skip_from && builds_all(p))
        p->sax2.cdataBlock(ctx, ch, len);
}

static void prune_comment(void *ctx, const xmlChar *value)
{
    struct pruner *p = zr_xml_filter_data(ctx);
    if (!p->skip_from && builds_all(p))
        p->sax2.comment(ctx, value);
}

static void prune_pi(void *ctx, const xmlChar *target, const xmlChar *data)
{
    struct pruner *p = zr_xml_filter_data(ctx);
    if (!p->skip_from && builds_all(p))
        p->sax2.processingInstruction(ctx, target, data);
}

static void prune_install(xmlParserCtxtPtr ctxt)
{
    struct pruner *p = zr_xml_filter_data(ctxt);
    xmlSAXHandler *sax = ctxt->sax;
    p->sax2 = *sax;
    sax->startElementNs = prune_start;
    sax->endElementNs = prune_end;
    sax->characters = prune_characters;
    sax->cdataBlock = prune_cdata;
    sax->comment = prune_comment;
    sax->processingInstruction = prune_pi;
}

/* `options`: ZR_XML_PARSE_OPTIONS, with ZR_XML_READ_ONLY for a tree that is
 * only read; `p`: NULL, or what to build of a domain and where its device
 * elements' text is recorded. */
static int load_doc(const struct reader *r, const char *xml, size_t len, int options,
                    struct pruner *p, xmlDocPtr *out)
{
    const struct zr_xml_input in = {
        .what = r->what,
        .err = r->err,
        .filter = p ? prune_install : NULL,
        .filter_data = p,
    };
    return zr_xml_load(&in, xml, len, options, out);
}

static void spans_finish(struct spans *s)
{
    free(s->items);
}

static int parse_devices(const char *xml, size_t len, const char *what, bool prune,
                         struct zr_device_list *out, struct zr_error *err)
{
    _cleanup_(spans_finish) struct spans spans = {.text = xml, .len = len};
    struct pruner p = {.keep_all = !prune, .spans = &spans, .open_start = SIZE_MAX};
    const struct reader r = {what ? what : "domain XML", err, &spans};
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    int ret = load_doc(&r, xml, len, ZR_XML_READ_ONLY, &p, &doc);
    if (ret < 0)
        return ret;

    xmlNode *root = xmlDocGetRootElement(doc);
    if (!zr_xml_is_element(root, "domain"))
        return reader_fail(&r, root, "the document's root is <%s>, not <domain>",
                           root ? (const char *)root->name : "");

    /* Collected aside so `out` is untouched when a later device fails. */
    _cleanup_(zr_device_list_finish) struct zr_device_list found = {0};
    xmlNode *devices = zr_xml_child(root, "devices");
    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        struct zr_device d;
        ret = parse_element(&r, c, &d);
        if (ret == -ENOENT) {
            read_held(c, &found);
            continue;
        }
        if (ret < 0)
            return ret;
        *zr_device_list_append(&found) = d;
    }

    xmlNode *os = zr_xml_child(root, "os");
    if (os && zr_xml_child(os, "boot"))
        out->os_boot = true;
    for (size_t i = 0; i < found.n; i++)
        *zr_device_list_append(out) = found.items[i];
    for (size_t i = 0; i < found.n_held; i++)
        *ZR_APPEND(out->held, out->n_held) = found.held[i];
    free(found.items);
    free(found.held);
    found = (struct zr_device_list){0};
    return 0;
}

bool zr_domain_may_hold_devices(const char *xml)
{
    return strstr(xml, "hostdev") || strstr(xml, "&#");
}

int zr_domain_parse_devices(const char *xml, size_t len, const char *what,
                            struct zr_device_list *out, struct zr_error *err)
{
    return parse_devices(xml, len, what, true, out, err);
}

int zr_domain_parse_devices_whole(const char *xml, size_t len, const char *what,
                                  struct zr_device_list *out, struct zr_error *err)
{
    return parse_devices(xml, len, what, false, out, err);
}

int zr_domain_parse_device(const char *xml, size_t len, struct zr_device *out,
                           struct zr_error *err)
{
    const struct reader r = {"device XML", err, NULL};
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    int ret = load_doc(&r, xml, len, ZR_XML_READ_ONLY, NULL, &doc);
    if (ret < 0)
        return ret;
    return parse_element(&r, xmlDocGetRootElement(doc), out);
}

/* ---- building ---------------------------------------------------------- */

static xmlNode *new_child(xmlNode *parent, const char *name)
{
    xmlNode *n = xmlNewChild(parent, NULL, BAD_CAST name, NULL);
    if (!n)
        abort();
    return n;
}

/* xmlNewProp escapes the value when the tree is written out, so no value
 * (a profileid with quotes, say) can break the markup. */
_printf_(3, 4) static void set_prop(xmlNode *node, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *v = zr_vasprintf(fmt, ap);
    va_end(ap);
    /* xmlSetProp replaces an attribute the element already has: the
     * in-place edit of a replacement relies on that. */
    if (!xmlSetProp(node, BAD_CAST name, BAD_CAST v))
        abort();
}

/* Attribute formats are libvirt's own (virPCIDeviceAddressFormat), so the
 * XML we send reads like the XML libvirt gives back. */
static void set_pci_props(xmlNode *addr, const struct zr_pci_addr *a)
{
    set_prop(addr, "domain", "0x%04x", (unsigned)a->domain);
    set_prop(addr, "bus", "0x%02x", (unsigned)a->bus);
    set_prop(addr, "slot", "0x%02x", (unsigned)a->slot);
    set_prop(addr, "function", "0x%x", (unsigned)a->function);
}

static void add_source(xmlNode *device, const struct zr_pci_addr *a, bool typed)
{
    xmlNode *addr = new_child(new_child(device, "source"), "address");
    /* An interface's source needs the type to parse; a hostdev's has it
     * from the element. */
    if (typed)
        set_prop(addr, "type", "pci");
    set_pci_props(addr, a);
}

static void add_guest_address(xmlNode *device, const struct zr_device *d)
{
    if (!d->has_guest_address && !d->has_zpci_uid && !d->has_zpci_fid)
        return;
    xmlNode *addr = new_child(device, "address");
    set_prop(addr, "type", "pci");
    if (d->has_guest_address)
        set_pci_props(addr, &d->guest_address);
    if (d->has_zpci_uid || d->has_zpci_fid) {
        /* Only what is set: libvirt fills the other id itself. */
        xmlNode *zpci = new_child(addr, "zpci");
        if (d->has_zpci_uid)
            set_prop(zpci, "uid", "0x%04x", (unsigned)d->zpci_uid);
        if (d->has_zpci_fid)
            set_prop(zpci, "fid", "0x%08x", (unsigned)d->zpci_fid);
    }
}

static void add_virtualport(xmlNode *device, const struct zr_virtualport *v)
{
    xmlNode *vp, *params;
    char uuid[ZR_UUID_STRLEN];

    switch (v->type) {
    case ZR_VPORT_NONE:
    case ZR_VPORT__COUNT:
        return;
    case ZR_VPORT_8021QBH:
        vp = new_child(device, "virtualport");
        set_prop(vp, "type", "%s", zr_vport_type_to_string(v->type));
        if (v->profileid)
            set_prop(new_child(vp, "parameters"), "profileid", "%s", v->profileid);
        return;
    case ZR_VPORT_8021QBG:
        vp = new_child(device, "virtualport");
        set_prop(vp, "type", "%s", zr_vport_type_to_string(v->type));
        if (!v->has_managerid && !v->has_typeid && !v->has_typeidversion && !v->has_instanceid)
            return;
        params = new_child(vp, "parameters");
        if (v->has_managerid)
            set_prop(params, "managerid", "%u", (unsigned)v->managerid);
        if (v->has_typeid)
            set_prop(params, "typeid", "%u", (unsigned)v->typeid);
        if (v->has_typeidversion)
            set_prop(params, "typeidversion", "%u", (unsigned)v->typeidversion);
        /* Left out, libvirt generates one. */
        if (v->has_instanceid)
            set_prop(params, "instanceid", "%s", zr_uuid_format(&v->instanceid, uuid));
        return;
    }
}

static void set_rom_props(xmlNode *rom, const struct zr_rom *want, const struct zr_rom *have)
{
    if (want->has_bar && !(have && have->has_bar && have->bar == want->bar))
        set_prop(rom, "bar", "%s", want->bar ? "on" : "off");
    if (want->has_file && !(have && have->has_file && zr_streq(have->file, want->file)))
        set_prop(rom, "file", "%s", want->file);
    if (want->has_enabled && !(have && have->has_enabled && have->enabled == want->enabled))
        set_prop(rom, "enabled", "%s", want->enabled ? "yes" : "no");
}

/* <boot> and <rom>, where libvirt formats them: after the source (and an
 * interface's vlan and virtualport), before the guest address. */
static void add_boot_rom(xmlNode *device, const struct zr_device *d)
{
    if (d->has_boot_order)
        set_prop(new_child(device, "boot"), "order", "%u", (unsigned)d->boot_order);
    if (d->rom.has_bar || d->rom.has_file || d->rom.has_enabled)
        set_rom_props(new_child(device, "rom"), &d->rom, NULL);
}

static void build_hostdev(xmlNode *root, const struct zr_device *d)
{
    set_prop(root, "mode", "subsystem");
    set_prop(root, "type", "pci");
    set_prop(root, "managed", "%s", d->managed ? "yes" : "no");
    set_prop(new_child(root, "driver"), "name", "vfio");
    add_source(root, &d->source, false);
    add_boot_rom(root, d);
    add_guest_address(root, d);
}

static void build_interface(xmlNode *root, const struct zr_device *d)
{
    char mac[ZR_MAC_STRLEN];

    set_prop(root, "type", "hostdev");
    set_prop(root, "managed", "%s", d->managed ? "yes" : "no");
    if (d->has_mac)
        set_prop(new_child(root, "mac"), "address", "%s", zr_mac_format(&d->mac, mac));
    set_prop(new_child(root, "driver"), "name", "vfio");
    add_source(root, &d->source, true);
    if (d->has_vlan)
        set_prop(new_child(new_child(root, "vlan"), "tag"), "id", "%u", (unsigned)d->vlan);
    add_virtualport(root, &d->vport);
    add_boot_rom(root, d);
    /* Never a <model>: libvirt refuses it on s390x hostdev interfaces. */
    add_guest_address(root, d);
}

char *zr_domain_device_xml(const struct zr_device *d)
{
    const char *name;
    switch (d->kind) {
    case ZR_KIND_HOSTDEV:
        name = "hostdev";
        break;
    case ZR_KIND_INTERFACE:
        name = "interface";
        break;
    case ZR_KIND__COUNT:
    default:
        return NULL;
    }
    if (d->kind == ZR_KIND_INTERFACE && d->vport.type == ZR_VPORT_8021QBH && d->vport.profileid &&
        !zr_profileid_ok(d->vport.profileid))
        return NULL;

    _cleanup_(xmlFreeDocp) xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNode *root = doc ? xmlNewNode(NULL, BAD_CAST name) : NULL;
    if (!root)
        abort();
    xmlDocSetRootElement(doc, root);

    switch (d->kind) {
    case ZR_KIND_HOSTDEV:
        build_hostdev(root, d);
        break;
    case ZR_KIND_INTERFACE:
        build_interface(root, d);
        break;
    case ZR_KIND__COUNT:
        break;
    }
    return node_to_string(root);
}

/* Drops libvirt's generated aliases; a "ua-" user alias is the user's and
 * stays (libvirt keeps it in definitions). */
static void strip_generated_alias(xmlNode *root)
{
    xmlNode *next;
    for (xmlNode *c = root->children; c; c = next) {
        next = c->next;
        if (!zr_xml_is_element(c, "alias"))
            continue;
        _cleanup_free_ char *name = zr_xml_prop(c, "name");
        if (name && strncmp(name, ZR_USER_ALIAS_PREFIX, strlen(ZR_USER_ALIAS_PREFIX)) == 0)
            continue;
        xmlUnlinkNode(c);
        xmlFreeNode(c);
    }
}

/* The current element, parsed, without generated aliases. */
static int load_current(const struct zr_device *current, xmlDocPtr *doc, xmlNode **root)
{
    const struct reader r = {"device XML", NULL, NULL};
    _cleanup_(xmlFreeDocp) xmlDocPtr d = NULL;
    if (load_doc(&r, current->xml, strlen(current->xml), ZR_XML_PARSE_OPTIONS, NULL, &d) < 0)
        return -EINVAL;
    *root = xmlDocGetRootElement(d);
    if (!*root)
        return -EINVAL;
    strip_generated_alias(*root);
    *doc = TAKE_PTR(d);
    return 0;
}

char *zr_domain_detach_xml(const struct zr_device *current)
{
    if (!current->xml)
        return zr_domain_device_xml(current);
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    xmlNode *root;
    if (load_current(current, &doc, &root) < 0)
        return NULL;
    return node_to_string(root);
}

static void remove_node(xmlNode *n)
{
    xmlUnlinkNode(n);
    xmlFreeNode(n);
}

static void remove_children(xmlNode *parent, const char *name)
{
    xmlNode *next;
    for (xmlNode *c = parent->children; c; c = next) {
        next = c->next;
        if (zr_xml_is_element(c, name))
            remove_node(c);
    }
}

/* The first child named `name`, with every later one removed: libvirt reads
 * only the first (an <address>, a <zpci>), so an edit of the first must not
 * let a later one take its place when the first goes. */
static xmlNode *only_child(xmlNode *parent, const char *name)
{
    xmlNode *first = zr_xml_child(parent, name), *next;
    for (xmlNode *c = first ? first->next : NULL; c; c = next) {
        next = c->next;
        if (zr_xml_is_element(c, name))
            remove_node(c);
    }
    return first;
}

static xmlNode *ensure_child(xmlNode *parent, const char *name)
{
    xmlNode *c = zr_xml_child(parent, name);
    return c ? c : new_child(parent, name);
}

static void unset_prop(xmlNode *node, const char *name)
{
    xmlAttr *a = xmlHasProp(node, BAD_CAST name);
    if (a)
        xmlRemoveProp(a);
}

static bool vport_eq(const struct zr_virtualport *a, const struct zr_virtualport *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case ZR_VPORT_8021QBH:
        return zr_streq(a->profileid, b->profileid);
    case ZR_VPORT_8021QBG:
        return a->has_managerid == b->has_managerid && a->managerid == b->managerid &&
               a->has_typeid == b->has_typeid && a->typeid == b->typeid &&
               a->has_typeidversion == b->has_typeidversion &&
               a->typeidversion == b->typeidversion && a->has_instanceid == b->has_instanceid &&
               (!a->has_instanceid || zr_uuid_eq(&a->instanceid, &b->instanceid));
    case ZR_VPORT_NONE:
    case ZR_VPORT__COUNT:
        break;
    }
    return true;
}

static void edit_vlan_virtualport(xmlNode *root, const struct zr_device *c,
                                  const struct zr_device *t)
{
    bool vlan_same = t->has_vlan && c->has_vlan && !c->vlan_unrepresentable && c->vlan == t->vlan;
    if (t->has_vlan && !vlan_same) {
        remove_children(root, "vlan");
        set_prop(new_child(new_child(root, "vlan"), "tag"), "id", "%u", (unsigned)t->vlan);
    } else if (zr_device_drops_vlan(c, t)) {
        remove_children(root, "vlan");
    }
    if (t->vport.type != ZR_VPORT_NONE &&
        (c->vport_unrepresentable || !vport_eq(&c->vport, &t->vport))) {
        remove_children(root, "virtualport");
        add_virtualport(root, &t->vport);
    } else if (zr_device_drops_virtualport(c, t)) {
        remove_children(root, "virtualport");
    }
}

static bool addr_differs(bool has_a, const struct zr_pci_addr *a, bool has_b,
                         const struct zr_pci_addr *b)
{
    return has_a != has_b || (has_a && !zr_pci_addr_eq(a, b));
}

static bool u32_differs(bool has_a, uint32_t a, bool has_b, uint32_t b)
{
    return has_a != has_b || (has_a && a != b);
}

/* The guest side: slot and zPCI ids.  An id or slot the target leaves out
 * is removed, so libvirt picks it anew (how the plan moves a device off a
 * value another device names). */
static void edit_guest_address(xmlNode *root, const struct zr_device *c, const struct zr_device *t)
{
    bool ga = addr_differs(c->has_guest_address, &c->guest_address, t->has_guest_address,
                           &t->guest_address);
    bool uid = u32_differs(c->has_zpci_uid, c->zpci_uid, t->has_zpci_uid, t->zpci_uid);
    bool fid = u32_differs(c->has_zpci_fid, c->zpci_fid, t->has_zpci_fid, t->zpci_fid);
    if (!ga && !uid && !fid)
        return;
    bool wants = t->has_guest_address || t->has_zpci_uid || t->has_zpci_fid;
    xmlNode *addr = only_child(root, "address");
    _cleanup_free_ char *type = addr ? zr_xml_prop(addr, "type") : NULL;
    if (!addr || !zr_streq(type, "pci")) {
        if (!wants)
            return;
        if (addr)
            remove_node(addr);
        addr = new_child(root, "address");
        set_prop(addr, "type", "pci");
    }
    if (ga && t->has_guest_address) {
        set_pci_props(addr, &t->guest_address);
    } else if (ga) {
        static const char *const attrs[] = {"domain", "bus", "slot", "function", "multifunction"};
        for (size_t i = 0; i < ELEMENTSOF(attrs); i++)
            unset_prop(addr, attrs[i]);
    }
    if (uid || fid) {
        xmlNode *zpci = only_child(addr, "zpci");
        if (!zpci && (t->has_zpci_uid || t->has_zpci_fid))
            zpci = new_child(addr, "zpci");
        if (zpci && uid && t->has_zpci_uid)
            set_prop(zpci, "uid", "0x%04x", (unsigned)t->zpci_uid);
        else if (zpci && uid)
            unset_prop(zpci, "uid");
        if (zpci && fid && t->has_zpci_fid)
            set_prop(zpci, "fid", "0x%08x", (unsigned)t->zpci_fid);
        else if (zpci && fid)
            unset_prop(zpci, "fid");
        if (zpci && !zpci->properties && !zpci->children)
            remove_node(zpci);
    }
    /* Nothing left but the type: no address at all says the same. */
    if (addr->properties && !addr->properties->next && !addr->children)
        remove_node(addr);
}

char *zr_domain_edit_xml(const struct zr_device *current, const struct zr_device *target)
{
    if (!current->xml)
        return zr_domain_device_xml(target);
    if (target->kind != current->kind)
        return NULL;
    if (target->kind == ZR_KIND_INTERFACE && target->vport.type == ZR_VPORT_8021QBH &&
        target->vport.profileid && !zr_profileid_ok(target->vport.profileid))
        return NULL;

    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    xmlNode *root;
    if (load_current(current, &doc, &root) < 0)
        return NULL;

    if (current->managed != target->managed)
        set_prop(root, "managed", "%s", target->managed ? "yes" : "no");
    if (target->kind == ZR_KIND_INTERFACE) {
        char mac[ZR_MAC_STRLEN];
        if (target->has_mac && !(current->has_mac && zr_mac_eq(&current->mac, &target->mac)))
            set_prop(ensure_child(root, "mac"), "address", "%s", zr_mac_format(&target->mac, mac));
        edit_vlan_virtualport(root, current, target);
    }
    edit_guest_address(root, current, target);
    if (target->has_boot_order &&
        u32_differs(current->has_boot_order, current->boot_order, true, target->boot_order))
        set_prop(ensure_child(root, "boot"), "order", "%u", (unsigned)target->boot_order);
    const struct zr_rom *tr = &target->rom;
    if (tr->has_bar || tr->has_file || tr->has_enabled)
        set_rom_props(ensure_child(root, "rom"), tr, &current->rom);
    return node_to_string(root);
}
