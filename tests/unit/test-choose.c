/* The pool chooser (choose.h): which function each pool entry gets, by
 * CONTRACT's rules, one behaviour per test; the host's functions come from
 * libvirt's node device fixtures and the lab's (tests/data/nodedev/). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choose.h"
#include "inventory.h"
#include "topology.h"
#include "util.h"

/* A host read from YAML, with room for what its guests hold. */
struct fixture {
    struct zr_inventory *inv;
    struct zr_device_list config[8], live[8];
    struct zr_choose_guest guests[8];
    struct zr_pci_addr held[8];
    size_t n_held;
    struct zr_choose_function fns[16];
    struct zr_pci_function parsed[16];
    size_t n_fns;
    bool have_functions;
    struct zr_choice choice;
};

static struct zr_pci_addr addr(const char *s)
{
    struct zr_pci_addr a;
    cr_assert_eq(zr_pci_addr_parse(s, &a), 0, "%s", s);
    return a;
}

static void load(struct fixture *f, const char *yaml)
{
    struct zr_errors errs = {0};
    *f = (struct fixture){0};
    f->inv = zr_inventory_parse("inline", yaml, strlen(yaml), &errs);
    cr_assert_not_null(f->inv, "%s", errs.n ? errs.items[0].message : "no error");
    zr_errors_finish(&errs);
    for (size_t g = 0; g < 8; g++)
        f->guests[g] = (struct zr_choose_guest){.readable = true, .config = &f->config[g]};
}

static void hold(struct fixture *f, size_t g, zr_kind kind, const char *source, bool live)
{
    struct zr_device *d = zr_device_list_append(live ? &f->live[g] : &f->config[g]);
    d->kind = kind;
    d->source = addr(source);
    if (live)
        f->guests[g].live = &f->live[g];
}

/* A function from a node device fixture, as the host would list it. */
static void function_from(struct fixture *f, const char *file)
{
    _cleanup_free_ char *path = zr_asprintf("%s/tests/data/nodedev/%s", getenv("ZR_SRCDIR"), file);
    FILE *in = fopen(path, "r");
    cr_assert_not_null(in, "%s", path);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, in);
    fclose(in);
    buf[n] = '\0';
    struct zr_error err = {0};
    struct zr_pci_function *fn = &f->parsed[f->n_fns];
    cr_assert_eq(zr_pci_function_parse(buf, n, file, fn, &err), 0, "%s", err.message);
    f->fns[f->n_fns++] = (struct zr_choose_function){
        fn->addr, fn->vendor, fn->product, fn->is_vf, fn->pf, fn->numa_node, fn->driver};
    f->have_functions = true;
}

/* A function described directly: a VF of `pf` on `numa`. */
static void function_vf(struct fixture *f, const char *a, const char *pf, int numa)
{
    f->fns[f->n_fns++] = (struct zr_choose_function){.addr = addr(a),
                                                     .vendor = 0x8086,
                                                     .product = 0x10ca,
                                                     .is_vf = true,
                                                     .pf = addr(pf),
                                                     .numa_node = numa};
    f->have_functions = true;
}

static void run_host(struct fixture *f, size_t h)
{
    struct zr_choose_input in = {.host = &f->inv->hosts[h],
                                 .guests = f->guests,
                                 .held = f->held,
                                 .n_held = f->n_held,
                                 .have_functions = f->have_functions,
                                 .functions = f->fns,
                                 .n_functions = f->n_fns,
                                 .no_functions = "--no-host-check skips reading them"};
    zr_choose(&in, &f->choice);
}

static void run(struct fixture *f)
{
    run_host(f, 0);
}

static void finish(struct fixture *f)
{
    zr_choice_finish(&f->choice);
    for (size_t g = 0; g < 8; g++) {
        zr_device_list_finish(&f->config[g]);
        zr_device_list_finish(&f->live[g]);
    }
    for (size_t i = 0; i < f->n_fns; i++)
        if (f->parsed[i].driver || f->parsed[i].group)
            zr_pci_function_finish(&f->parsed[i]);
    zr_inventory_free(f->inv);
}

