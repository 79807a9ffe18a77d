/* The model without libvirt or libxml2: this test links zr-model alone
 * (tests/meson.build), so it builds only while the inventory's rules, the
 * YAML tree, source positions, devices and values need neither. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inventory.h"

static const char two_hosts[] = "version: 1\n"
                                "hosts:\n"
                                "  kvm1:\n"
                                "    uri: qemu:///system\n"
                                "    guests:\n"
                                "      g1:\n"
                                "        hostdevs:\n"
                                "          - source: 0000:01:00.0\n"
                                "  kvm1-again:\n"
                                "    uri: %s\n"
                                "    guests: {}\n";

static struct zr_inventory *parse(const char *second_uri, const struct zr_inventory_rules *rules,
                                  struct zr_errors *errs)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml), two_hosts, second_uri);
    return zr_inventory_parse_with("model.yaml", yaml, strlen(yaml), rules, errs);
}

/* A stand-in for the libvirt layer's normaliser: the rule must use
 * whatever it is given. */
static char *lower_case(const char *uri)
{
    char *s = strdup(uri);
    for (char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return s;
}

Test(model, the_inventory_rules_read_without_libvirt)
{
    struct zr_errors errs = {0};
    struct zr_inventory *inv = parse("qemu:///session", NULL, &errs);
    cr_assert_not_null(inv, "%s", errs.n ? errs.items[0].message : "");
    cr_assert_eq(inv->n_hosts, 2);
    cr_assert_eq(inv->hosts[0].n_guests, 1);
    const struct zr_device *d = &inv->hosts[0].guests[0].devices.items[0];
    cr_expect_eq(d->kind, ZR_KIND_HOSTDEV);
    cr_expect_eq(d->source.bus, 1);
    cr_expect_eq(d->mark.line, 8);
    zr_inventory_free(inv);
    zr_errors_finish(&errs);
}

Test(model, one_host_one_uri_without_a_normaliser_compares_as_written)
{
    struct zr_errors errs = {0};
    cr_assert_null(parse("qemu:///system", NULL, &errs));
    cr_assert_eq(errs.n, 1);
    cr_expect_str_eq(errs.items[0].message, "host 'kvm1-again' has the same uri as host 'kvm1' "
                                            "(line 3); each host needs its own");
    cr_expect_eq(errs.items[0].line, 9);
    zr_errors_finish(&errs);

    struct zr_inventory *inv = parse("QEMU:///system", NULL, &errs);
    cr_expect_not_null(inv, "two spellings are two URIs without the libvirt layer's rule");
    zr_inventory_free(inv);
    zr_errors_finish(&errs);
}

Test(model, one_host_one_uri_with_the_callers_normaliser)
{
    struct zr_errors errs = {0};
    const struct zr_inventory_rules rules = {.uri_normalize = lower_case};
    cr_assert_null(parse("QEMU:///system", &rules, &errs));
    cr_assert_eq(errs.n, 1);
    cr_expect_str_eq(errs.items[0].message,
                     "host 'kvm1-again' has the same uri as host 'kvm1' (line 3): both name "
                     "qemu:///system; each host needs its own");
    zr_errors_finish(&errs);
}

/* A device is found by its key, kind and host source together: apply's
 * re-read, the rollback and the planner all look devices up this way. */
Test(model, a_device_list_finds_by_kind_and_source)
{
    struct zr_device_list l = {0};
    const struct zr_pci_addr a = {.domain = 2}, b = {.domain = 2, .function = 1};
    struct zr_device *hostdev = zr_device_list_append(&l);
    hostdev->kind = ZR_KIND_HOSTDEV;
    hostdev->source = a;
    struct zr_device *iface = zr_device_list_append(&l);
    iface->kind = ZR_KIND_INTERFACE;
    iface->source = b;

    cr_expect_eq(zr_device_list_find(&l, ZR_KIND_HOSTDEV, &a), &l.items[0]);
    cr_expect_eq(zr_device_list_find(&l, ZR_KIND_INTERFACE, &b), &l.items[1]);
    cr_expect_null(zr_device_list_find(&l, ZR_KIND_INTERFACE, &a), "the source, not the kind");
    cr_expect_null(zr_device_list_find(&l, ZR_KIND_HOSTDEV, &b), "the kind, not the source");
    cr_expect_null(zr_device_list_find(NULL, ZR_KIND_HOSTDEV, &a), "no list holds nothing");
    zr_device_list_finish(&l);
}
