/* The preflight's decision, from hand-made hosts: which wanted sources are
 * missing on the host or held by a guest that keeps them, and when that is
 * a warning (plan, or a function the guest already holds) or an error for
 * the guest (apply). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain-cases.h"
#include "output.h"
#include "preflight.h"
#include "render.h"

#define MAX_GUESTS 4

struct lab {
    struct zr_host host;
    struct zr_guest guests[MAX_GUESTS];
    struct zr_guest_state states[MAX_GUESTS];
    struct zr_other_guest others[MAX_GUESTS];
    size_t n_others;
    struct zr_pci_addr pci[8];
    size_t n_pci;
    struct zr_plan plan;
    struct zr_error *errors;
    /* the topology checks (node device XML from tests/data/nodedev) */
    bool topology;
    struct zr_function_info functions[8];
    size_t n_functions;
    struct zr_host_use uses[4];
    size_t n_uses;
    struct zr_guest_topology guest_topology[MAX_GUESTS];
    struct zr_plan planned;
    struct zr_plan *draft; /* the guests' plans, when a test gives them */
    struct zr_preflight_input in;
};

static struct zr_pci_addr addr(const char *s)
{
    struct zr_pci_addr a;
    cr_assert_eq(zr_pci_addr_parse(s, &a), 0, "%s", s);
    return a;
}

static void add_device(struct zr_device_list *l, const char *source)
{
    struct zr_device *d = zr_device_list_append(l);
    d->kind = ZR_KIND_HOSTDEV;
    d->source = addr(source);
    d->managed = true;
}

/* A guest of the inventory; `wants` and `holds` are NULL-terminated. */
static void add_guest(struct lab *l, const char *name, bool prune, const char *const *wants,
                      const char *const *holds)
{
    size_t g = l->host.n_guests++;
    cr_assert_lt(g, MAX_GUESTS);
    l->guests[g].name = (char *)name;
    l->guests[g].prune = prune;
    for (; wants && *wants; wants++)
        add_device(&l->guests[g].devices, *wants);
    l->states[g].wanted = &l->guests[g];
    for (; holds && *holds; holds++)
        add_device(&l->states[g].config, *holds);
    l->host.guests = l->guests;
}

static void add_other(struct lab *l, const char *name, const char *holds)
{
    struct zr_other_guest *o = &l->others[l->n_others++];
    o->name = (char *)name;
    add_device(&o->devices, holds);
}

static void add_pci(struct lab *l, const char *s)
{
    l->pci[l->n_pci++] = addr(s);
}

static int addr_cmp(const void *a, const void *b)
{
    return zr_pci_addr_cmp(a, b);
}

static int function_cmp(const void *a, const void *b)
{
    return zr_pci_addr_cmp(&((const struct zr_function_info *)a)->addr,
                           &((const struct zr_function_info *)b)->addr);
}

static void run(struct lab *l, bool applying)
{
    /* the host check searches the host's sorted listing */
    qsort(l->pci, l->n_pci, sizeof(l->pci[0]), addr_cmp);
    struct zr_preflight_input in = {
        .host = "default",
        .wanted = &l->host,
        .states = l->states,
        .have_pci = l->n_pci > 0,
        .pci = l->pci,
        .n_pci = l->n_pci,
        .have_others = true,
        .others = l->others,
        .n_others = l->n_others,
        .draft = l->draft,
    };
    if (l->topology) {
        qsort(l->functions, l->n_functions, sizeof(l->functions[0]), function_cmp);
        zr_plan_finish(&l->planned);
        zr_preflight_plan(&l->planned, &l->host, l->states, NULL);
        in.planned = &l->planned;
        in.functions = l->functions;
        in.n_functions = l->n_functions;
        in.uses = l->uses;
        in.n_uses = l->n_uses;
        in.have_uses = true;
        in.guests = l->guest_topology;
    }
    l->errors = zr_preflight_check(&l->plan, &in, applying);
    l->in = in;
}

static void finish(struct lab *l)
{
    zr_preflight_errors_free(l->errors, l->host.n_guests);
    for (size_t g = 0; g < l->host.n_guests; g++) {
        zr_device_list_finish(&l->guests[g].devices);
        zr_device_list_finish(&l->states[g].config);
        zr_device_list_finish(&l->states[g].live);
        zr_guest_topology_finish(&l->guest_topology[g]);
    }
    for (size_t i = 0; i < l->n_others; i++)
        zr_device_list_finish(&l->others[i].devices);
    for (size_t i = 0; i < l->n_functions; i++)
        zr_pci_function_finish(&l->functions[i].fn);
    for (size_t i = 0; i < l->n_uses; i++)
        zr_host_use_finish(&l->uses[i]);
    zr_plan_finish(&l->plan);
    zr_plan_finish(&l->planned);
}