/* Guest g's chosen sources, "a b c". */
static char *sources(const struct fixture *f, size_t g)
{
    struct zr_strbuf b = {0};
    const struct zr_device_list *l = &f->choice.host.guests[g].devices;
    for (size_t d = 0; d < l->n; d++)
        zr_strbuf_addf(&b, " ", ZR_PCI_ADDR_FMT, ZR_PCI_ADDR_ARGS(l->items[d].source));
    return b.s ? b.s : zr_strdup("");
}

static void expect_sources(const struct fixture *f, size_t g, const char *want)
{
    _cleanup_free_ char *got = sources(f, g);
    cr_expect_str_eq(got, want, "guest %zu", g);
}

#define LAB_POOL                                                                                   \
    "version: 1\n"                                                                                 \
    "pools:\n"                                                                                     \
    "  lab: {members: [0003:00:00.0, 0001:00:00.0, 0002:00:00.0]}\n"

Test(choose, members_in_listed_order_then_inventory_order)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n"
                      "  b: {hostdevs: [{pool: lab}]}\n"
                      "  a: {interfaces: [{pool: lab, mac: '52:54:00:00:00:01'}]}\n");
    run(&f);
    expect_sources(&f, 0, "0003:00:00.0");
    expect_sources(&f, 1, "0001:00:00.0");
    cr_expect_null(f.choice.errors[0].message);
    cr_expect_str_eq(f.choice.host.guests[1].devices.items[0].pool, "lab");
    cr_expect(f.choice.host.guests[1].devices.items[0].has_mac, "the entry's keys are kept");
    cr_expect_eq(f.choice.n_pool_entries, 2);
    finish(&f);
}

Test(choose, sticky_keeps_what_the_guest_holds)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n"
                      "  first: {hostdevs: [{pool: lab}]}\n"
                      "  second: {hostdevs: [{pool: lab}]}\n");
    hold(&f, 1, ZR_KIND_HOSTDEV, "0003:00:00.0", false);
    run(&f);
    expect_sources(&f, 1, "0003:00:00.0");
    expect_sources(&f, 0, "0001:00:00.0");
    finish(&f);
}

Test(choose, sticky_in_the_live_definition_too)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n  g: {hostdevs: [{pool: lab}]}\n");
    hold(&f, 0, ZR_KIND_HOSTDEV, "0002:00:00.0", true);
    run(&f);
    expect_sources(&f, 0, "0002:00:00.0");
    finish(&f);
}

Test(choose, sticky_up_to_count_lowest_address_first)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n  g: {hostdevs: [{pool: lab, count: 2}]}\n");
    hold(&f, 0, ZR_KIND_HOSTDEV, "0003:00:00.0", false);
    hold(&f, 0, ZR_KIND_HOSTDEV, "0002:00:00.0", false);
    hold(&f, 0, ZR_KIND_HOSTDEV, "0001:00:00.0", false);
    run(&f);
    expect_sources(&f, 0, "0001:00:00.0 0002:00:00.0");
    finish(&f);
}

Test(choose, held_as_the_other_kind_is_not_kept_and_not_free)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n  g: {hostdevs: [{pool: lab}]}\n");
    hold(&f, 0, ZR_KIND_INTERFACE, "0003:00:00.0", false);
    run(&f);
    expect_sources(&f, 0, "0001:00:00.0");
    finish(&f);
}

