#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain-cases.h"
#include "util.h"

#define PCI(d, b, s, f) {.domain = (d), .bus = (b), .slot = (s), .function = (f)}
#define MAC(last) {.b = {0x02, 0x00, 0x00, 0x00, 0x00, (last)}}
#define UUID_A                                                               \
    {.b = {0x09, 0xb1, 0x1c, 0x53, 0x8b, 0x5c, 0x4e, 0xeb, 0x8f, 0x00, 0xd8, 0x4e, 0xaa, 0x0a,  \
           0xaa, 0x4f}}

const struct zr_test_case zr_test_cases[] = {
    {"hostdev plain",
     {.kind = ZR_KIND_HOSTDEV, .source = PCI(0x0001, 0, 0, 0), .managed = true}},
    {"hostdev managed no",
     {.kind = ZR_KIND_HOSTDEV, .source = PCI(0x0001, 0, 0, 1), .managed = false}},
    {"hostdev zpci uid only",
     {.kind = ZR_KIND_HOSTDEV, .source = PCI(0x0001, 0, 1, 0), .managed = true,
      .has_zpci_uid = true, .zpci_uid = 0x0010}},
    {"hostdev zpci fid only",
     {.kind = ZR_KIND_HOSTDEV, .source = PCI(0x0001, 0, 2, 0), .managed = true,
      .has_zpci_fid = true, .zpci_fid = 0x20}},
    {"hostdev zpci uid and fid",
     {.kind = ZR_KIND_HOSTDEV, .source = PCI(0x0001, 0, 3, 0), .managed = true,
      .has_zpci_uid = true, .zpci_uid = 0x0011, .has_zpci_fid = true, .zpci_fid = 0x21}},
    {"hostdev guest address",
     {.kind = ZR_KIND_HOSTDEV, .source = PCI(0x0001, 0, 4, 0), .managed = true,
      .has_guest_address = true, .guest_address = PCI(0, 0, 5, 0)}},
    {"hostdev guest address and zpci at the limits",
     {.kind = ZR_KIND_HOSTDEV, .source = PCI(0x0001, 0, 5, 0), .managed = false,
      .has_guest_address = true, .guest_address = PCI(0, 0, 6, 0), .has_zpci_uid = true,
      .zpci_uid = 0xffff, .has_zpci_fid = true, .zpci_fid = 0xffffffff}},
    {"hostdev source at the limits",
     {.kind = ZR_KIND_HOSTDEV, .source = PCI(0xffff, 0xff, 0x1f, 7), .managed = true}},
    {"interface plain",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 0, 0), .managed = true}},
    {"interface managed no with mac",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 0, 1), .managed = false,
      .has_mac = true, .mac = MAC(0x01)}},
    {"interface vlan",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 1, 0), .managed = true,
      .has_mac = true, .mac = MAC(0x02), .has_vlan = true, .vlan = 42}},
    {"interface vlan 4095",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 1, 1), .managed = true,
      .has_vlan = true, .vlan = 4095}},
    {"interface 802.1Qbh",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 2, 0), .managed = true,
      .has_mac = true, .mac = MAC(0x03),
      .vport = {.type = ZR_VPORT_8021QBH, .profileid = (char *)"finance"}}},
    /* libxml2 writes attributes in double quotes, so '"' must be escaped;
     * libvirt writes it back unescaped in single quotes, which is fine. */
    {"interface 802.1Qbh profileid needing escapes",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 2, 1), .managed = true,
      .vport = {.type = ZR_VPORT_8021QBH, .profileid = (char *)"a\"b>c d"}}},
    {"interface 802.1Qbg with instanceid",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 3, 0), .managed = true,
      .has_mac = true, .mac = MAC(0x04),
      .vport = {.type = ZR_VPORT_8021QBG, .has_managerid = true, .managerid = 11,
                .has_typeid = true, .typeid = 1193047, .has_typeidversion = true,
                .typeidversion = 2, .has_instanceid = true, .instanceid = UUID_A}}},
    {"interface 802.1Qbg without instanceid",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 4, 0), .managed = true,
      .vport = {.type = ZR_VPORT_8021QBG, .has_managerid = true, .managerid = 0xff,
                .has_typeid = true, .typeid = 0xffffff, .has_typeidversion = true,
                .typeidversion = 0}}},
    {"interface zpci",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 5, 0), .managed = true,
      .has_mac = true, .mac = MAC(0x05), .has_zpci_uid = true, .zpci_uid = 0x0012,
      .has_zpci_fid = true, .zpci_fid = 0x22}},
    {"interface zpci uid only",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 5, 1), .managed = true,
      .has_zpci_uid = true, .zpci_uid = 0x0014}},
    {"interface guest address",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 6, 0), .managed = true,
      .has_guest_address = true, .guest_address = PCI(0, 0, 8, 0)}},
    {"interface everything but vlan",
     {.kind = ZR_KIND_INTERFACE, .source = PCI(0x0002, 0, 7, 0), .managed = false,
      .has_mac = true, .mac = MAC(0x06),
      .vport = {.type = ZR_VPORT_8021QBH, .profileid = (char *)"engineering"},
      .has_guest_address = true, .guest_address = PCI(0, 0, 7, 0), .has_zpci_uid = true,
      .zpci_uid = 0x0013, .has_zpci_fid = true, .zpci_fid = 0x23}},
};

