#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "field.h"
#include "plan.h"

const char *zr_op_to_string(zr_op op)
{
    switch (op) {
    case ZR_OP_DETACH:
        return "detach";
    case ZR_OP_ATTACH:
        return "attach";
    case ZR_OP__COUNT:
        break;
    }
    return "?";
}

const char *zr_result_to_string(zr_result r)
{
    switch (r) {
    case ZR_RESULT_PLANNED:
        return "planned";
    case ZR_RESULT_DONE:
        return "done";
    case ZR_RESULT_FAILED:
        return "failed";
    case ZR_RESULT_SKIPPED:
        return "skipped";
    case ZR_RESULT_ROLLED_BACK:
        return "rolled back";
    case ZR_RESULT__COUNT:
        break;
    }
    return "?";
}

bool zr_action_is_replacement(const struct zr_action *a)
{
    return a->role == ZR_ROLE_REPLACE_OUT || a->role == ZR_ROLE_REPLACE_IN;
}

char *zr_changes_format(const struct zr_change *changes, size_t n)
{
    struct zr_strbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        const struct zr_change *c = &changes[i];
        if (c->field)
            zr_strbuf_addf(&b, ", ", "%s %s → %s", c->field, c->old, c->new);
        else
            zr_strbuf_addf(&b, ", ", "the guest's interface name changes: %s → %s", c->old,
                           c->new);
    }
    return b.s;
}

static void changes_free(struct zr_change *changes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(changes[i].field);
        free(changes[i].old);
        free(changes[i].new);
    }
    free(changes);
}

static struct zr_change *changes_copy(const struct zr_change *from, size_t n)
{
    struct zr_change *to = n ? zr_new0(struct zr_change, n) : NULL;
    for (size_t i = 0; i < n; i++)
        to[i] = (struct zr_change){zr_strdup(from[i].field), zr_strdup(from[i].old),
                                   zr_strdup(from[i].new), from[i].listed};
    return to;
}

/* The fields the reason names, in order, are the same in both lists. */
static bool same_listed(const struct zr_change *a, size_t na, const struct zr_change *b,
                        size_t nb)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < na && !a[i].listed)
            i++;
        while (j < nb && !b[j].listed)
            j++;
        if (i == na || j == nb)
            return i == na && j == nb;
        if (!zr_streq(a[i].field, b[j].field))
            return false;
        i++;
        j++;
    }
}

/* "changed: zpci.uid,mac": the listed changes' fields. */
static char *changed_reason(const struct zr_change *changes, size_t n)
{
    struct zr_strbuf b = {0};
    for (size_t i = 0; i < n; i++)
        if (changes[i].listed)
            zr_strbuf_addf(&b, ",", "%s", changes[i].field);
    char *s = zr_asprintf("changed: %s", b.s ? b.s : "");
    free(b.s);
    return s;
}

char *zr_action_reason(const struct zr_action *a)
{
    switch (a->role) {
    case ZR_ROLE_ADD:
        return zr_strdup("missing");
    case ZR_ROLE_REMOVE:
        return zr_strdup("not in inventory");
    case ZR_ROLE_REPLACE_OUT:
    case ZR_ROLE_REPLACE_IN:
    case ZR_ROLE__COUNT:
        break;
    }
    return changed_reason(a->changes, a->n_changes);
}

bool zr_action_same_reason(const struct zr_action *a, const struct zr_action *b)
{
    return a->role == b->role &&
           same_listed(a->changes, a->n_changes, b->changes, b->n_changes);
}

/* What differs between a wanted device and the current one with the same
 * key.  Only fields the inventory gives are compared; `managed` always is. */
struct diff {
    struct zr_change *changes; /* each difference, and what follows from them */
    size_t n_changes;
    bool differs;              /* a listed change: the device is replaced */
};

static void diff_finish(struct diff *d)
{
    changes_free(d->changes, d->n_changes);
}

/* A change the reason does not list: a consequence of the listed ones. */
static void diff_note(struct diff *d, const char *field, const char *old, const char *new)
{
    *ZR_APPEND(d->changes, d->n_changes) =
        (struct zr_change){zr_strdup(field), zr_strdup(old), zr_strdup(new), false};
}

static void diff_add(struct diff *d, const char *field, const char *old, const char *new)
{
    diff_note(d, field, old, new);
    d->changes[d->n_changes - 1].listed = true;
    d->differs = true;
}

static void diff_report(void *ctx, const char *name, const char *old, const char *new)
{
    diff_add(ctx, name, old, new);
}

static void diff_devices(struct diff *d, const struct zr_device *w, const struct zr_device *c)
{
    zr_field_diff(w, c, diff_report, d);
}

/* Values a current device holds by libvirt's choice that another wanted
 * device of the guest names (ZR_FIELD_BIT()s of libvirt_picks fields): the
 * replacement leaves them out, so libvirt picks new ones once the named
 * ones are taken. */

/* The device a replacement attaches: the wanted fields, and the current
 * value of every field the inventory leaves out (unless it must move), so
 * only the listed differences change.  The attach XML is the current
 * element edited where this differs from it (zr_domain_edit_xml), so what
 * the model does not carry is kept too. */
static void merge_interface(struct zr_device *out, const struct zr_device *w,
                            const struct zr_device *c);

static void merge_device(struct zr_device *out, const struct zr_device *w,
                         const struct zr_device *c, unsigned move)
{
    zr_device_copy(out, w);
    free(out->xml);
    out->xml = NULL;
    if (!c)
        return;
    free(out->unrepresentable);
    out->unrepresentable = zr_strdup(c->unrepresentable);
    zr_field_keep_current(out, w, c, move);
    if (w->kind == ZR_KIND_INTERFACE)
        merge_interface(out, w, c);
}

