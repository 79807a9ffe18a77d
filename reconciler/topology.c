#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "topology.h"
#include "xml.h"

static inline void xml_freep(xmlChar **p)
{
    xmlFree(*p);
}
#define _cleanup_xml_ _cleanup_(xml_freep)

/* Node device XML is loaded and read as domain XML is (xml.h); libvirt
 * wrote it, so its errors are given without libxml2's detail. */
static int read_doc(const char *xml, size_t len, const char *what, const char *root, xmlDocPtr *out,
                    struct zr_error *err)
{
    const struct zr_xml_input in = {.what = what, .err = err, .terse = true};
    _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
    if (zr_xml_load(&in, xml, len, ZR_XML_READ_ONLY, &doc) < 0)
        return -EINVAL;
    if (!zr_xml_is_element(xmlDocGetRootElement(doc), root)) {
        zr_error_set(err, what, 0, 0, "not a <%s> document", root);
        return -EINVAL;
    }
    *out = TAKE_PTR(doc);
    return 0;
}

/* A child <capability type='TYPE'>. */
static xmlNode *capability(const xmlNode *parent, const char *type)
{
    for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next) {
        if (!zr_xml_is_element(n, "capability"))
            continue;
        _cleanup_free_ char *t = zr_xml_prop(n, "type");
        if (zr_streq(t, type))
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

/* Attributes are numbers as libvirt reads them with virXMLPropUInt (base
 * 0: 0x hex, leading-0 octal, decimal). */
static int prop_number(const xmlNode *n, const char *name, unsigned long max, uint64_t *out)
{
    _cleanup_free_ char *v = zr_xml_prop(n, name);
    uint32_t u;
    if (!v)
        return -ENOENT;
    if (zr_xml_uint(v, 0, max, &u) < 0)
        return -EINVAL;
    *out = u;
    return 0;
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

/* An element's text as a number in `base`: libvirt reads a PCI capability's
 * <domain>, <bus>, <slot> and <function> as decimal, its <class> as hex. */
static int child_number(const xmlNode *parent, const char *name, int base, unsigned long max,
                        uint64_t *out)
{
    _cleanup_free_ char *t = text_of(zr_xml_child(parent, name));
    uint32_t u;
    if (!t || zr_xml_uint(t, base, max, &u) < 0)
        return -EINVAL;
    *out = u;
    return 0;
}

/* The IOMMU group and the SR-IOV side (physical or virtual function) of
 * a PCI capability. */
static void read_group_and_sriov(xmlNode *pci, struct zr_pci_function *out)
{
    xmlNode *group = zr_xml_child(pci, "iommuGroup");
    uint64_t gn;
    if (group && prop_number(group, "number", UINT_MAX, &gn) == 0) {
        out->has_iommu_group = true;
        out->iommu_group = (unsigned)gn;
        for (xmlNode *a = group->children; a; a = a->next) {
            struct zr_pci_addr m;
            if (zr_xml_is_element(a, "address") && address(a, &m) == 0)
                *ZR_APPEND(out->group, out->n_group) = m;
        }
    }

    xmlNode *pf = capability(pci, "phys_function");
    xmlNode *pfa = zr_xml_child(pf, "address");
    if (pfa && address(pfa, &out->pf) == 0)
        out->is_vf = true;
    xmlNode *vfs = capability(pci, "virt_functions");
    if (vfs) {
        uint64_t max = 0;
        prop_number(vfs, "maxCount", UINT_MAX, &max);
        out->vfs_max = (unsigned)max;
        /* An empty virt_functions capability (a function whose driver does
         * not do SR-IOV) makes no physical function. */
        out->is_pf = max > 0 || zr_xml_child(vfs, "address");
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
    if (child_number(pci, "domain", 10, ZR_PCI_DOMAIN_MAX, &d) < 0 ||
        child_number(pci, "bus", 10, ZR_PCI_BUS_MAX, &b) < 0 ||
        child_number(pci, "slot", 10, ZR_PCI_SLOT_MAX, &s) < 0 ||
        child_number(pci, "function", 10, ZR_PCI_FUNCTION_MAX, &f) < 0) {
        zr_error_set(err, what, 0, 0,
                     "PCI node device without a valid domain, bus, slot "
                     "and function");
        return -EINVAL;
    }
    out->addr = (struct zr_pci_addr){(uint32_t)d, (uint8_t)b, (uint8_t)s, (uint8_t)f};
    out->driver = text_of(zr_xml_child(zr_xml_child(dev, "driver"), "name"));

    /* libvirt adds a pci-bridge (or cardbus-bridge) capability for a
     * function whose header type is a bridge's; class 0x06 says the same
     * where the header type is not known. */
    uint64_t cls;
    out->bridge = capability(pci, "pci-bridge") || capability(pci, "cardbus-bridge") ||
                  (child_number(pci, "class", 16, 0xffffff, &cls) == 0 && (cls >> 16) == 0x06);

    /* libvirt writes <pci-express> (empty for an integrated endpoint) for
     * every function with the PCI Express capability; its hotplug code
     * reads the same capability to choose the kind of slot. */
    out->conventional = !out->bridge && !zr_xml_child(pci, "pci-express");

    xmlNode *numa = zr_xml_child(pci, "numa");
    uint64_t node;
    if (numa && prop_number(numa, "node", INT_MAX, &node) == 0)
        out->numa_node = (int)node;

    uint64_t id;
    xmlNode *vendor = zr_xml_child(pci, "vendor"), *product = zr_xml_child(pci, "product");
    if (vendor && prop_number(vendor, "id", 0xffff, &id) == 0)
        out->vendor = (uint32_t)id;
    if (product && prop_number(product, "id", 0xffff, &id) == 0)
        out->product = (uint32_t)id;

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
    out->parent = text_of(zr_xml_child(dev, "parent"));

    xmlNode *net = capability(dev, "net");
    if (net) {
        _cleanup_free_ char *ifname = text_of(zr_xml_child(net, "interface"));
        xmlNode *link = zr_xml_child(net, "link");
        _cleanup_free_ char *state = link ? zr_xml_prop(link, "state") : NULL;
        /* libvirt reports the operational state; an interface that is up
         * carries the host's traffic.  One that is down may be unused. */
        if (ifname && state && zr_streq(state, "up")) {
            out->in_use = true;
            out->what = zr_asprintf("network interface %s (link up)", ifname);
        }
        return 0;
    }
    xmlNode *storage = capability(dev, "storage");
    if (storage) {
        _cleanup_free_ char *block = text_of(zr_xml_child(storage, "block"));
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
        if (!zr_xml_is_element(a, "address"))
            continue;
        _cleanup_free_ char *type = zr_xml_prop(a, "type");
        uint64_t bus;
        if (type && zr_streq(type, "pci") &&
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

    xmlNode *memory = zr_xml_child(zr_xml_child(dom, "numatune"), "memory");
    _cleanup_free_ char *nodeset = memory ? zr_xml_prop(memory, "nodeset") : NULL;
    if (nodeset)
        out->nodeset = zr_strdup(nodeset);

    xmlNode *type = zr_xml_child(zr_xml_child(dom, "os"), "type");
    _cleanup_free_ char *arch = type ? zr_xml_prop(type, "arch") : NULL;
    _cleanup_free_ char *machine = type ? zr_xml_prop(type, "machine") : NULL;
    out->q35 = arch && machine && strstr(machine, "q35") &&
               (zr_streq(arch, "x86_64") || zr_streq(arch, "i686"));
    if (!out->q35)
        return 0;

    xmlNode *devices = zr_xml_child(dom, "devices");
    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next) {
        if (!zr_xml_is_element(c, "controller"))
            continue;
        _cleanup_free_ char *ctype = zr_xml_prop(c, "type");
        _cleanup_free_ char *model = zr_xml_prop(c, "model");
        uint64_t index;
        if (!ctype || !zr_streq(ctype, "pci") || !model ||
            prop_number(c, "index", ZR_PCI_BUS_MAX, &index) < 0)
            continue;
        bool port = zr_streq(model, "pcie-root-port") ||
                    zr_streq(model, "pcie-switch-downstream-port");
        bool bridge = zr_streq(model, "pcie-to-pci-bridge") ||
                      zr_streq(model, "pci-bridge");
        if (!port && !bridge)
            continue;
        xmlNode *target = zr_xml_child(c, "target");
        _cleanup_free_ char *hotplug = target ? zr_xml_prop(target, "hotplug") : NULL;
        if (hotplug && zr_streq(hotplug, "off"))
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
