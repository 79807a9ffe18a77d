/* export: every domain XML under tests/data/domain, written as an
 * inventory, must load without error and plan to nothing against the very
 * devices it was written from; guest names that need quoting must come
 * back unchanged; what the format cannot hold is left out with a warning. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "export.h"
#include "inventory.h"
#include "plan.h"
#include "render.h"
#include "summary.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    char chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, r, m);
    fclose(f);
    fclose(m);
    *len = n;
    return buf;
}

static void parse_xml(const char *xml, struct zr_device_list *out)
{
    struct zr_error err = {0};
    cr_assert_eq(zr_domain_parse_devices(xml, strlen(xml), "test", out, &err), 0, "%s",
                 err.message ? err.message : "");
}

/* Exports, loads the result back and checks it plans to nothing against
 * the same devices.  Returns the YAML; warnings in *w. */
static char *round_trip(const struct zr_export_guest *guests, size_t n,
                        struct zr_export_warnings *w)
{
    char *yaml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&yaml, &len);
    struct zr_error err = {0};
    cr_assert_eq(zr_export_write(f, "qemu:///system", guests, n, w, &err), 0);
    fclose(f);

    struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_parse("export.yaml", yaml, len, &errs);
    if (!inv)
        zr_errors_print(&errs, stderr);
    cr_assert_not_null(inv, "export wrote an invalid inventory:\n%s", yaml);
    cr_assert_eq(inv->n_hosts, 1);
    cr_assert_str_eq(inv->hosts[0].uri, "qemu:///system");
    cr_assert_eq(inv->hosts[0].n_guests, n, "%s", yaml);

    struct zr_plan plan = {0};
    for (size_t i = 0; i < n; i++) {
        const struct zr_guest *g = &inv->hosts[0].guests[i];
        cr_assert_str_eq(g->name, guests[i].name, "%s", yaml);
        zr_plan_guest(&plan, "default", NULL, g, guests[i].devices, guests[i].devices, NULL);
    }
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);
    struct zr_summary c;
    zr_summary_count(&(struct zr_report){.plan = plan}, false, &c);
    cr_assert_eq(plan.n_actions, 0, "export does not plan to nothing:\n%s", yaml);
    cr_assert_eq(c.guests.failed, 0, "%s", yaml);
    zr_summary_finish(&c);
    zr_plan_finish(&plan);
    zr_inventory_free(inv);
    zr_errors_finish(&errs);
    return yaml;
}

Test(export, every_domain_test_file_round_trips)
{
    const char *src = getenv("ZR_SRCDIR");
    cr_assert_not_null(src);
    char *dir = NULL;
    cr_assert_geq(asprintf(&dir, "%s/tests/data/domain", src), 0);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    size_t files = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".xml") != 0)
            continue;
        char *path = NULL;
        cr_assert_geq(asprintf(&path, "%s/%s", dir, e->d_name), 0);
        size_t len;
        char *xml = read_file(path, &len);
        struct zr_device_list devs = {0};
        parse_xml(xml, &devs);
        struct zr_export_guest g = {e->d_name, &devs};
        struct zr_export_warnings w = {0};
        free(round_trip(&g, 1, &w));
        zr_export_warnings_finish(&w);
        zr_device_list_finish(&devs);
        free(xml);
        free(path);
        files++;
    }
    closedir(d);
    free(dir);
    cr_assert_geq(files, 5);
}

#define HOSTDEV(dom, extra)                                                                        \
    "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='" dom             \
    "' bus='0' slot='0' function='0'/></source>" extra "</hostdev>"

static const char *const tricky_names[] = {
    "plain",
    "it's",
    "a: b",
    "\"quoted\"",
    "null",
    "~",
    "yes",
    "No",
    "123",
    "0x10",
    "1:20",
    "-dash",
    "#hash",
    "with space",
    "[x]",
    "{y}",
    "*star",
    "&anchor",
    "!tag",
    "%pct",
    "@at",
    "`tick",
    "ünïcödé",
    "日本語",
    "trailing ",
    " lead",
    "a,b",
    "q?",
    "back\\s",
    "tab\there",
    "x\x7f"
    "del",
    "…",
    ">fold",
    "|lit",
    "=eq",
};