/* An interface's virtualport or vlan the inventory leaves out, where
 * libvirt takes them together. */
static void merge_interface(struct zr_device *out, const struct zr_device *w,
                            const struct zr_device *c)
{
    /* libvirt refuses a vlan beside a virtualport on a hostdev interface:
     * a wanted vlan wins over a virtualport the inventory leaves out, unless
     * the current element has the pair already (the format cannot state
     * it, so the inventory leaves the other one out: keep it). */
    bool had_pair = (c->has_vlan || c->vlan_unrepresentable) &&
                    (c->vport.type != ZR_VPORT_NONE || c->vport_unrepresentable);
    if (w->vport.type == ZR_VPORT_NONE && c->vport.type != ZR_VPORT_NONE &&
        (!w->has_vlan || had_pair)) {
        zr_virtualport_finish(&out->vport);
        zr_virtualport_copy(&out->vport, &c->vport);
    } else if (w->vport.type == ZR_VPORT_8021QBG && c->vport.type == ZR_VPORT_8021QBG &&
               !w->vport.has_instanceid && c->vport.has_instanceid) {
        out->vport.has_instanceid = true;
        out->vport.instanceid = c->vport.instanceid;
    }
    if (!w->has_vlan && c->has_vlan && !c->vlan_unrepresentable &&
        (out->vport.type == ZR_VPORT_NONE || had_pair)) {
        out->has_vlan = true;
        out->vlan = c->vlan;
    }
}

/* The outcome for one device key in one flavour (persistent or live). */
struct step {
    const struct zr_device *detach; /* current device to remove, or NULL */
    struct zr_device attach;        /* valid when has_attach */
    bool has_attach;
    struct zr_change *changes; /* a replacement's */
    size_t n_changes;
};

static void step_finish(struct step *s)
{
    if (s->has_attach)
        zr_device_finish(&s->attach);
    changes_free(s->changes, s->n_changes);
    *s = (struct step){0};
}

/* Which values a current device must give up, and the wanted devices
 * that name them (for the change text). */
struct move {
    unsigned mask; /* ZR_FIELD_BIT()s */
    const struct zr_device *by[ZR_FIELD__COUNT];
};

/* "(libvirt picks another: hostdev 0001:00:00.0 wants it)", or, for a value
 * given up only because the device moves, "(libvirt picks it anew)". */
static char *move_why(const struct zr_device *by)
{
    char src[ZR_PCI_ADDR_STRLEN];
    if (!by)
        return zr_strdup("(libvirt picks it anew: the device moves)");
    return zr_asprintf("(libvirt picks another: %s %s wants it)", zr_kind_to_string(by->kind),
                       zr_pci_addr_format(&by->source, src));
}

static void diff_moves(struct diff *d, const struct zr_device *c, const struct move *m)
{
    char old[ZR_FIELD_STRLEN];
    for (size_t i = 0; i < ZR_FIELD__COUNT; i++) {
        if (!(m->mask & ZR_FIELD_BIT(i)))
            continue;
        _cleanup_free_ char *why = move_why(m->by[i]);
        diff_add(d, zr_fields[i].name, zr_field_format(&zr_fields[i], c, old), why);
    }
}

/* What follows from a replacement beyond the fields the inventory
 * changes: a NIC's name, and what libvirt refuses beside a changed field. */
static void diff_consequences(struct diff *d, const struct zr_device *w, const struct zr_device *c,
                              const struct zr_device *attach, const struct move *m)
{
    char old[64], new[64];
    /* Linux names a zPCI NIC after its uid (systemd's onboard name,
     * eno<uid> in decimal): people must know the name changes. */
    if (c->kind == ZR_KIND_INTERFACE && c->has_zpci_uid && w->has_zpci_uid &&
        c->zpci_uid != w->zpci_uid) {
        snprintf(old, sizeof(old), "eno%u", c->zpci_uid);
        snprintf(new, sizeof(new), "eno%u", w->zpci_uid);
        diff_note(d, NULL, old, new);
    } else if (c->kind == ZR_KIND_INTERFACE && c->has_zpci_uid && m && (m->mask & ZR_FIELD_BIT(ZR_FIELD_ZPCI_UID))) {
        snprintf(old, sizeof(old), "eno%u", c->zpci_uid);
        diff_note(d, NULL, old, "eno<the uid libvirt picks>");
    }
    /* The element is edited in place, so everything else is kept, except
     * what libvirt refuses beside a changed field: say so. */
    if (zr_device_drops_vlan(c, attach)) {
        snprintf(old, sizeof(old), "(trunk or several tags)");
        if (!c->vlan_unrepresentable)
            snprintf(old, sizeof(old), "%u", c->vlan);
        diff_note(d, "vlan", old, "(none: libvirt refuses a vlan beside a virtualport)");
    }
    if (zr_device_drops_virtualport(c, attach))
        diff_note(d, "virtualport",
                  c->vport_unrepresentable ? "(a type the inventory format cannot express)"
                                           : zr_vport_type_to_string(c->vport.type),
                  "(none: libvirt refuses a virtualport beside a vlan)");
}

