#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/relaxng.h>

#include "domain-cases.h"
#include "domain.h"
#include "util.h"
#include "xml.h"

#define LIBVIRT_DOMAIN_RNG "/usr/share/libvirt/schemas/domain.rng"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlRelaxNGPtr, xmlRelaxNGFree)
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlRelaxNGParserCtxtPtr, xmlRelaxNGFreeParserCtxt)
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlRelaxNGValidCtxtPtr, xmlRelaxNGFreeValidCtxt)
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

/* ---- helpers ----------------------------------------------------------- */

static char *data_path(const char *rel)
{
    const char *src = getenv("ZR_SRCDIR");
    cr_assert_not_null(src, "ZR_SRCDIR is not set (run through meson test)");
    return zr_asprintf("%s/tests/data/domain/%s", src, rel);
}

static void parse_file(const char *path, const char *what, struct zr_device_list *out)
{
    size_t len;
    _cleanup_free_ char *xml = zr_test_read_file(path, &len);
    cr_assert_not_null(xml, "%s: %s", path, strerror(errno));
    struct zr_error err = {0};
    int r = zr_domain_parse_devices(xml, len, what, out, &err);
    cr_assert_eq(r, 0, "%s: %s (line %u)", what, err.message ? err.message : "?", err.line);
    zr_error_finish(&err);
}

static void parse_fixture(const char *name, struct zr_device_list *out)
{
    _cleanup_free_ char *path = data_path(name);
    parse_file(path, name, out);
}

static const struct zr_device *find(const struct zr_device_list *l, zr_kind kind,
                                    const char *source)
{
    struct zr_device key = {.kind = kind};
    cr_assert_eq(zr_pci_addr_parse(source, &key.source), 0, "bad test source %s", source);
    for (size_t i = 0; i < l->n; i++)
        if (zr_device_same_key(&key, &l->items[i]))
            return &l->items[i];
    cr_assert_fail("no %s %s", zr_kind_to_string(kind), source);
    return NULL;
}

static bool pci_is(const struct zr_pci_addr *a, const char *s)
{
    struct zr_pci_addr b;
    return zr_pci_addr_parse(s, &b) == 0 && zr_pci_addr_eq(a, &b);
}

static int parse_one(const char *xml, struct zr_device *d, struct zr_error *err)
{
    return zr_domain_parse_device(xml, strlen(xml), d, err);
}

static size_t count_kind(const struct zr_device_list *l, zr_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += l->items[i].kind == kind;
    return n;
}

/* ---- libvirt's corpus -------------------------------------------------- */

/* The README's table (shared/corpus/libvirt/README.md): in-scope devices
 * per file, counted independently of this code. */
static const struct {
    const char *file;
    size_t hostdevs, interfaces;
} corpus[] = {
    {"disk-virtio-s390-zpci.xml", 0, 0},
    {"hostdev-mdev-precreated.xml", 0, 0},
    {"hostdev-pci-address-unassigned.x86_64-latest.xml", 4, 0},
    {"hostdev-pci-address-unassigned.xml", 4, 0},
    {"hostdev-pci-display-ramfb.xml", 1, 0},
    {"hostdev-pci-duplicate.xml", 2, 0},
    {"hostdev-subsys-mdev-vfio-ap.xml", 0, 0},
    {"hostdev-subsys-mdev-vfio-ccw.xml", 0, 0},
    {"hostdev-vfio-multidomain.xml", 1, 0},
    {"hostdev-vfio-zpci-autogenerate-uids.s390x-latest.xml", 2, 0},
    {"hostdev-vfio-zpci-boundaries.s390x-latest.xml", 2, 0},
    {"hostdev-vfio-zpci-boundaries.xml", 2, 0},
    {"hostdev-vfio-zpci-invalid-uid-valid-fid.xml", 1, 0},
    {"hostdev-vfio-zpci-set-zero.xml", 1, 0},
    {"hostdev-vfio-zpci-wrong-arch.xml", 1, 0},
    {"hostdev-vfio-zpci.s390x-latest.xml", 1, 0},
    {"hostdev-vfio.xml", 4, 0},
    {"machine-loadparm-hostdev.xml", 0, 0},
    {"net-hostdev-fail.xml", 0, 1},
    {"net-hostdev-multidomain.xml", 0, 1},
    {"net-hostdev-vfio.xml", 0, 1},
    {"net-virtio-teaming-hostdev.xml", 2, 0},
    {"net-virtio-teaming.xml", 0, 2},
    {"pci-rom-disabled.xml", 0, 0},
    {"portprofile.xml", 0, 0},
    {"pseries-hostdevs-2.xml", 2, 0},
    {"qemuxml2argvdata-hostdev-pci-multifunction.xml", 7, 0},
    {"qemuxml2argvdata-hostdev-vfio-zpci-autogenerate-fids.xml", 2, 0},
    {"qemuxml2argvdata-hostdev-vfio-zpci-multidomain-many.xml", 8, 0},
    {"qemuxml2argvdata-net-hostdev.xml", 0, 1},
    {"qemuxml2xmloutdata-hostdev-vfio-zpci-autogenerate-fids.xml", 2, 0},
    {"qemuxml2xmloutdata-hostdev-vfio-zpci-autogenerate.xml", 1, 0},
    {"qemuxml2xmloutdata-hostdev-vfio-zpci-multidomain-many.xml", 8, 0},
    {"qemuxml2xmloutdata-net-hostdev.xml", 0, 1},
    {"qemuxmlconfdata-hostdev-vfio-zpci-autogenerate.xml", 1, 0},
    {"qemuxmlconfdata-pseries-hostdevs-1.xml", 2, 1},
};

static char *corpus_dir(void)
{
    const char *shared = getenv("ZR_SHARED");
    if (!shared)
        return NULL;
    char *dir = zr_asprintf("%s/corpus/libvirt", shared);
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        free(dir);
        return NULL;
    }
    return dir;
}

static void parse_corpus(const char *file, struct zr_device_list *out)
{
    _cleanup_free_ char *dir = corpus_dir();
    if (!dir)
        cr_skip_test("no libvirt corpus ($ZR_SHARED/corpus/libvirt)");
    _cleanup_free_ char *path = zr_asprintf("%s/%s", dir, file);
    parse_file(path, file, out);
}

