/* Actions -> device XML.  See render.h. */
#include "domain.h"
#include "render.h"

static char *action_xml(const struct zr_action *a)
{
    switch (a->op) {
    case ZR_OP_DETACH:
        return zr_domain_detach_xml(&a->device);
    case ZR_OP_ATTACH:
        return a->role == ZR_ROLE_REPLACE_IN ? zr_domain_edit_xml(&a->replaces, &a->device)
                               : zr_domain_device_xml(&a->device);
    case ZR_OP__COUNT:
        break;
    }
    return NULL;
}

static bool same_device(const struct zr_action *a, const struct zr_action *b)
{
    return a->guest_index == b->guest_index && a->kind == b->kind &&
           zr_pci_addr_eq(&a->source, &b->source);
}

/* The attach of a device's persistent flavour followed by its live one,
 * both with the same XML and reason: one call serves both. */
static bool attaches_combine(const struct zr_action *cfg, const struct zr_action *live)
{
    return cfg->op == ZR_OP_ATTACH && live->op == ZR_OP_ATTACH && cfg->config && !cfg->live &&
           live->live && !live->config && same_device(cfg, live) &&
           zr_action_same_reason(cfg, live) && cfg->xml && zr_streq(cfg->xml, live->xml);
}

/* The guest of an attach whose XML cannot be built: why, once. */
static void refuse_device(struct zr_plan *plan, const struct zr_action *a)
{
    struct zr_plan_guest *g = &plan->guests[a->guest_index];
    if (g->error)
        return;
    g->error_code = ZR_ERR_UNBUILDABLE;
    g->error = zr_asprintf("cannot build the XML of %s " ZR_PCI_ADDR_FMT
                               " (a profileid libvirt cannot store, or an element that does not "
                               "parse?)",
                               zr_kind_to_string(a->kind), ZR_PCI_ADDR_ARGS(a->source));
}

/* As zr_plan_guest() does for any guest error: nothing half-done. */
static bool refused(const struct zr_action *a, const struct zr_action *bad, size_t n_bad)
{
    for (size_t i = 0; i < n_bad; i++)
        if (a->guest_index == bad[i].guest_index)
            return true;
    return false;
}

void zr_render_plan(struct zr_plan *plan, size_t first)
{
    _cleanup_free_ struct zr_action *bad = NULL; /* shallow copies: keys only */
    size_t n_bad = 0;
    for (size_t i = first; i < plan->n_actions; i++) {
        struct zr_action *a = &plan->actions[i];
        if (!a->xml)
            a->xml = action_xml(a);
        if (!a->xml && a->op == ZR_OP_ATTACH) {
            refuse_device(plan, a);
            *ZR_APPEND(bad, n_bad) = *a;
        }
    }

    size_t out = first;
    for (size_t i = first; i < plan->n_actions; i++) {
        struct zr_action *a = &plan->actions[i];
        if (refused(a, bad, n_bad)) {
            zr_action_finish(a);
            continue;
        }
        if (out > first && attaches_combine(&plan->actions[out - 1], a)) {
            plan->actions[out - 1].live = true;
            zr_action_finish(a);
            continue;
        }
        plan->actions[out++] = *a;
    }
    plan->n_actions = out;

    for (size_t k = 0; k < n_bad; k++)
        plan->guests[bad[k].guest_index].changed = false;
}