Test(choose, held_by_other_guests_and_named_sources_are_not_free)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n"
                      "  pooled: {hostdevs: [{pool: lab}]}\n"
                      "  named: {hostdevs: [{source: 0001:00:00.0}]}\n"
                      "  holder: {prune: false}\n");
    f.held[f.n_held++] = addr("0003:00:00.0"); /* a guest the inventory does not name */
    hold(&f, 2, ZR_KIND_HOSTDEV, "0002:00:00.0", false);
    run(&f);
    expect_sources(&f, 0, "");
    cr_assert_not_null(f.choice.errors[0].message);
    cr_expect_str_eq(f.choice.errors[0].message,
                     "pool 'lab' has 0 free functions, guest 'pooled' wants 1 more; nothing "
                     "changed on this guest");
    cr_expect_eq(f.choice.errors[0].code, ZR_ERR_POOL);
    expect_sources(&f, 1, "0001:00:00.0");
    finish(&f);
}

Test(choose, a_named_source_the_guest_holds_is_not_kept_by_its_pool_entry)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n"
                      "  g: {hostdevs: [{pool: lab}]}\n"
                      "  h: {hostdevs: [{source: 0003:00:00.0}]}\n");
    hold(&f, 0, ZR_KIND_HOSTDEV, "0003:00:00.0", false);
    run(&f);
    expect_sources(&f, 0, "0001:00:00.0");
    finish(&f);
}

Test(choose, what_a_guest_had_comes_back_while_free)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n"
                      "  early: {hostdevs: [{pool: lab}]}\n"
                      "  lost: {hostdevs: [{pool: lab}]}\n"
                      "  gone: {hostdevs: [{pool: lab}]}\n");
    struct zr_pci_addr had_lost = addr("0003:00:00.0"), had_gone = addr("0001:00:00.0");
    f.guests[1].had = &had_lost; /* free: back to it, though served after early */
    f.guests[1].n_had = 1;
    f.guests[2].had = &had_gone; /* held by someone else now: the lowest free one */
    f.guests[2].n_had = 1;
    f.held[f.n_held++] = had_gone;
    run(&f);
    expect_sources(&f, 1, "0003:00:00.0");
    expect_sources(&f, 0, "0002:00:00.0");
    expect_sources(&f, 2, "");
    cr_expect_not_null(f.choice.errors[2].message);

    struct zr_pool_memory m = {0};
    zr_pool_memory_record(&m, &f.choice);
    cr_assert_eq(m.n, 2, "served guests only");
    const struct zr_pool_memory_guest *r = zr_pool_memory_find(&m, "lost");
    cr_assert_not_null(r);
    cr_expect_eq(r->n, 1);
    cr_expect(zr_pci_addr_eq(&r->addrs[0], &had_lost));
    cr_expect_null(zr_pool_memory_find(&m, "gone"));
    zr_pool_memory_finish(&m);
    finish(&f);
}

Test(choose, count_takes_several_in_order)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n  g: {hostdevs: [{pool: lab, count: 3}]}\n");
    run(&f);
    expect_sources(&f, 0, "0003:00:00.0 0001:00:00.0 0002:00:00.0");
    cr_expect_eq(f.choice.host.guests[0].devices.items[2].count, 1);
    finish(&f);
}

Test(choose, exhaustion_gives_back_the_guests_picks)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n"
                      "  greedy: {hostdevs: [{pool: lab, count: 2}, {pool: lab, count: 2}]}\n"
                      "  modest: {hostdevs: [{pool: lab, count: 2}]}\n");
    hold(&f, 0, ZR_KIND_HOSTDEV, "0002:00:00.0", false);
    run(&f);
    cr_assert_not_null(f.choice.errors[0].message);
    cr_expect_str_eq(f.choice.errors[0].message,
                     "pool 'lab' has 2 free functions, guest 'greedy' wants 3 more; nothing "
                     "changed on this guest");
    expect_sources(&f, 0, "0002:00:00.0"); /* only what it holds */
    cr_expect_null(f.choice.errors[1].message);
    expect_sources(&f, 1, "0003:00:00.0 0001:00:00.0");
    finish(&f);
}