Test(corpus, every_file_parses_with_the_readme_counts)
{
    _cleanup_free_ char *dir = corpus_dir();
    if (!dir)
        cr_skip_test("no libvirt corpus ($ZR_SHARED/corpus/libvirt)");

    bool seen[ELEMENTSOF(corpus)] = {0};
    _cleanup_(closedirp) DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".xml") != 0)
            continue;
        size_t i = 0;
        while (i < ELEMENTSOF(corpus) && strcmp(corpus[i].file, e->d_name) != 0)
            i++;
        cr_assert_lt(i, ELEMENTSOF(corpus), "%s is not in the README's table", e->d_name);
        seen[i] = true;

        struct zr_device_list l = {0};
        _cleanup_free_ char *path = zr_asprintf("%s/%s", dir, e->d_name);
        parse_file(path, e->d_name, &l);
        /* The conflict check skips the parse of a guest the scan clears. */
        size_t text_len;
        _cleanup_free_ char *text = zr_test_read_file(path, &text_len);
        cr_assert_not_null(text);
        cr_expect(zr_domain_may_hold_devices(text) || l.n == 0,
                  "%s: the scan says no device, the parse finds %zu", e->d_name, l.n);
        /* The pruned tree reads as the whole one. */
        struct zr_device_list whole = {0};
        struct zr_error werr = {0};
        cr_assert_eq(zr_domain_parse_devices_whole(text, text_len, e->d_name, &whole, &werr), 0);
        cr_expect(whole.n == l.n && whole.n_held == l.n_held && whole.os_boot == l.os_boot,
                  "%s: whole tree %zu devices %zu held, pruned %zu %zu", e->d_name, whole.n,
                  whole.n_held, l.n, l.n_held);
        for (size_t j = 0; j < whole.n && j < l.n; j++)
            cr_expect_str_eq(whole.items[j].xml, l.items[j].xml, "%s #%zu", e->d_name, j);
        zr_device_list_finish(&whole);
        cr_expect_eq(count_kind(&l, ZR_KIND_HOSTDEV), corpus[i].hostdevs, "%s: hostdevs",
                     e->d_name);
        cr_expect_eq(count_kind(&l, ZR_KIND_INTERFACE), corpus[i].interfaces,
                     "%s: interfaces", e->d_name);

        for (size_t j = 0; j < l.n; j++) {
            const struct zr_device *dev = &l.items[j];
            struct zr_error err = {0};
            cr_assert_not_null(dev->xml);

            /* The stored element reads back as the same device. */
            struct zr_device again = {0};
            cr_assert_eq(parse_one(dev->xml, &again, &err), 0, "%s #%zu: %s", e->d_name, j,
                         err.message);
            _cleanup_free_ char *diff = zr_test_device_diff(dev, &again, true);
            cr_expect_null(diff, "%s #%zu: stored XML reads back differently: %s", e->d_name,
                           j, diff);
            cr_expect(zr_streq(dev->alias, again.alias));
            zr_device_finish(&again);

            /* What the builder writes from the model reads back as it. */
            _cleanup_free_ char *built = zr_domain_device_xml(dev);
            cr_assert_not_null(built);
            cr_assert_eq(parse_one(built, &again, &err), 0, "%s #%zu: %s", e->d_name, j,
                         err.message);
            _cleanup_free_ char *diff2 = zr_test_device_diff(dev, &again, true);
            cr_expect_null(diff2, "%s #%zu: rebuilt XML reads back differently: %s\n%s",
                           e->d_name, j, diff2, built);
            zr_device_finish(&again);
            zr_error_finish(&err);
        }
        zr_device_list_finish(&l);
    }
    for (size_t i = 0; i < ELEMENTSOF(corpus); i++)
        cr_expect(seen[i], "%s is in the table but not in %s", corpus[i].file, dir);
}

Test(corpus, multidomain_decimal_source)
{
    struct zr_device_list l = {0};
    parse_corpus("hostdev-vfio-multidomain.xml", &l);
    cr_assert_eq(l.n, 1);
    /* domain='0x0021' bus='222' slot='31' function='1' */
    cr_expect(pci_is(&l.items[0].source, "0021:de:1f.1"));
    cr_expect(l.items[0].managed);
    cr_expect_str_eq(l.items[0].driver, "vfio");
    cr_expect_not(l.items[0].has_guest_address);
    cr_expect_not(l.items[0].has_zpci_uid || l.items[0].has_zpci_fid);
    zr_device_list_finish(&l);
}

Test(corpus, zpci_boundaries_and_address_without_slot)
{
    struct zr_device_list l = {0};
    parse_corpus("hostdev-vfio-zpci-boundaries.xml", &l);
    cr_assert_eq(l.n, 2);
    const struct zr_device *a = find(&l, ZR_KIND_HOSTDEV, "ffff:00:00.0");
    cr_expect_not(a->managed, "managed absent means no");
    cr_expect(a->has_guest_address);
    cr_expect(pci_is(&a->guest_address, "0000:01:1f.0"));
    cr_expect(a->has_zpci_uid && a->zpci_uid == 0xffff);
    cr_expect(a->has_zpci_fid && a->zpci_fid == 0xffffffff);
    cr_expect_null(a->driver);

    /* <address type='pci'><zpci .../></address>: ids, no guest address */
    const struct zr_device *b = find(&l, ZR_KIND_HOSTDEV, "0000:00:00.0");
    cr_expect_not(b->has_guest_address);
    cr_expect(b->has_zpci_uid && b->zpci_uid == 0x0001);
    cr_expect(b->has_zpci_fid && b->zpci_fid == 0);
    zr_device_list_finish(&l);
}

Test(corpus, libvirt_output_fills_managed_no_and_addresses)
{
    struct zr_device_list l = {0};
    parse_corpus("qemuxml2xmloutdata-hostdev-vfio-zpci-multidomain-many.xml", &l);
    cr_assert_eq(l.n, 8);
    for (size_t i = 0; i < l.n; i++) {
        cr_expect_not(l.items[i].managed);
        cr_expect_str_eq(l.items[i].driver, "vfio");
        cr_expect(l.items[i].has_guest_address && l.items[i].has_zpci_uid &&
                  l.items[i].has_zpci_fid);
    }
    const struct zr_device *d = find(&l, ZR_KIND_HOSTDEV, "0005:00:00.0");
    cr_expect(pci_is(&d->guest_address, "0000:00:07.0"));
    cr_expect_eq(d->zpci_uid, 0x0053);
    cr_expect_eq(d->zpci_fid, 0);
    zr_device_list_finish(&l);
}

Test(corpus, zpci_uid_only)
{
    struct zr_device_list l = {0};
    parse_corpus("qemuxml2argvdata-hostdev-vfio-zpci-autogenerate-fids.xml", &l);
    cr_assert_eq(l.n, 2);
    const struct zr_device *d = find(&l, ZR_KIND_HOSTDEV, "0001:00:00.0");
    cr_expect(d->has_zpci_uid && d->zpci_uid == 0x0005);
    cr_expect_not(d->has_zpci_fid);
    cr_expect_not(d->has_guest_address);
    zr_device_list_finish(&l);
}

Test(corpus, bare_pci_address_sets_nothing)
{
    struct zr_device_list l = {0};
    parse_corpus("qemuxmlconfdata-hostdev-vfio-zpci-autogenerate.xml", &l);
    cr_assert_eq(l.n, 1);
    cr_expect_not(l.items[0].has_guest_address);
    cr_expect_not(l.items[0].has_zpci_uid || l.items[0].has_zpci_fid);
    zr_device_list_finish(&l);
}

Test(corpus, zpci_uid_zero_is_kept_as_written)
{
    /* libvirt's validation refuses it; its XML reader, and ours, do not. */
    struct zr_device_list l = {0};
    parse_corpus("hostdev-vfio-zpci-set-zero.xml", &l);
    cr_assert_eq(l.n, 1);
    cr_expect(l.items[0].has_zpci_uid);
    cr_expect_eq(l.items[0].zpci_uid, 0);
    cr_expect(l.items[0].has_zpci_fid);
    zr_device_list_finish(&l);
}

Test(corpus, unassigned_guest_address)
{
    struct zr_device_list l = {0};
    parse_corpus("hostdev-pci-address-unassigned.xml", &l);
    cr_assert_eq(l.n, 4);
    for (size_t i = 0; i < l.n; i++)
        cr_expect_not(l.items[i].has_guest_address);
    cr_expect(find(&l, ZR_KIND_HOSTDEV, "0005:90:01.1")->managed);
    zr_device_list_finish(&l);
}

Test(corpus, interface_vlan_and_qbg)
{
    struct zr_device_list l = {0};
    parse_corpus("net-hostdev-multidomain.xml", &l);
    cr_assert_eq(l.n, 1);
    const struct zr_device *d = find(&l, ZR_KIND_INTERFACE, "2424:21:1c.6");
    char mac[ZR_MAC_STRLEN], uuid[ZR_UUID_STRLEN];
    cr_expect(d->managed);
    cr_expect(d->has_mac);
    cr_expect_str_eq(zr_mac_format(&d->mac, mac), "00:11:22:33:44:55");
    cr_expect(d->has_vlan && d->vlan == 42);
    cr_expect_not(d->vlan_unrepresentable);
    cr_expect_eq(d->vport.type, ZR_VPORT_8021QBG);
    cr_expect(d->vport.has_managerid && d->vport.managerid == 11);
    cr_expect(d->vport.has_typeid && d->vport.typeid == 1193047);
    cr_expect(d->vport.has_typeidversion && d->vport.typeidversion == 2);
    cr_expect(d->vport.has_instanceid);
    cr_expect_str_eq(zr_uuid_format(&d->vport.instanceid, uuid),
                     "09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f");
    cr_expect_not(d->vport_unrepresentable);
    cr_expect_not(d->has_guest_address);
    zr_device_list_finish(&l);

    parse_corpus("qemuxml2xmloutdata-net-hostdev.xml", &l);
    cr_assert_eq(l.n, 1);
    cr_expect(pci_is(&l.items[0].guest_address, "0000:00:03.0"));
    cr_expect(l.items[0].has_guest_address);
    zr_device_list_finish(&l);
}

