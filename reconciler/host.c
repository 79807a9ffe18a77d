/* One host's run: connect -> lock -> read -> choose -> plan -> preflight ->
 * apply.  See host.h. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apply.h"
#include "choose-host.h"
#include "facts.h"
#include "host.h"
#include "preflight.h"
#include "render.h"

/* Everything held while one host is planned and applied. */
struct host_session {
    const struct zr_host *host;
    virConnectPtr conn;
    char *uri; /* as libvirt reports it once connected */
    struct zr_guest_state *states;
    /* The host's domains, listed once and shared by the guests' read, the
     * conflict check and the "did you mean" hint. */
    struct zr_domain_listing listing;
    size_t first_guest; /* index of its first guest in the report's guests */
    int lock_fd;
    /* The functions pool entries get (choose.h; zr_host_choose()); empty
     * (errors NULL) when the host takes from no pool. */
    struct zr_choice choice;
    /* What the chooser and the preflight both need (the other guests, the
     * PCI listing), read under the lock by whichever needs it first. */
    struct zr_host_facts facts;
};

static void host_session_finish(struct host_session *h)
{
    zr_host_facts_finish(&h->facts);
    if (h->states)
        zr_state_free(h->states, h->host->n_guests);
    zr_domain_listing_finish(&h->listing);
    if (h->choice.errors)
        zr_choice_finish(&h->choice);
    zr_apply_unlock(h->lock_fd);
    virConnectClosep(&h->conn);
    free(h->uri);
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned read_threads(const struct zr_host_options *o)
{
    return o->read_threads ? o->read_threads : ZR_READ_THREADS;
}

/* The host as a whole failed (no connection, no lock, its process died):
 * the host record says why, and so does each of its guests, which the plan
 * could not cover. */
static void host_failed(struct zr_plan *report, size_t hi, const struct zr_host *host,
                        zr_error_code code, const char *message)
{
    report->hosts[hi].error = zr_strdup(message);
    report->hosts[hi].error_code = code;
    for (size_t g = 0; g < host->n_guests; g++)
        zr_plan_guest_error(report, host->name, report->hosts[hi].uri, host->guests[g].name, code,
                            "%s", message);
}

void zr_host_not_run(const struct zr_host *host, const struct zr_host_options *o,
                     struct zr_report *report, zr_error_code code, const char *message)
{
    size_t hi = report->plan.n_hosts;
    zr_plan_add_host(&report->plan, host->name, o->uri ? o->uri : host->uri);
    host_failed(&report->plan, hi, host, code, message);
}

char *zr_host_conn_uri(virConnectPtr conn, const char *asked)
{
    char *uri = zr_connect_uri(conn);
    if (!uri) /* libvirt could not say: name it as asked */
        uri = zr_strdup(asked ? asked : "libvirt's default URI");
    return uri;
}

/* apply waits for device removal events; plan only reads. */
static enum zr_conn_use conn_use(bool applying)
{
    return applying ? ZR_CONN_EVENTS : ZR_CONN_READ;
}

void zr_host_connect_early(const char *uri, bool applying)
{
    zr_connect_early(uri, conn_use(applying));
}

/* Connects (or takes the prepared connection, or the one opened early)
 * and, when applying, takes the host's lock; on failure the host record
 * says why.  Returns 0 or -1. */
static int host_open(struct zr_plan *report, size_t hi, struct host_session *h,
                     const struct zr_host_options *o)
{
    struct zr_error err = {0};
    struct zr_connect_options co = {.use = conn_use(o->applying),
                                    .timeout_s = o->connect_timeout_s,
                                    .interrupt = o->interrupt};
    if (o->prepared && o->prepared->conn && virConnectRef(o->prepared->conn) == 0)
        h->conn = o->prepared->conn;
    else
        h->conn = zr_connect_with(report->hosts[hi].uri, &co, &err);
    if (!h->conn) {
        host_failed(report, hi, h->host, err.code, err.message);
        zr_error_finish(&err);
        return -1;
    }
    h->uri = zr_host_conn_uri(h->conn, report->hosts[hi].uri);
    free(report->hosts[hi].uri);
    report->hosts[hi].uri = zr_strdup(h->uri);
    report->hosts[hi].reached = true;

    if (o->applying) {
        h->lock_fd = zr_apply_lock(h->uri, &err);
        if (h->lock_fd < 0) {
            host_failed(report, hi, h->host, err.code, err.message);
            zr_error_finish(&err);
            return -1;
        }
    }
    return 0;
}

void zr_host_plan_guest(struct zr_plan *draft, const char *host, const char *uri,
                        virConnectPtr conn, struct zr_domain_listing *listing,
                        const struct zr_guest_state *st, bool config_only)
{
    const char *guest = st->wanted->name;
    if (st->error) {
        _cleanup_free_ char *near =
            st->dom ? NULL : zr_state_near_miss_listed(conn, listing, guest);
        if (near)
            zr_plan_guest_error(draft, host, uri, guest, ZR_ERR_NOT_FOUND_NEAR,
                                "%s (did you mean '%s'?)", st->error, near);
        else
            zr_plan_guest_error(draft, host, uri, guest, st->error_code, "%s", st->error);
    } else {
        struct zr_plan_options popts = {.config_only = config_only};
        zr_plan_guest(draft, host, uri, st->wanted, &st->config, st->active ? &st->live : NULL,
                      &popts);
    }
}

/* zr_host_choose() on `facts`: the run's, or a record of the caller's. */
static void choose_on(struct zr_host_facts *facts, const char *uri, const struct zr_host *host,
                      struct zr_guest_state *states, const struct zr_host_options *o,
                      struct zr_choice *choice)
{
    bool selector;
    if (!zr_host_uses_pools(host, &selector))
        return;
    struct zr_choose_host_options co = {
        .host_check = o->host_check, .jobs = read_threads(o), .memory = o->pool_memory};
    zr_choose_host(facts, uri, host, states, &co, choice);
    for (size_t g = 0; g < host->n_guests; g++)
        states[g].wanted = &choice->host.guests[g];
}

void zr_host_choose(virConnectPtr conn, const char *uri, const struct zr_host *host,
                    struct zr_guest_state *states, struct zr_domain_listing *listing,
                    const struct zr_host_options *o, struct zr_choice *choice)
{
    /* Read outside any run's lock (watch's pass): dropped here, so that
     * the run that goes on from this choice reads its own. */
    struct zr_host_facts facts;
    zr_host_facts_init(&facts, conn, host, listing, read_threads(o));
    choose_on(&facts, uri, host, states, o, choice);
    zr_host_facts_finish(&facts);
}

void zr_host_prepared_finish(struct zr_host_prepared *p, size_t n_states)
{
    zr_state_free(p->states, n_states);
    zr_domain_listing_finish(&p->listing);
    if (p->choice.errors)
        zr_choice_finish(&p->choice);
    zr_plan_finish(&p->draft);
    *p = (struct zr_host_prepared){.conn = p->conn};
}

/* Whether `dom`'s XML (flags) reads `before` now. */
static bool reads_same(virDomainPtr dom, unsigned flags, const char *before)
{
    _cleanup_free_ char *now = virDomainGetXMLDesc(dom, flags);
    return now && before && strcmp(now, before) == 0;
}

static bool still_reads(const struct zr_guest_state *st)
{
    return st->dom && virDomainIsActive(st->dom) == (int)st->active &&
           reads_same(st->dom, VIR_DOMAIN_XML_INACTIVE, st->config_xml) &&
           (!st->active || reads_same(st->dom, 0, st->live_xml));
}

/* Whether every prepared guest with an action is as it was read: the same
 * state, persistent and live XML.  Read under the lock, so that no apply
 * of another process changed them between that read and this run's.  A
 * choice depends on what every guest holds: then each guest read is. */
static bool prepared_current(const struct zr_host_prepared *p, size_t n)
{
    _cleanup_free_ bool *acts = zr_new0(bool, n + 1);
    for (size_t i = 0; i < p->draft.n_actions; i++) {
        size_t g = p->draft.actions[i].guest_index;
        acts[g < n ? g : n] = true;
    }
    if (acts[n])
        return false;
    for (size_t g = 0; g < n; g++) {
        /* A guest whose read failed holds nothing the chooser saw. */
        bool chosen_from = p->choice.errors && p->states[g].dom && !p->states[g].error;
        if ((acts[g] || chosen_from) && !still_reads(&p->states[g]))
            return false;
    }
    return true;
}

/* Takes over what the caller prepared: true when the run goes on from its
 * draft (moved to *draft), false when it reads and plans itself.  A
 * caller's part made without the choice the host needs (or with one it
 * does not) is dropped too. */
static bool take_prepared(struct host_session *h, const struct zr_host_options *o,
                          struct zr_plan *draft)
{
    struct zr_host_prepared *p = o->prepared;
    size_t n = h->host->n_guests;
    bool selector;
    if (!p || !p->states || h->conn != p->conn)
        return false;
    bool go_on = zr_host_uses_pools(h->host, &selector) == (p->choice.errors != NULL) &&
                 (!o->applying || prepared_current(p, n));
    if (go_on) {
        h->states = p->states;
        h->listing = p->listing;
        h->choice = p->choice;
        *draft = p->draft;
        *p = (struct zr_host_prepared){.conn = p->conn};
    }
    zr_host_prepared_finish(p, n);
    return go_on;
}

/* A guest whose pool entries could not be served changes nothing. */
static void refuse_unserved(struct zr_plan *draft, const struct host_session *h)
{
    for (size_t g = 0; h->choice.errors && g < h->host->n_guests; g++) {
        const struct zr_error *e = &h->choice.errors[g];
        if (!e->message || h->states[g].error)
            continue;
        zr_plan_refuse_guest(draft, g, e->code, "%s", e->message);
        zr_plan_drop_warnings(draft, g);
    }
}

/* Runs the preflight on the host's draft (each guest planned once, on the
 * chosen functions) and appends to the report what it does not refuse. */
static void host_check(struct zr_plan *report, struct host_session *h,
                       const struct zr_host_options *o, struct zr_plan *draft)
{
    const struct zr_host *host = h->choice.errors ? &h->choice.host : h->host;
    /* host_check off skips the node device lookups only: the conflict
     * check still runs. */
    struct zr_preflight_notes notes = {0};
    size_t first_action = report->n_actions;
    struct zr_error *check =
        zr_preflight_host(report, &h->facts, h->uri, host, h->states, draft, o->host_check,
                          read_threads(o), o->applying, h->choice.errors, &notes);
    /* A guest that could not be read keeps its own error. */
    for (size_t g = 0; g < host->n_guests; g++) {
        if (!check[g].message || h->states[g].error)
            continue;
        zr_plan_refuse_guest(draft, g, check[g].code, "%s", check[g].message);
        zr_plan_drop_warnings(draft, g);
    }
    refuse_unserved(draft, h);
    zr_plan_drop_refused(draft);
    zr_plan_append(report, draft);
    zr_render_plan(report, first_action);
    zr_preflight_annotate(report, first_action, h->first_guest, &notes);
    zr_preflight_notes_finish(&notes);
    zr_preflight_errors_free(check, host->n_guests);
}

/* Reads the host's guests (unless prepared), chooses for its pool
 * entries, plans each guest once, runs the preflight on that plan and
 * keeps what it does not refuse.  The chooser and the preflight share the
 * session's facts: each is read once per run. */
static void host_plan(struct zr_plan *report, struct host_session *h,
                      const struct zr_host_options *o)
{
    const struct zr_host *host = h->host;
    _cleanup_(zr_plan_finish) struct zr_plan draft = {0};
    /* Fresh for this run: a prepared draft brings no facts, and the
     * preflight reads its own under the lock. */
    zr_host_facts_init(&h->facts, h->conn, host, &h->listing, read_threads(o));
    if (!take_prepared(h, o, &draft)) {
        h->states = zr_state_read_listed(h->conn, host, read_threads(o), &h->listing);
        choose_on(&h->facts, h->uri, host, h->states, o, &h->choice);
        for (size_t g = 0; g < host->n_guests; g++)
            zr_host_plan_guest(&draft, host->name, h->uri, h->conn, &h->listing, &h->states[g],
                               o->config_only);
    }
    host_check(report, h, o, &draft);
}

static void host_apply(struct zr_report *report, const struct host_session *h,
                       size_t first_action, const struct zr_host_options *o)
{
    const struct zr_plan *plan = &report->plan;
    struct zr_apply_options aopts = {
        .timeout_s = o->timeout_s,
        .atomic = o->atomic,
        .progress = plan->n_actions - first_action >= o->progress_from,
        .interrupt = o->interrupt,
        .threads = o->apply_threads,
    };
    _cleanup_free_ virDomainPtr *doms = zr_new0(virDomainPtr, plan->n_guests);
    /* host_plan appended this host's guests in inventory order, skipping
     * none. */
    for (size_t g = 0; g < h->host->n_guests; g++)
        doms[h->first_guest + g] = h->states[g].dom;
    zr_apply_host(plan, &report->run, first_action, plan->n_actions, h->conn, doms, &aopts);
}

void zr_host_run(const struct zr_host *host, const struct zr_host_options *o,
                 struct zr_report *report)
{
    double t0 = seconds_now();
    struct zr_plan *plan = &report->plan;
    size_t hi = plan->n_hosts, first_action = plan->n_actions;
    /* The decision stage: the plan is written here and nowhere after. */
    zr_plan_add_host(plan, host->name, o->uri ? o->uri : host->uri);
    struct host_session h = {.host = host, .lock_fd = -1, .first_guest = plan->n_guests};
    if (host_open(plan, hi, &h, o) == 0)
        host_plan(plan, &h, o);
    zr_plan_finalize(plan);
    /* The run: its own record. */
    if (o->applying && h.states)
        host_apply(report, &h, first_action, o);
    host_session_finish(&h);
    zr_run_set_seconds(&report->run, hi, seconds_now() - t0);
}

/* ---- export --------------------------------------------------------------- */

/* Every guest of the listing (only running ones with `live`: a listed
 * domain's id is -1 when inactive), by name, as the listing is sorted. */
static void list_guests(const struct zr_domain_listing *listing, bool live, struct zr_host *host)
{
    host->guests = zr_new0(struct zr_guest, listing->n);
    for (size_t i = 0; i < listing->n; i++)
        if (!live || virDomainGetID(listing->doms[i]) != (unsigned int)-1)
            host->guests[host->n_guests++].name = zr_strdup(listing->names[i]);
}

/* The named guests, each once, in the order given. */
static void name_guests(const struct zr_export_request *req, struct zr_host *host)
{
    host->guests = zr_new0(struct zr_guest, req->n_names);
    for (size_t i = 0; i < req->n_names; i++) {
        bool seen = false;
        for (size_t j = 0; j < host->n_guests && !seen; j++)
            seen = strcmp(host->guests[j].name, req->names[i]) == 0;
        if (!seen)
            host->guests[host->n_guests++].name = zr_strdup(req->names[i]);
    }
}

static void export_error(struct zr_export_found *out, char *message)
{
    *ZR_APPEND(out->errors, out->n_errors) = message;
}

/* Which read guests export writes, and why the others cannot be. */
static void export_pick(const struct zr_export_request *req, struct zr_export_found *out)
{
    bool named = req->n_names > 0;
    out->guests = zr_new0(struct zr_export_guest, out->host.n_guests);
    for (size_t g = 0; g < out->host.n_guests; g++) {
        const struct zr_guest_state *st = &out->states[g];
        if (st->error) {
            /* Listed a moment ago, undefined since: nothing to export. */
            if (named || st->dom)
                export_error(out, zr_strdup(st->error));
            continue;
        }
        if (req->live && !st->active) {
            if (named)
                export_error(out, zr_asprintf("guest '%s' is not running; --live exports the "
                                              "running state",
                                              st->wanted->name));
            continue;
        }
        const struct zr_device_list *devices = req->live ? &st->live : &st->config;
        if (named || req->all || devices->n > 0)
            out->guests[out->n_guests++] = (struct zr_export_guest){st->wanted->name, devices};
    }
}

int zr_export_read(const struct zr_export_request *req, struct zr_export_found *out,
                   struct zr_error *err)
{
    *out = (struct zr_export_found){0};
    _cleanup_(virConnectClosep) virConnectPtr conn = zr_connect_with(
        req->uri, &(struct zr_connect_options){.timeout_s = req->connect_timeout_s}, err);
    if (!conn)
        return -EIO;
    /* One listing finds the guests to export and their domains. */
    struct zr_domain_listing listing = {0};
    struct zr_error lerr = {0};
    if (req->n_names > 0) {
        name_guests(req, &out->host);
    } else if (zr_domain_listing_ensure(conn, &listing, &lerr) < 0) {
        zr_error_finish(&lerr);
        zr_error_set(err, NULL, 0, 0, "cannot list the guests of %s: %s",
                     req->uri ? req->uri : "libvirt's default URI", zr_libvirt_error());
        return -EIO;
    } else {
        list_guests(&listing, req->live, &out->host);
    }
    out->states = zr_state_read_listed(conn, &out->host, ZR_READ_THREADS, &listing);
    zr_state_own_domains(out->states, out->host.n_guests);
    zr_domain_listing_finish(&listing);
    export_pick(req, out);
    return 0;
}

void zr_export_found_finish(struct zr_export_found *r)
{
    if (r->states)
        zr_state_free(r->states, r->host.n_guests);
    for (size_t i = 0; i < r->host.n_guests; i++)
        free(r->host.guests[i].name);
    free(r->host.guests);
    for (size_t i = 0; i < r->n_errors; i++)
        free(r->errors[i]);
    free(r->errors);
    free(r->guests);
    *r = (struct zr_export_found){0};
}