static void step_compute(struct step *s, const struct zr_device *w, const struct zr_device *c,
                         bool prune, const struct move *m)
{
    *s = (struct step){0};
    if (w && !c) {
        merge_device(&s->attach, w, NULL, 0);
        s->has_attach = true;
    } else if (w && c) {
        struct diff d = {0};
        diff_devices(&d, w, c);
        if (m)
            diff_moves(&d, c, m);
        if (d.differs) {
            s->detach = c;
            merge_device(&s->attach, w, c, m ? m->mask : 0);
            s->has_attach = true;
            diff_consequences(&d, w, c, &s->attach, m);
            s->changes = TAKE_PTR(d.changes);
            s->n_changes = d.n_changes;
            d.n_changes = 0;
        }
        diff_finish(&d);
    } else if (!w && c && prune) {
        s->detach = c;
    }
}

static bool step_empty(const struct step *s)
{
    return !s->detach && !s->has_attach;
}

const char *zr_action_flags_string(const struct zr_action *a)
{
    return a->live && a->config ? "live+config" : a->live ? "live" : "config";
}

void zr_action_finish(struct zr_action *a)
{
    changes_free(a->changes, a->n_changes);
    free(a->note);
    free(a->xml);
    zr_device_finish(&a->device);
    if (a->role == ZR_ROLE_REPLACE_IN)
        zr_device_finish(&a->replaces);
    free(a->deps);
}

static size_t plan_add_guest(struct zr_plan *plan, const char *host, const char *uri,
                             const char *guest)
{
    struct zr_plan_guest *g = ZR_APPEND(plan->guests, plan->n_guests);
    g->host = zr_strdup(host);
    g->uri = zr_strdup(uri);
    g->guest = zr_strdup(guest);
    return plan->n_guests - 1;
}

/* Appends step s's detach or attach; copies everything it is given.  A
 * detach's device keeps its element (the XML to send is built from it); an
 * attach's device is a model, and a replacement's attach also carries the
 * current device, with the element it edits. */
static void plan_add_action(struct zr_plan *plan, size_t guest_index, zr_op op, bool live,
                            bool config, const struct step *s)
{
    const struct zr_device *dev = op == ZR_OP_ATTACH ? &s->attach : s->detach;
    bool replacement = s->detach && s->has_attach;
    struct zr_action *a = ZR_APPEND(plan->actions, plan->n_actions);
    a->guest_index = guest_index;
    a->op = op;
    a->role = op == ZR_OP_ATTACH ? (replacement ? ZR_ROLE_REPLACE_IN : ZR_ROLE_ADD)
                                 : (replacement ? ZR_ROLE_REPLACE_OUT : ZR_ROLE_REMOVE);
    a->pair = ZR_NO_PAIR;
    a->kind = dev->kind;
    a->source = dev->source;
    a->live = live;
    a->config = config;
    a->changes = changes_copy(s->changes, s->n_changes);
    a->n_changes = s->n_changes;
    zr_device_copy(&a->device, dev);
    if (op == ZR_OP_ATTACH) {
        free(a->device.xml);
        a->device.xml = NULL;
    }
    if (a->role == ZR_ROLE_REPLACE_IN)
        zr_device_copy(&a->replaces, s->detach);
    plan->guests[guest_index].changed = true;
}

/* One detach call can serve both flavours when libvirt will find the same
 * device with the same XML in both: hostdevs are matched by source alone,
 * interfaces by MAC and guest address. */
static bool detach_combinable(const struct zr_device *a, const struct zr_device *b)
{
    if (a->kind == ZR_KIND_HOSTDEV)
        return true;
    if (a->has_mac != b->has_mac || (a->has_mac && !zr_mac_eq(&a->mac, &b->mac)))
        return false;
    if (a->has_guest_address && b->has_guest_address &&
        !zr_pci_addr_eq(&a->guest_address, &b->guest_address))
        return false;
    return true;
}

static void emit_steps(struct zr_plan *plan, size_t gi, struct step *cfg, struct step *live)
{
    /* Detaches. */
    if (cfg && cfg->detach && live && live->detach && cfg->has_attach == live->has_attach &&
        same_listed(cfg->changes, cfg->n_changes, live->changes, live->n_changes) &&
        detach_combinable(cfg->detach, live->detach)) {
        plan_add_action(plan, gi, ZR_OP_DETACH, true, true, cfg);
    } else {
        if (cfg && cfg->detach)
            plan_add_action(plan, gi, ZR_OP_DETACH, false, true, cfg);
        if (live && live->detach)
            plan_add_action(plan, gi, ZR_OP_DETACH, true, false, live);
    }

    /* Attaches, one per flavour, the persistent one first: zr_render_plan()
     * (render.h) makes them one call when libvirt would get the very same
     * XML twice, which only the XML can tell. */
    if (cfg && cfg->has_attach)
        plan_add_action(plan, gi, ZR_OP_ATTACH, false, true, cfg);
    if (live && live->has_attach)
        plan_add_action(plan, gi, ZR_OP_ATTACH, true, false, live);
}

static const struct zr_device *find_key(const struct zr_device_list *l, const struct zr_device *k)
{
    return zr_device_list_find(l, k->kind, &k->source);
}

/* The keys to visit, each once: wanted first (inventory order), then the
 * current devices the inventory does not list (document order). */
static void collect_keys(const struct zr_device ***keys, size_t *n, const struct zr_device_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < *n && !seen; j++)
            seen = zr_device_same_key((*keys)[j], &l->items[i]);
        if (!seen)
            *ZR_APPEND(*keys, *n) = &l->items[i];
    }
}