Test(corpus, teaming)
{
    struct zr_device_list l = {0};
    char mac[ZR_MAC_STRLEN];
    parse_corpus("net-virtio-teaming.xml", &l);
    cr_assert_eq(l.n, 2, "the two type='user' interfaces are out of scope");
    const struct zr_device *d = find(&l, ZR_KIND_INTERFACE, "0000:03:07.2");
    cr_expect_str_eq(zr_mac_format(&d->mac, mac), "66:44:33:22:11:00");
    cr_expect_null(d->alias);
    cr_expect_not_null(strstr(d->xml, "<teaming"), "the stored element keeps <teaming>");
    zr_device_list_finish(&l);

    parse_corpus("net-virtio-teaming-hostdev.xml", &l);
    cr_assert_eq(l.n, 2);
    d = find(&l, ZR_KIND_HOSTDEV, "0000:03:07.2");
    cr_expect(pci_is(&d->guest_address, "0000:00:06.0"));
    zr_device_list_finish(&l);
}

Test(corpus, drivers_and_mixed_order)
{
    struct zr_device_list l = {0};
    parse_corpus("hostdev-vfio.xml", &l);
    cr_assert_eq(l.n, 4);
    cr_expect_null(find(&l, ZR_KIND_HOSTDEV, "0000:06:12.1")->driver);
    cr_expect_str_eq(find(&l, ZR_KIND_HOSTDEV, "0000:06:12.2")->driver, "vfio");
    cr_expect_null(find(&l, ZR_KIND_HOSTDEV, "0000:06:12.3")->driver, "driver model only");
    zr_device_list_finish(&l);

    /* Document order is kept, hostdevs and interfaces interleaved. */
    parse_corpus("qemuxmlconfdata-pseries-hostdevs-1.xml", &l);
    cr_assert_eq(l.n, 3);
    cr_expect_eq(l.items[0].kind, ZR_KIND_HOSTDEV);
    cr_expect_eq(l.items[1].kind, ZR_KIND_INTERFACE);
    cr_expect(pci_is(&l.items[1].source, "0005:90:01.0"));
    cr_expect(l.items[1].has_mac, "<mac> after <source> is read too");
    cr_expect_eq(l.items[2].kind, ZR_KIND_HOSTDEV);
    zr_device_list_finish(&l);
}

/* ---- our own fixtures -------------------------------------------------- */

Test(fixtures, s390x_guest)
{
    struct zr_device_list l = {0};
    char mac[ZR_MAC_STRLEN];
    parse_fixture("s390x-zpci.xml", &l);
    cr_assert_eq(l.n, 6, "3 PCI hostdevs and 3 hostdev interfaces; ccw/mdev/network skipped");

    const struct zr_device *d = &l.items[0];
    cr_expect_eq(d->kind, ZR_KIND_HOSTDEV);
    cr_expect(pci_is(&d->source, "0001:00:00.0"));
    cr_expect_not(d->managed);
    cr_expect(d->has_guest_address && pci_is(&d->guest_address, "0000:00:01.0"));
    cr_expect(d->has_zpci_uid && d->zpci_uid == 1 && d->has_zpci_fid && d->zpci_fid == 0);

    d = find(&l, ZR_KIND_HOSTDEV, "0002:00:00.0");
    cr_expect(d->managed);
    cr_expect(d->has_zpci_uid && d->zpci_uid == 2);
    cr_expect_not(d->has_zpci_fid);
    cr_expect_not(d->has_guest_address);
    cr_expect_null(d->driver);

    d = find(&l, ZR_KIND_HOSTDEV, "0003:00:00.0");
    cr_expect_not(d->has_guest_address || d->has_zpci_uid || d->has_zpci_fid);

    d = find(&l, ZR_KIND_INTERFACE, "0004:00:00.0");
    cr_expect(d->managed);
    cr_expect_str_eq(zr_mac_format(&d->mac, mac), "02:00:00:00:00:01");
    cr_expect_eq(d->vport.type, ZR_VPORT_8021QBH);
    cr_expect_str_eq(d->vport.profileid, "finance");
    cr_expect_not(d->has_vlan);
    cr_expect(d->has_guest_address && pci_is(&d->guest_address, "0000:00:02.0"));
    cr_expect(d->zpci_uid == 3 && d->zpci_fid == 5);
    cr_expect_str_eq(d->driver, "vfio");

    d = find(&l, ZR_KIND_INTERFACE, "0005:00:00.0");
    cr_expect_not(d->managed, "managed absent means no");
    cr_expect(d->has_vlan && d->vlan == 42);
    cr_expect_eq(d->vport.type, ZR_VPORT_8021QBG);
    cr_expect_eq(d->vport.typeid, 0x123456, "typeid='0x123456' is hex, as libvirt reads it");
    cr_expect(d->vport.has_instanceid);

    d = find(&l, ZR_KIND_INTERFACE, "0006:00:00.0");
    cr_expect(d->has_vlan && d->vlan == 100, "trunk='no' with one tag is a plain tag");
    cr_expect_eq(d->vport.type, ZR_VPORT_NONE);
    cr_expect_not(d->vport_unrepresentable);
    zr_device_list_finish(&l);
}

Test(fixtures, live_aliases)
{
    struct zr_device_list l = {0};
    parse_fixture("live-aliases.xml", &l);
    cr_assert_eq(l.n, 4);
    cr_expect_str_eq(l.items[0].alias, "hostdev0");
    cr_expect_str_eq(l.items[1].alias, "ua-crypto");
    cr_expect_str_eq(l.items[2].alias, "hostdev1");
    cr_expect_str_eq(l.items[3].alias, "ua-uplink");
    zr_device_list_finish(&l);
}

Test(fixtures, vlan_variants)
{
    struct zr_device_list l = {0};
    parse_fixture("vlan-variants.xml", &l);
    cr_assert_eq(l.n, 5);
    static const struct {
        const char *source;
        bool has_vlan, unrepresentable;
        uint32_t vlan;
    } want[] = {
        {"0003:00:00.0", false, true, 0},   /* trunk, two tags */
        {"0003:00:01.0", false, true, 0},   /* trunk='yes', one tag */
        {"0003:00:02.0", false, true, 0},   /* nativeMode */
        {"0003:00:03.0", true, false, 4095},
        {"0003:00:04.0", true, false, 10},  /* tag ids are base 10: '0010' is 10 */
    };
    for (size_t i = 0; i < ELEMENTSOF(want); i++) {
        const struct zr_device *d = find(&l, ZR_KIND_INTERFACE, want[i].source);
        cr_expect_eq(d->has_vlan, want[i].has_vlan, "%s", want[i].source);
        cr_expect_eq(d->vlan_unrepresentable, want[i].unrepresentable, "%s", want[i].source);
        if (want[i].has_vlan)
            cr_expect_eq(d->vlan, want[i].vlan, "%s", want[i].source);
    }
    zr_device_list_finish(&l);
}

Test(fixtures, unrepresentable_virtualports)
{
    struct zr_device_list l = {0};
    parse_fixture("vport-unrepresentable.xml", &l);
    cr_assert_eq(l.n, 3);
    const struct zr_device *ovs = find(&l, ZR_KIND_INTERFACE, "0003:00:00.0");
    cr_expect(ovs->vport_unrepresentable);
    cr_expect_eq(ovs->vport.type, ZR_VPORT_NONE);
    cr_expect(ovs->has_zpci_uid, "the rest of the device is still read");
    const struct zr_device *midonet = find(&l, ZR_KIND_INTERFACE, "0003:00:01.0");
    cr_expect(midonet->vport_unrepresentable);
    /* vlan beside a virtualport: both read; export decides what to say */
    const struct zr_device *both = find(&l, ZR_KIND_INTERFACE, "0003:00:02.0");
    cr_expect_not(both->vport_unrepresentable);
    cr_expect(both->has_vlan && both->vlan == 7);
    cr_expect_eq(both->vport.type, ZR_VPORT_8021QBH);
    zr_device_list_finish(&l);
}

