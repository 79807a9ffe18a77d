/* Counting a run.  See summary.h. */
#include <stdlib.h>

#include "summary.h"
#include "util.h"

/* The replacement detaches whose attach was done (or is still to be):
 * found through each replacement attach's dependencies, which name its
 * own detach.  The others left the guest without the function. */
static bool *replacement_completed(const struct zr_report *rep)
{
    const struct zr_plan *plan = &rep->plan;
    bool *done = zr_new0(bool, plan->n_actions);
    for (size_t i = 0; i < plan->n_actions; i++) {
        const struct zr_action *a = &plan->actions[i];
        zr_result r = zr_run_result(&rep->run, i)->result;
        if (a->role != ZR_ROLE_REPLACE_IN ||
            (r != ZR_RESULT_PLANNED && r != ZR_RESULT_DONE))
            continue;
        for (size_t j = 0; j < a->n_deps; j++) {
            const struct zr_action *d = &plan->actions[a->deps[j]];
            if (d->role == ZR_ROLE_REPLACE_OUT && d->guest_index == a->guest_index && d->kind == a->kind &&
                zr_pci_addr_eq(&d->source, &a->source) &&
                ((d->config && a->config) || (d->live && a->live)))
                done[a->deps[j]] = true;
        }
    }
    return done;
}

/* The changes a counted action makes, as the text line names them. */
static void count_change(struct zr_summary *s, const struct zr_action *a, zr_result result,
                         bool completed)
{
    if (!zr_action_is_replacement(a))
        *(a->op == ZR_OP_ATTACH ? &s->attached : &s->detached) += 1;
    else if (a->role == ZR_ROLE_REPLACE_IN)
        s->replaced++;
    else if (result == ZR_RESULT_DONE && !completed)
        s->detached++; /* half a replacement: the guest lost it */
}

/* What each guest's actions came to. */
struct guest_facts {
    bool acted, changed, failed;
};

static void count_actions(const struct zr_report *rep, bool applied, struct zr_summary *s,
                          struct guest_facts *facts)
{
    const struct zr_plan *plan = &rep->plan;
    _cleanup_free_ bool *completed = replacement_completed(rep);
    for (size_t i = 0; i < plan->n_actions; i++) {
        const struct zr_action *a = &plan->actions[i];
        zr_result r = zr_run_result(&rep->run, i)->result;
        if (r >= ZR_RESULT__COUNT || a->op >= ZR_OP__COUNT)
            continue;
        s->by_result[r]++;
        /* A plan counts what it would call, an apply what it did. */
        bool counted = applied ? r == ZR_RESULT_DONE : r == ZR_RESULT_PLANNED;
        if (counted) {
            s->calls[a->op]++;
            count_change(s, a, r, completed[i]);
        }
        if (a->guest_index >= plan->n_guests)
            continue;
        struct guest_facts *g = &facts[a->guest_index];
        g->acted = true;
        g->changed = g->changed || counted;
        g->failed = g->failed || r == ZR_RESULT_FAILED;
    }
}

/* The host record a guest belongs to, SIZE_MAX for none (plans built by
 * hand).  Guests come host by host, so the previous answer is tried first. */
static size_t host_of(const struct zr_plan *plan, const char *host, size_t hint)
{
    if (hint < plan->n_hosts && zr_streq(plan->hosts[hint].name, host))
        return hint;
    for (size_t i = 0; i < plan->n_hosts; i++)
        if (zr_streq(plan->hosts[i].name, host))
            return i;
    return SIZE_MAX;
}

static void add_guest(struct zr_guest_counts *c, const struct zr_plan_guest *g,
                      const struct guest_facts *f)
{
    c->total++;
    c->changed += f->changed;
    c->failed += g->error || f->failed;
    c->in_sync += !g->error && !f->acted;
    c->drifted += f->acted;
}

static void count_per_host(const struct zr_report *rep, struct zr_summary *s,
                           const struct guest_facts *facts)
{
    const struct zr_plan *plan = &rep->plan;
    _cleanup_free_ size_t *host = zr_new0(size_t, plan->n_guests);
    size_t h = 0;
    for (size_t i = 0; i < plan->n_guests; i++) {
        host[i] = h = host_of(plan, plan->guests[i].host, h);
        add_guest(&s->guests, &plan->guests[i], &facts[i]);
        if (h != SIZE_MAX)
            add_guest(&s->host_guests[h], &plan->guests[i], &facts[i]);
    }
    for (size_t i = 0; i < plan->n_actions; i++) {
        const struct zr_action *a = &plan->actions[i];
        zr_result r = zr_run_result(&rep->run, i)->result;
        h = a->guest_index < plan->n_guests ? host[a->guest_index] : SIZE_MAX;
        if (h == SIZE_MAX || a->op >= ZR_OP__COUNT || a->kind >= ZR_KIND__COUNT ||
            r >= ZR_RESULT__COUNT)
            continue;
        /* Every action was planned; apply adds what became of it. */
        s->host_actions[h][a->op][a->kind][ZR_RESULT_PLANNED]++;
        if (r != ZR_RESULT_PLANNED)
            s->host_actions[h][a->op][a->kind][r]++;
    }
    for (size_t i = 0; i < plan->n_hosts; i++)
        s->hosts_failed += plan->hosts[i].error != NULL;
}

void zr_summary_count(const struct zr_report *r, bool applied, struct zr_summary *s)
{
    const struct zr_plan *plan = &r->plan;
    *s = (struct zr_summary){
        .n_hosts = plan->n_hosts,
        .host_guests = zr_new0(struct zr_guest_counts, plan->n_hosts),
    };
    s->host_actions = zr_reallocarray_zero(sizeof(*s->host_actions), plan->n_hosts);
    _cleanup_free_ struct guest_facts *facts = zr_new0(struct guest_facts, plan->n_guests);
    count_actions(r, applied, s, facts);
    count_per_host(r, s, facts);
}

void zr_summary_finish(struct zr_summary *s)
{
    free(s->host_guests);
    free(s->host_actions);
    *s = (struct zr_summary){0};
}

bool zr_summary_is_error(const struct zr_summary *s)
{
    return s->hosts_failed || s->guests.failed || s->by_result[ZR_RESULT_FAILED] ||
           s->by_result[ZR_RESULT_SKIPPED];
}

int zr_summary_exit_status(const struct zr_report *r, bool applied, bool interrupted)
{
    _cleanup_(zr_summary_finish) struct zr_summary c;
    zr_summary_count(r, applied, &c);
    if (zr_summary_is_error(&c) || interrupted)
        return ZR_EXIT_ERROR;
    return !applied && r->plan.n_actions > 0 ? ZR_EXIT_CHANGES : ZR_EXIT_IN_SYNC;
}