static void live_drift_warning(struct zr_plan *plan, const char *host, const char *guest,
                               const struct step *s)
{
    const struct zr_device *d = s->detach ? s->detach : &s->attach;
    if (s->detach && s->has_attach) {
        _cleanup_free_ char *reason = changed_reason(s->changes, s->n_changes);
        zr_plan_add_warning(plan, host, guest, &d->source, ZR_ERR_LIVE_DRIFT,
                            "live drift not fixed (--config-only): running %s %s",
                            zr_kind_to_string(d->kind), reason);
    } else if (s->detach)
        zr_plan_add_warning(plan, host, guest, &d->source, ZR_ERR_LIVE_DRIFT,
                            "live drift not fixed (--config-only): running guest has %s not in inventory",
                            zr_kind_to_string(d->kind));
    else
        zr_plan_add_warning(plan, host, guest, &d->source, ZR_ERR_LIVE_DRIFT,
                            "live drift not fixed (--config-only): %s missing in running guest",
                            zr_kind_to_string(d->kind));
}

/* Refuses a plan that would leave one host function in a guest twice:
 * wanted as one kind while prune: false keeps it as the other kind.
 * libvirt accepts that at config level, so we must not ask for it. */
static const struct zr_device *kept_other_kind(const struct zr_guest *wanted,
                                               const struct zr_device_list *cur,
                                               const struct zr_device *w)
{
    if (wanted->prune || !cur)
        return NULL;
    for (size_t i = 0; i < cur->n; i++) {
        const struct zr_device *c = &cur->items[i];
        if (c->kind != w->kind && zr_pci_addr_eq(&c->source, &w->source) &&
            !find_key(&wanted->devices, c))
            return c;
    }
    return NULL;
}

/* ---- values one device of a guest holds and another wants ------------- */

/* Fills `m` with the values `c` (a current device) holds that another
 * wanted device names while `c`'s own entry `wc` (NULL: not listed) does
 * not name that kind of value: libvirt chose them for `c`, so `c` moves. */
static void must_move(const struct zr_guest *wanted, const struct zr_device *c,
                      const struct zr_device *wc, struct move *m)
{
    *m = (struct move){0};
    if (!wc)
        return; /* detached (prune) or kept (check_held refuses the clash) */
    for (size_t k = 0; k < ZR_FIELD__COUNT; k++) {
        const struct zr_field *f = &zr_fields[k];
        if (!f->libvirt_picks || !zr_field_is_set(f, c) || zr_field_is_set(f, wc))
            continue;
        for (size_t i = 0; i < wanted->devices.n; i++) {
            const struct zr_device *w = &wanted->devices.items[i];
            if (zr_field_is_set(f, w) && zr_field_same(f, w, c) && !zr_device_same_key(w, c)) {
                m->mask |= ZR_FIELD_BIT(k);
                m->by[k] = w;
            }
        }
    }
    /* A moved device gives up every value libvirt chose for it: what it
     * kept would otherwise go to it last, after libvirt picked from the
     * freed values for another attach of the run (say its slot for a
     * device that names only zPCI ids). */
    if (!m->mask)
        return;
    for (size_t k = 0; k < ZR_FIELD__COUNT; k++) {
        const struct zr_field *f = &zr_fields[k];
        if (f->libvirt_picks && zr_field_is_set(f, c) && !zr_field_is_set(f, wc))
            m->mask |= ZR_FIELD_BIT(k);
    }
}

/* The first value `v` holds among `fields` (ZR_FIELD_BIT()s) that `w`
 * names, as messages say it ("zPCI uid 0x0001"). */
static bool held_clash(const struct zr_device *w, const struct zr_device *v, unsigned fields,
                       char *what, size_t size)
{
    char buf[ZR_FIELD_STRLEN];
    for (size_t k = 0; k < ZR_FIELD__COUNT; k++) {
        const struct zr_field *f = &zr_fields[k];
        if (!f->noun || !(fields & ZR_FIELD_BIT(k)) || !zr_field_is_set(f, w) ||
            !zr_field_is_set(f, v) || !zr_field_same(f, w, v))
            continue;
        snprintf(what, size, "%s %s", f->noun, zr_field_format(f, v, buf));
        return true;
    }
    return false;
}

/* What current device `c` keeps through the run: everything when prune:
 * false keeps it (`wc` NULL), else a value libvirt never picks (a boot
 * order, so not moved) that its entry `wc` does not name. */
static unsigned kept_fields(const struct zr_device *c, const struct zr_device *wc)
{
    unsigned fields = 0;
    for (size_t k = 0; k < ZR_FIELD__COUNT; k++) {
        const struct zr_field *f = &zr_fields[k];
        if (zr_field_is_set(f, c) && (!wc || (!f->libvirt_picks && !zr_field_is_set(f, wc))))
            fields |= ZR_FIELD_BIT(k);
    }
    return fields;
}

/* Refuses the guest (returns -1) when an out-of-scope device holds a
 * value wanted device w names. */
static int clash_held(struct zr_plan *plan, size_t gi, const struct zr_device *w,
                      const struct zr_device_list *cur, const struct zr_device *held,
                      const char *flavour)
{
    char what[64], src[ZR_PCI_ADDR_STRLEN];
    for (size_t j = 0; j < cur->n_held; j++) {
        if (!held_clash(w, &held[j], ~0u, what, sizeof(what)))
            continue;
        zr_plan_refuse_guest(plan, gi, ZR_ERR_HELD,
                             "%s %s wants %s, which a %s device of the guest's %s holds (out of "
                             "scope, never changed); pick another value",
                             zr_kind_to_string(w->kind), zr_pci_addr_format(&w->source, src),
                             what, cur->held[j].what, flavour);
        return -1;
    }
    return 0;
}