Test(fixtures, out_of_scope_only)
{
    struct zr_device_list l = {0};
    parse_fixture("out-of-scope.xml", &l);
    cr_expect_eq(l.n, 0, "mdev/scsi/usb/capabilities hostdevs, other interfaces, USB hostdev "
                         "interfaces, foreign-namespace elements and zpci disks are skipped");
    zr_device_list_finish(&l);
    parse_fixture("no-devices.xml", &l);
    cr_expect_eq(l.n, 0);
    zr_device_list_finish(&l);
}

/* Every tests/data/domain/bad/NAME.xml fails with exactly NAME.err
 * (zr_error_print's output); ZR_REGENERATE=1 rewrites the .err files. */
Test(fixtures, bad_inputs_fail_with_the_expected_message, .init = cr_redirect_stderr)
{
    _cleanup_free_ char *dir = data_path("bad");
    const char *regen = getenv("ZR_REGENERATE");
    bool regenerate = regen && strcmp(regen, "1") == 0;
    size_t checked = 0;

    _cleanup_(closedirp) DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".xml") != 0)
            continue;
        _cleanup_free_ char *path = zr_asprintf("%s/%s", dir, e->d_name);
        _cleanup_free_ char *errpath = zr_asprintf("%s/%.*s.err", dir, (int)(n - 4), e->d_name);
        size_t len;
        _cleanup_free_ char *xml = zr_test_read_file(path, &len);
        cr_assert_not_null(xml);

        struct zr_device_list l = {0};
        struct zr_error err = {0};
        int r = zr_domain_parse_devices(xml, len, e->d_name, &l, &err);
        cr_expect_eq(r, -EINVAL, "%s: parsed", e->d_name);
        cr_expect_eq(l.n, 0, "%s: out is untouched on error", e->d_name);
        zr_device_list_finish(&l);
        if (r != -EINVAL)
            continue;
        cr_expect_str_eq(err.file, e->d_name);

        char *got = NULL;
        size_t got_len = 0;
        FILE *mem = open_memstream(&got, &got_len);
        cr_assert_not_null(mem);
        zr_error_print(&err, mem);
        fclose(mem);
        zr_error_finish(&err);

        if (regenerate) {
            FILE *out = fopen(errpath, "w");
            cr_assert_not_null(out, "%s: %s", errpath, strerror(errno));
            fputs(got, out);
            fclose(out);
        } else {
            size_t want_len;
            _cleanup_free_ char *want = zr_test_read_file(errpath, &want_len);
            cr_expect_not_null(want, "%s missing (run with ZR_REGENERATE=1, then review)",
                               errpath);
            if (want)
                cr_expect_str_eq(got, want, "%s", e->d_name);
        }
        free(got);
        checked++;
    }
    cr_expect_geq(checked, 20);
    fflush(stderr);
    cr_expect_stderr_eq_str("", "libxml2 must not print");
}

Test(fixtures, doctype_is_refused_before_any_entity)
{
    /* The billion-laughs file would expand to gigabytes; refusing it must
     * be immediate and name the DOCTYPE. */
    _cleanup_free_ char *path = data_path("bad/doctype-billion-laughs.xml");
    size_t len;
    _cleanup_free_ char *xml = zr_test_read_file(path, &len);
    cr_assert_not_null(xml);
    struct zr_device_list l = {0};
    struct zr_error err = {0};
    cr_assert_eq(zr_domain_parse_devices(xml, len, "lol", &l, &err), -EINVAL);
    cr_expect_not_null(strstr(err.message, "DOCTYPE"), "%s", err.message);
    cr_expect_eq(err.line, 2);
    zr_error_finish(&err);

    /* The same through the single-device entry point. */
    static const char xxe[] = "<!DOCTYPE hostdev [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
                              "<hostdev mode='subsystem' type='pci'><source>"
                              "<address domain='&x;' bus='0' slot='0' function='0'/>"
                              "</source></hostdev>";
    struct zr_device dev = {0};
    cr_assert_eq(parse_one(xxe, &dev, &err), -EINVAL);
    cr_expect_not_null(strstr(err.message, "DOCTYPE"));
    cr_expect_str_eq(err.file, "device XML");
    zr_error_finish(&err);
}

Test(fixtures, failure_leaves_out_untouched)
{
    struct zr_device_list l = {0};
    parse_fixture("s390x-zpci.xml", &l);
    size_t before = l.n;
    _cleanup_free_ char *path = data_path("bad/second-device-bad.xml");
    size_t len;
    _cleanup_free_ char *xml = zr_test_read_file(path, &len);
    struct zr_error err = {0};
    cr_assert_eq(zr_domain_parse_devices(xml, len, "x", &l, &err), -EINVAL);
    cr_expect_eq(l.n, before, "no device of the failed document was appended");
    cr_expect_eq(err.line, 13, "points at the bad <address>");
    zr_error_finish(&err);
    zr_device_list_finish(&l);
}

/* ---- single elements: numbers, scope ------------------------------------ */

Test(parse, numbers_as_libvirt_reads_them)
{
    struct zr_device d = {0};
    struct zr_error err = {0};
    /* hex, decimal, octal (leading zero), as strtoul(base 0) */
    cr_assert_eq(parse_one("<hostdev mode='subsystem' type='pci'><source>"
                           "<address domain='0x0021' bus='222' slot='031' function='1'/>"
                           "</source></hostdev>",
                           &d, &err),
                 0, "%s", err.message);
    cr_expect(pci_is(&d.source, "0021:de:19.1"), "slot='031' is octal 25");
    zr_device_finish(&d);

    cr_assert_eq(parse_one("<hostdev type='pci'><source>"
                           "<address domain='0X10000' bus='0XFF' slot='0x1F' function='07'/>"
                           "</source></hostdev>",
                           &d, &err),
                 0, "%s", err.message);
    cr_expect_eq(d.source.domain, 0x10000, "PCI domains are 32-bit to libvirt");
    cr_expect(d.source.bus == 0xff && d.source.slot == 0x1f && d.source.function == 7);
    cr_expect_eq(d.kind, ZR_KIND_HOSTDEV, "mode defaults to subsystem");
    zr_device_finish(&d);

    static const char *bad[] = {"0x", "", "1.0", "-0", "4294967296", "0x100000000", "1e3"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        _cleanup_free_ char *xml =
            zr_asprintf("<hostdev mode='subsystem' type='pci'><source><address domain='%s' "
                        "bus='0' slot='0' function='0'/></source></hostdev>",
                        bad[i]);
        cr_expect_eq(parse_one(xml, &d, &err), -EINVAL, "domain='%s'", bad[i]);
        cr_expect_not_null(err.message);
        zr_error_finish(&err);
    }
}

Test(parse, guest_address_requires_domain_bus_or_slot)
{
    struct zr_device d = {0};
    struct zr_error err = {0};
    cr_assert_eq(parse_one("<hostdev mode='subsystem' type='pci'><source>"
                           "<address domain='0x1' bus='0' slot='0' function='0'/></source>"
                           "<address type='pci' domain='0x0000' bus='0x00' slot='0x00' "
                           "function='0x3'><zpci fid='0x7'/></address></hostdev>",
                           &d, &err),
                 0);
    cr_expect_not(d.has_guest_address, "0000:00:00.x asks libvirt to pick a slot");
    cr_expect(d.has_zpci_fid && d.zpci_fid == 7);
    cr_expect_not(d.has_zpci_uid);
    zr_device_finish(&d);

    cr_assert_eq(parse_one("<hostdev mode='subsystem' type='pci'><source>"
                           "<address domain='0x1' bus='0' slot='0' function='0'/></source>"
                           "<address type='pci' bus='0x01'/></hostdev>",
                           &d, &err),
                 0);
    cr_expect(d.has_guest_address);
    cr_expect(pci_is(&d.guest_address, "0000:01:00.0"), "absent attributes are 0");
    zr_device_finish(&d);

    cr_assert_eq(parse_one("<hostdev mode='subsystem' type='pci'><source>"
                           "<address domain='0x1' bus='0' slot='0' function='0'/></source>"
                           "<address type='ccw' cssid='0xfe' ssid='0' devno='0x1'/></hostdev>",
                           &d, &err),
                 0);
    cr_expect_not(d.has_guest_address);
    zr_device_finish(&d);
}