/* A second run of the same lab (plan after apply, or the other way). */
static void rerun(struct lab *l, bool applying)
{
    zr_preflight_errors_free(l->errors, l->host.n_guests);
    zr_plan_finish(&l->plan);
    run(l, applying);
}

/* A node device XML file of tests/data/nodedev. */
static char *fixture(const char *name)
{
    _cleanup_free_ char *rel = zr_asprintf("nodedev/%s", name);
    char *xml = zr_test_data_file(rel);
    cr_assert(xml, "cannot read tests/data/%s: %s (ZR_SRCDIR is set by meson test)", rel,
              strerror(errno));
    return xml;
}

/* A host function, from its node device XML; it is on the host too. */
static struct zr_pci_function *add_function(struct lab *l, const char *file)
{
    _cleanup_free_ char *xml = fixture(file);
    struct zr_function_info *fi = &l->functions[l->n_functions++];
    struct zr_error err = {0};
    cr_assert_eq(zr_pci_function_parse(xml, strlen(xml), file, &fi->fn, &err), 0, "%s",
                 err.message);
    fi->addr = fi->fn.addr;
    fi->read = true;
    l->pci[l->n_pci++] = fi->addr;
    l->topology = true;
    return &fi->fn;
}

static void add_use(struct lab *l, const char *file)
{
    _cleanup_free_ char *xml = fixture(file);
    struct zr_error err = {0};
    cr_assert_eq(zr_host_use_parse(xml, strlen(xml), file, &l->uses[l->n_uses++], &err), 0);
}

static struct zr_device *last_wanted(struct lab *l)
{
    struct zr_guest *g = &l->guests[l->host.n_guests - 1];
    return &g->devices.items[g->devices.n - 1];
}

static void set_guest_xml(struct lab *l, size_t g, const char *xml)
{
    struct zr_error err = {0};
    cr_assert_eq(zr_guest_topology_parse(xml, strlen(xml), "guest", &l->guest_topology[g], &err), 0,
                 "%s", err.message);
}

static const char *const NONE[] = {NULL};

Test(preflight, missing_function_warns_in_plan_and_refuses_the_guest_in_apply)
{
    struct lab l = {0};
    add_pci(&l, "0000:00:01.0");
    add_guest(&l, "a", true, (const char *[]){"0000:00:01.0", "00ff:00:1f.7", NULL}, NONE);
    add_guest(&l, "b", true, (const char *[]){"0000:00:01.1", NULL}, NONE);
    add_pci(&l, "0000:00:01.1");

    run(&l, false);
    cr_assert_null(l.errors[0].message);
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].guest, "a");
    cr_assert_str_eq(l.plan.warnings[0].message,
                     "host has no PCI function 00ff:00:1f.7; apply will leave this guest alone");
    finish(&l);

    struct lab m = {0};
    add_pci(&m, "0000:00:01.0");
    add_pci(&m, "0000:00:01.1");
    add_guest(&m, "a", true, (const char *[]){"0000:00:01.0", "00ff:00:1f.7", NULL}, NONE);
    add_guest(&m, "b", true, (const char *[]){"0000:00:01.1", NULL}, NONE);
    run(&m, true);
    cr_assert_str_eq(m.errors[0].message, "host has no PCI function 00ff:00:1f.7 (node device "
                                  "pci_00ff_00_1f_7); nothing changed on this guest");
    cr_assert_null(m.errors[1].message);
    cr_assert_eq(m.plan.n_warnings, 0);
    finish(&m);
}

Test(preflight, no_node_devices_means_no_function_check)
{
    struct lab l = {0};
    add_guest(&l, "a", true, (const char *[]){"00ff:00:1f.7", NULL}, NONE);
    run(&l, true);
    cr_assert_null(l.errors[0].message);
    cr_assert_eq(l.plan.n_warnings, 0);
    finish(&l);
}

Test(preflight, function_held_by_a_guest_the_inventory_does_not_name)
{
    struct lab l = {0};
    add_guest(&l, "a", true, (const char *[]){"0001:00:00.0", NULL}, NONE);
    add_guest(&l, "b", true, (const char *[]){"0002:00:00.0", NULL}, NONE);
    add_other(&l, "db1", "0001:00:00.0");
    run(&l, false);
    cr_assert_null(l.errors[0].message);
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].guest, "a");
    cr_assert(l.plan.warnings[0].has_source);
    cr_assert_str_eq(l.plan.warnings[0].message,
                     "held by guest 'db1', which the inventory does not name; apply will "
                     "leave this guest alone");
    zr_preflight_errors_free(l.errors, l.host.n_guests);

    zr_plan_finish(&l.plan);
    run(&l, true);
    cr_assert_str_eq(l.errors[0].message, "0001:00:00.0 is held by guest 'db1', which the inventory "
                                  "does not name; libvirt would let both definitions hold "
                                  "it, so nothing changed on this guest");
    cr_assert_null(l.errors[1].message, "b is not involved");
    cr_assert_eq(l.plan.n_warnings, 0);
    finish(&l);
}