/* Refuses the guest (returns -1) when a current device keeps through the
 * run (`keeps`: what each keeps) a value wanted device w names. */
static int clash_kept(struct zr_plan *plan, size_t gi, const struct zr_guest *wanted,
                      const struct zr_device *w, const struct zr_device_list *cur,
                      const unsigned *keeps, const char *flavour)
{
    char what[64], src[ZR_PCI_ADDR_STRLEN], other[ZR_PCI_ADDR_STRLEN];
    for (size_t j = 0; j < cur->n; j++) {
        const struct zr_device *c = &cur->items[j];
        if (!keeps[j] || zr_device_same_key(c, w) ||
            !held_clash(w, c, keeps[j], what, sizeof(what)))
            continue;
        bool kept = !find_key(&wanted->devices, c);
        zr_plan_refuse_guest(
            plan, gi, ZR_ERR_HELD,
            "%s %s wants %s, which %s %s holds in the guest's %s and keeps (%s); %s",
            zr_kind_to_string(w->kind), zr_pci_addr_format(&w->source, src), what,
            zr_kind_to_string(c->kind), zr_pci_addr_format(&c->source, other), flavour,
            kept ? "prune: false" : "its entry does not change it",
            kept ? "list that device with another value, or pick another one"
                 : "give that device another boot_order, or pick another one");
        return -1;
    }
    return 0;
}

/* A wanted value that a device this run keeps already holds: libvirt would
 * refuse the attach ("zPCI uid ... is already reserved", "Attempted double
 * use of PCI Address", "boot order ... is already used"), on every run.
 * Kept are out-of-scope devices, in-scope ones prune: false keeps, and a
 * listed device holding a boot order its entry does not change (libvirt
 * never picks a boot order, so that one is not moved).  Sets the guest's
 * error and returns -1 on the first clash, wanted device by wanted device.
 * What each device holds or keeps is worked out once. */
static int check_held(struct zr_plan *plan, size_t gi, const struct zr_guest *wanted,
                      const struct zr_device_list *cur, const char *flavour)
{
    if (!cur)
        return 0;
    _cleanup_free_ struct zr_device *held = zr_new0(struct zr_device, cur->n_held);
    for (size_t j = 0; j < cur->n_held; j++)
        zr_field_from_held(&held[j], &cur->held[j]);
    _cleanup_free_ unsigned *keeps = zr_new0(unsigned, cur->n);
    for (size_t j = 0; j < cur->n; j++) {
        const struct zr_device *wc = find_key(&wanted->devices, &cur->items[j]);
        if (wc || !wanted->prune) /* an unlisted one is detached first */
            keeps[j] = kept_fields(&cur->items[j], wc);
    }
    for (size_t i = 0; i < wanted->devices.n; i++) {
        const struct zr_device *w = &wanted->devices.items[i];
        if (clash_held(plan, gi, w, cur, held, flavour) < 0 ||
            clash_kept(plan, gi, wanted, w, cur, keeps, flavour) < 0)
            return -1;
    }
    return 0;
}

/* How many guest-side values an attach names; libvirt picks the others. */
static unsigned named_values(const struct zr_device *d)
{
    unsigned n = 0;
    for (size_t k = 0; k < ZR_FIELD__COUNT; k++)
        n += zr_fields[k].libvirt_picks && zr_field_is_set(&zr_fields[k], d);
    return n;
}

/* Within a guest, attaches that name more of their guest address and zPCI
 * ids go first: a value libvirt picks for another device is the lowest
 * free one, and must not be one a later attach of the run names.  Stable,
 * so otherwise the order stays (source order). */
static void order_attaches(struct zr_plan *plan, size_t first)
{
    size_t n = plan->n_actions - first;
    if (n < 2)
        return;
    _cleanup_free_ struct zr_action *sorted = zr_reallocarray(NULL, n, sizeof(*sorted));
    size_t out = 0;
    for (size_t i = first; i < plan->n_actions; i++)
        if (plan->actions[i].op == ZR_OP_DETACH)
            sorted[out++] = plan->actions[i];
    unsigned most = 0;
    for (size_t k = 0; k < ZR_FIELD__COUNT; k++)
        most += zr_fields[k].libvirt_picks;
    for (unsigned named = most;; named--) {
        for (size_t i = first; i < plan->n_actions; i++)
            if (plan->actions[i].op == ZR_OP_ATTACH &&
                named_values(&plan->actions[i].device) == named)
                sorted[out++] = plan->actions[i];
        if (named == 0)
            break;
    }
    memcpy(plan->actions + first, sorted, n * sizeof(*sorted));
}

/* libvirt refuses a device <boot order> beside <os><boot dev>, and puts
 * <boot dev='hd'/> into the persistent definition itself when the last
 * device with a boot order is detached: a replacement of that device would
 * be detached and then refused, every run.  Checked on the actions of the
 * guest (from `first` on), for the persistent definition. */
