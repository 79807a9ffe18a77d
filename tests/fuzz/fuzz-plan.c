/* bytes -> (options, inventory, domain XML per guest) -> zr_plan_guest() +
 * zr_plan_finalize(), with the plan's promises checked.
 *
 * Input: NUL-separated parts (neither YAML nor XML may hold a NUL byte):
 *   OPTIONS \0 INVENTORY \0 CONFIG_1 \0 LIVE_1 \0 CONFIG_2 \0 LIVE_2 ...
 * OPTIONS holds words ("config-only"); CONFIG_k/LIVE_k are the persistent
 * and running domain XML of the k-th guest in inventory order (hosts in
 * order).  A missing or empty CONFIG_k: guest not found; LIVE_k: guest not
 * running.  tests/fuzz/plan-seeds.py writes tests/data/plan/ cases in this
 * form.
 *
 * Invariants, checked on every guest that was planned:
 * - a guest with an error gets no action; a guest not running gets no live
 *   action, nor does any guest under config-only;
 * - every action is on an in-scope kind; a detach names a device that is
 *   there; an attach's XML reads back as the device of its key, not yet
 *   there, and never holds a vlan beside a virtualport (libvirt refuses
 *   that pair on a hostdev interface);
 * - applying the actions to the current devices (remove the detached keys,
 *   add what the attach XML reads back as, per flavour) gives exactly the
 *   wanted keys, or the wanted keys and the current ones when prune is off;
 * - planning again against that result gives no action and no error;
 * - per host every detach comes before any attach, and each attach depends
 *   only on earlier detaches of the same host. */
#include <string.h>

#include "domain.h"
#include "fuzz.h"
#include "inventory.h"
#include "output.h"
#include "plan.h"
#include "render.h"

#define MAX_GUESTS 64

struct input {
    const char *part[2 + 2 * MAX_GUESTS];
    size_t len[2 + 2 * MAX_GUESTS];
    size_t n;
};

static void split(const uint8_t *data, size_t size, struct input *in)
{
    const char *p = (const char *)data, *end = p + size;
    *in = (struct input){0};
    while (in->n < ELEMENTSOF(in->part)) {
        const char *nul = p < end ? memchr(p, '\0', (size_t)(end - p)) : NULL;
        const char *stop = nul ? nul : end;
        in->part[in->n] = p;
        in->len[in->n++] = (size_t)(stop - p);
        if (!nul)
            break;
        p = nul + 1;
    }
}

/* Devices of part i, or false when the part is absent, empty, or not a
 * domain the reader accepts (the plan only ever sees accepted ones). */
static bool devices_of(const struct input *in, size_t i, struct zr_device_list *out)
{
    if (i >= in->n || in->len[i] == 0)
        return false;
    struct zr_error err = {0};
    int r = zr_domain_parse_devices(in->part[i], in->len[i], "fuzz.xml", out, &err);
    zr_error_finish(&err);
    return r == 0;
}

static void copy_list(struct zr_device_list *dst, const struct zr_device_list *src)
{
    for (size_t i = 0; i < src->n; i++)
        zr_device_copy(zr_device_list_append(dst), &src->items[i]);
}

static void remove_key(struct zr_device_list *l, zr_kind kind, const struct zr_pci_addr *source)
{
    const struct zr_device key = {.kind = kind, .source = *source};
    size_t out = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (zr_device_same_key(&l->items[i], &key))
            zr_device_finish(&l->items[i]);
        else
            l->items[out++] = l->items[i];
    }
    l->n = out;
}

/* One flavour (persistent or live) of a guest, as apply would leave it. */
static void simulate(struct zr_device_list *sim, const struct zr_action *a, const char *flavour)
{
    char src[ZR_PCI_ADDR_STRLEN];
    zr_pci_addr_format(&a->source, src);

    if (a->op == ZR_OP_DETACH) {
        zr_fuzz_assert(zr_device_list_find(sim, a->kind, &a->source),
                       "%s detach of %s %s, not there", flavour, zr_kind_to_string(a->kind), src);
        remove_key(sim, a->kind, &a->source);
        return;
    }
    zr_fuzz_assert(!zr_device_list_find(sim, a->kind, &a->source),
                   "%s attach of %s %s, already there", flavour, zr_kind_to_string(a->kind), src);
    struct zr_device *d = zr_device_list_append(sim);
    zr_fuzz_read_device(a->xml, "attach XML", d);
    zr_fuzz_assert(d->kind == a->kind && zr_pci_addr_eq(&d->source, &a->source),
                   "attach XML for %s is another device:\n%s", src, a->xml);
}