Test(preflight, a_function_already_held_by_both_is_only_a_warning)
{
    struct lab l = {0};
    add_guest(&l, "a", true, (const char *[]){"0001:00:00.0", NULL},
              (const char *[]){"0001:00:00.0", NULL});
    add_other(&l, "db1", "0001:00:00.0");
    run(&l, true);
    cr_assert_null(l.errors[0].message);
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].message,
                     "also held by guest 'db1', which the inventory does not name: both "
                     "definitions hold this function");
    finish(&l);
}

Test(preflight, a_move_between_pruning_guests_is_no_conflict)
{
    struct lab l = {0};
    add_guest(&l, "a", true, NONE, (const char *[]){"0001:00:00.0", NULL});
    add_guest(&l, "b", true, (const char *[]){"0001:00:00.0", NULL}, NONE);
    run(&l, true);
    cr_assert_null(l.errors[0].message);
    cr_assert_null(l.errors[1].message);
    cr_assert_eq(l.plan.n_warnings, 0);
    finish(&l);
}

Test(preflight, prune_false_keeps_the_function)
{
    struct lab l = {0};
    add_guest(&l, "a", false, NONE, (const char *[]){"0001:00:00.0", NULL});
    add_guest(&l, "b", true, (const char *[]){"0001:00:00.0", NULL}, NONE);
    run(&l, true);
    cr_assert_null(l.errors[0].message);
    cr_assert_str_eq(l.errors[1].message, "0001:00:00.0 is held by guest 'a', whose prune: false "
                                  "keeps it; libvirt would let both definitions hold it, so "
                                  "nothing changed on this guest");
    finish(&l);
}

/* a runs with 0001 hot-plugged (its definition does not hold it): unless
 * its plan detaches it live, it keeps it, as with --config-only. */
Test(preflight, a_running_guest_keeps_what_its_plan_leaves_in_its_running_definition)
{
    struct lab l = {0};
    add_guest(&l, "a", true, NONE, NONE);
    l.states[0].active = true;
    add_device(&l.states[0].live, "0001:00:00.0");
    add_guest(&l, "b", true, (const char *[]){"0001:00:00.0", NULL}, NONE);
    run(&l, true);
    cr_assert_null(l.errors[0].message);
    cr_assert_str_eq(l.errors[1].message,
                     "0001:00:00.0 is held by guest 'a', whose running definition keeps it (this "
                     "run changes definitions only); libvirt would let both definitions hold it, "
                     "so nothing changed on this guest");

    /* its plan detaches it live: b may have it */
    struct zr_plan draft = {0};
    struct zr_action *a = ZR_APPEND(draft.actions, draft.n_actions);
    *a = (struct zr_action){.guest_index = 0, .op = ZR_OP_DETACH, .live = true};
    a->source = addr("0001:00:00.0");
    l.draft = &draft;
    rerun(&l, true);
    cr_assert_null(l.errors[0].message);
    cr_assert_null(l.errors[1].message);
    free(draft.actions);
    finish(&l);
}

/* a is refused (its other function is missing on the host), so it keeps
 * 0001, which b wanted to take over: b must be refused too, and c, which
 * wanted what b would have given up, in turn. */
Test(preflight, a_refused_guest_keeps_what_it_holds)
{
    struct lab l = {0};
    add_pci(&l, "0001:00:00.0");
    add_pci(&l, "0002:00:00.0");
    add_guest(&l, "c", true, (const char *[]){"0002:00:00.0", NULL}, NONE);
    add_guest(&l, "b", true, (const char *[]){"0001:00:00.0", NULL},
              (const char *[]){"0002:00:00.0", NULL});
    add_guest(&l, "a", true, (const char *[]){"00ff:00:1f.7", NULL},
              (const char *[]){"0001:00:00.0", NULL});
    run(&l, true);
    cr_assert_str_eq(l.errors[2].message, "host has no PCI function 00ff:00:1f.7 (node device "
                                  "pci_00ff_00_1f_7); nothing changed on this guest");
    cr_assert_str_eq(l.errors[1].message, "0001:00:00.0 is held by guest 'a', which this run leaves "
                                  "alone (it has an error); libvirt would let both "
                                  "definitions hold it, so nothing changed on this guest");
    cr_assert_str_eq(l.errors[0].message, "0002:00:00.0 is held by guest 'b', which this run leaves "
                                  "alone (it has an error); libvirt would let both "
                                  "definitions hold it, so nothing changed on this guest");
    finish(&l);
}

