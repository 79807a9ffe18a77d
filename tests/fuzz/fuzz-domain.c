/* bytes -> zr_domain_parse_devices(), then for every device read: the XML
 * the builder makes of it and the XML sent to detach it, each read back.
 *
 * Invariants:
 * - a refused document leaves the list untouched and says why;
 * - the builder refuses a device only for a profileid libvirt cannot store,
 *   and parse(build(d)) == d for every field the builder writes;
 * - the detach XML of a device read from a domain always parses and is the
 *   same device (libvirt must find *that* device with it), without a
 *   generated alias and keeping a user ("ua-") one. */
#include <errno.h>
#include <string.h>

#include "domain.h"
#include "fuzz.h"

static void check_built(const struct zr_device *d)
{
    _cleanup_free_ char *xml = zr_domain_device_xml(d);
    if (!xml) {
        zr_fuzz_assert(d->kind == ZR_KIND_INTERFACE && d->vport.type == ZR_VPORT_8021QBH &&
                           d->vport.profileid && !zr_profileid_ok(d->vport.profileid),
                       "the builder refuses a device it should build: %s", d->xml);
        return;
    }
    struct zr_device back = {0};
    zr_fuzz_read_device(xml, "built XML", &back);
    const char *field = zr_fuzz_device_diff(d, &back, false);
    zr_fuzz_assert(!field, "%s differs after build + parse:\n%s\nfrom:\n%s", field, xml, d->xml);
    zr_fuzz_assert(zr_streq(back.driver, "vfio"), "built XML without the vfio driver:\n%s", xml);
    zr_device_finish(&back);
}

static void check_detach(const struct zr_device *d)
{
    _cleanup_free_ char *xml = zr_domain_detach_xml(d);
    zr_fuzz_assert(xml, "no detach XML for a device read from a domain:\n%s", d->xml);

    struct zr_device back = {0};
    zr_fuzz_read_device(xml, "detach XML", &back);
    /* libvirt writes one <alias>; with several, the reader takes the first
     * and the detach XML drops each generated one and keeps user ones. */
    zr_fuzz_assert(!back.alias || strncmp(back.alias, "ua-", 3) == 0,
                   "detach XML keeps generated alias '%s'", back.alias);
    if (d->alias && strncmp(d->alias, "ua-", 3) == 0)
        zr_fuzz_assert(zr_streq(back.alias, d->alias), "detach XML lost user alias '%s'",
                       d->alias);
    free(back.alias);
    back.alias = zr_strdup(d->alias);
    const char *field = zr_fuzz_device_diff(d, &back, true);
    zr_fuzz_assert(!field, "%s differs in the detach XML:\n%s\nfrom:\n%s", field, xml, d->xml);
    zr_device_finish(&back);
}

static bool held_eq(const struct zr_held *a, const struct zr_held *b)
{
    return zr_streq(a->what, b->what) && a->has_zpci_uid == b->has_zpci_uid &&
           a->zpci_uid == b->zpci_uid && a->has_zpci_fid == b->has_zpci_fid &&
           a->zpci_fid == b->zpci_fid && a->has_boot_order == b->has_boot_order &&
           a->boot_order == b->boot_order && a->has_guest_address == b->has_guest_address &&
           zr_pci_addr_eq(&a->guest_address, &b->guest_address);
}

/* The pruned tree misses nothing the reader reads: the whole tree gives
 * the same devices (their stored XML covers each element's subtree), the
 * same holdings and the same error. */
static void check_whole(const uint8_t *data, size_t size, const struct zr_device_list *pruned,
                        int r, const struct zr_error *err)
{
    struct zr_device_list list = {0};
    zr_device_list_append(&list)->kind = ZR_KIND_HOSTDEV;
    struct zr_error e = {0};
    int rw = zr_domain_parse_devices_whole((const char *)data, size, "fuzz.xml", &list, &e);
    zr_fuzz_assert(rw == r && zr_streq(e.message, err->message) && e.line == err->line,
                   "whole tree: %d '%s' line %u, pruned: %d '%s' line %u", rw, e.message, e.line, r,
                   err->message, err->line);
    zr_fuzz_assert(list.n == pruned->n && list.n_held == pruned->n_held &&
                       list.os_boot == pruned->os_boot,
                   "whole tree: %zu devices, %zu held; pruned: %zu, %zu", list.n, list.n_held,
                   pruned->n, pruned->n_held);
    for (size_t i = 1; i < list.n; i++)
        zr_fuzz_assert(
            zr_streq(list.items[i].xml, pruned->items[i].xml) &&
                zr_streq(list.items[i].unrepresentable, pruned->items[i].unrepresentable),
            "device %zu differs: whole tree\n%s\npruned\n%s", i, list.items[i].xml,
            pruned->items[i].xml);
    for (size_t i = 0; i < list.n_held; i++)
        zr_fuzz_assert(held_eq(&list.held[i], &pruned->held[i]), "held %zu differs: %s", i,
                       list.held[i].what);
    zr_device_list_finish(&list);
    zr_error_finish(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > ZR_FUZZ_MAX_INPUT)
        return 0;

    /* A device already there: a failed parse must not touch the list. */
    struct zr_device_list list = {0};
    zr_device_list_append(&list)->kind = ZR_KIND_HOSTDEV;
    struct zr_error err = {0};
    int r = zr_domain_parse_devices((const char *)data, size, "fuzz.xml", &list, &err);
    if (r < 0) {
        zr_fuzz_assert(list.n == 1, "a refused document changed the list (%zu devices)", list.n);
        zr_fuzz_assert(err.message && *err.message, "refused without a message");
        struct zr_fuzz_sink sink;
        zr_fuzz_sink_open(&sink);
        zr_error_print(&err, sink.f);
        zr_fuzz_sink_free(&sink);
    } else {
        zr_fuzz_assert(r == 0, "unexpected return %d", r);
        zr_fuzz_assert(!err.message, "success with an error: %s", err.message);
    }

    check_whole(data, size, &list, r, &err);

    for (size_t i = 1; i < list.n; i++) {
        const struct zr_device *d = &list.items[i];
        zr_fuzz_assert(d->kind == ZR_KIND_HOSTDEV || d->kind == ZR_KIND_INTERFACE,
                       "kind %d", (int)d->kind);
        zr_fuzz_assert(d->xml, "a device read without its XML");
        free(zr_device_describe(d));
        check_built(d);
        check_detach(d);
    }

    /* The single-device entry point on the same bytes. */
    struct zr_device one = {0};
    struct zr_error err1 = {0};
    r = zr_domain_parse_device((const char *)data, size, &one, &err1);
    zr_fuzz_assert(r == 0 || r == -ENOENT || (r == -EINVAL && err1.message),
                   "zr_domain_parse_device returned %d", r);
    if (r == 0) {
        check_built(&one);
        check_detach(&one);
    }
    zr_device_finish(&one);
    zr_error_finish(&err1);

    zr_device_list_finish(&list);
    zr_error_finish(&err);
    return 0;
}
