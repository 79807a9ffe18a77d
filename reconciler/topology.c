#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "topology.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDocPtr, xmlFreeDoc)
static inline void xml_freep(xmlChar **p)
{
    xmlFree(*p);
}
#define _cleanup_xml_ _cleanup_(xml_freep)

/* The same stance as domain.c: no entities, no network, no printing; the
 * input comes from libvirt but is still data. */
#define TOPOLOGY_PARSE_OPTIONS                                                                     \
    (XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

static int read_doc(const char *xml, size_t len, const char *what, const char *root, xmlDocPtr *out,
                    struct zr_error *err)
{
    if (len > INT_MAX) {
        zr_error_set(err, what, 0, 0, "XML too large (%zu bytes)", len);
        return -EINVAL;
    }
    _cleanup_(xmlFreeDocp) xmlDocPtr doc =
        xmlReadMemory(xml, (int)len, NULL, NULL, TOPOLOGY_PARSE_OPTIONS);
    if (!doc) {
        zr_error_set(err, what, 0, 0, "not well-formed XML");
        return -EINVAL;
    }
    if (doc->intSubset) {
        zr_error_set(err, what, 0, 0, "DOCTYPE declaration refused");
        return -EINVAL;
    }
    xmlNode *r = xmlDocGetRootElement(doc);
    if (!r || !xmlStrEqual(r->name, BAD_CAST root)) {
        zr_error_set(err, what, 0, 0, "not a <%s> document", root);
        return -EINVAL;
    }
    *out = TAKE_PTR(doc);
    return 0;
}

static bool is_elem(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST name);
}

static xmlNode *child(const xmlNode *parent, const char *name)
{
    for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next)
        if (is_elem(n, name))
            return n;
    return NULL;
}

/* A child <capability type='TYPE'>. */
static xmlNode *capability(const xmlNode *parent, const char *type)
{
    for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next) {
        if (!is_elem(n, "capability"))
            continue;
        _cleanup_xml_ xmlChar *t = xmlGetProp(n, BAD_CAST "type");
        if (t && xmlStrEqual(t, BAD_CAST type))
            return n;
    }
    return NULL;
}

/* The element's text, trimmed, newly allocated; NULL when empty. */
static char *text_of(const xmlNode *n)
{
    if (!n)
        return NULL;
    _cleanup_xml_ xmlChar *c = xmlNodeGetContent(n);
    if (!c)
        return NULL;
    const char *s = (const char *)c;
    while (*s == ' ' || *s == '\n' || *s == '\t')
        s++;
    size_t l = strlen(s);
    while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\n' || s[l - 1] == '\t'))
        l--;
    return l ? zr_strndup(s, l) : NULL;
}

/* A number as libvirt writes them (decimal or 0x hex). */
static int number(const char *s, uint64_t max, uint64_t *out)
{
    return s ? zr_uint_parse(s, max, out) : -EINVAL;
}

static int prop_number(const xmlNode *n, const char *name, uint64_t max, uint64_t *out)
{
    _cleanup_xml_ xmlChar *v = xmlGetProp(n, BAD_CAST name);
    return v ? number((const char *)v, max, out) : -ENOENT;
}

/* <address domain='0x0000' bus='0x02' slot='0x00' function='0x1'/> */
static int address(const xmlNode *n, struct zr_pci_addr *out)
{
    uint64_t d, b, s, f;
    if (prop_number(n, "domain", ZR_PCI_DOMAIN_MAX, &d) < 0 ||
        prop_number(n, "bus", ZR_PCI_BUS_MAX, &b) < 0 ||
        prop_number(n, "slot", ZR_PCI_SLOT_MAX, &s) < 0 ||
        prop_number(n, "function", ZR_PCI_FUNCTION_MAX, &f) < 0)
        return -EINVAL;
    *out = (struct zr_pci_addr){(uint32_t)d, (uint8_t)b, (uint8_t)s, (uint8_t)f};
    return 0;
}

static int child_number(const xmlNode *parent, const char *name, uint64_t max, uint64_t *out)
{
    _cleanup_free_ char *t = text_of(child(parent, name));
    return number(t, max, out);
}

/* The IOMMU group and the SR-IOV side (physical or virtual function) of
 * a PCI capability. */
static void read_group_and_sriov(xmlNode *pci, struct zr_pci_function *out)
{
    xmlNode *group = child(pci, "iommuGroup");
    uint64_t gn;
    if (group && prop_number(group, "number", UINT_MAX, &gn) == 0) {
        out->has_iommu_group = true;
        out->iommu_group = (unsigned)gn;
        for (xmlNode *a = group->children; a; a = a->next) {
            struct zr_pci_addr m;
            if (is_elem(a, "address") && address(a, &m) == 0)
                *ZR_APPEND(out->group, out->n_group) = m;
        }
    }

    xmlNode *pf = capability(pci, "phys_function");
    xmlNode *pfa = child(pf, "address");
    if (pfa && address(pfa, &out->pf) == 0)
        out->is_vf = true;
    xmlNode *vfs = capability(pci, "virt_functions");
    if (vfs) {
        uint64_t max = 0;
        prop_number(vfs, "maxCount", UINT_MAX, &max);
        out->vfs_max = (unsigned)max;
        /* An empty virt_functions capability (a function whose driver does
         * not do SR-IOV) makes no physical function. */
        out->is_pf = max > 0 || child(vfs, "address");
    }
}