Test(preflight, guests_gone_or_unreadable_hold_nothing)
{
    struct lab l = {0};
    add_guest(&l, "a", true, (const char *[]){"0001:00:00.0", "0002:00:00.0", NULL}, NONE);
    add_other(&l, "gone", "0001:00:00.0");
    l.others[0].gone = true;
    add_other(&l, "broken", "0002:00:00.0");
    l.others[1].error = (char *)"cannot read";
    run(&l, true);
    cr_assert_null(l.errors[0].message);
    finish(&l);
}

/* ---- plan predicts apply ------------------------------------------------- */

/* b is refused by the host check (its other function is missing), so it
 * keeps 0001, which a wants: apply refuses both, and plan must say so for
 * both, not show a as if it would change. */
Test(preflight, plan_follows_the_cascade_apply_follows)
{
    struct lab l = {0};
    add_pci(&l, "0001:00:00.0");
    add_guest(&l, "a", true, (const char *[]){"0001:00:00.0", NULL}, NONE);
    add_guest(&l, "b", true, (const char *[]){"00ff:00:1f.7", NULL},
              (const char *[]){"0001:00:00.0", NULL});
    run(&l, true);
    cr_assert_str_eq(l.errors[1].message, "host has no PCI function 00ff:00:1f.7 (node device "
                                  "pci_00ff_00_1f_7); nothing changed on this guest");
    cr_assert_str_eq(l.errors[0].message, "0001:00:00.0 is held by guest 'b', which this run leaves "
                                  "alone (it has an error); libvirt would let both "
                                  "definitions hold it, so nothing changed on this guest");

    rerun(&l, false);
    cr_assert_null(l.errors[0].message);
    cr_assert_null(l.errors[1].message);
    cr_assert_eq(l.plan.n_warnings, 2);
    cr_assert_str_eq(l.plan.warnings[0].guest, "a");
    cr_assert_str_eq(l.plan.warnings[0].message,
                     "held by guest 'b', which apply will leave alone (see its warnings); "
                     "apply will leave this guest alone");
    cr_assert_str_eq(l.plan.warnings[1].guest, "b");
    cr_assert_str_eq(l.plan.warnings[1].message,
                     "host has no PCI function 00ff:00:1f.7; apply will leave this guest alone");
    finish(&l);
}

/* A chain refused from its far end, against inventory order: c is refused
 * by the host check, so it keeps 0002, which refuses b, which then keeps
 * 0001, which refuses a.  Each guest's error names the guest that refused
 * it, in apply as plan predicts. */
Test(preflight, a_cascade_runs_down_a_chain_against_inventory_order)
{
    struct lab l = {0};
    add_pci(&l, "0001:00:00.0");
    add_pci(&l, "0002:00:00.0");
    add_guest(&l, "a", true, (const char *[]){"0001:00:00.0", NULL}, NONE);
    add_guest(&l, "b", true, (const char *[]){"0002:00:00.0", NULL},
              (const char *[]){"0001:00:00.0", NULL});
    add_guest(&l, "c", true, (const char *[]){"00ff:00:1f.7", NULL},
              (const char *[]){"0002:00:00.0", NULL});
    add_guest(&l, "d", true, (const char *[]){"0003:00:00.0", NULL}, NONE);
    add_pci(&l, "0003:00:00.0");
    run(&l, true);
    cr_assert_str_eq(l.errors[2].message, "host has no PCI function 00ff:00:1f.7 (node device "
                                          "pci_00ff_00_1f_7); nothing changed on this guest");
    cr_assert_str_eq(l.errors[1].message,
                     "0002:00:00.0 is held by guest 'c', which this run leaves alone (it has an "
                     "error); libvirt would let both definitions hold it, so nothing changed on "
                     "this guest");
    cr_assert_str_eq(l.errors[0].message,
                     "0001:00:00.0 is held by guest 'b', which this run leaves alone (it has an "
                     "error); libvirt would let both definitions hold it, so nothing changed on "
                     "this guest");
    cr_assert_null(l.errors[3].message);

    rerun(&l, false);
    cr_assert_eq(l.plan.n_warnings, 3);
    cr_assert_str_eq(l.plan.warnings[0].guest, "a");
    cr_assert_str_eq(l.plan.warnings[1].guest, "b");
    cr_assert_str_eq(l.plan.warnings[1].message,
                     "held by guest 'c', which apply will leave alone (see its warnings); "
                     "apply will leave this guest alone");
    cr_assert_str_eq(l.plan.warnings[2].guest, "c");
    finish(&l);
}

/* ---- the topology checks, on libvirt's node device XML ------------------- */