Test(export, guest_names_that_need_quoting_come_back_unchanged)
{
    size_t n = sizeof(tricky_names) / sizeof(tricky_names[0]);
    struct zr_device_list *devs = calloc(n, sizeof(*devs));
    struct zr_export_guest *guests = calloc(n, sizeof(*guests));
    for (size_t i = 0; i < n; i++) {
        char *xml = NULL;
        cr_assert_geq(
            asprintf(&xml, "<domain><devices>" HOSTDEV("%zu", "") "</devices></domain>", i + 1), 0);
        parse_xml(xml, &devs[i]);
        free(xml);
        guests[i] = (struct zr_export_guest){tricky_names[i], &devs[i]};
    }
    struct zr_export_warnings w = {0};
    char *yaml = round_trip(guests, n, &w);
    cr_assert_eq(w.n, 0);
    /* Words and numbers are quoted so no YAML reader takes them for
     * anything but names. */
    cr_assert_not_null(strstr(yaml, "\n  \"null\":"), "%s", yaml);
    cr_assert_not_null(strstr(yaml, "\n  \"yes\":"), "%s", yaml);
    cr_assert_not_null(strstr(yaml, "\n  \"123\":"), "%s", yaml);
    cr_assert_not_null(strstr(yaml, "\n  plain:"), "%s", yaml);
    /* Non-ASCII is written as UTF-8, not escaped. */
    cr_assert_not_null(strstr(yaml, "日本語"), "%s", yaml);
    free(yaml);
    zr_export_warnings_finish(&w);
    for (size_t i = 0; i < n; i++)
        zr_device_list_finish(&devs[i]);
    free(devs);
    free(guests);
}

static bool has_warning(const struct zr_export_warnings *w, const char *needle)
{
    for (size_t i = 0; i < w->n; i++)
        if (strstr(w->items[i], needle))
            return true;
    return false;
}

Test(export, vlan_beside_virtualport_is_left_out_with_a_warning)
{
    struct zr_device_list devs = {0};
    parse_xml("<domain><devices><interface type='hostdev' managed='yes'>"
              "<mac address='02:00:00:00:00:01'/>"
              "<source><address type='pci' domain='0x0003' bus='0' slot='0' function='0'/></source>"
              "<vlan><tag id='42'/></vlan>"
              "<virtualport type='802.1Qbh'><parameters profileid='fin'/></virtualport>"
              "</interface></devices></domain>",
              &devs);
    struct zr_export_guest g = {"g", &devs};
    struct zr_export_warnings w = {0};
    char *yaml = round_trip(&g, 1, &w);
    cr_assert_eq(w.n, 1);
    cr_assert_str_eq(w.items[0],
                     "guest 'g': interface 0003:00:00.0: vlan 42 left out: the inventory cannot "
                     "hold a vlan beside a virtualport (libvirt refuses the pair when it starts "
                     "the guest)");
    cr_assert_not_null(strstr(yaml, "virtualport: {type: 802.1Qbh, profileid: fin}"), "%s", yaml);
    cr_assert_null(strstr(yaml, "vlan"), "%s", yaml);
    free(yaml);
    zr_export_warnings_finish(&w);
    zr_device_list_finish(&devs);
}

/* libvirt defines a guest with two interfaces of one MAC; the inventory
 * refuses that, so export writes the MAC once, with a warning. */
Test(export, a_mac_the_guest_has_twice_is_written_once)
{
    struct zr_device_list devs = {0};
    parse_xml("<domain><devices>"
              "<interface type='hostdev'><mac address='02:00:00:00:00:01'/>"
              "<source><address type='pci' domain='0x0003' bus='0' slot='0' function='0'/></source>"
              "</interface>"
              "<interface type='hostdev'><mac address='02:00:00:00:00:01'/>"
              "<source><address type='pci' domain='0x0003' bus='0' slot='0' function='1'/></source>"
              "</interface></devices></domain>",
              &devs);
    struct zr_export_guest g = {"g", &devs};
    struct zr_export_warnings w = {0};
    char *yaml = round_trip(&g, 1, &w);
    cr_assert_eq(w.n, 1);
    cr_assert_str_eq(w.items[0],
                     "guest 'g': interface 0003:00:00.1: mac 02:00:00:00:00:01 left out: "
                     "interface 0003:00:00.0 of the guest has it too (the inventory gives a MAC "
                     "once per guest)");
    const char *first = strstr(yaml, "02:00:00:00:00:01");
    cr_assert_not_null(first, "%s", yaml);
    cr_assert_null(strstr(first + 1, "02:00:00:00:00:01"), "%s", yaml);
    free(yaml);
    zr_export_warnings_finish(&w);
    zr_device_list_finish(&devs);
}