static void check_action(const struct zr_plan *plan, const struct zr_action *a)
{
    zr_fuzz_assert(a->kind == ZR_KIND_HOSTDEV || a->kind == ZR_KIND_INTERFACE,
                   "action on kind %d", (int)a->kind);
    zr_fuzz_assert(a->op == ZR_OP_DETACH || a->op == ZR_OP_ATTACH, "op %d", (int)a->op);
    zr_fuzz_assert(a->live || a->config, "an action on neither flavour");
    zr_fuzz_assert(a->xml, "an action without XML");
    zr_fuzz_assert(!zr_action_is_replacement(a) || a->n_changes > 0,
                   "a replacement that changes nothing");
    zr_fuzz_assert(a->guest_index < plan->n_guests, "guest index %zu", a->guest_index);
    zr_fuzz_assert(a->device.kind == a->kind && zr_pci_addr_eq(&a->device.source, &a->source),
                   "action device is not the action's key");

    /* The detach XML must find this very device: same key, in scope. */
    struct zr_device d = {0};
    zr_fuzz_read_device(a->xml, zr_op_to_string(a->op), &d);
    zr_fuzz_assert(zr_device_same_key(&d, &a->device), "%s XML is not the action's device:\n%s",
                   zr_op_to_string(a->op), a->xml);
    /* libvirt refuses the pair at hotplug and start: the plan never makes
     * it, but a replacement keeps one the definition already has (the
     * contract: "even a VLAN beside a virtualport"). */
    bool kept_pair =
        a->role == ZR_ROLE_REPLACE_IN && zr_device_has_vlan_beside_virtualport(&a->replaces);
    if (a->op == ZR_OP_ATTACH && !kept_pair)
        zr_fuzz_assert(!(d.has_vlan && d.vport.type != ZR_VPORT_NONE),
                       "attach XML with a vlan beside a virtualport it did not have:\n%s",
                       a->xml);
    zr_device_finish(&d);
}

/* sim's keys must be wanted's (and, without prune, cur's too). */
static void check_keys(const struct zr_guest *wanted, const struct zr_device_list *cur,
                       const struct zr_device_list *sim, const char *flavour)
{
    char src[ZR_PCI_ADDR_STRLEN];
    for (size_t i = 0; i < wanted->devices.n; i++) {
        const struct zr_device *w = &wanted->devices.items[i];
        zr_fuzz_assert(zr_device_list_find(sim, w->kind, &w->source),
                       "%s: wanted %s %s is not there after apply", flavour,
                       zr_kind_to_string(w->kind), zr_pci_addr_format(&w->source, src));
    }
    for (size_t i = 0; i < sim->n; i++) {
        const struct zr_device *d = &sim->items[i];
        bool ok = zr_device_list_find(&wanted->devices, d->kind, &d->source) ||
                  (!wanted->prune && zr_device_list_find(cur, d->kind, &d->source));
        zr_fuzz_assert(ok, "%s: %s %s is there after apply, not wanted%s", flavour,
                       zr_kind_to_string(d->kind), zr_pci_addr_format(&d->source, src),
                       wanted->prune ? "" : " nor kept");
    }
    if (!wanted->prune)
        for (size_t i = 0; i < cur->n; i++) {
            const struct zr_device *c = &cur->items[i];
            zr_fuzz_assert(zr_device_list_find(sim, c->kind, &c->source),
                           "%s: kept %s %s was removed", flavour, zr_kind_to_string(c->kind),
                           zr_pci_addr_format(&c->source, src));
        }
}

static void check_guest(const struct zr_plan *plan, size_t gi, const struct zr_host *host,
                        const struct zr_guest *wanted, const struct zr_device_list *config,
                        const struct zr_device_list *live, const struct zr_plan_options *opts)
{
    const struct zr_plan_guest *pg = &plan->guests[gi];
    struct zr_device_list sim_config = {0}, sim_live = {0};
    copy_list(&sim_config, config);
    if (live)
        copy_list(&sim_live, live);

    size_t n = 0;
    for (size_t i = 0; i < plan->n_actions; i++) {
        const struct zr_action *a = &plan->actions[i];
        if (a->guest_index != gi)
            continue;
        n++;
        zr_fuzz_assert(!pg->error, "guest with an error (%s) has actions", pg->error);
        zr_fuzz_assert(!a->live || (live && !opts->config_only),
                       "live action on a guest %s", live ? "under config-only" : "not running");
        if (a->config)
            simulate(&sim_config, a, "persistent");
        if (a->live)
            simulate(&sim_live, a, "live");
    }
    zr_fuzz_assert(pg->changed == (n > 0), "changed is %d with %zu actions", pg->changed, n);

    if (!pg->error) {
        check_keys(wanted, config, &sim_config, "persistent");
        if (live && !opts->config_only)
            check_keys(wanted, live, &sim_live, "live");

        /* Converged: a second plan has nothing to do. */
        struct zr_plan again = {0};
        zr_plan_guest(&again, host->name, host->uri, wanted, &sim_config, live ? &sim_live : NULL,
                      opts);
        zr_render_plan(&again, 0);
        zr_fuzz_assert(!again.guests[0].error, "re-plan fails: %s", again.guests[0].error);
        _cleanup_free_ char *reason = again.n_actions ? zr_action_reason(&again.actions[0]) : NULL;
        zr_fuzz_assert(again.n_actions == 0, "re-plan after apply has %zu actions, first: %s %s (%s)",
                       again.n_actions, zr_op_to_string(again.actions[0].op),
                       again.actions[0].xml, reason);
        zr_plan_finish(&again);
    }
    zr_device_list_finish(&sim_config);
    zr_device_list_finish(&sim_live);
}