Test(preflight, an_interface_needs_a_virtual_function)
{
    struct lab l = {0};
    add_function(&l, "pci_0000_02_10_7_sriov.xml");
    /* as on a host whose IOMMU is on (the fixture's has none): the test is
     * about the SR-IOV check */
    add_function(&l, "host-pci_0000_00_03_0.xml")->has_iommu_group = true;
    add_function(&l, "pci_0000_02_10_7_sriov_zero_vfs_max_count.xml");
    add_guest(&l, "vf", true, (const char *[]){"0000:02:10.7", NULL}, NONE);
    last_wanted(&l)->kind = ZR_KIND_INTERFACE;
    add_guest(&l, "virtio", true, (const char *[]){"0000:00:03.0", NULL}, NONE);
    last_wanted(&l)->kind = ZR_KIND_INTERFACE;
    run(&l, true);
    cr_assert_null(l.errors[0].message);
    cr_assert_str_eq(l.errors[1].message,
                     "0000:00:03.0: 0000:00:03.0 is not an SR-IOV virtual function (it is a "
                     "plain PCI function, driver virtio-pci); libvirt takes an interface of "
                     "type hostdev on virtual functions only: list one of its virtual "
                     "functions, or list it under hostdevs:; nothing changed on this guest");
    cr_assert_eq(l.plan.n_warnings, 0);

    /* the same function as a hostdev is fine */
    last_wanted(&l)->kind = ZR_KIND_HOSTDEV;
    rerun(&l, true);
    cr_assert_null(l.errors[1].message);
    finish(&l);

    /* a physical function (SR-IOV capable, fixture with maxCount) */
    struct lab m = {0};
    struct zr_pci_function *pf = add_function(&m, "pci_0000_02_10_7_sriov_zero_vfs_max_count.xml");
    cr_assert(pf->is_pf);
    add_guest(&m, "pf", true, (const char *[]){"0000:02:10.7", NULL}, NONE);
    last_wanted(&m)->kind = ZR_KIND_INTERFACE;
    run(&m, false);
    cr_assert_null(m.errors[0].message);
    cr_assert_eq(m.plan.n_warnings, 1);
    cr_assert_str_eq(m.plan.warnings[0].message,
                     "0000:02:10.7 is not an SR-IOV virtual function (it is an SR-IOV "
                     "physical function); libvirt takes an interface of type "
                     "hostdev on virtual functions only: list one of its virtual functions, or "
                     "list it under hostdevs:; apply will leave this guest alone");
    finish(&m);
}

Test(preflight, managed_false_needs_vfio_pci)
{
    struct lab l = {0};
    add_function(&l, "host-pci_0000_00_03_0.xml");
    add_guest(&l, "a", true, (const char *[]){"0000:00:03.0", NULL}, NONE);
    last_wanted(&l)->managed = false;
    last_wanted(&l)->has_managed = true;
    run(&l, true);
    cr_assert_str_eq(l.errors[0].message,
                     "0000:00:03.0: managed: false needs 0000:00:03.0 bound to vfio-pci "
                     "already (libvirt will not rebind it), but it is bound to virtio-pci: bind "
                     "it (e.g. driverctl set-override 0000:00:03.0 vfio-pci) or use managed: "
                     "true; nothing changed on this guest");
    finish(&l);

    struct lab m = {0};
    add_function(&m, "hand-pci_0000_02_00_1-vfio-pci.xml");
    add_function(&m, "pci_8086_10c9_sriov_pf.xml"); /* its group mate, unbound */
    add_guest(&m, "a", true, (const char *[]){"0000:02:00.1", NULL}, NONE);
    last_wanted(&m)->managed = false;
    last_wanted(&m)->has_managed = true;
    run(&m, true);
    cr_assert_null(m.errors[0].message);
    cr_assert_eq(m.plan.n_warnings, 0);
    finish(&m);
}

Test(preflight, managed_true_on_a_function_the_host_uses_is_a_warning)
{
    struct lab l = {0};
    /* with its IOMMU on: the warning alone */
    add_function(&l, "host-pci_0000_00_03_0.xml")->has_iommu_group = true;
    add_use(&l, "host-net_eth0.xml");
    add_use(&l, "host-block_vda.xml");
    add_guest(&l, "a", true, (const char *[]){"0000:00:03.0", NULL}, NONE);
    run(&l, true);
    cr_assert_null(l.errors[0].message);
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].message,
                     "managed: true lets libvirt take 0000:00:03.0 from its host driver "
                     "virtio-pci, but the host uses it: network interface eth0 (link up)");
    finish(&l);
}

/* host-pci_0000_00_03_0.xml is from a host whose IOMMU is off: its function
 * is in no IOMMU group, which VFIO needs.  libvirt takes it into an
 * inactive guest's definition (a config-only change) all the same, and the
 * guest can then never start. */