Test(export, unrepresentable_ports_vlans_and_parameters_warn)
{
    struct zr_device_list devs = {0};
    parse_xml("<domain><devices>"
              "<interface type='hostdev'><mac address='02:00:00:00:00:01'/>"
              "<source><address type='pci' domain='1' bus='0' slot='0' function='0'/></source>"
              "<virtualport type='openvswitch'/></interface>"
              "<interface type='hostdev'><mac address='02:00:00:00:00:02'/>"
              "<source><address type='pci' domain='2' bus='0' slot='0' function='0'/></source>"
              "<vlan trunk='yes'><tag id='1'/><tag id='2'/></vlan></interface>"
              "<interface type='hostdev'><mac address='02:00:00:00:00:03'/>"
              "<source><address type='pci' domain='3' bus='0' slot='0' function='0'/></source>"
              "<virtualport type='802.1Qbg'><parameters managerid='1'/></virtualport></interface>"
              "<interface type='hostdev'><mac address='02:00:00:00:00:04'/>"
              "<source><address type='pci' domain='4' bus='0' slot='0' function='0'/></source>"
              "<virtualport type='802.1Qbh'/></interface>"
              "</devices></domain>",
              &devs);
    struct zr_export_guest g = {"g", &devs};
    struct zr_export_warnings w = {0};
    char *yaml = round_trip(&g, 1, &w);
    cr_assert_eq(w.n, 4);
    cr_assert(has_warning(&w, "0001:00:00.0: virtualport left out: only 802.1Qbh and 802.1Qbg"));
    cr_assert(has_warning(&w, "0002:00:00.0: vlan left out: the inventory holds one tag"));
    cr_assert(has_warning(&w, "0003:00:00.0: 802.1Qbg virtualport left out"));
    cr_assert(has_warning(&w, "0004:00:00.0: 802.1Qbh virtualport left out"));
    cr_assert_null(strstr(yaml, "virtualport"), "%s", yaml);
    free(yaml);
    zr_export_warnings_finish(&w);
    zr_device_list_finish(&devs);
}

Test(export, a_function_held_twice_is_kept_by_prune_false)
{
    /* libvirt accepts at config level: two guests with one function, and
     * one guest holding a function as a hostdev and as an interface. */
    struct zr_device_list a = {0}, b = {0}, c = {0};
    parse_xml("<domain><devices>" HOSTDEV("5", "") HOSTDEV("6", "") "</devices></domain>", &a);
    parse_xml("<domain><devices>" HOSTDEV("5", "") HOSTDEV("7", "") "</devices></domain>", &b);
    parse_xml(
        "<domain><devices>" HOSTDEV(
            "8",
            "") "<interface type='hostdev'><mac address='02:00:00:00:00:01'/>"
                "<source><address type='pci' domain='8' bus='0' slot='0' function='0'/></source>"
                "</interface></devices></domain>",
        &c);
    struct zr_export_guest g[] = {{"a", &a}, {"b", &b}, {"c", &c}};
    struct zr_export_warnings w = {0};
    char *yaml = round_trip(g, 3, &w);
    cr_assert_eq(w.n, 3, "%zu warnings", w.n);
    cr_assert(has_warning(&w, "guest 'b': hostdev 0005:00:00.0: left out: guest 'a' holds this "
                              "function too"));
    cr_assert(has_warning(&w, "guest 'c': hostdev 0008:00:00.0: left out: the guest holds this "
                              "function more than once"));
    cr_assert(has_warning(&w, "guest 'c': interface 0008:00:00.0: left out"));
    /* a keeps everything and prunes; b and c keep what was left out. */
    cr_assert_not_null(strstr(yaml, "  a:\n    hostdevs:"), "%s", yaml);
    cr_assert_not_null(strstr(yaml, "  b:\n    prune: false\n"), "%s", yaml);
    cr_assert_not_null(strstr(yaml, "  c:\n    prune: false\n"), "%s", yaml);
    free(yaml);
    zr_export_warnings_finish(&w);
    zr_device_list_finish(&a);
    zr_device_list_finish(&b);
    zr_device_list_finish(&c);
}