static void check_boot(struct zr_plan *plan, size_t gi, const struct zr_device_list *config,
                       size_t first)
{
    if (!config || plan->guests[gi].error)
        return;
    const struct zr_action *attach = NULL;
    for (size_t i = first; i < plan->n_actions && !attach; i++)
        if (plan->actions[i].op == ZR_OP_ATTACH && plan->actions[i].config &&
            plan->actions[i].device.has_boot_order)
            attach = &plan->actions[i];
    if (!attach)
        return;
    char src[ZR_PCI_ADDR_STRLEN];
    const char *kind = zr_kind_to_string(attach->kind);
    zr_pci_addr_format(&attach->source, src);
    if (config->os_boot) {
        zr_plan_refuse_guest(
            plan, gi, ZR_ERR_BOOT_ORDER,
            "%s %s would be attached with boot order %u, but the guest boots by <os><boot "
            "dev=...>, beside which libvirt refuses device boot orders; remove <boot> from "
            "<os> first, or leave boot_order out",
            kind, src, attach->device.boot_order);
        return;
    }
    size_t remaining = 0, before = 0;
    for (size_t j = 0; j < config->n_held; j++)
        remaining += config->held[j].has_boot_order;
    for (size_t j = 0; j < config->n; j++) {
        const struct zr_device *c = &config->items[j];
        bool detached = false;
        for (size_t i = first; i < plan->n_actions && !detached; i++)
            detached = plan->actions[i].op == ZR_OP_DETACH && plan->actions[i].config &&
                       plan->actions[i].kind == c->kind &&
                       zr_pci_addr_eq(&plan->actions[i].source, &c->source);
        remaining += c->has_boot_order && !detached;
        before += c->has_boot_order;
    }
    /* Without any boot order and without <os><boot> (libvirt writes one
     * then, so not libvirt's XML) nothing changes at the detaches. */
    if (before > 0 && remaining == 0)
        zr_plan_refuse_guest(
            plan, gi, ZR_ERR_BOOT_ORDER,
            "%s %s would be attached with boot order %u after every device with a boot order "
            "is detached; libvirt then puts <boot dev='hd'/> into <os> and refuses it; give "
            "another device of the guest (a disk) a boot order first",
            kind, src, attach->device.boot_order);
}

/* Refuses (returns -1) a guest that wants a function as one kind while
 * prune: false keeps it as the other. */
static int refuse_kept_other_kind(struct zr_plan *plan, size_t gi, const struct zr_guest *wanted,
                                  const struct zr_device_list *config,
                                  const struct zr_device_list *live)
{
    for (size_t i = 0; i < wanted->devices.n; i++) {
        const struct zr_device *w = &wanted->devices.items[i];
        const struct zr_device *c = kept_other_kind(wanted, config, w);
        if (!c)
            c = kept_other_kind(wanted, live, w);
        if (c) {
            char src[ZR_PCI_ADDR_STRLEN];
            zr_plan_refuse_guest(
                plan, gi, ZR_ERR_KIND_KEPT,
                "%s %s is wanted, but the guest holds that function as an %s that prune: false "
                "keeps; detach it or list it",
                zr_kind_to_string(w->kind), zr_pci_addr_format(&w->source, src),
                zr_kind_to_string(c->kind));
            return -1;
        }
    }
    return 0;
}

/* One device key: both flavours' steps, then their actions. */
static void plan_key(struct zr_plan *plan, size_t gi, const char *host,
                     const struct zr_guest *wanted, const struct zr_device *key,
                     const struct zr_device_list *config, const struct zr_device_list *live,
                     const struct zr_plan_options *opts)
{
    const struct zr_device *w = find_key(&wanted->devices, key);
    const struct zr_device *cc = find_key(config, key);
    const struct zr_device *lc = find_key(live, key);
    struct move cm = {0}, lm = {0};
    if (cc)
        must_move(wanted, cc, w, &cm);
    if (lc)
        must_move(wanted, lc, w, &lm);
    struct step cfg, lv = {0};
    step_compute(&cfg, w, cc, wanted->prune, &cm);
    if (live)
        step_compute(&lv, w, lc, wanted->prune, &lm);

    if (live && opts && opts->config_only) {
        if (!step_empty(&lv))
            live_drift_warning(plan, host, wanted->name, &lv);
        emit_steps(plan, gi, &cfg, NULL);
    } else {
        emit_steps(plan, gi, &cfg, live ? &lv : NULL);
    }
    step_finish(&cfg);
    step_finish(&lv);
}

void zr_plan_guest(struct zr_plan *plan, const char *host, const char *uri,
                   const struct zr_guest *wanted, const struct zr_device_list *config,
                   const struct zr_device_list *live, const struct zr_plan_options *opts)
{
    size_t gi = plan_add_guest(plan, host, uri, wanted->name);
    if (refuse_kept_other_kind(plan, gi, wanted, config, live) < 0)
        return;

    _cleanup_free_ const struct zr_device **keys = NULL;
    size_t n_keys = 0;
    collect_keys(&keys, &n_keys, &wanted->devices);
    collect_keys(&keys, &n_keys, config);
    collect_keys(&keys, &n_keys, live);

    /* With --config-only the running guest is not changed, so what it
     * holds cannot stop the persistent definition's changes. */
    bool live_changes = live && !(opts && opts->config_only);
    if (check_held(plan, gi, wanted, config, "persistent definition") < 0 ||
        (live_changes && check_held(plan, gi, wanted, live, "running guest") < 0))
        return;

    size_t first_action = plan->n_actions;
    for (size_t i = 0; i < n_keys; i++)
        plan_key(plan, gi, host, wanted, keys[i], config, live, opts);

    order_attaches(plan, first_action);
    check_boot(plan, gi, config, first_action);

    /* A guest with an error gets no action at all: nothing half-done. */
    if (plan->guests[gi].error) {
        size_t keep = plan->n_actions;
        while (keep > 0 && plan->actions[keep - 1].guest_index == gi)
            keep--;
        for (size_t i = keep; i < plan->n_actions; i++)
            zr_action_finish(&plan->actions[i]);
        plan->n_actions = keep;
        plan->guests[gi].changed = false;
    }
}