Test(parse, out_of_scope_elements)
{
    static const char *skip[] = {
        "<disk type='block' device='disk'/>",
        "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/></source></hostdev>",
        "<hostdev mode='capabilities' type='pci'/>",
        "<hostdev mode='subsystem' type='mdev' model='vfio-ap'/>",
        "<interface type='network'><source network='default'/></interface>",
        ("<interface type='hostdev'><source><address type='usb' bus='1' port='1'/>"
         "</source></interface>"),
        "<x:interface xmlns:x='urn:x' type='hostdev'/>",
    };
    for (size_t i = 0; i < ELEMENTSOF(skip); i++) {
        struct zr_device d = {0};
        struct zr_error err = {0};
        cr_expect_eq(parse_one(skip[i], &d, &err), -ENOENT, "%s", skip[i]);
        cr_expect_null(err.message, "%s", skip[i]);
        cr_expect_null(d.xml);
    }
}

Test(parse, malformed_single_element)
{
    struct zr_device d = {0};
    struct zr_error err = {0};
    cr_assert_eq(parse_one("<hostdev mode='subsystem' type='pci'>\n<source>", &d, &err),
                 -EINVAL);
    cr_expect_str_eq(err.file, "device XML");
    cr_expect_not_null(strstr(err.message, "not well-formed"), "%s", err.message);
    zr_error_finish(&err);

    cr_assert_eq(parse_one("<interface type='hostdev'>\n  <source>\n"
                           "    <address type='pci' domain='0' bus='0' slot='0'/>\n"
                           "  </source>\n</interface>",
                           &d, &err),
                 -EINVAL);
    cr_expect_eq(err.line, 3);
    cr_expect_not_null(strstr(err.message, "'function'"), "%s", err.message);
    zr_error_finish(&err);
}

/* ---- building ---------------------------------------------------------- */

static const struct zr_test_case *test_case(const char *name)
{
    for (size_t i = 0; i < zr_test_n_cases; i++)
        if (strcmp(zr_test_cases[i].name, name) == 0)
            return &zr_test_cases[i];
    cr_assert_fail("no test case '%s'", name);
    return NULL;
}

Test(build, hostdev_exact_xml)
{
    _cleanup_free_ char *xml =
        zr_domain_device_xml(&test_case("hostdev guest address and zpci at the limits")->device);
    cr_assert_str_eq(xml, "<hostdev mode=\"subsystem\" type=\"pci\" managed=\"no\">\n"
                          "  <driver name=\"vfio\"/>\n"
                          "  <source>\n"
                          "    <address domain=\"0x0001\" bus=\"0x00\" slot=\"0x05\" "
                          "function=\"0x0\"/>\n"
                          "  </source>\n"
                          "  <address type=\"pci\" domain=\"0x0000\" bus=\"0x00\" "
                          "slot=\"0x06\" function=\"0x0\">\n"
                          "    <zpci uid=\"0xffff\" fid=\"0xffffffff\"/>\n"
                          "  </address>\n"
                          "</hostdev>");

    _cleanup_free_ char *only_uid =
        zr_domain_device_xml(&test_case("hostdev zpci uid only")->device);
    cr_expect_not_null(strstr(only_uid, "  <address type=\"pci\">\n"
                                        "    <zpci uid=\"0x0010\"/>\n"
                                        "  </address>\n"),
                       "%s", only_uid);
    /* libvirt's widths: uid 0x%04x, fid 0x%08x */
    _cleanup_free_ char *only_fid =
        zr_domain_device_xml(&test_case("hostdev zpci fid only")->device);
    cr_expect_not_null(strstr(only_fid, "<zpci fid=\"0x00000020\"/>"), "%s", only_fid);
    _cleanup_free_ char *plain = zr_domain_device_xml(&test_case("hostdev plain")->device);
    cr_expect_null(strstr(plain, "<address type"), "no guest address asked for: %s", plain);
}

Test(build, interface_exact_xml_in_libvirt_order)
{
    /* vlan and virtualport together are refused by libvirt at start, but
     * the builder must still put every element where libvirt does. */
    struct zr_device d;
    zr_device_copy(&d, &test_case("interface 802.1Qbg with instanceid")->device);
    d.has_vlan = true;
    d.vlan = 42;
    d.has_guest_address = true;
    cr_assert_eq(zr_pci_addr_parse("0000:00:03.0", &d.guest_address), 0);
    d.has_zpci_uid = true;
    d.zpci_uid = 0x0a;
    _cleanup_free_ char *xml = zr_domain_device_xml(&d);
    zr_device_finish(&d);
    cr_assert_str_eq(xml, "<interface type=\"hostdev\" managed=\"yes\">\n"
                          "  <mac address=\"02:00:00:00:00:04\"/>\n"
                          "  <driver name=\"vfio\"/>\n"
                          "  <source>\n"
                          "    <address type=\"pci\" domain=\"0x0002\" bus=\"0x00\" "
                          "slot=\"0x03\" function=\"0x0\"/>\n"
                          "  </source>\n"
                          "  <vlan>\n"
                          "    <tag id=\"42\"/>\n"
                          "  </vlan>\n"
                          "  <virtualport type=\"802.1Qbg\">\n"
                          "    <parameters managerid=\"11\" typeid=\"1193047\" "
                          "typeidversion=\"2\" "
                          "instanceid=\"09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f\"/>\n"
                          "  </virtualport>\n"
                          "  <address type=\"pci\" domain=\"0x0000\" bus=\"0x00\" "
                          "slot=\"0x03\" function=\"0x0\">\n"
                          "    <zpci uid=\"0x000a\"/>\n"
                          "  </address>\n"
                          "</interface>");
}

struct rng_errors {
    char *text;
};

static void collect_rng_error(void *data, xmlErrorPtr e)
{
    struct rng_errors *errs = data;
    char *more = zr_asprintf("%s%s:%d: %s", errs->text ? errs->text : "",
                             e->file ? e->file : "", e->line, e->message ? e->message : "");
    free(errs->text);
    errs->text = more;
}

static xmlRelaxNGPtr load_domain_rng(void)
{
    if (access(LIBVIRT_DOMAIN_RNG, R_OK) < 0)
        cr_skip_test("%s not installed", LIBVIRT_DOMAIN_RNG);
    _cleanup_(xmlRelaxNGFreeParserCtxtp) xmlRelaxNGParserCtxtPtr pctxt =
        xmlRelaxNGNewParserCtxt(LIBVIRT_DOMAIN_RNG);
    cr_assert_not_null(pctxt);
    struct rng_errors errs = {0};
    xmlRelaxNGSetParserStructuredErrors(pctxt, collect_rng_error, &errs);
    xmlRelaxNGPtr rng = xmlRelaxNGParse(pctxt);
    cr_assert_not_null(rng, "%s does not load: %s", LIBVIRT_DOMAIN_RNG, errs.text);
    free(errs.text);
    return rng;
}

/* NULL when valid, else libxml2's complaints. */
static char *rng_validate(xmlRelaxNGPtr rng, const char *doc_xml)
{
    _cleanup_(xmlFreeDocp) xmlDocPtr doc =
        xmlReadMemory(doc_xml, (int)strlen(doc_xml), NULL, NULL, XML_PARSE_NONET);
    if (!doc)
        return zr_strdup("not well-formed");
    _cleanup_(xmlRelaxNGFreeValidCtxtp) xmlRelaxNGValidCtxtPtr vctxt = xmlRelaxNGNewValidCtxt(rng);
    cr_assert_not_null(vctxt);
    struct rng_errors errs = {0};
    xmlRelaxNGSetValidStructuredErrors(vctxt, collect_rng_error, &errs);
    if (xmlRelaxNGValidateDoc(vctxt, doc) == 0) {
        free(errs.text);
        return NULL;
    }
    return errs.text ? errs.text : zr_strdup("invalid");
}