Test(preflight, a_function_in_no_iommu_group_refuses_the_guest)
{
    static const char *const body =
        "0000:00:03.0 is in no IOMMU group (the host's IOMMU is off), so VFIO cannot assign it "
        "and the guest cannot start with it, with or without --config-only: enable the IOMMU "
        "in the firmware (VT-d or AMD-Vi) and on the kernel command line (intel_iommu=on, or "
        "amd_iommu=on where it is off), reboot, and have vfio-pci available";
    struct lab l = {0};
    cr_assert_not(add_function(&l, "host-pci_0000_00_03_0.xml")->has_iommu_group);
    add_function(&l, "pci_0000_02_10_7_sriov.xml"); /* IOMMU group 0 */
    add_guest(&l, "off", true, (const char *[]){"0000:00:03.0", NULL}, NONE);
    add_guest(&l, "ok", true, (const char *[]){"0000:02:10.7", NULL}, NONE);
    /* inactive guests: the plan has config actions only */
    run(&l, false);
    cr_assert_null(l.errors[0].message, "plan only warns");
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].guest, "off");
    _cleanup_free_ char *warning = zr_asprintf("%s; apply will leave this guest alone", body);
    cr_assert_str_eq(l.plan.warnings[0].message, warning);

    rerun(&l, true);
    _cleanup_free_ char *error = zr_asprintf("0000:00:03.0: %s; nothing changed on this guest",
                                             body);
    cr_assert_str_eq(l.errors[0].message, error);
    cr_assert_eq(l.errors[0].code, ZR_ERR_HOST_CHECK);
    cr_assert_null(l.errors[1].message, "the other guest converges");

    /* a function the guest holds already is not attached: nothing to say */
    add_device(&l.states[0].config, "0000:00:03.0");
    rerun(&l, false);
    cr_assert_eq(l.plan.n_warnings, 0);
    finish(&l);
}

/* pci_8086_10c9_sriov_pf.xml: IOMMU group 12 holds 02:00.0 and 02:00.1. */
Test(preflight, an_iommu_group_goes_to_one_guest)
{
    struct lab l = {0};
    add_function(&l, "pci_8086_10c9_sriov_pf.xml");
    add_function(&l, "hand-pci_0000_02_00_1-igb.xml");
    add_guest(&l, "a", true, (const char *[]){"0000:02:00.0", NULL}, NONE);
    run(&l, true);
    cr_assert_str_eq(l.errors[0].message,
                     "0000:02:00.0: IOMMU group 12 of 0000:02:00.0 also holds 0000:02:00.1 "
                     "(driver igb); a group goes to one guest as a whole: assign them to this "
                     "guest too, or bind them to vfio-pci and leave them to no other guest; "
                     "nothing changed on this guest");
    rerun(&l, false);
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].message,
                     "IOMMU group 12 of 0000:02:00.0 also holds 0000:02:00.1 (driver igb); a "
                     "group goes to one guest as a whole: assign them to this guest too, or "
                     "bind them to vfio-pci and leave them to no other guest; apply will leave "
                     "this guest alone");

    /* both to the same guest: fine */
    add_device(&l.guests[0].devices, "0000:02:00.1");
    rerun(&l, true);
    cr_assert_null(l.errors[0].message);
    finish(&l);

    /* the mate on vfio-pci and held by nobody: fine; held by another
     * guest: refused, naming it */
    struct lab m = {0};
    add_function(&m, "pci_8086_10c9_sriov_pf.xml");
    add_function(&m, "hand-pci_0000_02_00_1-vfio-pci.xml");
    add_guest(&m, "a", true, (const char *[]){"0000:02:00.0", NULL}, NONE);
    run(&m, true);
    cr_assert_null(m.errors[0].message);
    add_other(&m, "db1", "0000:02:00.1");
    rerun(&m, true);
    cr_assert_str_eq(m.errors[0].message,
                     "0000:02:00.0: IOMMU group 12 of 0000:02:00.0 also holds 0000:02:00.1 "
                     "(driver vfio-pci, guest 'db1', which the inventory does not name); a "
                     "group goes to one guest as a whole: assign them to this guest too, or "
                     "bind them to vfio-pci and leave them to no other guest; nothing changed "
                     "on this guest");
    finish(&m);

    /* wanted by another guest of the inventory in the same run */
    struct lab n = {0};
    add_function(&n, "pci_8086_10c9_sriov_pf.xml");
    add_function(&n, "hand-pci_0000_02_00_1-vfio-pci.xml");
    add_guest(&n, "a", true, (const char *[]){"0000:02:00.0", NULL}, NONE);
    add_guest(&n, "b", true, (const char *[]){"0000:02:00.1", NULL}, NONE);
    run(&n, true);
    cr_assert(strstr(n.errors[0].message, "0000:02:00.1 (driver vfio-pci, wanted by guest 'b')"), "%s",
              n.errors[0].message);
    cr_assert(strstr(n.errors[1].message, "0000:02:00.0 (no driver, wanted by guest 'a')"), "%s",
              n.errors[1].message);
    finish(&n);
}