static void check_order(const struct zr_plan *plan)
{
    for (size_t i = 0; i < plan->n_actions; i++) {
        const struct zr_action *a = &plan->actions[i];
        const char *host = plan->guests[a->guest_index].host;
        if (i > 0) {
            const struct zr_action *prev = &plan->actions[i - 1];
            bool same_host = zr_streq(plan->guests[prev->guest_index].host, host);
            zr_fuzz_assert(!(same_host && prev->op == ZR_OP_ATTACH && a->op == ZR_OP_DETACH),
                           "a detach after an attach on host %s", host);
        }
        for (size_t k = 0; k < a->n_deps; k++) {
            size_t j = a->deps[k];
            zr_fuzz_assert(a->op == ZR_OP_ATTACH, "a detach with dependencies");
            zr_fuzz_assert(j < i, "action %zu depends on later action %zu", i, j);
            zr_fuzz_assert(plan->actions[j].op == ZR_OP_DETACH, "dependency on an attach");
            zr_fuzz_assert(zr_streq(plan->guests[plan->actions[j].guest_index].host, host),
                           "dependency across hosts");
        }
    }
}

static void check_output(const struct zr_plan *plan, zr_format format)
{
    struct zr_output_options o = {.format = format};
    struct zr_fuzz_sink sink;
    zr_fuzz_sink_open(&sink);
    zr_output_plan(sink.f, &(struct zr_report){.plan = *plan}, &o);
    const char *text = zr_fuzz_sink_close(&sink);
    if (format == ZR_FORMAT_JSON)
        for (const char *p = text; *p; p++)
            zr_fuzz_assert((unsigned char)*p >= 0x20 || *p == '\n',
                           "raw control character 0x%02x in JSON output", (unsigned char)*p);
    zr_fuzz_sink_free(&sink);
}

void zr_fuzz_plan_check(const uint8_t *data, size_t size)
{
    struct input in;
    split(data, size, &in);
    if (in.n < 2)
        return;

    struct zr_plan_options opts = {0};
    _cleanup_free_ char *words = zr_strndup(in.part[0], in.len[0]);
    opts.config_only = strstr(words, "config-only") != NULL;

    struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_parse("fuzz.yaml", in.part[1], in.len[1], &errs);
    zr_errors_finish(&errs);
    if (!inv)
        return;

    struct zr_plan plan = {0};
    size_t k = 0;
    for (size_t h = 0; h < inv->n_hosts; h++) {
        const struct zr_host *host = &inv->hosts[h];
        for (size_t g = 0; g < host->n_guests; g++, k++) {
            const struct zr_guest *guest = &host->guests[g];
            struct zr_device_list config = {0}, live = {0};
            if (k >= MAX_GUESTS || !devices_of(&in, 2 + 2 * k, &config)) {
                zr_plan_guest_error(&plan, host->name, host->uri, guest->name, ZR_ERR_NOT_FOUND,
                                    "guest '%s' not found", guest->name);
                continue;
            }
            bool running = devices_of(&in, 3 + 2 * k, &live);
            zr_plan_guest(&plan, host->name, host->uri, guest, &config, running ? &live : NULL,
                          &opts);
            zr_device_list_finish(&config);
            zr_device_list_finish(&live);
        }
    }
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);
    check_order(&plan);

    /* Check each guest against the models it was planned from, read again
     * (the plan keeps no pointer into them). */
    k = 0;
    for (size_t h = 0, gi = 0; h < inv->n_hosts; h++) {
        const struct zr_host *host = &inv->hosts[h];
        for (size_t g = 0; g < host->n_guests; g++, k++, gi++) {
            struct zr_device_list config = {0}, live = {0};
            if (k < MAX_GUESTS && devices_of(&in, 2 + 2 * k, &config)) {
                bool running = devices_of(&in, 3 + 2 * k, &live);
                check_guest(&plan, gi, host, &host->guests[g], &config, running ? &live : NULL,
                            &opts);
            }
            zr_device_list_finish(&config);
            zr_device_list_finish(&live);
        }
    }
    for (size_t i = 0; i < plan.n_actions; i++)
        check_action(&plan, &plan.actions[i]);
    check_output(&plan, ZR_FORMAT_TEXT);
    check_output(&plan, ZR_FORMAT_JSON);

    zr_plan_finish(&plan);
    zr_inventory_free(inv);
}

#ifndef ZR_FUZZ_PLAN_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size <= ZR_FUZZ_MAX_INPUT)
        zr_fuzz_plan_check(data, size);
    return 0;
}
#endif