Test(choose, an_unreadable_guest_gets_nothing_and_takes_nothing)
{
    struct fixture f;
    load(&f, LAB_POOL "guests:\n"
                      "  missing: {hostdevs: [{pool: lab}]}\n"
                      "  g: {hostdevs: [{pool: lab}]}\n");
    f.guests[0].readable = false;
    run(&f);
    expect_sources(&f, 0, "");
    cr_expect_null(f.choice.errors[0].message);
    expect_sources(&f, 1, "0003:00:00.0");
    finish(&f);
}

Test(choose, numa_pinned_guest_prefers_its_nodes)
{
    struct fixture f;
    load(&f, "version: 1\n"
             "pools:\n  nics: {physical_function: 0000:3b:00.0}\n"
             "guests:\n"
             "  anywhere: {interfaces: [{pool: nics}]}\n"
             "  pinned: {interfaces: [{pool: nics}]}\n"
             "  also: {interfaces: [{pool: nics}]}\n");
    function_vf(&f, "0000:3b:10.0", "0000:3b:00.0", 0);
    function_vf(&f, "0000:3b:10.2", "0000:3b:00.0", 0);
    function_vf(&f, "0000:3b:10.4", "0000:3b:00.0", 1);
    function_vf(&f, "0000:3b:10.6", "0000:3b:00.0", 1);
    function_vf(&f, "0000:5e:10.0", "0000:5e:00.0", 1); /* another PF's */
    f.guests[1].nodeset = "1";
    f.guests[2].nodeset = "3"; /* no member there: the lowest free one */
    run(&f);
    expect_sources(&f, 0, "0000:3b:10.0");
    expect_sources(&f, 1, "0000:3b:10.4");
    expect_sources(&f, 2, "0000:3b:10.2");
    finish(&f);
}

Test(choose, a_pinned_guest_gets_what_a_refused_one_gave_back_on_its_nodes)
{
    struct fixture f;
    load(&f, "version: 1\n"
             "pools:\n  nics: {physical_function: 0000:3b:00.0}\n"
             "guests:\n"
             "  greedy: {hostdevs: [{pool: nics, count: 5}]}\n"
             "  pinned: {hostdevs: [{pool: nics}]}\n");
    function_vf(&f, "0000:3b:10.0", "0000:3b:00.0", 0);
    function_vf(&f, "0000:3b:10.2", "0000:3b:00.0", 0);
    function_vf(&f, "0000:3b:10.4", "0000:3b:00.0", 1);
    function_vf(&f, "0000:3b:10.6", "0000:3b:00.0", 1);
    f.guests[0].nodeset = "1";
    f.guests[1].nodeset = "1";
    run(&f);
    cr_expect_not_null(f.choice.errors[0].message);
    expect_sources(&f, 1, "0000:3b:10.4");
    finish(&f);
}

Test(choose, selector_pool_without_node_devices_names_the_pool)
{
    struct fixture f;
    load(&f, "version: 1\n"
             "pools:\n  nvme: {vendor: 0x144d}\n  lab: {members: [0001:00:00.0]}\n"
             "guests:\n"
             "  db: {hostdevs: [{pool: nvme}, {source: 0002:00:00.0}]}\n"
             "  web: {hostdevs: [{pool: lab}]}\n");
    run(&f);
    cr_assert_not_null(f.choice.errors[0].message);
    cr_expect_str_eq(f.choice.errors[0].message,
                     "pool 'nvme' selects functions by the host's node devices, and "
                     "--no-host-check skips reading them (a 'members:' pool needs none); "
                     "nothing changed on this guest");
    expect_sources(&f, 0, "0002:00:00.0");
    expect_sources(&f, 1, "0001:00:00.0");
    finish(&f);
}