Test(export, guests_without_devices_and_no_uri)
{
    struct zr_device_list none = {0};
    struct zr_export_guest g = {"empty", &none};
    char *yaml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&yaml, &len);
    struct zr_export_warnings w = {0};
    cr_assert_eq(zr_export_write(f, NULL, &g, 1, &w, NULL), 0);
    fclose(f);
    cr_assert_str_eq(yaml, "version: 1\nguests:\n  empty: {}\n");
    free(yaml);

    f = open_memstream(&yaml, &len);
    cr_assert_eq(zr_export_write(f, NULL, NULL, 0, &w, NULL), 0);
    fclose(f);
    cr_assert_str_eq(yaml, "version: 1\nguests: {}\n");
    free(yaml);
    cr_assert_eq(w.n, 0);
}

Test(export, boot_rom_and_interface_address_are_written_the_rest_warned)
{
    struct zr_device_list devs = {0};
    parse_xml("<domain><devices><interface type='hostdev' managed='yes'>"
              "<mac address='02:00:00:00:00:01'/>"
              "<source><address type='pci' domain='0x0003' bus='0' slot='0' function='0'/></source>"
              "<model type='virtio'/><teaming type='transient' persistent='ua-net0'/>"
              "<boot order='2'/><rom bar='off' file=''/>"
              "<address type='pci' domain='0' bus='0' slot='7' function='0'/>"
              "</interface>"
              "<hostdev mode='subsystem' type='pci' managed='no'>"
              "<source><address domain='0x0002' bus='0' slot='0' function='0'/></source>"
              "<rom enabled='no'/><address type='unassigned'/></hostdev>"
              "</devices></domain>",
              &devs);
    struct zr_export_guest g = {"g", &devs};
    struct zr_export_warnings w = {0};
    char *yaml = round_trip(&g, 1, &w);
    cr_assert_eq(w.n, 2);
    cr_expect_str_eq(w.items[0],
                     "guest 'g': hostdev 0002:00:00.0: an unassigned address left out: inventory "
                     "format v1 cannot say it; a replacement keeps it, but it is lost if the "
                     "device is detached and attached again");
    cr_expect(has_warning(&w, "interface 0003:00:00.0: <model>, <teaming> left out"));
    cr_expect_not_null(strstr(yaml, "guest_address: 0000:00:07.0"), "%s", yaml);
    cr_expect_not_null(strstr(yaml, "boot_order: 2"), "%s", yaml);
    cr_expect_not_null(strstr(yaml, "rom: {bar: false, file: \"\"}"), "%s", yaml);
    cr_expect_not_null(strstr(yaml, "rom: {enabled: false}"), "%s", yaml);
    free(yaml);
    zr_export_warnings_finish(&w);
    zr_device_list_finish(&devs);
}

/* What libvirt 11.3 keeps that 9.0 drops at define: a PCI hostdev's display and
 * ramfb, and a VFIO variant driver (<driver model=...>). A detach and fresh attach
 * from the inventory cannot bring them back, so export says so; a plain
 * <driver name='vfio'/> is the one the tool writes itself and is no loss. */
Test(export, libvirt_11_display_ramfb_and_variant_driver_are_warned)
{
    struct zr_device_list devs = {0};
    parse_xml("<domain><devices>"
              "<hostdev mode='subsystem' type='pci' managed='no' display='on' ramfb='on'>"
              "<source><address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/></source>"
              "</hostdev>"
              "<hostdev mode='subsystem' type='pci' managed='yes'><driver model='vfio-pci-igb'/>"
              "<source><address domain='0x0000' bus='0x06' slot='0x12' function='0x3'/></source>"
              "</hostdev>"
              "<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>"
              "<source><address domain='0x0000' bus='0x06' slot='0x12' function='0x4'/></source>"
              "</hostdev>"
              "</devices></domain>",
              &devs);
    struct zr_export_guest g = {"g", &devs};
    struct zr_export_warnings w = {0};
    char *yaml = round_trip(&g, 1, &w);
    cr_expect_eq(w.n, 2);
    cr_expect(has_warning(&w, "hostdev 0000:06:12.5: display='on' ramfb='on' left out: "
                              "inventory format v1 cannot say it"));
    cr_expect(has_warning(&w, "hostdev 0000:06:12.3: <driver model='vfio-pci-igb'> left out"));
    cr_expect_not(has_warning(&w, "0000:06:12.4"));
    free(yaml);
    zr_export_warnings_finish(&w);
    zr_device_list_finish(&devs);
}