int zr_pci_function_parse(const char *xml, size_t len, const char *what,
                          struct zr_pci_function *out, struct zr_error *err)
{
    *out = (struct zr_pci_function){.numa_node = -1};
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    if (read_doc(xml, len, what, "device", &doc, err) < 0)
        return -EINVAL;
    xmlNode *dev = xmlDocGetRootElement(doc);
    xmlNode *pci = capability(dev, "pci");
    if (!pci) {
        zr_error_set(err, what, 0, 0, "not a PCI node device (no <capability type='pci'>)");
        return -EINVAL;
    }
    uint64_t d, b, s, f;
    if (child_number(pci, "domain", ZR_PCI_DOMAIN_MAX, &d) < 0 ||
        child_number(pci, "bus", ZR_PCI_BUS_MAX, &b) < 0 ||
        child_number(pci, "slot", ZR_PCI_SLOT_MAX, &s) < 0 ||
        child_number(pci, "function", ZR_PCI_FUNCTION_MAX, &f) < 0) {
        zr_error_set(err, what, 0, 0,
                     "PCI node device without a valid domain, bus, slot "
                     "and function");
        return -EINVAL;
    }
    out->addr = (struct zr_pci_addr){(uint32_t)d, (uint8_t)b, (uint8_t)s, (uint8_t)f};
    out->driver = text_of(child(child(dev, "driver"), "name"));

    /* libvirt adds a pci-bridge (or cardbus-bridge) capability for a
     * function whose header type is a bridge's; class 0x06 says the same
     * where the header type is not known. */
    uint64_t cls;
    out->bridge = capability(pci, "pci-bridge") || capability(pci, "cardbus-bridge") ||
                  (child_number(pci, "class", 0xffffff, &cls) == 0 && (cls >> 16) == 0x06);

    /* libvirt writes <pci-express> (empty for an integrated endpoint) for
     * every function with the PCI Express capability; its hotplug code
     * reads the same capability to choose the kind of slot. */
    out->conventional = !out->bridge && !child(pci, "pci-express");

    xmlNode *numa = child(pci, "numa");
    uint64_t node;
    if (numa && prop_number(numa, "node", INT_MAX, &node) == 0)
        out->numa_node = (int)node;

    read_group_and_sriov(pci, out);
    return 0;
}

void zr_pci_function_finish(struct zr_pci_function *f)
{
    free(f->driver);
    free(f->group);
    *f = (struct zr_pci_function){.numa_node = -1};
}

int zr_host_use_parse(const char *xml, size_t len, const char *what, struct zr_host_use *out,
                      struct zr_error *err)
{
    *out = (struct zr_host_use){0};
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    if (read_doc(xml, len, what, "device", &doc, err) < 0)
        return -EINVAL;
    xmlNode *dev = xmlDocGetRootElement(doc);
    out->parent = text_of(child(dev, "parent"));

    xmlNode *net = capability(dev, "net");
    if (net) {
        _cleanup_free_ char *ifname = text_of(child(net, "interface"));
        xmlNode *link = child(net, "link");
        _cleanup_xml_ xmlChar *state = link ? xmlGetProp(link, BAD_CAST "state") : NULL;
        /* libvirt reports the operational state; an interface that is up
         * carries the host's traffic.  One that is down may be unused. */
        if (ifname && state && xmlStrEqual(state, BAD_CAST "up")) {
            out->in_use = true;
            out->what = zr_asprintf("network interface %s (link up)", ifname);
        }
        return 0;
    }
    xmlNode *storage = capability(dev, "storage");
    if (storage) {
        _cleanup_free_ char *block = text_of(child(storage, "block"));
        out->in_use = true;
        out->what = zr_asprintf("disk %s", block ? block : "(no block device named)");
    }
    return 0;
}

void zr_host_use_finish(struct zr_host_use *u)
{
    free(u->parent);
    free(u->what);
    *u = (struct zr_host_use){0};
}

/* The bus a device's <address type='pci' bus=...> names, or -1. */
static long device_bus(const xmlNode *dev)
{
    for (xmlNode *a = dev->children; a; a = a->next) {
        if (!is_elem(a, "address"))
            continue;
        _cleanup_xml_ xmlChar *type = xmlGetProp(a, BAD_CAST "type");
        uint64_t bus;
        if (type && xmlStrEqual(type, BAD_CAST "pci") &&
            prop_number(a, "bus", ZR_PCI_BUS_MAX, &bus) == 0)
            return (long)bus;
    }
    return -1;
}