Test(build, every_case_is_schema_valid_and_reads_back)
{
    _cleanup_(xmlRelaxNGFreep) xmlRelaxNGPtr rng = load_domain_rng();

    /* The schema check must be able to fail. */
    _cleanup_free_ char *broken = zr_test_wrap_domain("<hostdev mode='subsystem' type='pci'>"
                                                      "<model type='virtio'/></hostdev>\n");
    _cleanup_free_ char *why = rng_validate(rng, broken);
    cr_assert_not_null(why, "domain.rng accepted a hostdev with <model> and no source");

    for (size_t i = 0; i < zr_test_n_cases; i++) {
        const struct zr_test_case *c = &zr_test_cases[i];
        _cleanup_free_ char *xml = zr_domain_device_xml(&c->device);
        cr_assert_not_null(xml, "%s", c->name);
        cr_expect_null(strstr(xml, "<model"), "%s: <model> emitted", c->name);
        cr_expect_null(strstr(xml, "<?xml"), "%s: XML declaration emitted", c->name);

        _cleanup_free_ char *indented = zr_asprintf("%s\n", xml);
        _cleanup_free_ char *doc = zr_test_wrap_domain(indented);
        _cleanup_free_ char *invalid = rng_validate(rng, doc);
        cr_expect_null(invalid, "%s: not valid against domain.rng: %s\n%s", c->name, invalid,
                       xml);

        /* Round trip, one element and inside a domain. */
        struct zr_device back = {0};
        struct zr_error err = {0};
        cr_assert_eq(parse_one(xml, &back, &err), 0, "%s: %s", c->name, err.message);
        _cleanup_free_ char *diff = zr_test_device_diff(&c->device, &back, true);
        cr_expect_null(diff, "%s: %s\n%s", c->name, diff, xml);
        cr_expect_str_eq(back.driver, "vfio", "%s", c->name);
        cr_expect_str_eq(back.xml, xml, "%s: serialising again changes nothing", c->name);
        zr_device_finish(&back);

        struct zr_device_list l = {0};
        cr_assert_eq(zr_domain_parse_devices(doc, strlen(doc), c->name, &l, &err), 0, "%s: %s",
                     c->name, err.message);
        cr_assert_eq(l.n, 1, "%s", c->name);
        _cleanup_free_ char *diff2 = zr_test_device_diff(&c->device, &l.items[0], true);
        cr_expect_null(diff2, "%s: %s", c->name, diff2);
        zr_device_list_finish(&l);
    }
}

Test(build, profileid_libvirt_would_write_unescaped_is_refused)
{
    cr_expect(zr_profileid_ok("finance"));
    cr_expect(zr_profileid_ok("a\"b>c d"));
    cr_expect(zr_profileid_ok("123456789012345678901234567890123456789"));
    static const char *bad[] = {
        "", "it's", "a<b", "a&b", "tab\there", "new\nline",
        "1234567890123456789012345678901234567890", /* 40 bytes */
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        cr_expect_not(zr_profileid_ok(bad[i]), "'%s'", bad[i]);
        struct zr_device d = {
            .kind = ZR_KIND_INTERFACE,
            .vport = {.type = ZR_VPORT_8021QBH, .profileid = (char *)bad[i]},
        };
        cr_expect_null(zr_domain_device_xml(&d), "'%s' was built", bad[i]);
    }
    struct zr_device none = {.kind = ZR_KIND__COUNT};
    cr_expect_null(zr_domain_device_xml(&none));
}

/* ---- detach ------------------------------------------------------------- */

Test(detach, strips_generated_alias_keeps_user_alias)
{
    struct zr_device_list l = {0};
    parse_fixture("live-aliases.xml", &l);
    cr_assert_eq(l.n, 4);
    static const struct {
        const char *alias;
        bool kept;
    } want[] = {{"hostdev0", false}, {"ua-crypto", true}, {"hostdev1", false}, {"ua-uplink", true}};

    for (size_t i = 0; i < l.n; i++) {
        _cleanup_free_ char *xml = zr_domain_detach_xml(&l.items[i]);
        cr_assert_not_null(xml);
        _cleanup_free_ char *needle = zr_asprintf("<alias name=\"%s\"/>", want[i].alias);
        cr_expect_eq(strstr(xml, needle) != NULL, want[i].kept, "%zu: %s", i, xml);
        if (!want[i].kept)
            cr_expect_null(strstr(xml, "<alias"), "%zu: %s", i, xml);

        /* Apart from the alias it is the element as it stands. */
        struct zr_device back = {0};
        struct zr_error err = {0};
        cr_assert_eq(parse_one(xml, &back, &err), 0, "%s", err.message);
        _cleanup_free_ char *diff = zr_test_device_diff(&l.items[i], &back, true);
        cr_expect_null(diff, "%zu: %s", i, diff);
        cr_expect(zr_streq(back.alias, want[i].kept ? want[i].alias : NULL));
        zr_device_finish(&back);
    }
    /* The interface keeps what libvirt matches it by: MAC and address. */
    _cleanup_free_ char *iface = zr_domain_detach_xml(&l.items[2]);
    cr_expect_not_null(strstr(iface, "<mac address=\"02:00:00:00:00:11\"/>"));
    cr_expect_not_null(strstr(iface, "slot=\"0x03\""));
    zr_device_list_finish(&l);
}

Test(detach, device_without_xml_is_built)
{
    const struct zr_device *d = &test_case("interface everything but vlan")->device;
    _cleanup_free_ char *built = zr_domain_device_xml(d);
    _cleanup_free_ char *detach = zr_domain_detach_xml(d);
    cr_expect_str_eq(detach, built);

    struct zr_device broken = {.kind = ZR_KIND_HOSTDEV, .xml = (char *)"<hostdev"};
    cr_expect_null(zr_domain_detach_xml(&broken));
}

/* ---- the scan that spares the conflict check a parse ------------------- */

static size_t devices_in(const char *xml)
{
    struct zr_device_list l = {0};
    struct zr_error err = {0};
    cr_assert_eq(zr_domain_parse_devices(xml, strlen(xml), "scan", &l, &err), 0, "%s", err.message);
    size_t n = l.n;
    zr_device_list_finish(&l);
    return n;
}

Test(scan, clears_only_xml_that_cannot_hold_a_device)
{
    const char *none = "<domain type='qemu'><name>a</name><devices>"
                       "<interface type='network'><source network='default'/></interface>"
                       "<controller type='pci' index='0' model='pci-root'/></devices></domain>";
    cr_expect_not(zr_domain_may_hold_devices(none));
    cr_expect_eq(devices_in(none), 0);

    const char *iface = "<domain><devices><interface type=\"hostdev\"><source><address "
                        "type='pci' domain='0' bus='1' slot='0' function='0'/></source>"
                        "</interface></devices></domain>";
    cr_expect(zr_domain_may_hold_devices(iface));
    cr_expect_eq(devices_in(iface), 1);

    /* The word spelled with a character reference is still the word. */
    const char *ref = "<domain><devices><interface type='&#104;ostdev'><source><address "
                      "type='pci' domain='0' bus='1' slot='0' function='0'/></source>"
                      "</interface></devices></domain>";
    cr_expect(zr_domain_may_hold_devices(ref));
    cr_expect_eq(devices_in(ref), 1);

    /* Naming a hostdev anywhere only costs the parse. */
    const char *named = "<domain><name>hostdev-lab</name><devices/></domain>";
    cr_expect(zr_domain_may_hold_devices(named));
    cr_expect_eq(devices_in(named), 0);
}

/* Everything the reader takes from outside the in-scope devices, with text,
 * comments and CDATA in the parts the pruned tree skips. */