Test(preflight, bridges_in_a_group_are_not_endpoints)
{
    struct lab l = {0};
    struct zr_pci_function *fn = add_function(&l, "hand-pci_0000_02_00_1-vfio-pci.xml");
    struct zr_pci_function *bridge = add_function(&l, "pci_0000_00_1c_0_header_type.xml");
    /* put the root port in the function's group, as on hosts without ACS */
    fn->group[0] = bridge->addr; /* in place of 02:00.0 */
    add_guest(&l, "a", true, (const char *[]){"0000:02:00.1", NULL}, NONE);
    run(&l, true);
    cr_assert_null(l.errors[0].message);
    cr_assert_eq(l.plan.n_warnings, 0);
    finish(&l);
}

Test(preflight, numa_pinning_that_misses_the_function_is_a_warning)
{
    struct lab l = {0};
    add_function(&l, "pci_0000_02_10_7_sriov.xml"); /* NUMA node 0 */
    add_guest(&l, "a", true, (const char *[]){"0000:02:10.7", NULL}, NONE);
    set_guest_xml(&l, 0,
                  "<domain><numatune><memory mode='strict' nodeset='1'/></numatune>"
                  "<os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os></domain>");
    run(&l, true);
    cr_assert_null(l.errors[0].message, "a warning only");
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].message,
                     "the guest's memory is pinned to NUMA node(s) 1 (<numatune>), but "
                     "0000:02:10.7 sits on NUMA node 0: its DMA would cross nodes");
    zr_guest_topology_finish(&l.guest_topology[0]);
    set_guest_xml(&l, 0, "<domain><numatune><memory nodeset='0-1'/></numatune></domain>");
    rerun(&l, true);
    cr_assert_eq(l.plan.n_warnings, 0);
    finish(&l);
}

static const char *Q35_FULL =
    "<domain><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os><devices>"
    "<controller type='pci' index='1' model='pcie-root-port'/>"
    "<controller type='usb' index='0'><address type='pci' bus='0x01' slot='0' function='0'/>"
    "</controller></devices></domain>";

Test(preflight, a_live_attach_needs_a_free_root_port)
{
    struct lab l = {0};
    struct zr_pci_function *a = add_function(&l, "hand-pci_0000_02_00_1-vfio-pci.xml");
    struct zr_pci_function *b = add_function(&l, "pci_8086_10c9_sriov_pf.xml");
    /* both are PCIe (an 82576), though these files lack <pci-express> */
    a->conventional = b->conventional = false;
    add_guest(&l, "a", true, (const char *[]){"0000:02:00.1", "0000:02:00.0", NULL}, NONE);
    l.states[0].active = true;
    set_guest_xml(&l, 0, Q35_FULL);
    run(&l, true);
    cr_assert_null(l.errors[0].message, "a warning only");
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].message,
                     "2 live attaches without a guest address, but the running guest has 0 "
                     "free hotpluggable PCIe root ports: libvirt will fail with \"No more "
                     "available PCI slots\"; add pcie-root-port controllers to its definition "
                     "(they take effect at its next start), or use --config-only");

    /* with a guest address for each, libvirt needs no free port */
    for (size_t d = 0; d < 2; d++) {
        l.guests[0].devices.items[d].has_guest_address = true;
        l.guests[0].devices.items[d].guest_address = (struct zr_pci_addr){0, 5, (uint8_t)d, 0};
    }
    rerun(&l, true);
    cr_assert_eq(l.plan.n_warnings, 0);
    finish(&l);
}

/* The live lab's L1: two conventional e1000 behind a pcie-pci-bridge, one
 * IOMMU group (7) with the bridge.  libvirt hot-plugs a conventional
 * function only into a PCI bridge's slot: free root ports do not help
 * ("No more available PCI slots" in the lab). */
static const char *Q35_PORTS =
    "<domain><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>"
    "<controller type='pci' index='1' model='pcie-root-port'/>"
    "<controller type='pci' index='2' model='pcie-root-port'/>"
    "<controller type='pci' index='3' model='pcie-root-port'/>"
    "</devices></domain>";

Test(preflight, a_conventional_function_needs_a_pci_bridge_slot)
{
    struct lab l = {0};
    add_function(&l, "lab-pci_0000_01_01_0.xml");
    add_function(&l, "lab-pci_0000_01_02_0.xml");
    add_function(&l, "lab-pci_0000_00_07_0.xml");
    add_guest(&l, "a", true, (const char *[]){"0000:01:01.0", "0000:01:02.0", NULL}, NONE);
    l.states[0].active = true;
    set_guest_xml(&l, 0, Q35_PORTS);
    run(&l, true);
    cr_assert_null(l.errors[0].message, "a warning only; the whole group goes to one guest");
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].message,
                     "2 live attaches of conventional PCI functions (no PCI Express "
                     "capability) without a guest address, but the running guest has 0 free "
                     "slots on hotpluggable PCI bridges: libvirt puts such a function only on "
                     "a PCI bridge and will fail with \"No more available PCI slots\"; add a "
                     "pcie-to-pci-bridge controller to its definition (it takes effect at its "
                     "next start), or use --config-only");
    cr_assert(l.plan.warnings[0].has_source && l.plan.warnings[0].source.bus == 1,
              "named at one of the two");

    /* a pcie-to-pci-bridge on one of the ports: room for both */
    zr_guest_topology_finish(&l.guest_topology[0]);
    set_guest_xml(&l, 0,
                  "<domain><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>"
                  "<controller type='pci' index='1' model='pcie-root-port'/>"
                  "<controller type='pci' index='2' model='pcie-to-pci-bridge'>"
                  "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' "
                  "function='0x0'/></controller></devices></domain>");
    rerun(&l, true);
    cr_assert_eq(l.plan.n_warnings, 0);
    finish(&l);
}