void zr_plan_guest_error(struct zr_plan *plan, const char *host, const char *uri,
                         const char *guest, zr_error_code code, const char *fmt, ...)
{
    size_t gi = plan_add_guest(plan, host, uri, guest);
    va_list ap;
    va_start(ap, fmt);
    plan->guests[gi].error = zr_vasprintf(fmt, ap);
    va_end(ap);
    plan->guests[gi].error_code = code;
}

void zr_plan_refuse_guest(struct zr_plan *plan, size_t gi, zr_error_code code, const char *fmt,
                          ...)
{
    struct zr_plan_guest *g = &plan->guests[gi];
    va_list ap;
    va_start(ap, fmt);
    free(g->error);
    g->error = zr_vasprintf(fmt, ap);
    va_end(ap);
    g->error_code = code;
    g->changed = false;
}

void zr_plan_drop_refused(struct zr_plan *plan)
{
    size_t out = 0;
    for (size_t i = 0; i < plan->n_actions; i++) {
        struct zr_action *a = &plan->actions[i];
        if (plan->guests[a->guest_index].error)
            zr_action_finish(a);
        else
            plan->actions[out++] = *a;
    }
    plan->n_actions = out;
}

void zr_plan_drop_warnings(struct zr_plan *plan, size_t gi)
{
    const struct zr_plan_guest *g = &plan->guests[gi];
    size_t out = 0;
    for (size_t i = 0; i < plan->n_warnings; i++) {
        struct zr_warning *w = &plan->warnings[i];
        if (w->guest && zr_streq(w->guest, g->guest) && zr_streq(w->host, g->host)) {
            zr_warning_finish(w);
        } else {
            plan->warnings[out++] = *w;
        }
    }
    plan->n_warnings = out;
}

struct zr_plan_host *zr_plan_add_host(struct zr_plan *plan, const char *name, const char *uri)
{
    struct zr_plan_host *h = ZR_APPEND(plan->hosts, plan->n_hosts);
    h->name = zr_strdup(name);
    h->uri = zr_strdup(uri);
    return h;
}

/* Moves the items of array `src` (n_src of them) to the end of `dst`; an
 * empty `dst` takes the array itself (a host's draft into its report). */
#define MOVE_ITEMS(dst, n_dst, src, n_src)                                                         \
    do {                                                                                           \
        if ((n_dst) == 0) {                                                                        \
            free(dst);                                                                             \
            (dst) = (src);                                                                         \
            (n_dst) = (n_src);                                                                     \
            break;                                                                                 \
        }                                                                                          \
        if ((n_src) > 0) {                                                                         \
            (dst) = zr_grow((dst), (n_dst), (n_src), sizeof(*(dst)));                              \
            memcpy((dst) + (n_dst), (src), (n_src) * sizeof(*(dst)));                              \
            (n_dst) += (n_src);                                                                    \
        }                                                                                          \
        free(src);                                                                                 \
    } while (0)

void zr_plan_append(struct zr_plan *dst, struct zr_plan *src)
{
    size_t guest_base = dst->n_guests, action_base = dst->n_actions;
    for (size_t i = 0; i < src->n_actions; i++) {
        struct zr_action *a = &src->actions[i];
        a->guest_index += guest_base;
        for (size_t j = 0; j < a->n_deps; j++)
            a->deps[j] += action_base;
        if (a->pair != ZR_NO_PAIR)
            a->pair += action_base;
    }
    MOVE_ITEMS(dst->guests, dst->n_guests, src->guests, src->n_guests);
    MOVE_ITEMS(dst->actions, dst->n_actions, src->actions, src->n_actions);
    MOVE_ITEMS(dst->warnings, dst->n_warnings, src->warnings, src->n_warnings);
    MOVE_ITEMS(dst->hosts, dst->n_hosts, src->hosts, src->n_hosts);
    dst->has_hosts = dst->has_hosts || src->has_hosts;
    *src = (struct zr_plan){0};
}

void zr_plan_add_warning(struct zr_plan *plan, const char *host, const char *guest,
                         const struct zr_pci_addr *source, zr_error_code code, const char *fmt,
                         ...)
{
    struct zr_warning *w = ZR_APPEND(plan->warnings, plan->n_warnings);
    w->host = zr_strdup(host);
    w->guest = zr_strdup(guest);
    if (source) {
        w->has_source = true;
        w->source = *source;
    }
    va_list ap;
    va_start(ap, fmt);
    w->message = zr_vasprintf(fmt, ap);
    va_end(ap);
    w->code = code;
}

/* Resources a guest holds that an attach may need freed first: the zPCI
 * ids, guest slot and MAC of a device being detached from the same guest. */
static bool shares_guest_resource(const struct zr_device *a, const struct zr_device *d)
{
    for (size_t k = 0; k < ZR_FIELD__COUNT; k++) {
        const struct zr_field *f = &zr_fields[k];
        if (f->dup && zr_field_is_set(f, a) && zr_field_is_set(f, d) && zr_field_same(f, a, d))
            return true;
    }
    return false;
}

/* A detach, as the dependency search looks it up. */
struct detach_key {
    struct zr_pci_addr source;
    size_t guest;
    size_t index; /* into plan->actions */
};

static int key_by_source(const void *pa, const void *pb)
{
    const struct detach_key *a = pa, *b = pb;
    int r = zr_pci_addr_cmp(&a->source, &b->source);
    return r ? r : (a->index > b->index) - (a->index < b->index);
}