static const char pruned_domain[] =
    "<domain type='qemu'><name>p</name><description>a <!-- c --> b</description>"
    "<metadata><x:m xmlns:x='urn:x'><![CDATA[<hostdev/>]]><?pi data?></x:m></metadata>"
    "<os><type arch='s390x'>hvm</type><boot dev='hd'/></os>"
    "<devices><emulator>/usr/bin/qemu-system-s390x</emulator>"
    "<disk type='file' device='disk'><driver name='qemu'/><source file='/d'/>"
    "<target dev='vda' bus='virtio'/><boot order='1'/>"
    "<address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'>"
    "<zpci uid='0x0007' fid='0x00000007'/></address></disk>"
    "<interface type='network'><source network='default'/><boot order='2'/></interface>"
    "<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>"
    "<source><address domain='0x0001' bus='0x00' slot='0x00' function='0x0'/></source>"
    "<boot order='3'/><address type='pci'><zpci uid='0x0001' fid='0x00000001'/></address>"
    "<x:future xmlns:x='urn:x'>t<!-- kept --></x:future></hostdev>"
    "</devices></domain>";

Test(scan, pruned_tree_reads_as_the_whole_one)
{
    struct zr_device_list p = {0}, w = {0};
    struct zr_error err = {0};
    size_t n = sizeof(pruned_domain) - 1;
    cr_assert_eq(zr_domain_parse_devices(pruned_domain, n, "p", &p, &err), 0, "%s", err.message);
    cr_assert_eq(zr_domain_parse_devices_whole(pruned_domain, n, "w", &w, &err), 0);
    cr_expect(p.os_boot && w.os_boot);
    cr_assert_eq(p.n, 1);
    cr_assert_eq(w.n, 1);
    cr_expect_str_eq(p.items[0].xml, w.items[0].xml);
    cr_expect_str_eq(p.items[0].unrepresentable, w.items[0].unrepresentable);
    cr_assert_eq(p.n_held, 2);
    cr_assert_eq(w.n_held, 2);
    const struct zr_held *disk = &p.held[0], *net = &p.held[1];
    cr_expect_str_eq(disk->what, "<disk>");
    cr_expect(disk->has_boot_order && disk->boot_order == 1);
    cr_expect(disk->has_zpci_uid && disk->zpci_uid == 7 && disk->has_zpci_fid);
    cr_expect(disk->has_guest_address && disk->guest_address.slot == 5);
    cr_expect_str_eq(net->what, "<interface>");
    cr_expect(net->has_boot_order && net->boot_order == 2);
    for (size_t i = 0; i < 2; i++)
        cr_expect(zr_streq(p.held[i].what, w.held[i].what) &&
                      p.held[i].boot_order == w.held[i].boot_order &&
                      p.held[i].zpci_uid == w.held[i].zpci_uid &&
                      p.held[i].has_guest_address == w.held[i].has_guest_address,
                  "held %zu", i);
    zr_device_list_finish(&p);
    zr_device_list_finish(&w);
}

/* A device's text is its bytes in the input: from '<' to the closing '>',
 * with its own spacing, quotes, references and comments; an empty element
 * and one beside another on the same line alike. */
Test(scan, device_text_is_the_input_bytes)
{
    static const char *const elements[] = {
        "<hostdev mode=\"subsystem\" type='pci' managed='yes'>\n"
        "      <!-- a > comment --><source>\n"
        "  <address domain='0x0000' bus='0x03' slot='0x07' function='0x1'/>\n"
        "      </source><alias name='ua-a&amp;&#98;'/>\n    </hostdev   >",
        "<interface type='hostdev'><source><address type='pci' domain='0' bus='3' slot='7' "
        "function='2'/></source></interface>",
    };
    for (int whole = 0; whole < 2; whole++) {
        _cleanup_free_ char *xml =
            zr_asprintf("<?xml version='1.0' encoding='UTF-8'?>\n<domain><devices>\n    %s%s"
                        "<hostdev mode='subsystem' type='usb'/></devices></domain>\n",
                        elements[0], elements[1]);
        struct zr_device_list l = {0};
        struct zr_error err = {0};
        int r = whole ? zr_domain_parse_devices_whole(xml, strlen(xml), "t", &l, &err)
                      : zr_domain_parse_devices(xml, strlen(xml), "t", &l, &err);
        cr_assert_eq(r, 0, "%s", err.message);
        cr_assert_eq(l.n, 2);
        for (size_t i = 0; i < 2; i++)
            cr_expect_str_eq(l.items[i].xml, elements[i], "whole %d #%zu", whole, i);
        cr_expect_str_eq(l.items[0].alias, "ua-a&b");
        zr_device_list_finish(&l);
    }
}

/* Decoded input has no byte offsets of its own: the element is written
 * again from the tree, in UTF-8, and reads back as the same device. */
Test(scan, device_text_of_decoded_input_is_written_again)
{
    static const char latin1[] =
        "<?xml version='1.0' encoding='ISO-8859-1'?>\n<domain><devices>"
        "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='3' slot='7' "
        "function='1'/></source><alias name='ua-\xe9'/></hostdev></devices></domain>";
    struct zr_device_list l = {0};
    struct zr_error err = {0};
    cr_assert_eq(zr_domain_parse_devices(latin1, sizeof(latin1) - 1, "t", &l, &err), 0, "%s",
                 err.message);
    cr_assert_eq(l.n, 1);
    cr_expect_str_eq(l.items[0].alias, "ua-\xc3\xa9");
    cr_expect_str_eq(l.items[0].xml, "<hostdev mode=\"subsystem\" type=\"pci\">\n"
                                     "  <source>\n"
                                     "    <address domain=\"0\" bus=\"3\" slot=\"7\" "
                                     "function=\"1\"/>\n"
                                     "  </source>\n"
                                     "  <alias name=\"ua-\xc3\xa9\"/>\n"
                                     "</hostdev>");
    struct zr_device again = {0};
    cr_assert_eq(parse_one(l.items[0].xml, &again, &err), 0, "%s", err.message);
    cr_expect_str_eq(again.alias, "ua-\xc3\xa9");
    zr_device_finish(&again);
    zr_device_list_finish(&l);
}

/* ---- what the model does not carry, and the in-place edit of a replacement */

static const char rich_interface[] =
    "<interface type='hostdev' managed='yes'>"
    "<mac address='00:11:22:33:44:55'/>"
    "<source><address type='pci' domain='0x0000' bus='0x03' slot='0x07' function='0x1'/></source>"
    "<vlan trunk='yes'><tag id='42'/><tag id='43'/></vlan>"
    "<model type='virtio'/><backend tap='/dev/net/tun'/>"
    "<teaming type='transient' persistent='ua-backup0'/>"
    "<boot order='2'/><rom bar='on' file='/rom.bin' enabled='yes'/>"
    "<x:future xmlns:x='urn:x'/>"
    "<alias name='hostdev0'/>"
    "<address type='unassigned'/>"
    "</interface>";

Test(fidelity, reads_boot_rom_and_what_the_format_cannot_say)
{
    struct zr_device d = {0};
    struct zr_error err = {0};
    cr_assert_eq(parse_one(rich_interface, &d, &err), 0, "%s", err.message);
    cr_expect(d.has_boot_order && d.boot_order == 2);
    cr_expect(d.rom.has_bar && d.rom.bar);
    cr_expect(d.rom.has_enabled && d.rom.enabled);
    cr_expect(d.rom.has_file);
    cr_expect_str_eq(d.rom.file, "/rom.bin");
    cr_expect(!d.has_guest_address);
    cr_expect_str_eq(d.unrepresentable,
                     "<model>, <backend>, <teaming>, <x:future>, an unassigned address");
    zr_device_finish(&d);
}

Test(fidelity, bad_rom_switch_is_an_error)
{
    struct zr_device d = {0};
    struct zr_error err = {0};
    const char *xml = "<hostdev mode='subsystem' type='pci'><source><address domain='0' "
                      "bus='0' slot='0' function='0'/></source><rom bar='maybe'/></hostdev>";
    cr_assert_eq(parse_one(xml, &d, &err), -EINVAL);
    cr_expect_str_eq(err.message, "<rom bar='maybe'>: expected 'on' or 'off'");
    zr_error_finish(&err);
}

/* The edited element equals the original, but for `changes`: everything the
 * model lacks survives, and the generated alias goes. */