static void give_mac(struct lab *l, const char *mac, unsigned line)
{
    struct zr_device *d = last_wanted(l);
    d->kind = ZR_KIND_INTERFACE;
    d->has_mac = true;
    cr_assert_eq(zr_mac_parse(mac, &d->mac), 0);
    d->mark.line = line;
}

/* The inventory refuses one MAC twice in a guest; in two guests of a host
 * it is a warning, in plan and apply, on the later guest. */
Test(preflight, one_mac_in_two_guests_is_a_warning)
{
    struct lab l = {0};
    add_guest(&l, "a", true, (const char *[]){"0003:00:00.0", NULL}, NONE);
    give_mac(&l, "02:00:00:00:00:01", 5);
    add_guest(&l, "b", true, (const char *[]){"0003:00:00.1", NULL}, NONE);
    give_mac(&l, "02:00:00:00:00:02", 9);
    add_guest(&l, "c", true, (const char *[]){"0003:00:00.2", NULL}, NONE);
    give_mac(&l, "02:00:00:00:00:01", 13);
    for (int applying = 0; applying < 2; applying++) {
        if (applying)
            rerun(&l, true);
        else
            run(&l, false);
        cr_assert_eq(l.plan.n_warnings, 1);
        cr_assert_str_eq(l.plan.warnings[0].guest, "c");
        cr_assert_str_eq(l.plan.warnings[0].message,
                         "mac 02:00:00:00:00:01 (line 13) is also given to guest 'a' (interface "
                         "0003:00:00.0, line 5): two guests of one host with one MAC clash on "
                         "their network once both run");
        for (size_t g = 0; g < 3; g++)
            cr_assert_null(l.errors[g].message, "a warning only");
    }
    finish(&l);
}

Test(preflight, no_host_check_leaves_the_conflict_check)
{
    /* what --no-host-check gives zr_preflight_check: no listing, no
     * topology; the other guest still refuses the attach */
    struct lab l = {0};
    add_guest(&l, "a", true, (const char *[]){"0001:00:00.0", "00ff:00:1f.7", NULL}, NONE);
    add_other(&l, "db1", "0001:00:00.0");
    run(&l, true);
    cr_assert_str_eq(l.errors[0].message, "0001:00:00.0 is held by guest 'db1', which the inventory "
                                  "does not name; libvirt would let both definitions hold "
                                  "it, so nothing changed on this guest");
    finish(&l);
}

/* The plan text says which physical function an interface's VF belongs to. */
Test(preflight, the_plan_names_a_virtual_functions_physical_function)
{
    struct lab l = {0};
    add_function(&l, "pci_0000_02_10_7_sriov.xml");
    add_guest(&l, "a", true, (const char *[]){"0000:02:10.7", NULL}, NONE);
    last_wanted(&l)->kind = ZR_KIND_INTERFACE;
    run(&l, false);
    cr_assert_eq(l.plan.n_warnings, 0);
    struct zr_preflight_notes notes = {0};
    zr_preflight_collect_notes(&l.in, &notes);
    cr_assert_eq(notes.n, 1);

    struct zr_plan plan = {0};
    zr_plan_guest(&plan, "default", NULL, &l.guests[0], &l.states[0].config, NULL, NULL);
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);
    zr_preflight_annotate(&plan, 0, 0, &notes);
    zr_preflight_notes_finish(&notes);
    cr_assert_eq(plan.n_actions, 1);
    cr_assert_str_eq(plan.actions[0].note, "SR-IOV virtual function of 0000:02:00.1");

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    zr_output_plan(f, &(struct zr_report){.plan = plan},
                   &(struct zr_output_options){.format = ZR_FORMAT_TEXT});
    fclose(f);
    cr_assert(strstr(text, "a:\n  + attach interface 0000:02:10.7 [config]\n"
                           "      SR-IOV virtual function of 0000:02:00.1\n"),
              "%s", text);
    free(text);
    zr_plan_finish(&plan);
    finish(&l);
}