static int key_by_guest(const void *pa, const void *pb)
{
    const struct detach_key *a = pa, *b = pb;
    if (a->guest != b->guest)
        return a->guest < b->guest ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* The first key not below `probe` (index 0 sorts first among equals). */
static size_t lower_bound(const struct detach_key *keys, size_t n, const struct detach_key *probe,
                          int (*cmp)(const void *, const void *))
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp(&keys[mid], probe) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int index_cmp(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    return (a > b) - (a < b);
}

/* Each attach waits for the detaches of its host function (any guest) and
 * for those of its own guest that free a resource it uses.  The host's
 * detaches are sorted by source and by guest once, so an attach looks at
 * its matches only: n log n for a host of any size, not attaches times
 * detaches. */
static void compute_deps(struct zr_plan *plan, size_t first, size_t end)
{
    size_t n = 0;
    _cleanup_free_ struct detach_key *by_source = zr_new0(struct detach_key, end - first);
    for (size_t j = first; j < end; j++)
        if (plan->actions[j].op == ZR_OP_DETACH)
            by_source[n++] =
                (struct detach_key){plan->actions[j].source, plan->actions[j].guest_index, j};
    if (n == 0)
        return;
    _cleanup_free_ struct detach_key *by_guest = zr_new0(struct detach_key, n);
    memcpy(by_guest, by_source, n * sizeof(*by_guest));
    qsort(by_source, n, sizeof(*by_source), key_by_source);
    qsort(by_guest, n, sizeof(*by_guest), key_by_guest);

    for (size_t i = first; i < end; i++) {
        struct zr_action *a = &plan->actions[i];
        if (a->op != ZR_OP_ATTACH)
            continue;
        struct detach_key probe = {a->source, a->guest_index, 0};
        for (size_t k = lower_bound(by_source, n, &probe, key_by_source);
             k < n && zr_pci_addr_eq(&by_source[k].source, &a->source); k++)
            *ZR_APPEND(a->deps, a->n_deps) = by_source[k].index;
        for (size_t k = lower_bound(by_guest, n, &probe, key_by_guest);
             k < n && by_guest[k].guest == a->guest_index; k++) {
            const struct zr_action *d = &plan->actions[by_guest[k].index];
            if (!zr_pci_addr_eq(&d->source, &a->source) &&
                shares_guest_resource(&a->device, &d->device))
                *ZR_APPEND(a->deps, a->n_deps) = by_guest[k].index;
        }
        /* In plan order, as apply reports the first one unmet. */
        if (a->n_deps > 1)
            qsort(a->deps, a->n_deps, sizeof(*a->deps), index_cmp);
    }
}

/* Pairs each replacement's halves as one line of the report shows them:
 * a guest's k-th detach of a device (kind and source) with its k-th
 * attach.  A replacement attach depends on every detach of its function,
 * so its own are among its dependencies, in plan order. */
static void compute_pairs(struct zr_plan *plan, size_t first, size_t end)
{
    for (size_t i = first; i < end; i++) {
        struct zr_action *a = &plan->actions[i];
        if (a->role != ZR_ROLE_REPLACE_IN)
            continue;
        for (size_t j = 0; j < a->n_deps; j++) {
            struct zr_action *d = &plan->actions[a->deps[j]];
            if (d->role == ZR_ROLE_REPLACE_OUT && d->pair == ZR_NO_PAIR &&
                d->guest_index == a->guest_index && d->kind == a->kind &&
                zr_pci_addr_eq(&d->source, &a->source)) {
                d->pair = i;
                a->pair = a->deps[j];
                break;
            }
        }
    }
}

void zr_plan_finalize(struct zr_plan *plan)
{
    /* Actions were appended guest by guest, and guests host by host; make
     * every host's detaches come before its attaches, keeping the order
     * otherwise (a stable partition within each host's run). */
    _cleanup_free_ struct zr_action *sorted =
        zr_reallocarray(NULL, plan->n_actions, sizeof(*sorted));
    size_t out = 0;
    for (size_t start = 0; start < plan->n_actions;) {
        const char *host = plan->guests[plan->actions[start].guest_index].host;
        size_t end = start;
        while (end < plan->n_actions &&
               zr_streq(plan->guests[plan->actions[end].guest_index].host, host))
            end++;
        size_t first = out;
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = start; i < end; i++)
                if ((plan->actions[i].op == ZR_OP_DETACH) == (pass == 0))
                    sorted[out++] = plan->actions[i];
        memcpy(plan->actions + first, sorted + first, (end - start) * sizeof(*sorted));
        compute_deps(plan, first, out);
        compute_pairs(plan, first, out);
        start = end;
    }
}

void zr_warning_finish(struct zr_warning *w)
{
    free(w->host);
    free(w->guest);
    free(w->message);
}

void zr_plan_finish(struct zr_plan *plan)
{
    for (size_t i = 0; i < plan->n_guests; i++) {
        free(plan->guests[i].host);
        free(plan->guests[i].uri);
        free(plan->guests[i].guest);
        free(plan->guests[i].error);
    }
    free(plan->guests);
    for (size_t i = 0; i < plan->n_actions; i++)
        zr_action_finish(&plan->actions[i]);
    free(plan->actions);
    for (size_t i = 0; i < plan->n_warnings; i++)
        zr_warning_finish(&plan->warnings[i]);
    free(plan->warnings);
    for (size_t i = 0; i < plan->n_hosts; i++) {
        free(plan->hosts[i].name);
        free(plan->hosts[i].uri);
        free(plan->hosts[i].error);
    }
    free(plan->hosts);
    *plan = (struct zr_plan){0};
}