Test(fidelity, edit_changes_only_the_differing_fields)
{
    struct zr_device cur = {0}, want = {0};
    struct zr_error err = {0};
    cr_assert_eq(parse_one(rich_interface, &cur, &err), 0);
    zr_device_copy(&want, &cur);
    want.managed = false;
    want.boot_order = 5;
    want.rom.bar = false;
    _cleanup_free_ char *xml = zr_domain_edit_xml(&cur, &want);
    cr_assert_not_null(xml);
    cr_expect_str_eq(xml, "<interface type=\"hostdev\" managed=\"no\">\n"
                          "  <mac address=\"00:11:22:33:44:55\"/>\n"
                          "  <source>\n"
                          "    <address type=\"pci\" domain=\"0x0000\" bus=\"0x03\" slot=\"0x07\" "
                          "function=\"0x1\"/>\n"
                          "  </source>\n"
                          "  <vlan trunk=\"yes\">\n"
                          "    <tag id=\"42\"/>\n"
                          "    <tag id=\"43\"/>\n"
                          "  </vlan>\n"
                          "  <model type=\"virtio\"/>\n"
                          "  <backend tap=\"/dev/net/tun\"/>\n"
                          "  <teaming type=\"transient\" persistent=\"ua-backup0\"/>\n"
                          "  <boot order=\"5\"/>\n"
                          "  <rom bar=\"off\" file=\"/rom.bin\" enabled=\"yes\"/>\n"
                          "  <x:future xmlns:x=\"urn:x\"/>\n"
                          "  <address type=\"unassigned\"/>\n"
                          "</interface>");
    /* Nothing differs: the element as it stands, minus the alias. */
    _cleanup_free_ char *same = zr_domain_edit_xml(&cur, &cur);
    _cleanup_free_ char *detach = zr_domain_detach_xml(&cur);
    cr_expect_str_eq(same, detach);
    cr_expect_null(strstr(same, "alias"));
    zr_device_finish(&cur);
    zr_device_finish(&want);
}

Test(fidelity, edit_moves_ids_and_slot_and_drops_what_libvirt_refuses)
{
    struct zr_device cur = {0}, want = {0};
    struct zr_error err = {0};
    const char *xml = "<interface type='hostdev' managed='yes'><mac address='02:00:00:00:00:01'/>"
                      "<source><address type='pci' domain='0x0003' bus='0x00' slot='0x00' "
                      "function='0x0'/></source>"
                      "<vlan><tag id='7'/></vlan>"
                      "<address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'>"
                      "<zpci uid='0x0001' fid='0x00000000'/></address></interface>";
    cr_assert_eq(parse_one(xml, &cur, &err), 0);
    zr_device_copy(&want, &cur);
    /* Let libvirt pick uid and slot anew, keep the fid; a virtualport makes
     * libvirt refuse the vlan beside it. */
    want.has_zpci_uid = false;
    want.has_guest_address = false;
    want.has_vlan = false;
    want.vport.type = ZR_VPORT_8021QBH;
    want.vport.profileid = zr_strdup("finance");
    cr_expect(zr_device_drops_vlan(&cur, &want));
    _cleanup_free_ char *out = zr_domain_edit_xml(&cur, &want);
    cr_assert_not_null(out);
    cr_expect_str_eq(out, "<interface type=\"hostdev\" managed=\"yes\">\n"
                          "  <mac address=\"02:00:00:00:00:01\"/>\n"
                          "  <source>\n"
                          "    <address type=\"pci\" domain=\"0x0003\" bus=\"0x00\" slot=\"0x00\" "
                          "function=\"0x0\"/>\n"
                          "  </source>\n"
                          "  <address type=\"pci\">\n"
                          "    <zpci fid=\"0x00000000\"/>\n"
                          "  </address>\n"
                          "  <virtualport type=\"802.1Qbh\">\n"
                          "    <parameters profileid=\"finance\"/>\n"
                          "  </virtualport>\n"
                          "</interface>");
    /* Giving up every id and the slot leaves no <address> at all. */
    want.has_zpci_fid = false;
    _cleanup_free_ char *bare = zr_domain_edit_xml(&cur, &want);
    const char *first = strstr(bare, "<address");
    cr_assert_not_null(first);
    cr_expect_null(strstr(first + 1, "<address"), "%s", bare);
    zr_device_finish(&cur);
    zr_device_finish(&want);
}

/* 14 of libvirt's own test domains have a <vlan> beside a <virtualport>, which
 * the inventory cannot state: a replacement for another field (here the MAC
 * and the zPCI uid) keeps both, as it keeps every field the inventory leaves
 * out. */
Test(fidelity, edit_keeps_a_vlan_that_already_sits_beside_a_virtualport)
{
    struct zr_device cur = {0}, want = {0};
    struct zr_error err = {0};
    const char *xml = "<interface type='hostdev' managed='yes'><mac address='02:00:00:00:00:01'/>"
                      "<source><address type='pci' domain='0x0003' bus='0x00' slot='0x00' "
                      "function='0x0'/></source>"
                      "<vlan><tag id='42'/></vlan>"
                      "<virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport>"
                      "<address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'>"
                      "<zpci uid='0x0001' fid='0x00000000'/></address></interface>";
    cr_assert_eq(parse_one(xml, &cur, &err), 0);
    cr_assert(cur.has_vlan && cur.vport.type == ZR_VPORT_8021QBH);
    /* the target as an inventory with a virtualport (export writes one) and
     * no vlan gives it */
    zr_device_copy(&want, &cur);
    want.has_vlan = false;
    cr_assert_eq(zr_mac_parse("02:00:00:00:00:02", &want.mac), 0);
    want.zpci_uid = 2;
    cr_expect_not(zr_device_drops_vlan(&cur, &want));
    _cleanup_free_ char *out = zr_domain_edit_xml(&cur, &want);
    cr_assert_not_null(out);
    cr_expect_str_eq(out, "<interface type=\"hostdev\" managed=\"yes\">\n"
                          "  <mac address=\"02:00:00:00:00:02\"/>\n"
                          "  <source>\n"
                          "    <address type=\"pci\" domain=\"0x0003\" bus=\"0x00\" slot=\"0x00\" "
                          "function=\"0x0\"/>\n"
                          "  </source>\n"
                          "  <vlan>\n"
                          "    <tag id=\"42\"/>\n"
                          "  </vlan>\n"
                          "  <virtualport type=\"802.1Qbh\">\n"
                          "    <parameters profileid=\"finance\"/>\n"
                          "  </virtualport>\n"
                          "  <address type=\"pci\" domain=\"0x0000\" bus=\"0x00\" slot=\"0x01\" "
                          "function=\"0x0\">\n"
                          "    <zpci uid=\"0x0002\" fid=\"0x00000000\"/>\n"
                          "  </address>\n"
                          "</interface>");
    /* the same for a virtualport that already sits beside a vlan the
     * inventory gives */
    zr_device_finish(&want);
    zr_device_copy(&want, &cur);
    zr_virtualport_finish(&want.vport);
    want.vport = (struct zr_virtualport){0};
    want.vlan = 43;
    cr_expect_not(zr_device_drops_virtualport(&cur, &want));
    _cleanup_free_ char *vlan = zr_domain_edit_xml(&cur, &want);
    cr_assert_not_null(vlan);
    cr_expect(strstr(vlan, "<tag id=\"43\"/>") && strstr(vlan, "<virtualport"), "%s", vlan);
    zr_device_finish(&cur);
    zr_device_finish(&want);
}

Test(fidelity, out_of_scope_devices_hold_ids_slots_and_boot_orders)
{
    struct zr_device_list l = {0};
    parse_corpus("disk-virtio-s390-zpci.xml", &l);
    cr_assert_eq(l.n, 0);
    cr_assert_geq(l.n_held, 1);
    const struct zr_held *h = &l.held[0];
    cr_expect_str_eq(h->what, "<disk>");
    cr_expect(h->has_zpci_uid && h->zpci_uid == 0x19);
    cr_expect(h->has_zpci_fid && h->zpci_fid == 0x1f);
    cr_expect(h->has_guest_address && pci_is(&h->guest_address, "0000:00:08.0"));
    zr_device_list_finish(&l);
}