const size_t zr_test_n_cases = ELEMENTSOF(zr_test_cases);

static char *pci_str(const struct zr_pci_addr *a)
{
    return zr_asprintf(ZR_PCI_ADDR_FMT, ZR_PCI_ADDR_ARGS(*a));
}

static char *diff_vport(const struct zr_virtualport *w, const struct zr_virtualport *g, bool exact)
{
    if (w->type != g->type)
        return zr_asprintf("virtualport %s, got %s", zr_vport_type_to_string(w->type),
                           zr_vport_type_to_string(g->type));
    if ((exact || w->profileid) && !zr_streq(w->profileid, g->profileid))
        return zr_asprintf("profileid '%s', got '%s'", w->profileid ? w->profileid : "(none)",
                           g->profileid ? g->profileid : "(none)");
#define CMP_VP(field)                                                        \
    if ((exact || w->has_##field) &&                                         \
        (w->has_##field != g->has_##field || w->field != g->field))          \
        return zr_asprintf(#field " %s%u, got %s%u", w->has_##field ? "" : "unset ",           \
                           (unsigned)w->field, g->has_##field ? "" : "unset ", (unsigned)g->field);
    CMP_VP(managerid)
    CMP_VP(typeid)
    CMP_VP(typeidversion)
#undef CMP_VP
    if ((exact || w->has_instanceid) &&
        (w->has_instanceid != g->has_instanceid || !zr_uuid_eq(&w->instanceid, &g->instanceid)))
        return zr_strdup("instanceid differs");
    return NULL;
}

char *zr_test_device_diff(const struct zr_device *want, const struct zr_device *got, bool exact)
{
    if (want->kind != got->kind)
        return zr_asprintf("kind %s, got %s", zr_kind_to_string(want->kind),
                           zr_kind_to_string(got->kind));
    if (!zr_pci_addr_eq(&want->source, &got->source)) {
        _cleanup_free_ char *w = pci_str(&want->source), *g = pci_str(&got->source);
        return zr_asprintf("source %s, got %s", w, g);
    }
    if (want->managed != got->managed)
        return zr_asprintf("managed %d, got %d", want->managed, got->managed);
#define CMP(flag, field)                                                     \
    if ((exact || want->flag) &&                                             \
        (want->flag != got->flag || (want->flag && want->field != got->field)))                \
        return zr_asprintf(#field " %s%#x, got %s%#x", want->flag ? "" : "unset ",             \
                           (unsigned)want->field, got->flag ? "" : "unset ", (unsigned)got->field);
    CMP(has_zpci_uid, zpci_uid)
    CMP(has_zpci_fid, zpci_fid)
    CMP(has_vlan, vlan)
#undef CMP
    if ((exact || want->has_guest_address) &&
        (want->has_guest_address != got->has_guest_address ||
         (want->has_guest_address && !zr_pci_addr_eq(&want->guest_address, &got->guest_address)))) {
        _cleanup_free_ char *w = pci_str(&want->guest_address), *g = pci_str(&got->guest_address);
        return zr_asprintf("guest address %s%s, got %s%s", want->has_guest_address ? "" : "unset ",
                           w, got->has_guest_address ? "" : "unset ", g);
    }
    if ((exact || want->has_mac) &&
        (want->has_mac != got->has_mac || (want->has_mac && !zr_mac_eq(&want->mac, &got->mac))))
        return zr_strdup("mac differs");
    if (want->vlan_unrepresentable != got->vlan_unrepresentable)
        return zr_strdup("vlan_unrepresentable differs");
    if (want->vport_unrepresentable != got->vport_unrepresentable)
        return zr_strdup("vport_unrepresentable differs");
    if (exact || want->vport.type != ZR_VPORT_NONE)
        return diff_vport(&want->vport, &got->vport, exact);
    return NULL;
}

char *zr_test_wrap_domain(const char *devices_xml)
{
    return zr_asprintf("<domain type='qemu'>\n"
                       "  <name>zr-test</name>\n"
                       "  <memory>262144</memory>\n"
                       "  <os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>\n"
                       "  <devices>\n"
                       "    <emulator>/usr/bin/qemu-system-s390x</emulator>\n"
                       "%s"
                       "  </devices>\n"
                       "</domain>\n",
                       devices_xml);
}

char *zr_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = zr_reallocarray(buf, cap + 1, 1);
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    int saved = ferror(f) ? EIO : 0;
    fclose(f);
    if (saved) {
        free(buf);
        errno = saved;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *zr_test_data_file(const char *rel)
{
    const char *top = getenv("ZR_SRCDIR");
    if (!top) {
        errno = EINVAL;
        return NULL;
    }
    _cleanup_free_ char *path = zr_asprintf("%s/tests/data/%s", top, rel);
    size_t len;
    return zr_test_read_file(path, &len);
}
