#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cascade.h"
#include "preflight.h"

static bool host_has(const struct zr_preflight_input *in, const struct zr_pci_addr *s)
{
    size_t lo = 0, hi = in->n_pci;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = zr_pci_addr_cmp(&in->pci[mid], s);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static const struct zr_function_info *function_of(const struct zr_preflight_input *in,
                                                  const struct zr_pci_addr *s)
{
    size_t lo = 0, hi = in->n_functions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = zr_pci_addr_cmp(&in->functions[mid].addr, s);
        if (c == 0)
            return &in->functions[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static bool wants(const struct zr_guest *g, const struct zr_pci_addr *s)
{
    return zr_device_list_holds(&g->devices, s);
}

/* Bound to nothing, or to a driver VFIO accepts beside an assigned
 * function of the same group. */
static bool vfio_ready(const char *driver)
{
    return !driver || strcmp(driver, "vfio-pci") == 0 || strcmp(driver, "pci-stub") == 0;
}

/* Who holds a function in a persistent definition: a guest the inventory
 * does not name (`other`), or inventory guest `guest`. */
struct holding {
    struct zr_pci_addr addr;
    bool inventory;
    size_t index;
    bool live; /* an inventory guest's running definition holds it */
};

static int holding_cmp(const void *pa, const void *pb)
{
    const struct holding *a = pa, *b = pb;
    int r = zr_pci_addr_cmp(&a->addr, &b->addr);
    if (r)
        return r;
    if (a->inventory != b->inventory)
        return a->inventory ? 1 : -1; /* the messages name other guests first */
    return a->index < b->index ? -1 : a->index > b->index;
}

/* One pass's state: which guests are refused so far. */
struct pass {
    struct zr_plan *plan;
    const struct zr_preflight_input *in;
    bool applying;
    bool warn;
    struct zr_error *errors; /* per guest; message NULL: go ahead */
    bool refused;            /* refused a guest that was fine before */
    const size_t *first;     /* in->planned: guest g's actions are [first[g], first[g + 1]) */
    /* Every function held by a definition, sorted: a lookup instead of a
     * scan of every guest per wanted source (hosts have thousands). */
    struct holding *held;
    size_t n_held;
    /* Every wanted source of a readable guest (inventory, index = guest),
     * sorted: who else wants a function, without a scan of every guest. */
    struct holding *wanted;
    size_t n_wanted;
    /* Which guest's check reads who holds a function (its wanted sources
     * and their IOMMU group mates), sorted: whom a refusal can affect. */
    struct holding *readers;
    size_t n_readers;
    /* What the host uses on its functions, sorted by parent node device. */
    const struct zr_host_use **uses;
    size_t n_uses;
};

/* The first entry of sorted `v` (n entries) for `s`. */
static size_t holding_lower_bound(const struct holding *v, size_t n, const struct zr_pci_addr *s)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (zr_pci_addr_cmp(&v[mid].addr, s) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void index_holdings(struct pass *p)
{
    const struct zr_preflight_input *in = p->in;
    for (size_t i = 0; i < in->n_others; i++) {
        const struct zr_other_guest *o = &in->others[i];
        for (size_t d = 0; !o->gone && !o->error && d < o->devices.n; d++)
            *ZR_APPEND(p->held, p->n_held) =
                (struct holding){o->devices.items[d].source, false, i, false};
    }
    for (size_t g = 0; g < in->wanted->n_guests; g++) {
        const struct zr_guest_state *st = &in->states[g];
        for (size_t d = 0; !st->error && d < st->config.n; d++)
            *ZR_APPEND(p->held, p->n_held) =
                (struct holding){st->config.items[d].source, true, g, false};
        for (size_t d = 0; !st->error && st->active && d < st->live.n; d++)
            *ZR_APPEND(p->held, p->n_held) =
                (struct holding){st->live.items[d].source, true, g, true};
    }
    if (p->n_held) /* qsort takes no NULL array, even empty */
        qsort(p->held, p->n_held, sizeof(*p->held), holding_cmp);
}

/* Whether guest g's plan (the draft) takes `s` out of its running
 * definition. */
static bool detaches_live(const struct zr_preflight_input *in, size_t g,
                          const struct zr_pci_addr *s)
{
    for (size_t i = 0; in->draft && i < in->draft->n_actions; i++) {
        const struct zr_action *a = &in->draft->actions[i];
        if (a->guest_index == g && a->op == ZR_OP_DETACH && a->live &&
            zr_pci_addr_eq(&a->source, s))
            return true;
    }
    return false;
}

/* Who else keeps `s` after this run, as words for a message ("guest 'x',
 * which the inventory does not name"), or NULL.  A guest of the inventory
 * gives the function up when it is planned and prunes; a running one keeps
 * it in its running definition unless its plan detaches it live (not so
 * with --config-only); `errors` says which guests will be refused. */
static char *holder(const struct pass *p, size_t self, const struct zr_pci_addr *s)
{
    const struct zr_preflight_input *in = p->in;
    for (size_t i = holding_lower_bound(p->held, p->n_held, s);
         i < p->n_held && zr_pci_addr_eq(&p->held[i].addr, s); i++) {
        const struct holding *h = &p->held[i];
        if (!h->inventory)
            return zr_asprintf("guest '%s', which the inventory does not name",
                               in->others[h->index].name);
        const struct zr_guest *g = in->states[h->index].wanted;
        if (h->index == self)
            continue;
        if (!g->prune)
            return zr_asprintf("guest '%s', whose prune: false keeps it", g->name);
        if (p->errors[h->index].message)
            return p->applying
                       ? zr_asprintf("guest '%s', which this run leaves alone (it has an error)",
                                     g->name)
                       : zr_asprintf("guest '%s', which apply will leave alone (see its warnings)",
                                     g->name);
        if (h->live && !detaches_live(in, h->index, s))
            return zr_asprintf("guest '%s', whose running definition keeps it (this run "
                               "changes definitions only)",
                               g->name);
    }
    return NULL;
}

/* holder(), or another guest of the inventory that wants `s`: an
 * inventory that splits a group between guests is refused on both sides,
 * whichever is refused first. */
static char *claimant(const struct pass *p, size_t self, const struct zr_pci_addr *s)
{
    char *who = holder(p, self, s);
    if (who)
        return who;
    /* the first such guest in inventory order */
    for (size_t i = holding_lower_bound(p->wanted, p->n_wanted, s);
         i < p->n_wanted && zr_pci_addr_eq(&p->wanted[i].addr, s); i++)
        if (p->wanted[i].index != self)
            return zr_asprintf("wanted by guest '%s'",
                               p->in->states[p->wanted[i].index].wanted->name);
    return NULL;
}

/* A finding that makes apply leave guest g alone: `error` is the guest's
 * error in apply (the first one wins), `warning` the plan's warning, to
 * which this adds what apply will do (docs/output.md: every refusing
 * finding says so, in the same words). */
static void refuse(struct pass *p, size_t g, const struct zr_pci_addr *s, zr_error_code code,
                   const char *error, const char *warning)
{
    if (!p->errors[g].message) {
        zr_error_setc(&p->errors[g], code, "%s", error);
        p->refused = true;
    }
    if (p->warn && !p->applying)
        zr_plan_add_warning(p->plan, p->in->host, p->in->states[g].wanted->name, s, code,
                            "%s; apply will leave this guest alone", warning);
}

/* A finding that is only worth knowing: a warning in plan, and in apply
 * for a guest that is changed. */
static void notice(struct pass *p, size_t g, const struct zr_pci_addr *s, const char *message)
{
    if (p->warn && (!p->applying || !p->errors[g].message))
        zr_plan_add_warning(p->plan, p->in->host, p->in->states[g].wanted->name, s,
                            ZR_ERR_HOST_CHECK, "%s", message);
}

/* A topology finding that refuses: the same words in plan and apply. */
static void refuse_topology(struct pass *p, size_t g, const struct zr_pci_addr *s,
                            zr_error_code code, const char *body)
{
    _cleanup_free_ char *error = zr_asprintf(ZR_PCI_ADDR_FMT ": %s; nothing changed on this guest",
                                             ZR_PCI_ADDR_ARGS(*s), body);
    refuse(p, g, s, code, error, body);
}

static void check_iommu_group(struct pass *p, size_t g, const struct zr_pci_function *fn)
{
    const struct zr_guest *guest = p->in->states[g].wanted;
    struct zr_strbuf others = {0};
    for (size_t i = 0; i < fn->n_group; i++) {
        const struct zr_pci_addr *m = &fn->group[i];
        if (zr_pci_addr_eq(m, &fn->addr) || wants(guest, m))
            continue;
        const struct zr_function_info *mi = function_of(p->in, m);
        if (mi && mi->read && mi->fn.bridge)
            continue; /* bridges stay with the host */
        _cleanup_free_ char *who = claimant(p, g, m);
        if (!who && mi && mi->read && vfio_ready(mi->fn.driver))
            continue;
        _cleanup_free_ char *drv = !mi || !mi->read ? zr_strdup("node device not readable")
                                   : mi->fn.driver  ? zr_asprintf("driver %s", mi->fn.driver)
                                                    : zr_strdup("no driver");
        zr_strbuf_addf(&others, ", ", ZR_PCI_ADDR_FMT " (%s%s%s)", ZR_PCI_ADDR_ARGS(*m), drv,
                       who ? ", " : "", who ? who : "");
    }
    if (!others.s)
        return;
    _cleanup_free_ char *body = zr_asprintf(
        "IOMMU group %u of " ZR_PCI_ADDR_FMT " also holds %s; a group goes to one guest as a "
        "whole: assign them to this guest too, or bind them to vfio-pci and leave them to no "
        "other guest",
        fn->iommu_group, ZR_PCI_ADDR_ARGS(fn->addr), others.s);
    free(others.s);
    refuse_topology(p, g, &fn->addr, ZR_ERR_IOMMU_GROUP, body);
}

/* VFIO assigns whole IOMMU groups: a function in none (the host's IOMMU
 * is off) cannot go to a guest, which then cannot start with it, so a
 * config-only change is refused as well. */
static void refuse_no_iommu(struct pass *p, size_t g, const struct zr_pci_function *fn)
{
    _cleanup_free_ char *body = zr_asprintf(
        ZR_PCI_ADDR_FMT " is in no IOMMU group (the host's IOMMU is off), so VFIO cannot "
        "assign it and the guest cannot start with it, with or without --config-only: enable "
        "the IOMMU in the firmware (VT-d or AMD-Vi) and on the kernel command line "
        "(intel_iommu=on, or amd_iommu=on where it is off), reboot, and have vfio-pci "
        "available",
        ZR_PCI_ADDR_ARGS(fn->addr));
    refuse_topology(p, g, &fn->addr, ZR_ERR_HOST_CHECK, body);
}

static int use_cmp(const void *pa, const void *pb)
{
    const struct zr_host_use *a = *(const struct zr_host_use *const *)pa;
    const struct zr_host_use *b = *(const struct zr_host_use *const *)pb;
    int r = strcmp(a->parent, b->parent);
    return r ? r : (a > b) - (a < b); /* the first listed first */
}

static void index_uses(struct pass *p)
{
    const struct zr_preflight_input *in = p->in;
    p->uses = zr_new0(const struct zr_host_use *, in->n_uses);
    for (size_t i = 0; i < in->n_uses; i++)
        if (in->uses[i].in_use && in->uses[i].parent)
            p->uses[p->n_uses++] = &in->uses[i];
    if (p->n_uses)
        qsort(p->uses, p->n_uses, sizeof(*p->uses), use_cmp);
}

static const struct zr_host_use *host_use_of(const struct pass *p, const struct zr_pci_addr *s)
{
    char name[64];
    snprintf(name, sizeof(name), "pci_%04x_%02x_%02x_%x", (unsigned)s->domain, (unsigned)s->bus,
             (unsigned)s->slot, (unsigned)s->function);
    size_t lo = 0, hi = p->n_uses;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(p->uses[mid]->parent, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->n_uses && strcmp(p->uses[lo]->parent, name) == 0 ? p->uses[lo] : NULL;
}

/* A function that `planned` attaches to guest g on another NUMA node than
 * the guest's memory is pinned to: a notice. */
static void check_numa(struct pass *p, size_t g, const struct zr_pci_function *fn,
                       const struct zr_pci_addr *s, const char *src)
{
    const struct zr_guest_topology *t = p->in->guests ? &p->in->guests[g] : NULL;
    if (t && t->nodeset && fn->numa_node >= 0 &&
        zr_nodeset_has(t->nodeset, (unsigned)fn->numa_node) == 0) {
        _cleanup_free_ char *m = zr_asprintf(
            "the guest's memory is pinned to NUMA node(s) %s (<numatune>), but %s sits on "
            "NUMA node %d: its DMA would cross nodes",
            t->nodeset, src, fn->numa_node);
        notice(p, g, s, m);
    }
}

/* The checks of one function that `planned` attaches to guest g. */
static void check_attach(struct pass *p, size_t g, const struct zr_device *want,
                         const struct zr_function_info *fi)
{
    const struct zr_pci_addr *s = &want->source;
    char src[ZR_PCI_ADDR_STRLEN];
    zr_pci_addr_format(s, src);

    if (!fi->read) {
        _cleanup_free_ char *error = zr_asprintf(
            "%s; nothing changed on this guest (--no-host-check skips this check)", fi->error);
        _cleanup_free_ char *warning = zr_asprintf("host check skipped: %s", fi->error);
        refuse(p, g, s, ZR_ERR_HOST_CHECK, error, warning);
        return;
    }
    const struct zr_pci_function *fn = &fi->fn;
    const char *drv = fn->driver;

    if (fn->has_iommu_group)
        check_iommu_group(p, g, fn);

    if (want->kind == ZR_KIND_INTERFACE && !fn->is_vf) {
        _cleanup_free_ char *what =
            fn->is_pf ? zr_strdup("an SR-IOV physical function")
                      : zr_asprintf("a plain PCI function, driver %s", drv ? drv : "none");
        _cleanup_free_ char *body = zr_asprintf(
            "%s is not an SR-IOV virtual function (it is %s); libvirt takes an interface of "
            "type hostdev on virtual functions only: list one of its virtual functions, or "
            "list it under hostdevs:",
            src, what);
        refuse_topology(p, g, s, ZR_ERR_NOT_VF, body);
    }

    if (want->has_managed && !want->managed && (!drv || strcmp(drv, "vfio-pci") != 0)) {
        _cleanup_free_ char *body = zr_asprintf(
            "managed: false needs %s bound to vfio-pci already (libvirt will not rebind it), "
            "but it is bound to %s: bind it (e.g. driverctl set-override %s vfio-pci) or use "
            "managed: true",
            src, drv ? drv : "no driver", src);
        refuse_topology(p, g, s, ZR_ERR_HOST_CHECK, body);
    } else if (want->managed && !vfio_ready(drv) && p->in->have_uses) {
        const struct zr_host_use *u = host_use_of(p, s);
        if (u) {
            _cleanup_free_ char *m = zr_asprintf(
                "managed: true lets libvirt take %s from its host driver %s, but the host "
                "uses it: %s",
                src, drv, u->what);
            notice(p, g, s, m);
        }
    }

    /* Last: a finding about the entry itself comes first in apply. */
    if (!fn->has_iommu_group)
        refuse_no_iommu(p, g, fn);
    check_numa(p, g, fn, s, src);
}

/* A live attach without a guest address into a q35 guest takes a free
 * hotpluggable PCIe port, or for a conventional PCI function a free slot
 * on a PCI bridge; libvirt adds neither to a running guest. */
static void check_hotplug(struct pass *p, size_t g)
{
    const struct zr_guest_topology *t = p->in->guests ? &p->in->guests[g] : NULL;
    if (!t || !t->q35)
        return;
    const struct zr_plan *pl = p->in->planned;
    /* [0]: PCIe ports, [1]: PCI bridge slots */
    size_t need[2] = {0}, freed[2] = {0};
    const struct zr_pci_addr *first[2] = {NULL};
    for (size_t i = p->first[g]; i < p->first[g + 1]; i++) {
        const struct zr_action *a = &pl->actions[i];
        if (!a->live)
            continue;
        /* a replacement's attach keeps the port it had */
        bool replaced = zr_action_is_replacement(a);
        if (a->op == ZR_OP_ATTACH && !a->device.has_guest_address) {
            /* an unreadable function: libvirt's own default, PCIe */
            const struct zr_function_info *fi = function_of(p->in, &a->source);
            int k = fi && fi->read && fi->fn.conventional;
            need[k]++;
            if (!first[k])
                first[k] = &a->source;
        } else if (a->op == ZR_OP_DETACH && !replaced && a->device.has_guest_address) {
            for (size_t k = 0; k < t->n_ports; k++)
                if (t->ports[k].index == a->device.guest_address.bus &&
                    (t->ports[k].conventional || !t->ports[k].free))
                    freed[t->ports[k].conventional]++;
        }
    }
    size_t avail = zr_guest_topology_free_ports(t) + freed[0];
    if (need[0] > avail) {
        _cleanup_free_ char *m = zr_asprintf(
            "%zu live attach%s without a guest address, but the running guest has %zu free "
            "hotpluggable PCIe root port%s: libvirt will fail with \"No more available PCI "
            "slots\"; add pcie-root-port controllers to its definition (they take effect at "
            "its next start), or use --config-only",
            need[0], need[0] == 1 ? "" : "es", avail, avail == 1 ? "" : "s");
        notice(p, g, first[0], m);
    }
    avail = zr_guest_topology_free_pci_slots(t) + freed[1];
    if (need[1] > avail) {
        _cleanup_free_ char *m = zr_asprintf(
            "%zu live attach%s of conventional PCI functions (no PCI Express capability) "
            "without a guest address, but the running guest has %zu free slot%s on "
            "hotpluggable PCI bridges: libvirt puts such a function only on a PCI bridge and "
            "will fail with \"No more available PCI slots\"; add a pcie-to-pci-bridge "
            "controller to its definition (it takes effect at its next start), or use "
            "--config-only",
            need[1], need[1] == 1 ? "" : "es", avail, avail == 1 ? "" : "s");
        notice(p, g, first[1], m);
    }
}

/* The topology checks of guest g: each function planned attaches, once. */
static void check_topology(struct pass *p, size_t g)
{
    const struct zr_preflight_input *in = p->in;
    const struct zr_guest *guest = in->states[g].wanted;
    const struct zr_plan *pl = in->planned;
    for (size_t d = 0; d < guest->devices.n; d++) {
        const struct zr_device *want = &guest->devices.items[d];
        bool attached = false;
        for (size_t i = p->first[g]; i < p->first[g + 1] && !attached; i++)
            attached = pl->actions[i].op == ZR_OP_ATTACH && pl->actions[i].kind == want->kind &&
                       zr_pci_addr_eq(&pl->actions[i].source, &want->source);
        const struct zr_function_info *fi = attached ? function_of(in, &want->source) : NULL;
        if (fi)
            check_attach(p, g, want, fi);
    }
    check_hotplug(p, g);
}

/* Every wanted source of guest g.  Sets its error when it must not be
 * changed; with `warn`, adds the warnings. */
static void check_guest(struct pass *p, size_t g)
{
    const struct zr_preflight_input *in = p->in;
    const struct zr_guest_state *st = &in->states[g];
    const struct zr_guest *guest = st->wanted;
    if (st->error)
        return;
    for (size_t d = 0; d < guest->devices.n; d++) {
        const struct zr_pci_addr *s = &guest->devices.items[d].source;
        /* Written only for a message: most sources have none. */
        char src[ZR_PCI_ADDR_STRLEN];

        if (in->have_pci && !host_has(in, s)) {
            zr_pci_addr_format(s, src);
            _cleanup_free_ char *error =
                zr_asprintf("host has no PCI function %s (node device "
                            "pci_%04x_%02x_%02x_%x); nothing changed on this guest",
                            src, s->domain, s->bus, s->slot, s->function);
            _cleanup_free_ char *warning = zr_asprintf("host has no PCI function %s", src);
            refuse(p, g, s, ZR_ERR_NO_FUNCTION, error, warning);
        }

        _cleanup_free_ char *who = holder(p, g, s);
        if (!who)
            continue;
        if (zr_device_list_holds(&st->config, s)) {
            /* Nothing new is attached here; it is only worth knowing. */
            if (p->warn)
                zr_plan_add_warning(p->plan, in->host, guest->name, s, ZR_ERR_CONFLICT,
                                    "also held by %s: both definitions hold this function", who);
        } else {
            zr_pci_addr_format(s, src);
            _cleanup_free_ char *error =
                zr_asprintf("%s is held by %s; libvirt would let both definitions hold "
                            "it, so nothing changed on this guest",
                            src, who);
            _cleanup_free_ char *warning = zr_asprintf("held by %s", who);
            refuse(p, g, s, ZR_ERR_CONFLICT, error, warning);
        }
    }
    if (in->planned && in->functions)
        check_topology(p, g);
}

/* The wanted sources of readable guests, and who reads whose holdings:
 * guest g's check asks who holds each function it wants, and (in the
 * topology checks) each other function of their IOMMU groups. */
static void index_wanted(struct pass *p)
{
    const struct zr_preflight_input *in = p->in;
    for (size_t g = 0; g < in->wanted->n_guests; g++) {
        const struct zr_device_list *l = &in->states[g].wanted->devices;
        for (size_t d = 0; !in->states[g].error && d < l->n; d++) {
            const struct zr_pci_addr *s = &l->items[d].source;
            *ZR_APPEND(p->wanted, p->n_wanted) = (struct holding){*s, true, g};
            *ZR_APPEND(p->readers, p->n_readers) = (struct holding){*s, true, g};
            const struct zr_function_info *fi = in->planned ? function_of(in, s) : NULL;
            for (size_t m = 0; fi && fi->read && m < fi->fn.n_group; m++)
                *ZR_APPEND(p->readers, p->n_readers) = (struct holding){fi->fn.group[m], true, g};
        }
    }
    if (p->n_wanted) /* qsort takes no NULL array, even empty */
        qsort(p->wanted, p->n_wanted, sizeof(*p->wanted), holding_cmp);
    if (p->n_readers)
        qsort(p->readers, p->n_readers, sizeof(*p->readers), holding_cmp);
}

/* Guest g was just refused: it keeps what it holds, so every guest whose
 * check reads who holds one of those functions is checked again. */
static void wake_readers(struct pass *p, struct zr_cascade *c, size_t g)
{
    const struct zr_device_list *held = &p->in->states[g].config;
    for (size_t d = 0; d < held->n; d++) {
        const struct zr_pci_addr *s = &held->items[d].source;
        for (size_t i = holding_lower_bound(p->readers, p->n_readers, s);
             i < p->n_readers && zr_pci_addr_eq(&p->readers[i].addr, s); i++)
            if (p->readers[i].index != g && !p->errors[p->readers[i].index].message)
                zr_cascade_wake(c, p->readers[i].index);
    }
}

/* A refused guest keeps what it holds, which may refuse another one, and
 * so on: the guests are checked in passes until nothing changes, each
 * pass checking only those a refusal of the pass before (or earlier in
 * this pass) can affect (cascade.h: the same outcome as full passes). */
static void check_cascade(struct pass *p)
{
    struct zr_cascade c;
    zr_cascade_init(&c, p->in->wanted->n_guests);
    size_t g;
    while (zr_cascade_next(&c, &g)) {
        p->refused = false;
        check_guest(p, g);
        if (p->refused)
            wake_readers(p, &c, g);
    }
    zr_cascade_finish(&c);
}

/* An interface of the inventory that gives a MAC: guest g's device d. */
struct mac_use {
    struct zr_mac mac;
    size_t g, d;
};

static int mac_use_cmp(const void *pa, const void *pb)
{
    const struct mac_use *a = pa, *b = pb;
    int r = memcmp(a->mac.b, b->mac.b, sizeof(a->mac.b));
    if (r)
        return r;
    if (a->g != b->g)
        return a->g < b->g ? -1 : 1;
    return a->d < b->d ? -1 : a->d > b->d;
}

/* One MAC given to two guests of the host: each guest is fine alone (the
 * inventory refuses it twice in one guest), but once both run on one
 * network they clash.  A warning on each later guest, naming the first. */
static void warn_shared_macs(struct zr_plan *plan, const struct zr_preflight_input *in)
{
    const struct zr_host *h = in->wanted;
    struct mac_use *v = NULL;
    size_t n = 0;
    for (size_t g = 0; g < h->n_guests; g++)
        for (size_t d = 0; d < h->guests[g].devices.n; d++)
            if (h->guests[g].devices.items[d].has_mac)
                *ZR_APPEND(v, n) = (struct mac_use){h->guests[g].devices.items[d].mac, g, d};
    if (n > 1)
        qsort(v, n, sizeof(*v), mac_use_cmp);
    for (size_t i = 1, first = 0; i < n; i++) {
        if (!zr_mac_eq(&v[i].mac, &v[first].mac)) {
            first = i;
            continue;
        }
        if (v[i].g == v[first].g)
            continue;
        const struct zr_device *a = &h->guests[v[first].g].devices.items[v[first].d];
        const struct zr_device *b = &h->guests[v[i].g].devices.items[v[i].d];
        char mac[ZR_MAC_STRLEN];
        zr_plan_add_warning(plan, in->host, h->guests[v[i].g].name, &b->source, ZR_ERR_CONFLICT,
                            "mac %s (line %u) is also given to guest '%s' (interface "
                            ZR_PCI_ADDR_FMT ", line %u): two guests of one host with one MAC "
                            "clash on their network once both run",
                            zr_mac_format(&b->mac, mac), b->mark.line, h->guests[v[first].g].name,
                            ZR_PCI_ADDR_ARGS(a->source), a->mark.line);
    }
    free(v);
}

struct zr_error *zr_preflight_check(struct zr_plan *plan, const struct zr_preflight_input *in,
                                    bool applying)
{
    size_t n = in->wanted->n_guests;
    _cleanup_free_ size_t *first = zr_new0(size_t, n + 1);
    if (in->planned) {
        /* zr_preflight_plan() appends each guest's actions together. */
        for (size_t i = 0; i < in->planned->n_actions; i++)
            if (in->planned->actions[i].guest_index < n)
                first[in->planned->actions[i].guest_index + 1]++;
        for (size_t g = 0; g < n; g++)
            first[g + 1] += first[g];
    }
    struct pass p = {.plan = plan,
                     .in = in,
                     .applying = applying,
                     .errors = zr_new0(struct zr_error, n),
                     .first = first};
    for (size_t g = 0; in->refused && g < n; g++)
        if (in->refused[g].message)
            zr_error_setc(&p.errors[g], in->refused[g].code, "%s", in->refused[g].message);
    index_holdings(&p);
    index_wanted(&p);
    index_uses(&p);
    /* plan follows the same cascade, so its warnings say what apply will
     * do; they come from one last pass over every guest. */
    check_cascade(&p);
    p.warn = true;
    for (size_t g = 0; g < n; g++)
        check_guest(&p, g);
    warn_shared_macs(plan, in);
    if (!applying)
        for (size_t g = 0; g < n; g++)
            zr_error_finish(&p.errors[g]);
    free(p.held);
    free(p.wanted);
    free(p.readers);
    free(p.uses);
    return p.errors;
}

void zr_preflight_plan(struct zr_plan *out, const struct zr_host *wanted,
                       const struct zr_guest_state *states, const struct zr_plan_options *popts)
{
    for (size_t g = 0; g < wanted->n_guests; g++) {
        const struct zr_guest_state *st = &states[g];
        if (st->error)
            zr_plan_guest_error(out, wanted->name, NULL, wanted->guests[g].name, st->error_code,
                                "%s", st->error);
        else
            zr_plan_guest(out, wanted->name, NULL, st->wanted, &st->config,
                          st->active ? &st->live : NULL, popts);
    }
}

/* What the topology checks look at: the draft's actions of the guests one
 * of whose wanted functions is on the host (the others have no topology to
 * check).  Shallow copies: the draft owns them; free only view->actions. */
static void topology_view(struct zr_plan *view, const struct zr_plan *draft,
                          const struct zr_host *wanted, const struct zr_host_pci *pci)
{
    _cleanup_free_ bool *on_host = zr_new0(bool, wanted->n_guests);
    for (size_t g = 0; g < wanted->n_guests; g++) {
        const struct zr_device_list *l = &wanted->guests[g].devices;
        for (size_t d = 0; d < l->n && !on_host[g]; d++)
            on_host[g] = zr_host_pci_find(pci, &l->items[d].source) >= 0;
    }
    *view = (struct zr_plan){.guests = draft->guests, .n_guests = draft->n_guests};
    view->actions = zr_new0(struct zr_action, draft->n_actions);
    for (size_t i = 0; i < draft->n_actions; i++) {
        size_t g = draft->actions[i].guest_index;
        if (g < wanted->n_guests && on_host[g])
            view->actions[view->n_actions++] = draft->actions[i];
    }
}

/* A listing the check needs failed: plan warns; apply refuses the host
 * (the first reason wins). */
static void listing_failed(struct zr_plan *plan, const char *host, const char *check,
                           const char *advice, bool applying, const struct zr_error *err,
                           struct zr_error *refuse)
{
    if (!applying)
        zr_plan_add_warning(plan, host, NULL, NULL, err->code,
                            "%s skipped: %s; apply will leave this host's guests alone", check,
                            err->message);
    else if (!refuse->message)
        zr_error_setc(refuse, err->code, "%s; nothing changed%s", err->message, advice);
}

/* Everything the topology checks read, owned. */
struct topology_read {
    struct zr_function_info *functions;
    size_t n_functions;
    struct zr_host_use *uses;
    size_t n_uses;
    bool have_uses;
    struct zr_guest_topology *guests;
    size_t n_guests;
};

static void topology_read_finish(struct topology_read *t)
{
    for (size_t i = 0; i < t->n_functions; i++) {
        zr_pci_function_finish(&t->functions[i].fn);
        free(t->functions[i].error);
    }
    free(t->functions);
    for (size_t i = 0; i < t->n_uses; i++)
        zr_host_use_finish(&t->uses[i]);
    free(t->uses);
    for (size_t i = 0; i < t->n_guests; i++)
        zr_guest_topology_finish(&t->guests[i]);
    free(t->guests);
}

/* The node devices of the functions marked in `mark` (indices into the
 * facts' PCI listing) that are not done yet, into xml/errors (borrowed
 * from the facts: one the chooser read is not read again). */
static void read_marked(struct zr_host_facts *facts, const bool *mark, bool *done,
                        const char **xml, const char **errors)
{
    size_t n = facts->pci.n;
    _cleanup_free_ size_t *idx = zr_new0(size_t, n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (mark[i] && !done[i]) {
            idx[k++] = i;
            done[i] = true;
        }
    _cleanup_free_ const char **x = zr_new0(const char *, k);
    _cleanup_free_ const char **e = zr_new0(const char *, k);
    zr_host_facts_nodedev_xml(facts, idx, k, x, e);
    for (size_t i = 0; i < k; i++) {
        xml[idx[i]] = x[i];
        errors[idx[i]] = e[i];
    }
}

static void parse_function(struct zr_function_info *fi, const struct zr_pci_addr *a,
                           const char *xml, const char *error)
{
    fi->addr = *a;
    if (!xml) {
        fi->error = zr_strdup(error ? error : "cannot read its node device");
        return;
    }
    _cleanup_free_ char *what =
        zr_asprintf("node device of " ZR_PCI_ADDR_FMT, ZR_PCI_ADDR_ARGS(*a));
    struct zr_error e = {0};
    if (zr_pci_function_parse(xml, strlen(xml), what, &fi->fn, &e) < 0) {
        fi->error = zr_asprintf("%s: %s", what, e.message);
        zr_error_finish(&e);
    } else {
        fi->read = true;
    }
}

/* Node device XML of each function `planned` attaches and of the other
 * functions of their IOMMU groups (two rounds, each on `jobs` threads);
 * what the host uses on its functions when a managed attach would take one
 * from a host driver; the guests' own XML for NUMA and hotplug. */
/* What the host uses on its functions (net and storage node devices),
 * for the driver binding check. */
static void read_uses(struct topology_read *t, struct zr_plan *plan, virConnectPtr conn,
                      const char *host, unsigned jobs)
{
    char **docs = NULL;
    size_t n_docs = 0;
    struct zr_error err = {0};
    if (zr_state_read_host_uses(conn, jobs, &docs, &n_docs, &err) < 0) {
        zr_plan_add_warning(plan, host, NULL, NULL, ZR_ERR_HOST_CHECK,
                            "host check cannot tell what the host uses: %s", err.message);
        zr_error_finish(&err);
    } else {
        t->have_uses = true;
        t->uses = zr_new0(struct zr_host_use, n_docs);
        for (size_t i = 0; i < n_docs; i++) {
            if (docs[i] && zr_host_use_parse(docs[i], strlen(docs[i]), "node device",
                                             &t->uses[t->n_uses], &err) == 0)
                t->n_uses++;
            zr_error_finish(&err);
            free(docs[i]);
        }
        free(docs);
    }
}

/* The NUMA pinning and hotplug ports of each guest that gets a device. */
static void read_guest_topologies(struct topology_read *t, const struct zr_host *wanted,
                                  const struct zr_guest_state *states, const bool *attaching)
{
    t->guests = zr_new0(struct zr_guest_topology, wanted->n_guests);
    t->n_guests = wanted->n_guests;
    for (size_t g = 0; g < wanted->n_guests; g++) {
        const struct zr_guest_state *st = &states[g];
        const char *x = st->active && st->live_xml ? st->live_xml : st->config_xml;
        if (!attaching[g] || st->error || !x)
            continue;
        struct zr_error err = {0};
        if (zr_guest_topology_parse(x, strlen(x), st->wanted->name, &t->guests[g], &err) < 0)
            zr_error_finish(&err); /* domain.c read it already; nothing to add */
    }
}

static void topology_read(struct topology_read *t, struct zr_plan *plan,
                          struct zr_host_facts *facts, const struct zr_host *wanted,
                          const struct zr_guest_state *states, const struct zr_plan *planned,
                          unsigned jobs)
{
    const struct zr_host_pci *pci = &facts->pci;
    _cleanup_free_ bool *mark = zr_new0(bool, pci->n);
    _cleanup_free_ bool *done = zr_new0(bool, pci->n);
    _cleanup_free_ bool *attaching = zr_new0(bool, wanted->n_guests);
    _cleanup_free_ const char **xml = zr_new0(const char *, pci->n);
    _cleanup_free_ const char **errors = zr_new0(const char *, pci->n);
    size_t n_attach = 0;
    for (size_t i = 0; i < planned->n_actions; i++) {
        const struct zr_action *a = &planned->actions[i];
        if (a->op != ZR_OP_ATTACH)
            continue;
        attaching[a->guest_index] = true;
        long k = zr_host_pci_find(pci, &a->source);
        if (k >= 0 && !mark[k]) {
            mark[k] = true;
            n_attach++;
        }
    }
    if (n_attach == 0)
        return; /* steady state: no node device is read */
    read_marked(facts, mark, done, xml, errors);

    /* Round two: the rest of their IOMMU groups.  Parse round one first
     * to learn the groups. */
    t->functions = zr_new0(struct zr_function_info, pci->n);
    _cleanup_free_ bool *parsed = zr_new0(bool, pci->n);
    bool need_uses = false;
    _cleanup_free_ struct zr_function_info *round1 = zr_new0(struct zr_function_info, pci->n);
    for (size_t i = 0; i < pci->n; i++) {
        if (!done[i])
            continue;
        parse_function(&round1[i], &pci->addrs[i], xml[i], errors[i]);
        parsed[i] = true;
        const struct zr_pci_function *fn = &round1[i].fn;
        for (size_t m = 0; round1[i].read && m < fn->n_group; m++) {
            long k = zr_host_pci_find(pci, &fn->group[m]);
            if (k >= 0)
                mark[k] = true;
        }
        if (round1[i].read && !vfio_ready(fn->driver))
            need_uses = true;
    }
    read_marked(facts, mark, done, xml, errors);
    for (size_t i = 0; i < pci->n; i++) {
        if (!done[i])
            continue;
        if (parsed[i])
            t->functions[t->n_functions++] = round1[i];
        else
            parse_function(&t->functions[t->n_functions++], &pci->addrs[i], xml[i], errors[i]);
    }

    if (need_uses)
        read_uses(t, plan, facts->conn, wanted->name, jobs);
    read_guest_topologies(t, wanted, states, attaching);
}

/* The listings the checks need, from the run's facts (read there unless
 * the chooser read them already): the host's PCI functions (host_check)
 * and the guests the inventory does not name.  One that failed is a
 * warning in plan and, in apply, `refuse` for every guest of the host. */
static void read_listings(struct zr_plan *plan, struct zr_host_facts *facts, const char *uri,
                          const struct zr_host *wanted, bool host_check, bool applying,
                          struct zr_preflight_input *in, const struct zr_host_pci **pci,
                          struct zr_error *refuse)
{
    const struct zr_error *err;
    if (host_check) {
        int r = zr_host_facts_pci(facts, pci, &err);
        if (r == -ENOTSUP) {
            zr_plan_add_warning(plan, wanted->name, NULL, NULL, ZR_ERR_NO_NODEDEVS,
                                "host check skipped: %s lists no node devices", uri);
        } else if (r < 0) {
            listing_failed(plan, wanted->name, "host check", " (--no-host-check skips this check)",
                           applying, err, refuse);
        } else {
            in->have_pci = true;
            in->pci = (*pci)->addrs;
            in->n_pci = (*pci)->n;
        }
    }

    if (zr_host_facts_others(facts, &in->others, &in->n_others, &err) < 0) {
        listing_failed(plan, wanted->name, "conflict check", "", applying, err, refuse);
    } else {
        in->have_others = true;
        for (size_t i = 0; i < in->n_others; i++)
            if (in->others[i].error)
                zr_plan_add_warning(plan, wanted->name, NULL, NULL, ZR_ERR_CONFLICT,
                                    "conflict check cannot read guest '%s': %s", in->others[i].name,
                                    in->others[i].error);
    }
}

struct zr_error *zr_preflight_host(struct zr_plan *plan, struct zr_host_facts *facts,
                                   const char *uri, const struct zr_host *wanted,
                                   const struct zr_guest_state *states, const struct zr_plan *draft,
                                   bool host_check, unsigned jobs, bool applying,
                                   const struct zr_error *refused, struct zr_preflight_notes *notes)
{
    struct zr_preflight_input in = {.host = wanted->name,
                                    .wanted = wanted,
                                    .states = states,
                                    .refused = refused,
                                    .draft = draft};
    size_t n_wanted = 0;
    for (size_t g = 0; g < wanted->n_guests; g++)
        n_wanted += states[g].error ? 0 : wanted->guests[g].devices.n;
    /* Nothing to attach, nothing to check: spare the listings. */
    if (n_wanted == 0)
        return zr_new0(struct zr_error, wanted->n_guests);

    const struct zr_host_pci *pci = NULL;
    /* apply: why no guest of the host is changed */
    _cleanup_(zr_error_finish) struct zr_error refuse = {0};

    read_listings(plan, facts, uri, wanted, host_check, applying, &in, &pci, &refuse);

    struct zr_plan planned = {0};
    struct topology_read t = {0};
    if (in.have_pci) {
        topology_view(&planned, draft, wanted, pci);
        topology_read(&t, plan, facts, wanted, states, &planned, jobs);
        in.planned = &planned;
        in.functions = t.functions;
        in.n_functions = t.n_functions;
        in.uses = t.uses;
        in.n_uses = t.n_uses;
        in.have_uses = t.have_uses;
        in.guests = t.guests;
    }

    struct zr_error *errors = zr_preflight_check(plan, &in, applying);
    if (notes)
        zr_preflight_collect_notes(&in, notes);
    topology_read_finish(&t);
    free(planned.actions); /* a view: the draft owns the rest */
    if (refuse.message)
        for (size_t g = 0; g < wanted->n_guests; g++)
            zr_error_setc(&errors[g], refuse.code, "%s", refuse.message);
    return errors;
}

void zr_preflight_collect_notes(const struct zr_preflight_input *in,
                                struct zr_preflight_notes *notes)
{
    for (size_t g = 0; g < in->wanted->n_guests; g++) {
        const struct zr_device_list *l = &in->wanted->guests[g].devices;
        for (size_t d = 0; d < l->n; d++) {
            const struct zr_function_info *fi = function_of(in, &l->items[d].source);
            if (l->items[d].kind != ZR_KIND_INTERFACE || !fi || !fi->read || !fi->fn.is_vf)
                continue;
            *ZR_APPEND(notes->items, notes->n) = (struct zr_preflight_note){
                g, ZR_KIND_INTERFACE, l->items[d].source,
                zr_asprintf("SR-IOV virtual function of " ZR_PCI_ADDR_FMT,
                            ZR_PCI_ADDR_ARGS(fi->fn.pf))};
        }
    }
}

static int note_cmp(const void *pa, const void *pb)
{
    const struct zr_preflight_note *a = *(const struct zr_preflight_note *const *)pa;
    const struct zr_preflight_note *b = *(const struct zr_preflight_note *const *)pb;
    if (a->guest != b->guest)
        return a->guest < b->guest ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    int r = zr_pci_addr_cmp(&a->source, &b->source);
    return r ? r : (a > b) - (a < b); /* the first collected first */
}

/* The first note for guest g's `kind` attach of `source`, or NULL. */
static const struct zr_preflight_note *note_of(const struct zr_preflight_note *const *sorted,
                                               size_t n, size_t g, zr_kind kind,
                                               const struct zr_pci_addr *source)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct zr_preflight_note *m = sorted[mid];
        int c = m->guest != g     ? (m->guest < g ? -1 : 1)
                : m->kind != kind ? (m->kind < kind ? -1 : 1)
                                  : zr_pci_addr_cmp(&m->source, source);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n && sorted[lo]->guest == g && sorted[lo]->kind == kind &&
        zr_pci_addr_eq(&sorted[lo]->source, source))
        return sorted[lo];
    return NULL;
}

void zr_preflight_annotate(struct zr_plan *plan, size_t first_action, size_t first_guest,
                           const struct zr_preflight_notes *notes)
{
    if (!notes || notes->n == 0)
        return;
    /* sorted: a lookup per attach, not a scan of every note */
    _cleanup_free_ const struct zr_preflight_note **sorted =
        zr_new0(const struct zr_preflight_note *, notes->n);
    for (size_t k = 0; k < notes->n; k++)
        sorted[k] = &notes->items[k];
    qsort(sorted, notes->n, sizeof(*sorted), note_cmp);
    for (size_t i = first_action; i < plan->n_actions; i++) {
        struct zr_action *a = &plan->actions[i];
        if (a->op != ZR_OP_ATTACH || a->note || a->guest_index < first_guest)
            continue;
        const struct zr_preflight_note *n =
            note_of(sorted, notes->n, a->guest_index - first_guest, a->kind, &a->source);
        if (n)
            a->note = zr_strdup(n->text);
    }
}

void zr_preflight_notes_finish(struct zr_preflight_notes *notes)
{
    for (size_t i = 0; i < notes->n; i++)
        free(notes->items[i].text);
    free(notes->items);
    *notes = (struct zr_preflight_notes){0};
}

void zr_preflight_errors_free(struct zr_error *errors, size_t n)
{
    if (!errors)
        return;
    for (size_t i = 0; i < n; i++)
        zr_error_finish(&errors[i]);
    free(errors);
}
