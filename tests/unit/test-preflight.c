/* The preflight's decision, from hand-made hosts: which wanted sources are
 * missing on the host or held by a guest that keeps them, and when that is
 * a warning (plan, or a function the guest already holds) or an error for
 * the guest (apply). */
#include <criterion/criterion.h>
#include <string.h>

#include "preflight.h"

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
    char **errors;
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
    add_device(&o->config, holds);
}

static void add_pci(struct lab *l, const char *s)
{
    l->pci[l->n_pci++] = addr(s);
}

static void run(struct lab *l, bool applying)
{
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
    };
    l->errors = zr_preflight_check(&l->plan, &in, applying);
}

static void finish(struct lab *l)
{
    zr_preflight_errors_free(l->errors, l->host.n_guests);
    for (size_t g = 0; g < l->host.n_guests; g++) {
        zr_device_list_finish(&l->guests[g].devices);
        zr_device_list_finish(&l->states[g].config);
    }
    for (size_t i = 0; i < l->n_others; i++)
        zr_device_list_finish(&l->others[i].config);
    zr_plan_finish(&l->plan);
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
    cr_assert_null(l.errors[0]);
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].guest, "a");
    cr_assert_str_eq(l.plan.warnings[0].message, "host has no PCI function 00ff:00:1f.7");
    finish(&l);

    struct lab m = {0};
    add_pci(&m, "0000:00:01.0");
    add_pci(&m, "0000:00:01.1");
    add_guest(&m, "a", true, (const char *[]){"0000:00:01.0", "00ff:00:1f.7", NULL}, NONE);
    add_guest(&m, "b", true, (const char *[]){"0000:00:01.1", NULL}, NONE);
    run(&m, true);
    cr_assert_str_eq(m.errors[0], "host has no PCI function 00ff:00:1f.7 (node device "
                                  "pci_00ff_00_1f_7); nothing changed on this guest");
    cr_assert_null(m.errors[1]);
    cr_assert_eq(m.plan.n_warnings, 0);
    finish(&m);
}

Test(preflight, no_node_devices_means_no_function_check)
{
    struct lab l = {0};
    add_guest(&l, "a", true, (const char *[]){"00ff:00:1f.7", NULL}, NONE);
    run(&l, true);
    cr_assert_null(l.errors[0]);
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
    cr_assert_null(l.errors[0]);
    cr_assert_eq(l.plan.n_warnings, 1);
    cr_assert_str_eq(l.plan.warnings[0].guest, "a");
    cr_assert(l.plan.warnings[0].has_source);
    cr_assert_str_eq(l.plan.warnings[0].message,
                     "held by guest 'db1', which the inventory does not name; apply will "
                     "refuse to attach it here");
    zr_preflight_errors_free(l.errors, l.host.n_guests);

    zr_plan_finish(&l.plan);
    run(&l, true);
    cr_assert_str_eq(l.errors[0], "0001:00:00.0 is held by guest 'db1', which the inventory "
                                  "does not name; libvirt would let both definitions hold "
                                  "it, so nothing changed on this guest");
    cr_assert_null(l.errors[1], "b is not involved");
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
    cr_assert_null(l.errors[0]);
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
    cr_assert_null(l.errors[0]);
    cr_assert_null(l.errors[1]);
    cr_assert_eq(l.plan.n_warnings, 0);
    finish(&l);
}

Test(preflight, prune_false_keeps_the_function)
{
    struct lab l = {0};
    add_guest(&l, "a", false, NONE, (const char *[]){"0001:00:00.0", NULL});
    add_guest(&l, "b", true, (const char *[]){"0001:00:00.0", NULL}, NONE);
    run(&l, true);
    cr_assert_null(l.errors[0]);
    cr_assert_str_eq(l.errors[1], "0001:00:00.0 is held by guest 'a', whose prune: false "
                                  "keeps it; libvirt would let both definitions hold it, so "
                                  "nothing changed on this guest");
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
    cr_assert_str_eq(l.errors[2], "host has no PCI function 00ff:00:1f.7 (node device "
                                  "pci_00ff_00_1f_7); nothing changed on this guest");
    cr_assert_str_eq(l.errors[1], "0001:00:00.0 is held by guest 'a', which this run leaves "
                                  "alone (it has an error); libvirt would let both "
                                  "definitions hold it, so nothing changed on this guest");
    cr_assert_str_eq(l.errors[0], "0002:00:00.0 is held by guest 'b', which this run leaves "
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
    cr_assert_null(l.errors[0]);
    finish(&l);
}