Test(choose, physical_function_pool_on_libvirt_fixtures)
{
    struct fixture f;
    load(&f, "version: 1\n"
             "pools:\n  vfs: {physical_function: 0000:02:00.1}\n"
             "  intel: {vendor: 0x8086, product: 0x10c9}\n"
             "guests:\n"
             "  web: {interfaces: [{pool: vfs}]}\n"
             "  pf: {hostdevs: [{pool: intel}]}\n");
    function_from(&f, "pci_8086_10c9_sriov_pf.xml"); /* 0000:02:00.0, a PF */
    function_from(&f, "pci_0000_02_10_7_sriov.xml"); /* a VF of 0000:02:00.1 */
    run(&f);
    expect_sources(&f, 0, "0000:02:10.7");
    expect_sources(&f, 1, "0000:02:00.0");
    finish(&f);
}

Test(choose, vendor_and_driver_pool_on_the_labs_functions)
{
    struct fixture f;
    load(&f, "version: 1\n"
             "pools:\n  e1000: {vendor: 0x8086, product: 0x100e, driver: vfio-pci}\n"
             "guests:\n"
             "  one: {hostdevs: [{pool: e1000}]}\n"
             "  two: {hostdevs: [{pool: e1000}]}\n"
             "  three: {hostdevs: [{pool: e1000}]}\n");
    function_from(&f, "lab-pci_0000_01_02_0.xml");
    function_from(&f, "lab-pci_0000_00_07_0.xml"); /* the bridge: another vendor */
    function_from(&f, "lab-pci_0000_01_01_0.xml");
    function_from(&f, "host-pci_0000_00_03_0.xml"); /* virtio, bound to virtio-pci */
    run(&f);
    expect_sources(&f, 0, "0000:01:01.0");
    expect_sources(&f, 1, "0000:01:02.0");
    cr_assert_not_null(f.choice.errors[2].message);
    cr_expect_str_eq(f.choice.errors[2].message,
                     "pool 'e1000' has 0 free functions, guest 'three' wants 1 more; nothing "
                     "changed on this guest");
    finish(&f);
}

Test(choose, two_hosts_choose_apart)
{
    struct fixture f;
    load(&f, "version: 1\n"
             "pools:\n  lab: {members: [0001:00:00.0, 0002:00:00.0]}\n"
             "hosts:\n"
             "  kvm1:\n    uri: qemu+ssh://kvm1/system\n"
             "    guests: {a: {hostdevs: [{pool: lab}]}}\n"
             "  kvm2:\n    uri: qemu+ssh://kvm2/system\n"
             "    pools: {lab: {members: [0009:00:00.0, 0001:00:00.0]}}\n"
             "    guests: {b: {hostdevs: [{pool: lab}]}}\n");
    run_host(&f, 0);
    expect_sources(&f, 0, "0001:00:00.0");
    zr_choice_finish(&f.choice);
    run_host(&f, 1); /* its own pool of that name; kvm1's choice does not count */
    expect_sources(&f, 0, "0009:00:00.0");
    finish(&f);
}

Test(choose, uses_pools_tells_selector_pools_apart)
{
    struct fixture f;
    bool selector;
    load(&f, LAB_POOL "guests:\n  g: {hostdevs: [{pool: lab}]}\n  h: {}\n");
    cr_expect(zr_host_uses_pools(&f.inv->hosts[0], &selector));
    cr_expect_not(selector);
    cr_expect(zr_guest_takes_from_pool(&f.inv->hosts[0].guests[0]));
    cr_expect_not(zr_guest_takes_from_pool(&f.inv->hosts[0].guests[1]));
    zr_inventory_free(f.inv);
    load(&f, "version: 1\npools: {p: {driver: vfio-pci}}\nguests: {g: {hostdevs: "
             "[{source: 0001:00:00.0}]}}\n");
    cr_expect_not(zr_host_uses_pools(&f.inv->hosts[0], &selector));
    zr_inventory_free(f.inv);
    load(&f, "version: 1\npools: {p: {driver: vfio-pci}}\nguests: {g: {hostdevs: [{pool: p}]}}\n");
    cr_expect(zr_host_uses_pools(&f.inv->hosts[0], &selector));
    cr_expect(selector);
    zr_inventory_free(f.inv);
}