int zr_guest_topology_parse(const char *xml, size_t len, const char *what,
                            struct zr_guest_topology *out, struct zr_error *err)
{
    *out = (struct zr_guest_topology){0};
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    if (read_doc(xml, len, what, "domain", &doc, err) < 0)
        return -EINVAL;
    xmlNode *dom = xmlDocGetRootElement(doc);

    xmlNode *memory = child(child(dom, "numatune"), "memory");
    _cleanup_xml_ xmlChar *nodeset = memory ? xmlGetProp(memory, BAD_CAST "nodeset") : NULL;
    if (nodeset)
        out->nodeset = zr_strdup((const char *)nodeset);

    xmlNode *type = child(child(dom, "os"), "type");
    _cleanup_xml_ xmlChar *arch = type ? xmlGetProp(type, BAD_CAST "arch") : NULL;
    _cleanup_xml_ xmlChar *machine = type ? xmlGetProp(type, BAD_CAST "machine") : NULL;
    out->q35 = arch && machine && strstr((const char *)machine, "q35") &&
               (xmlStrEqual(arch, BAD_CAST "x86_64") || xmlStrEqual(arch, BAD_CAST "i686"));
    if (!out->q35)
        return 0;

    xmlNode *devices = child(dom, "devices");
    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next) {
        if (!is_elem(c, "controller"))
            continue;
        _cleanup_xml_ xmlChar *ctype = xmlGetProp(c, BAD_CAST "type");
        _cleanup_xml_ xmlChar *model = xmlGetProp(c, BAD_CAST "model");
        uint64_t index;
        if (!ctype || !xmlStrEqual(ctype, BAD_CAST "pci") || !model ||
            prop_number(c, "index", ZR_PCI_BUS_MAX, &index) < 0)
            continue;
        bool port = xmlStrEqual(model, BAD_CAST "pcie-root-port") ||
                    xmlStrEqual(model, BAD_CAST "pcie-switch-downstream-port");
        bool bridge = xmlStrEqual(model, BAD_CAST "pcie-to-pci-bridge") ||
                      xmlStrEqual(model, BAD_CAST "pci-bridge");
        if (!port && !bridge)
            continue;
        xmlNode *target = child(c, "target");
        _cleanup_xml_ xmlChar *hotplug = target ? xmlGetProp(target, BAD_CAST "hotplug") : NULL;
        if (hotplug && xmlStrEqual(hotplug, BAD_CAST "off"))
            continue;
        *ZR_APPEND(out->ports, out->n_ports) =
            (struct zr_guest_port){(unsigned)index, port, bridge, 0};
    }
    /* A port is taken when any device (a controller too) sits on its bus; a
     * bridge's slots are taken one by one. */
    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        long bus = device_bus(c);
        for (size_t i = 0; bus >= 0 && i < out->n_ports; i++)
            if (out->ports[i].index == (unsigned long)bus) {
                out->ports[i].free = false;
                out->ports[i].used++;
            }
    }
    return 0;
}

void zr_guest_topology_finish(struct zr_guest_topology *t)
{
    free(t->nodeset);
    free(t->ports);
    *t = (struct zr_guest_topology){0};
}

size_t zr_guest_topology_free_ports(const struct zr_guest_topology *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_ports; i++)
        n += !t->ports[i].conventional && t->ports[i].free;
    return n;
}

size_t zr_guest_topology_free_pci_slots(const struct zr_guest_topology *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_ports; i++)
        if (t->ports[i].conventional && t->ports[i].used < ZR_PCI_BRIDGE_SLOTS)
            n += ZR_PCI_BRIDGE_SLOTS - t->ports[i].used;
    return n;
}

/* One decimal number of a nodeset, advancing *p. */
static int nodeset_number(const char **p, unsigned long *out)
{
    if (**p < '0' || **p > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    *out = strtoul(*p, &end, 10);
    if (errno || *out > UINT_MAX)
        return -EINVAL;
    *p = end;
    return 0;
}

int zr_nodeset_has(const char *nodeset, unsigned node)
{
    /* Items apply in order, as in libvirt's virBitmapParse: "N", "N-M" add,
     * "^N" removes. */
    bool has = false;
    const char *p = nodeset;
    for (;;) {
        while (*p == ' ')
            p++;
        bool negate = *p == '^';
        if (negate)
            p++;
        unsigned long lo, hi;
        if (nodeset_number(&p, &lo) < 0)
            return -EINVAL;
        hi = lo;
        if (!negate && *p == '-') {
            p++;
            if (nodeset_number(&p, &hi) < 0 || hi < lo)
                return -EINVAL;
        }
        if (node >= lo && node <= hi)
            has = !negate;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return has;
        if (*p != ',')
            return -EINVAL;
        p++;
    }
}
