/* The watch loop and its supervisor for hosts: inventories.  See watch.h
 * and "watch" in docs/operations.md. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "choose.h"
#include "fleet.h"
#include "notify.h"
#include "uri.h"
#include "watch.h"

/* Times are microseconds of CLOCK_MONOTONIC, as sd-event's. */
#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC 1000000ULL
/* Events about one guest within this long become one re-read. */
#define COALESCE_USEC (500 * USEC_PER_MSEC)
/* libvirt 9.0 sends no event when only a persistent definition changes (a
 * config-only attach or detach of another client), so the definitions
 * are compared by hash this often, this many guests a round. */
#define POLL_USEC USEC_PER_SEC
#define POLL_BATCH 64
/* Where the daemon's definitions directory is watched (a local daemon: its
 * NAME.xml files change with every definition), the poll is only a
 * backstop: a round this often.  A daemon's events never make it one: even
 * libvirt 11.3 sends none for detach-device-alias --config. */
#define POLL_BACKSTOP_USEC (10 * USEC_PER_SEC)
/* The first daemon version seen to send VIR_DOMAIN_EVENT_DEFINED (detail
 * UPDATED) for a config-only attach and detach (libvirt 11.3.0; 9.0.0 sends
 * none), so that such a change is seen at once without the directory: see
 * "watch" in docs/design.md.  Told in a metric. */
#define ANNOUNCES_DEFINITIONS_SINCE 11003000UL
/* Read this much of a NAME.xml to find the guest's <uuid> (libvirt writes
 * it right after <name>). */
#define DEFINITION_HEAD 16384
/* A written definition is re-read this long after its last write: libvirt
 * writes a file once per change, a client making several changes in a row
 * gets one re-read. */
#define DEFINITION_SETTLE_USEC (200 * USEC_PER_MSEC)
/* A save is several inotify events (an editor's write-and-rename, a
 * close after a create): they become one re-read this long after the
 * last.  Never a guess that a writer is done: see take_inotify(). */
#define RELOAD_QUIET_USEC (200 * USEC_PER_MSEC)
/* A guest whose repair failed is retried after 3, 6, 12 ... s, at most 5 min. */
#define BACKOFF_FIRST_USEC (3 * USEC_PER_SEC)
#define BACKOFF_MAX_USEC (300 * USEC_PER_SEC)
/* Repairs of one guest closer together than this are reversals; from the
 * third on, someone else is changing the guest. */
#define REVERSAL_WINDOW_USEC (300 * USEC_PER_SEC)
#define REVERSALS_WARN 3
#define RECONNECT_FIRST_USEC USEC_PER_SEC
#define RECONNECT_MAX_USEC (30 * USEC_PER_SEC)
/* After SIGTERM a libvirt call in progress gets this long to return; one
 * still stuck (a daemon that stopped answering) is left behind. */
#define STOP_GRACE_S 2
/* A timer fires at most this late: the loop's times are short. */
#define TIMER_ACCURACY_USEC USEC_PER_MSEC

static uint64_t mono_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

static double realtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t backoff(uint64_t first, unsigned n, uint64_t max)
{
    uint64_t v = first << (n > 20 ? 20 : n);
    return v < max ? v : max;
}

/* The stop signals and SIGHUP: blocked in every thread, read by the loop's
 * signal sources (and looked at by the stop guard). */
static void watch_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

void zr_watch_block_signals(void)
{
    sigset_t set;
    watch_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* A guest of the host by its name, for the events' lookups. */
struct guest_name {
    const char *name;
    size_t g;
};

static int guest_name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct guest_name *)a)->name, ((const struct guest_name *)b)->name);
}

/* One name in one directory that inotify reports on: each component of
 * the inventory's path as given, in the directory before it, so that a
 * swapped directory or symlink on the way (current -> releases/N) is
 * seen; the last one is the inventory file itself. */
struct path_watch {
    int wd;
    char *name;
    bool file;
};

/* What the loop knows of one inventory guest. */
struct guest_track {
    bool pending; /* an event or poll asked for a re-read at `due` */
    uint64_t due;
    uint64_t not_before; /* backoff: no repair before this */
    unsigned failures;   /* repairs that failed in a row */
    unsigned reversals;
    uint64_t last_repair; /* 0: none yet */
    bool hashed; /* def_hash holds the persistent definition's hash */
    uint64_t def_hash;
    bool recheck; /* repaired: the next poll re-reads it whatever the hash */
    bool in_sync;
};

struct watch {
    const struct zr_watch_options *o;
    struct zr_inventory *inv;
    const struct zr_host *host; /* in inv */
    char *host_name;            /* a copy: o->host_name may point into the first inventory */
    struct guest_track *track;  /* per guest of host */
    /* What pool entries got, so that a guest gets back what it lost while
     * that is free (host.h: pool_memory). */
    struct zr_pool_memory pool_memory;
    struct guest_name *by_name; /* the host's guests sorted by name */

    virConnectPtr conn; /* the events' connection; NULL while away */
    char *conn_uri;     /* conn's URI as a run names it (zr_host_conn_uri) */
    char *embed_root;   /* the embedded root this process opened, if any */
    int cb[4];
    bool was_lost;
    /* conn's daemon sends an event for a config-only attach and detach
     * (ANNOUNCES_DEFINITIONS_SINCE) */
    bool announced;
    uint64_t reconnect_wait, resync_wait;
    size_t poll_next;

    /* The one loop (sd-event) and its sources; every timer is one-shot,
     * armed again by what it starts. */
    sd_event *ev;
    sd_event_source *sig[3], *post, *ino_src, *lv_src;
    sd_event_source *t_due, *t_resync, *t_poll, *t_reconnect, *t_reload, *t_watchdog;
    volatile sig_atomic_t stop; /* SIGTERM/SIGINT seen: also apply's interrupt flag */
    struct stop_guard *guard;   /* told of a stop the loop took */

    /* libvirt's own event loop thread hands its callbacks over through
     * this: what it collected, then one write to lv_fd (an eventfd). */
    pthread_mutex_t mu; /* guards names, last_event and lost */
    char **names;
    size_t n_names;
    double last_event;
    bool lost;
    int lv_fd;

    int ino, wd_file;
    /* The daemon's definitions directory (zr_uri_config_dir), watched once
     * it is found to hold this host's guests: -1 while not. */
    int def_ino;
    sd_event_source *def_src;
    struct path_watch *paths;
    size_t n_paths;
    bool writing; /* the file was modified and not closed yet */

    uint64_t watchdog_usec;
    struct zr_watch_stats stats;
};

/* The daemon's definitions directory, below ("the daemon's definitions
 * directory"). */
static void definitions_watch(struct watch *w, const struct zr_guest_state *st, size_t n);
static void definitions_unwatch(struct watch *w);

/* Arms the one-shot timer `s` (made by loop_setup()) for `when`. */
static void arm(sd_event_source *s, uint64_t when)
{
    sd_event_source_set_time(s, when);
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void disarm(sd_event_source *s)
{
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

static void notice(const struct watch *w, const char *fmt, ...) _printf_(2, 3);
static void notice(const struct watch *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *m = zr_vasprintf(fmt, ap);
    va_end(ap);
    if (w->o->ops.notice)
        w->o->ops.notice(w->o->ops.data, m);
}

/* systemd's notify protocol (nothing without NOTIFY_SOCKET), never
 * blocking: a status line the receiver has no room for is dropped, a state
 * change that could not be sent in time is said on stderr. */
static void tell_systemd(const struct zr_watch_options *o, zr_notify_kind kind, const char *text)
{
    int r = zr_notify(kind, text);
    if (r >= 0 || kind == ZR_NOTIFY_DROPPABLE || !o->ops.notice)
        return;
    _cleanup_free_ char *first = zr_strndup(text, strcspn(text, "\n"));
    _cleanup_free_ char *m =
        zr_asprintf("cannot tell systemd %s through NOTIFY_SOCKET: %s", first,
                    r == -EAGAIN ? "nobody reads it (its queue is full)" : strerror(-r));
    o->ops.notice(o->ops.data, m);
}

static void notify_status(struct watch *w, const char *extra)
{
    if (!w->o->notify)
        return;
    size_t n = 0;
    for (size_t g = 0; g < w->host->n_guests; g++)
        n += w->track[g].in_sync;
    w->stats.guests = w->host->n_guests;
    w->stats.in_sync = n;
    _cleanup_free_ char *text = zr_asprintf(
        "%sSTATUS=watching %zu guest%s on %s%s: %zu in sync, %lu repair%s", extra,
        w->host->n_guests, w->host->n_guests == 1 ? "" : "s", w->host->name,
        w->conn ? "" : " (not connected)", n, w->stats.repairs, w->stats.repairs == 1 ? "" : "s");
    tell_systemd(w->o, *extra ? ZR_NOTIFY_STATE : ZR_NOTIFY_DROPPABLE, text);
}

/* ---- libvirt's events (called on libvirt's event loop thread) -----------
 *
 * libvirt runs its own event loop on a thread of its own (state.c): apply's
 * worker threads wait on it for device-removed events, and it must run
 * while the main thread is inside a repair.  Its callbacks only note what
 * they saw and wake the sd-event loop through lv_fd; see "watch" in
 * docs/design.md. */

static void lv_wake(const struct watch *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->lv_fd, &one, sizeof(one));
    (void)r; /* a counter at its maximum is readable already */
}

static void note_domain(void *opaque, virDomainPtr dom)
{
    struct watch *w = opaque;
    const char *name = virDomainGetName(dom);
    if (!name)
        return;
    pthread_mutex_lock(&w->mu);
    *ZR_APPEND(w->names, w->n_names) = zr_strdup(name);
    w->last_event = realtime();
    pthread_mutex_unlock(&w->mu);
    lv_wake(w);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    note_domain(opaque, dom);
    return 0;
}

static void on_device(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
    note_domain(opaque, dom);
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
    struct watch *w = opaque;
    pthread_mutex_lock(&w->mu);
    w->lost = true;
    pthread_mutex_unlock(&w->mu);
    lv_wake(w);
}

/* The URI `host` is opened with: --connect, its uri, LIBVIRT_DEFAULT_URI;
 * NULL: libvirt's default. */
static const char *effective_uri(const struct watch *w, const struct zr_host *host)
{
    const char *u = w->o->host.uri ? w->o->host.uri : host->uri;
    if (!u || !*u)
        u = getenv("LIBVIRT_DEFAULT_URI");
    return u && *u ? u : NULL;
}

/* An embedded root, once opened, is the process's for good (libvirt's
 * QEMU driver then runs in it). */
static void note_embed_root(struct watch *w)
{
    const char *u = effective_uri(w, w->host);
    if (!w->embed_root && zr_uri_is_embedded(u))
        w->embed_root = zr_strdup(u);
}

static void watch_disconnect(struct watch *w)
{
    if (!w->conn)
        return;
    for (size_t i = 0; i < ELEMENTSOF(w->cb); i++)
        if (w->cb[i] >= 0)
            virConnectDomainEventDeregisterAny(w->conn, w->cb[i]);
    virConnectUnregisterCloseCallback(w->conn, on_close);
    virConnectClose(w->conn);
    w->conn = NULL;
    w->announced = false;
    free(w->conn_uri);
    w->conn_uri = NULL;
    definitions_unwatch(w);
    for (size_t i = 0; i < ELEMENTSOF(w->cb); i++)
        w->cb[i] = -1;
}

static const char *host_uri(const struct watch *w)
{
    return w->o->host.uri ? w->o->host.uri : w->host->uri;
}

/* Opens the events' connection; -1 (and a notice the first time) when the
 * host cannot be reached. */
static int watch_connect(struct watch *w)
{
    static const int ids[] = {VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
                              VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                              VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED};
    struct zr_error err = {0};
    pthread_mutex_lock(&w->mu);
    w->lost = false;
    pthread_mutex_unlock(&w->mu);
    struct zr_connect_options co = {
        .use = ZR_CONN_EVENTS, .timeout_s = w->o->host.connect_timeout_s, .interrupt = &w->stop};
    w->conn = zr_connect_with(host_uri(w), &co, &err);
    if (!w->conn) {
        if (!w->was_lost && !w->stop)
            notice(w, "host %s: %s; retrying", w->host->name, err.message);
        w->was_lost = true; /* told once: the retries are quiet */
        zr_error_finish(&err);
        return -1;
    }
    w->conn_uri = zr_host_conn_uri(w->conn, host_uri(w));
    /* The daemon's version (over a remote connection too), for the metric;
     * unknown: not announced. */
    unsigned long version = 0;
    w->announced = virConnectGetLibVersion(w->conn, &version) == 0 &&
                   version >= ANNOUNCES_DEFINITIONS_SINCE;
    /* A daemon that hangs rather than closes the socket is noticed too. */
    virConnectSetKeepAlive(w->conn, 5, 3);
    virConnectRegisterCloseCallback(w->conn, on_close, w, NULL);
    for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
        virConnectDomainEventGenericCallback cb = ids[i] == VIR_DOMAIN_EVENT_ID_LIFECYCLE
                                                      ? VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle)
                                                      : VIR_DOMAIN_EVENT_CALLBACK(on_device);
        w->cb[i] = virConnectDomainEventRegisterAny(w->conn, NULL, ids[i], cb, w, NULL);
        if (w->cb[i] < 0) {
            notice(w, "host %s: cannot register for events: %s; retrying", w->host->name,
                   zr_libvirt_error());
            watch_disconnect(w);
            return -1;
        }
    }
    return 0;
}

/* ---- running guests through zr_host_run ---------------------------------- */

/* Asks for a re-read of guest g at `due` (or sooner, when one is asked
 * for already). */
static void enqueue(struct watch *w, size_t g, uint64_t due)
{
    struct guest_track *t = &w->track[g];
    if (t->pending && t->due <= due)
        return;
    t->pending = true;
    t->due = due;
}

/* Reads guest g's persistent definition on the events' connection and
 * keeps its hash.  Returns whether it differs from the one kept before. */
static bool hash_guest(struct watch *w, size_t g)
{
    struct guest_track *t = &w->track[g];
    _cleanup_(virDomainFreep) virDomainPtr dom =
        w->conn ? virDomainLookupByName(w->conn, w->host->guests[g].name) : NULL;
    _cleanup_free_ char *xml = dom ? virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE) : NULL;
    if (!xml) {
        t->hashed = false;
        return false;
    }
    uint64_t h = zr_fnv1a64(xml);
    bool changed = t->hashed && h != t->def_hash;
    t->def_hash = h;
    t->hashed = true;
    return changed;
}

/* Whether a plan finds nothing to change and nothing to report. */
static bool plan_quiet(const struct zr_plan *p)
{
    if (p->n_actions)
        return false;
    for (size_t i = 0; i < p->n_hosts; i++)
        if (p->hosts[i].error)
            return false;
    for (size_t i = 0; i < p->n_guests; i++)
        if (p->guests[i].error)
            return false;
    return true;
}

/* A guest that is not defined waits for its "defined" event, not for a
 * backoff. */
static bool guest_failed(const struct zr_report *r, size_t k)
{
    const struct zr_plan *p = &r->plan;
    const struct zr_plan_guest *g = &p->guests[k];
    if (g->error)
        return g->error_code != ZR_ERR_NOT_FOUND && g->error_code != ZR_ERR_NOT_FOUND_NEAR;
    for (size_t i = 0; i < p->n_actions; i++)
        if (p->actions[i].guest_index == k &&
            (zr_run_result(&r->run, i)->result == ZR_RESULT_FAILED ||
             zr_run_result(&r->run, i)->result == ZR_RESULT_SKIPPED))
            return true;
    return false;
}

static bool guest_repaired(const struct zr_report *r, size_t k)
{
    const struct zr_plan *p = &r->plan;
    for (size_t i = 0; i < p->n_actions; i++)
        if (p->actions[i].guest_index == k && zr_run_result(&r->run, i)->result == ZR_RESULT_DONE)
            return true;
    return false;
}

/* A repair that worked: closer than the window to the last one it is a
 * reversal, and from the third on the guest is slowed down and named. */
static void note_repair(struct watch *w, size_t g, uint64_t now)
{
    struct guest_track *t = &w->track[g];
    bool close = t->last_repair > 0 && now - t->last_repair < REVERSAL_WINDOW_USEC;
    t->reversals = close ? t->reversals + 1 : 0;
    t->last_repair = now;
    if (t->reversals + 1 < REVERSALS_WARN)
        return;
    uint64_t wait =
        backoff(BACKOFF_FIRST_USEC, t->reversals - (REVERSALS_WARN - 1), BACKOFF_MAX_USEC);
    t->not_before = now + wait;
    _cleanup_free_ char *name = zr_escaped(w->host->guests[g].name);
    notice(w,
           "warning: guest '%s' is changed by someone else: repaired %u times within %u "
           "minutes; the next repair waits %llu s",
           name, t->reversals + 1, (unsigned)(REVERSAL_WINDOW_USEC / USEC_PER_SEC / 60),
           (unsigned long long)(wait / USEC_PER_SEC));
}

/* Guest k of a run over the guests idx (NULL: the whole host). */
static size_t run_guest(const size_t *idx, size_t k)
{
    return idx ? idx[k] : k;
}

/* Reads the run's apply report back into its guests' tracks: backoff for
 * failures, reversals for repairs. */
static void account(struct watch *w, const struct zr_report *report, const size_t *idx, size_t n)
{
    const struct zr_plan *done = &report->plan;
    uint64_t now = mono_usec();
    /* The host as a whole (no connection, a manual apply's lock) in a full
     * pass: the pass is tried again (full_pass), not each guest. */
    if (done->n_hosts && done->hosts[0].error && !idx)
        return;
    bool any = false;
    for (size_t k = 0; k < n && k < done->n_guests; k++) {
        size_t g = run_guest(idx, k);
        struct guest_track *t = &w->track[g];
        bool failed = guest_failed(report, k);
        t->in_sync = !failed && !done->guests[k].error;
        if (failed) {
            t->not_before = now + backoff(BACKOFF_FIRST_USEC, t->failures++, BACKOFF_MAX_USEC);
            t->pending = true;
            t->due = t->not_before;
            continue;
        }
        t->failures = 0;
        if (guest_repaired(report, k)) {
            any = true;
            /* The poll compares with the hash from before the repair, which
             * another change could restore: look at the result once. */
            t->recheck = true;
            note_repair(w, g, now);
        }
    }
    w->stats.repairs += any;
}

/* Plans guest g, read into st, into `draft` as a run plans it before the
 * host check (so that the run repairing it goes on from that plan), and
 * keeps the hash of the definition read. */
static void check_one(struct watch *w, size_t g, const struct zr_guest_state *st,
                      struct zr_plan *draft, struct zr_domain_listing *listing)
{
    struct guest_track *t = &w->track[g];
    t->hashed = st->config_xml != NULL;
    if (t->hashed)
        t->def_hash = zr_fnv1a64(st->config_xml);
    zr_host_plan_guest(draft, w->host->name, w->conn_uri, w->conn, listing, st,
                       w->o->host.config_only);
}

static bool plan_attaches(const struct zr_plan *p)
{
    for (size_t i = 0; i < p->n_actions; i++)
        if (p->actions[i].op == ZR_OP_ATTACH)
            return true;
    return false;
}

/* Whether guest `st` holds function `s`, in its definition or running. */
static bool holds(const struct zr_guest_state *st, const struct zr_pci_addr *s)
{
    return !st->error && (zr_device_list_holds(&st->config, s) ||
                          (st->active && zr_device_list_holds(&st->live, s)));
}

/* Adds to the run every guest of `st` (the host's, read) that holds a
 * function `p` (a guest's plan) attaches. */
static void tie_holders(const struct watch *w, const struct zr_guest_state *st,
                        const struct zr_plan *p, bool *in, size_t *set, size_t *n)
{
    for (size_t j = 0; j < w->host->n_guests; j++)
        for (size_t i = 0; !in[j] && i < p->n_actions; i++)
            if (p->actions[i].op == ZR_OP_ATTACH && holds(&st[j], &p->actions[i].source)) {
                in[j] = true;
                set[(*n)++] = j;
            }
}

static int index_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The guests a repair of g runs with, in inventory order: g, every guest
 * of the inventory that holds a function g's repair attaches, theirs in
 * turn.  Run alone, g would find its function held by a guest outside the
 * run and be refused, where a full pass detaches it there first; run
 * together, the detaches go before the attaches as in a full pass.  Reads
 * the host's inventory guests once; g's read and plan (in p) are kept,
 * each other guest of the run is planned once, and p becomes the run's. */
static size_t tied_guests(struct watch *w, size_t g, struct zr_host_prepared *p, size_t **out)
{
    size_t total = w->host->n_guests, n = 0;
    _cleanup_free_ bool *in = zr_new0(bool, total);
    size_t *set = zr_new0(size_t, total);
    struct zr_plan *plans = zr_new0(struct zr_plan, total);
    set[n++] = g;
    in[g] = true;
    struct zr_guest_state *st =
        zr_state_read_listed(w->conn, w->host, ZR_READ_THREADS, &p->listing);
    struct zr_guest_state mine = st[g];
    st[g] = p->states[0];
    p->states[0] = mine; /* freed below with p's */
    zr_plan_append(&plans[g], &p->draft);
    for (size_t k = 0; k < n; k++) {
        if (k > 0)
            check_one(w, set[k], &st[set[k]], &plans[set[k]], &p->listing);
        tie_holders(w, st, &plans[set[k]], in, set, &n);
    }
    qsort(set, n, sizeof(*set), index_cmp);
    zr_state_free(p->states, 1);
    p->states = zr_new0(struct zr_guest_state, n);
    for (size_t k = 0; k < n; k++) {
        p->states[k] = st[set[k]];
        st[set[k]] = (struct zr_guest_state){0};
        zr_plan_append(&p->draft, &plans[set[k]]);
    }
    for (size_t j = 0; j < total; j++)
        zr_plan_finish(&plans[j]);
    free(plans);
    zr_state_free(st, total);
    *out = set;
    return n;
}

/* The options of this watch's runs: the guests' interrupt and what pool
 * entries got on earlier runs (host.h: pool_memory). */
static struct zr_host_options host_options(struct watch *w, bool applying)
{
    struct zr_host_options ho = w->o->host;
    ho.applying = applying;
    ho.interrupt = &w->stop;
    ho.pool_memory = &w->pool_memory;
    return ho;
}

/* Applies the guests idx[0..n) (inventory order; NULL: the whole host) in
 * one run, which locks the host only now, going on from what `p` (NULL:
 * nothing) read and planned; its report goes to the caller.  Returns
 * whether the host as a whole failed. */
static bool apply_guests(struct watch *w, const size_t *idx, size_t n, struct zr_host_prepared *p)
{
    struct zr_host sub = *w->host;
    _cleanup_free_ struct zr_guest *guests = idx ? zr_new0(struct zr_guest, n) : NULL;
    for (size_t k = 0; idx && k < n; k++)
        guests[k] = w->host->guests[idx[k]]; /* borrowed, as the host's are */
    if (idx) {
        sub.guests = guests;
        sub.n_guests = n;
    }
    struct zr_host_options ho = host_options(w, true);
    ho.prepared = p;
    _cleanup_(zr_report_finish) struct zr_report done = {.plan.has_hosts = w->inv->has_hosts};
    zr_host_run(&sub, &ho, &done);
    if (p)
        zr_host_prepared_finish(p, n);
    account(w, &done, idx, n);
    pthread_mutex_lock(&w->mu);
    w->stats.last_event = w->last_event;
    pthread_mutex_unlock(&w->mu);
    w->stats.definitions_followed = w->def_ino >= 0;
    w->stats.definitions_announced = w->announced; /* false while not connected */
    if (w->o->ops.report)
        w->o->ops.report(w->o->ops.data, &done, &w->stats);
    notify_status(w, "");
    return done.plan.n_hosts && done.plan.hosts[0].error;
}

/* Every guest of the host, read once on the events' connection, chosen
 * for (its pool entries, as a run chooses) and planned once: nothing more
 * when that plan has nothing to do or report (the host check only refuses
 * or annotates actions) and every pool entry was served, else an apply
 * run that goes on from it.  Hashing the definitions read first means
 * that a change from here on differs from the kept hash and the poll sees
 * it.  Returns whether the host as a whole failed. */
static bool host_pass(struct watch *w)
{
    size_t n = w->host->n_guests;
    for (size_t g = 0; g < n; g++)
        w->track[g].pending = false;
    bool failed = false;
    struct zr_host_prepared p = {.conn = w->conn};
    if (w->conn) {
        struct zr_host_options ho = host_options(w, false);
        p.states = zr_state_read_listed(w->conn, w->host, ZR_READ_THREADS, &p.listing);
        zr_host_choose(w->conn, w->conn_uri, w->host, p.states, &p.listing, &ho, &p.choice);
        for (size_t g = 0; g < n; g++)
            check_one(w, g, &p.states[g], &p.draft, &p.listing);
        definitions_watch(w, p.states, n);
    }
    if (w->conn && plan_quiet(&p.draft) && !zr_choice_refuses(&p.choice)) {
        for (size_t g = 0; g < n; g++) {
            w->track[g].in_sync = true;
            w->track[g].failures = 0;
        }
    } else if (!w->stop) {
        failed = apply_guests(w, NULL, n, w->conn ? &p : NULL);
    }
    zr_host_prepared_finish(&p, n);
    return failed;
}

/* A host pass; a host that failed as a whole is tried again with backoff,
 * else after the resync interval. */
static void full_pass(struct watch *w)
{
    bool failed = host_pass(w);
    uint64_t resync = (uint64_t)w->o->resync_s * USEC_PER_SEC;
    if (failed) {
        arm(w->t_resync, mono_usec() + w->resync_wait);
        w->resync_wait = w->resync_wait * 2 < resync ? w->resync_wait * 2 : resync;
    } else {
        arm(w->t_resync, mono_usec() + resync);
        w->resync_wait = BACKOFF_FIRST_USEC;
    }
    notify_status(w, "");
}

/* Whether one of the guests idx[0..n) takes from a pool. */
static bool any_takes_from_pool(const struct watch *w, const size_t *idx, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (zr_guest_takes_from_pool(&w->host->guests[idx[k]]))
            return true;
    return false;
}

/* A re-read of guest g on the events' connection: nothing when its plan
 * (as a run makes it before the host check, which only refuses or
 * annotates actions) has nothing to do, so no lock and no reading of the
 * host's other guests; else a repair that goes on from that plan, with
 * the guests that hold what it attaches.  What a pool entry gets depends
 * on every guest of the host (who holds what, inventory order), so a
 * repair that involves one is a host pass. */
static void repair_guest(struct watch *w, size_t g)
{
    size_t one = g, n = 1;
    if (any_takes_from_pool(w, &one, 1)) {
        host_pass(w);
        return;
    }
    if (!w->conn) { /* the run's own connection says why */
        w->track[g].hashed = false;
        apply_guests(w, &one, 1, NULL);
        return;
    }
    struct zr_host_prepared p = {.conn = w->conn, .states = zr_new0(struct zr_guest_state, 1)};
    p.states[0].wanted = &w->host->guests[g];
    zr_state_read_guest(w->conn, &p.states[0]);
    check_one(w, g, &p.states[0], &p.draft, &p.listing);
    bool quiet = plan_quiet(&p.draft);
    if (quiet) {
        w->track[g].in_sync = true;
        w->track[g].failures = 0;
    }
    if (quiet || w->stop) {
        zr_host_prepared_finish(&p, 1);
        return;
    }
    _cleanup_free_ size_t *tied = NULL;
    if (plan_attaches(&p.draft))
        n = tied_guests(w, g, &p, &tied);
    const size_t *idx = tied ? tied : &one;
    if (any_takes_from_pool(w, idx, n)) {
        zr_host_prepared_finish(&p, n);
        host_pass(w);
        return;
    }
    for (size_t k = 0; k < n; k++) /* run now, and accounted for by this run */
        w->track[idx[k]].pending = false;
    apply_guests(w, idx, n, &p);
}

static void run_due(struct watch *w)
{
    bool ran = false;
    for (size_t g = 0; g < w->host->n_guests && !w->stop; g++) {
        struct guest_track *t = &w->track[g];
        uint64_t now = mono_usec();
        if (!t->pending || now < t->due || now < t->not_before)
            continue;
        t->pending = false;
        repair_guest(w, g);
        ran = true;
    }
    if (ran) /* a guest found in sync again changes the counts too */
        notify_status(w, "");
}

/* The host's guests sorted by name: an event names its guest, and a host
 * may have thousands. */
static struct guest_name *guests_by_name(const struct zr_host *host)
{
    struct guest_name *v = zr_new0(struct guest_name, host->n_guests + 1);
    for (size_t g = 0; g < host->n_guests; g++)
        v[g] = (struct guest_name){host->guests[g].name, g};
    qsort(v, host->n_guests, sizeof(*v), guest_name_cmp);
    return v;
}

static long guest_index(const struct watch *w, const char *name)
{
    struct guest_name key = {name, 0};
    const struct guest_name *found =
        bsearch(&key, w->by_name, w->host->n_guests, sizeof(key), guest_name_cmp);
    return found ? (long)found->g : -1;
}

/* The names libvirt's thread collected: each guest of the inventory among
 * them gets a re-read after the coalescing window. */
static void take_events(struct watch *w)
{
    pthread_mutex_lock(&w->mu);
    char **names = w->names;
    size_t n = w->n_names;
    w->names = NULL;
    w->n_names = 0;
    pthread_mutex_unlock(&w->mu);
    uint64_t now = mono_usec();
    for (size_t i = 0; i < n; i++) {
        long g = guest_index(w, names[i]);
        if (g >= 0)
            enqueue(w, (size_t)g, now + COALESCE_USEC);
        free(names[i]);
    }
    free(names);
}

/* One round of the definition poll: a guest whose persistent definition
 * hashes differently from the last round gets a re-read. */
static void poll_definitions(struct watch *w)
{
    uint64_t now = mono_usec();
    size_t n = w->host->n_guests;
    if (!w->conn || n == 0)
        return;
    for (size_t k = 0; k < n && k < POLL_BATCH; k++) {
        size_t g = w->poll_next++ % n;
        bool recheck = w->track[g].recheck;
        w->track[g].recheck = false;
        bool changed = hash_guest(w, g);
        if (changed) { /* as good as an event, which libvirt did not send */
            pthread_mutex_lock(&w->mu);
            w->last_event = realtime();
            pthread_mutex_unlock(&w->mu);
        }
        if (changed || recheck)
            enqueue(w, g, now); /* a poll round is a batch already */
    }
}

/* ---- the daemon's definitions directory ------------------------------------
 *
 * libvirt sends no event when another client changes only a persistent
 * definition, but a local QEMU driver writes the guest's NAME.xml in its
 * definitions directory every time: inotify on that directory is a signal
 * within milliseconds at no cost, where the poll reads 64 definitions a
 * second (a host of 1000 guests noticed a change after up to 16 s).  The
 * directory is taken only when it holds this daemon's guests (a daemon
 * built with another prefix keeps them elsewhere; a socket may lead to a
 * daemon in another mount namespace): a guest's file names its UUID. */

/* Whether file `path` names `uuid` as its guest's. */
static bool file_names_uuid(const char *path, const char *uuid)
{
    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    _cleanup_free_ char *head = zr_new0(char, DEFINITION_HEAD + 1);
    ssize_t n = fd < 0 ? -1 : read(fd, head, DEFINITION_HEAD);
    if (n <= 0)
        return false;
    _cleanup_free_ char *want = zr_asprintf("<uuid>%s</uuid>", uuid);
    return strstr(head, want) != NULL;
}

static void definitions_unwatch(struct watch *w)
{
    w->def_src = sd_event_source_disable_unref(w->def_src);
    closep(&w->def_ino);
}

static int on_definitions(sd_event_source *s, int fd, uint32_t revents, void *data);

/* Watches the definitions directory when the file of a guest read (st)
 * shows it is this daemon's.  Nothing when it is watched already or cannot
 * be: the poll goes on at its full rate. */
static void definitions_watch(struct watch *w, const struct zr_guest_state *st, size_t n)
{
    _cleanup_free_ char *dir = w->def_ino < 0 ? zr_uri_config_dir(w->conn_uri) : NULL;
    char uuid[VIR_UUID_STRING_BUFLEN];
    size_t g = 0;
    while (dir && g < n && !(st[g].dom && virDomainGetUUIDString(st[g].dom, uuid) == 0))
        g++;
    if (!dir || g == n)
        return;
    _cleanup_free_ char *file = zr_asprintf("%s/%s.xml", dir, st[g].wanted->name);
    if (!file_names_uuid(file, uuid))
        return;
    w->def_ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR;
    if (w->def_ino < 0 || inotify_add_watch(w->def_ino, dir, mask) < 0 ||
        sd_event_add_io(w->ev, &w->def_src, w->def_ino, EPOLLIN, on_definitions, w) < 0) {
        definitions_unwatch(w);
        return;
    }
    arm(w->t_poll, mono_usec() + POLL_BACKSTOP_USEC);
}

/* A NAME.xml written, renamed or removed: guest NAME of the inventory gets
 * a re-read, as for libvirt's events.  A lost queue: a full pass. */
static void take_definition(struct watch *w, const struct inotify_event *ev)
{
    uint64_t now = mono_usec();
    if (ev->mask & IN_Q_OVERFLOW) {
        arm(w->t_resync, now);
        return;
    }
    size_t len = ev->len ? strlen(ev->name) : 0;
    if (len <= 4 || strcmp(ev->name + len - 4, ".xml") != 0)
        return;
    _cleanup_free_ char *name = zr_strndup(ev->name, len - 4);
    long g = guest_index(w, name);
    if (g < 0)
        return;
    pthread_mutex_lock(&w->mu);
    w->last_event = realtime();
    pthread_mutex_unlock(&w->mu);
    enqueue(w, (size_t)g, now + DEFINITION_SETTLE_USEC);
}

static void read_inotify(struct watch *w, int fd,
                         void (*take)(struct watch *, const struct inotify_event *));

static int on_definitions(sd_event_source *s, int fd, uint32_t revents, void *data)
{
    read_inotify(data, fd, take_definition);
    return 0;
}

/* ---- the inventory file --------------------------------------------------- */

static bool from_stdin(const struct watch *w)
{
    return strcmp(w->o->path, "-") == 0;
}

static void unwatch_paths(struct watch *w)
{
    for (size_t i = 0; i < w->n_paths; i++) {
        if (w->paths[i].wd >= 0) /* a directory watched twice is removed once */
            inotify_rm_watch(w->ino, w->paths[i].wd);
        free(w->paths[i].name);
    }
    free(w->paths);
    w->paths = NULL;
    w->n_paths = 0;
    if (w->wd_file >= 0)
        inotify_rm_watch(w->ino, w->wd_file);
    w->wd_file = -1;
}

/* The directories of the path as given, each for the name that follows
 * it: a link or directory replaced on the way is a change of the file.
 * Returns the watch of the file's own directory (or -errno). */
static int watch_dirs(struct watch *w)
{
    const char *p = w->o->path;
    size_t len = strlen(p), at = 0;
    int last = -ENOENT;
    while (at < len) {
        while (at < len && p[at] == '/')
            at++;
        size_t end = at;
        while (end < len && p[end] != '/')
            end++;
        if (end == at)
            break;
        bool file = end == len;
        _cleanup_free_ char *dir = at == 0 ? zr_strdup(".") : zr_strndup(p, at);
        uint32_t mask = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_ONLYDIR | IN_MASK_ADD;
        mask |= file ? IN_CLOSE_WRITE | IN_MODIFY : IN_MOVED_FROM;
        int wd = inotify_add_watch(w->ino, dir, mask);
        if (file)
            last = wd < 0 ? -errno : wd;
        if (wd >= 0 && !(end - at == 1 && p[at] == '.'))
            *ZR_APPEND(w->paths, w->n_paths) =
                (struct path_watch){wd, zr_strndup(p + at, end - at), file};
        at = end;
    }
    return last;
}

/* The directories on the path and the file itself (through a symlink,
 * its target); again after each change on the path, which may lead
 * elsewhere now. */
static int watch_paths(struct watch *w)
{
    unwatch_paths(w);
    int r = watch_dirs(w);
    w->wd_file = inotify_add_watch(
        w->ino, w->o->path, IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
    return r < 0 ? r : 0;
}

static int inventory_watch(struct watch *w, struct zr_error *err)
{
    if (from_stdin(w))
        return 0;
    w->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int r = w->ino < 0 ? -errno : watch_paths(w);
    if (r < 0)
        zr_error_set(err, NULL, 0, 0, "cannot watch %s for changes: %s", w->o->path, strerror(-r));
    return r;
}

/* The path watch an event is about, or NULL. */
static const struct path_watch *path_event(const struct watch *w, const struct inotify_event *ev)
{
    for (size_t i = 0; ev->len && i < w->n_paths; i++)
        if (w->paths[i].wd == ev->wd && strcmp(w->paths[i].name, ev->name) == 0)
            return &w->paths[i];
    return NULL;
}

/* One event: a modification means a writer is at work, and only its close
 * (or a complete file renamed or linked in place) asks for a re-read, so
 * a save that pauses between writes is never read half-way. */
static void take_inotify(struct watch *w, const struct inotify_event *ev)
{
    const struct path_watch *pw = path_event(w, ev);
    if (ev->wd == w->wd_file && (ev->mask & IN_IGNORED))
        w->wd_file = -1;
    if (ev->wd != w->wd_file && !pw)
        return;
    if (ev->mask & IN_MODIFY) {
        w->writing = true;
        disarm(w->t_reload);
        return;
    }
    bool settled = ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_DELETE_SELF |
                               IN_MOVE_SELF | IN_MOVED_FROM);
    if (settled || (pw && !pw->file))
        w->writing = false;
    if (!w->writing && !(ev->mask & IN_IGNORED))
        arm(w->t_reload, mono_usec() + RELOAD_QUIET_USEC);
}

/* Hands each event inotify descriptor fd has to `take`. */
static void read_inotify(struct watch *w, int fd,
                         void (*take)(struct watch *, const struct inotify_event *))
{
    union {
        struct inotify_event ev;
        char buf[4096];
    } u;
    ssize_t n;
    while ((n = read(fd, u.buf, sizeof(u.buf))) > 0) {
        for (char *p = u.buf; p < u.buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            take(w, ev);
            p += sizeof(*ev) + ev->len;
        }
    }
}

static const struct zr_host *find_host(const struct zr_inventory *inv, const char *name)
{
    for (size_t h = 0; h < inv->n_hosts; h++)
        if (strcmp(inv->hosts[h].name, name) == 0)
            return &inv->hosts[h];
    return NULL;
}

/* The new inventory in force: fresh tracks, a new connection when the
 * host's URI changed, and a full pass. */
static void inventory_take(struct watch *w, struct zr_inventory *inv, const struct zr_host *host)
{
    bool same_uri = zr_streq(host->uri, w->host->uri);
    if (!same_uri)
        watch_disconnect(w);
    zr_inventory_free(w->inv);
    free(w->track);
    free(w->by_name);
    w->inv = inv;
    w->host = host;
    w->track = zr_new0(struct guest_track, host->n_guests);
    w->by_name = guests_by_name(host);
    note_embed_root(w);
    if (!w->conn) {
        w->reconnect_wait = RECONNECT_FIRST_USEC;
        disarm(w->t_reconnect);
        if (watch_connect(w) < 0)
            arm(w->t_reconnect, mono_usec() + w->reconnect_wait);
    }
    full_pass(w);
}

/* Whether a valid new inventory asks for what only a restart can do, said
 * in a notice: hosts added or removed (one process each), or a URI this
 * process can no longer open (one that opened an embedded root cannot
 * open a local daemon URI or a second root). */
static bool needs_restart(struct watch *w, const struct zr_inventory *inv,
                          const struct zr_host *host)
{
    if (!host || (inv->n_hosts > 1) != (w->inv->n_hosts > 1)) {
        notice(w,
               "%s: hosts were added or removed; restart watch to follow them (the last "
               "inventory stays in force)",
               w->o->path);
        return true;
    }
    const char *u = effective_uri(w, host);
    if (!w->embed_root || !zr_uri_blocked_by_embed(w->embed_root, u))
        return false;
    notice(w,
           "%s: uri %s needs a restart of watch: this process opened the embedded root %s, "
           "and libvirt then opens neither a local daemon URI nor a second root in it (the "
           "last inventory stays in force)",
           w->o->path, u ? u : "(libvirt's default)", w->embed_root);
    return true;
}

/* Re-reads the inventory.  One that does not validate, or that only a
 * restart can follow, leaves the last good one in force and changes
 * nothing. */
static void reload(struct watch *w)
{
    if (from_stdin(w)) {
        notice(w, "the inventory came from standard input and cannot be read again; restart "
                  "watch to change it");
        return;
    }
    if (w->o->notify) {
        _cleanup_free_ char *text =
            zr_asprintf("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)mono_usec());
        tell_systemd(w->o, ZR_NOTIFY_STATE, text);
    }
    /* Before the read: a change from here on is seen, and the path may
     * lead elsewhere than when it was watched last. */
    int r = watch_paths(w);
    if (r < 0)
        notice(w, "cannot watch %s for changes any more: %s; SIGHUP still reloads", w->o->path,
               strerror(-r));
    _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_load(w->o->path, &errs);
    const struct zr_host *host = inv ? find_host(inv, w->host_name) : NULL;
    if (!inv) {
        if (w->o->ops.invalid)
            w->o->ops.invalid(w->o->ops.data, &errs);
        notice(w, "%s: not taken; the last valid inventory stays in force", w->o->path);
    } else if (needs_restart(w, inv, host)) {
        zr_inventory_free(inv);
    } else {
        inventory_take(w, inv, host);
    }
    notify_status(w, "READY=1\n");
}

/* ---- the loop: one sd-event loop ------------------------------------------- */

static void connection_lost(struct watch *w)
{
    watch_disconnect(w);
    w->was_lost = true;
    w->reconnect_wait = RECONNECT_FIRST_USEC;
    arm(w->t_reconnect, mono_usec() + w->reconnect_wait);
    notice(w, "host %s: lost the connection to %s; reconnecting", w->host->name,
           host_uri(w) ? host_uri(w) : "libvirt's default URI");
    notify_status(w, "");
}

static int on_reconnect(sd_event_source *s, uint64_t usec, void *data)
{
    struct watch *w = data;
    if (w->conn)
        return 0;
    if (watch_connect(w) < 0) {
        w->was_lost = true;
        w->reconnect_wait =
            w->reconnect_wait * 2 < RECONNECT_MAX_USEC ? w->reconnect_wait * 2 : RECONNECT_MAX_USEC;
        arm(w->t_reconnect, mono_usec() + w->reconnect_wait);
        return 0;
    }
    if (w->was_lost)
        notice(w, "host %s: connected again; running a full pass", w->host->name);
    w->was_lost = false;
    for (size_t g = 0; g < w->host->n_guests; g++)
        w->track[g].hashed = false;
    full_pass(w);
    return 0;
}

/* What libvirt's thread handed over: a lost connection, guests' events. */
static int on_libvirt(sd_event_source *s, int fd, uint32_t revents, void *data)
{
    struct watch *w = data;
    uint64_t count;
    ssize_t r = read(fd, &count, sizeof(count));
    (void)r; /* EAGAIN: read already */
    pthread_mutex_lock(&w->mu);
    bool lost = w->lost;
    w->lost = false;
    pthread_mutex_unlock(&w->mu);
    if (lost && w->conn)
        connection_lost(w);
    take_events(w);
    return 0;
}

static int on_resync(sd_event_source *s, uint64_t usec, void *data)
{
    struct watch *w = data;
    if (w->conn) /* else the reconnect runs the pass */
        full_pass(w);
    return 0;
}

static int on_poll(sd_event_source *s, uint64_t usec, void *data)
{
    struct watch *w = data;
    poll_definitions(w);
    arm(s, mono_usec() + (w->def_ino >= 0 ? POLL_BACKSTOP_USEC : POLL_USEC));
    return 0;
}

static int on_due(sd_event_source *s, uint64_t usec, void *data)
{
    run_due(data);
    return 0;
}

/* After every dispatch: the guest timer at the earliest re-read due. */
static int on_post(sd_event_source *s, void *data)
{
    struct watch *w = data;
    uint64_t next = UINT64_MAX;
    for (size_t g = 0; g < w->host->n_guests; g++) {
        const struct guest_track *t = &w->track[g];
        uint64_t at = t->due > t->not_before ? t->due : t->not_before;
        if (t->pending && at < next)
            next = at;
    }
    if (next == UINT64_MAX)
        disarm(w->t_due);
    else
        arm(w->t_due, next);
    return 0;
}

static int on_inotify(sd_event_source *s, int fd, uint32_t revents, void *data)
{
    struct watch *w = data;
    read_inotify(w, w->ino, take_inotify);
    return 0;
}

static int on_reload(sd_event_source *s, uint64_t usec, void *data)
{
    reload(data);
    return 0;
}

static int on_watchdog(sd_event_source *s, uint64_t usec, void *data)
{
    struct watch *w = data;
    tell_systemd(w->o, ZR_NOTIFY_DROPPABLE, "WATCHDOG=1");
    arm(s, mono_usec() + w->watchdog_usec / 2);
    return 0;
}

static void stop_guard_tell(struct stop_guard *g, int state);

/* SIGHUP re-reads the inventory; SIGTERM and SIGINT end the loop. */
static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *data)
{
    struct watch *w = data;
    if (si->ssi_signo == SIGHUP) {
        disarm(w->t_reload);
        reload(w);
        return 0;
    }
    w->stop = (sig_atomic_t)si->ssi_signo;
    if (w->guard)
        stop_guard_tell(w->guard, 1);
    return sd_event_exit(w->ev, 0);
}

/* A one-shot timer of the loop, off until armed. */
static int add_timer(struct watch *w, sd_event_source **s, sd_event_time_handler_t cb)
{
    int r = sd_event_add_time(w->ev, s, CLOCK_MONOTONIC, UINT64_MAX, TIMER_ACCURACY_USEC, cb, w);
    return r < 0 ? r : sd_event_source_set_enabled(*s, SD_EVENT_OFF);
}

/* The sources every watch has.  A stop is looked at before anything else. */
static int loop_sources(struct watch *w)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    int r = 0;
    for (size_t i = 0; i < ELEMENTSOF(sigs) && r >= 0; i++) {
        r = sd_event_add_signal(w->ev, &w->sig[i], sigs[i], on_signal, w);
        if (r >= 0)
            r = sd_event_source_set_priority(w->sig[i], SD_EVENT_PRIORITY_IMPORTANT);
    }
    if (r >= 0)
        r = sd_event_add_io(w->ev, &w->lv_src, w->lv_fd, EPOLLIN, on_libvirt, w);
    if (r >= 0 && w->ino >= 0)
        r = sd_event_add_io(w->ev, &w->ino_src, w->ino, EPOLLIN, on_inotify, w);
    if (r >= 0)
        r = sd_event_add_post(w->ev, &w->post, on_post, w);
    sd_event_time_handler_t cbs[] = {on_due, on_resync, on_poll, on_reconnect, on_reload};
    sd_event_source **ts[] = {&w->t_due, &w->t_resync, &w->t_poll, &w->t_reconnect, &w->t_reload};
    for (size_t i = 0; i < ELEMENTSOF(ts) && r >= 0; i++)
        r = add_timer(w, ts[i], cbs[i]);
    if (r >= 0 && w->watchdog_usec)
        r = sd_event_add_time_relative(w->ev, &w->t_watchdog, CLOCK_MONOTONIC, 0,
                                       TIMER_ACCURACY_USEC, on_watchdog, w);
    return r;
}

/* The loop with its sources, the eventfd for libvirt's thread, and the
 * inventory's inotify watch. */
static int loop_setup(struct watch *w, struct zr_error *err)
{
    zr_watch_block_signals();
    w->lv_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->lv_fd < 0) {
        zr_error_set(err, NULL, 0, 0, "cannot create an eventfd: %s", strerror(errno));
        return -errno;
    }
    int r = inventory_watch(w, err);
    if (r < 0)
        return r;
    if (w->o->notify && sd_watchdog_enabled(0, &w->watchdog_usec) <= 0)
        w->watchdog_usec = 0;
    r = sd_event_default(&w->ev);
    if (r >= 0)
        r = loop_sources(w);
    if (r < 0)
        zr_error_set(err, NULL, 0, 0, "cannot set up the event loop: %s", strerror(-r));
    return r;
}

static void loop_finish(struct watch *w)
{
    sd_event_source **all[] = {&w->sig[0],    &w->sig[1],   &w->sig[2],    &w->post,
                               &w->ino_src,   &w->lv_src,   &w->t_due,     &w->t_resync,
                               &w->t_poll,    &w->t_reload, &w->t_reconnect, &w->t_watchdog};
    for (size_t i = 0; i < ELEMENTSOF(all); i++)
        *all[i] = sd_event_source_disable_unref(*all[i]);
    w->ev = sd_event_unref(w->ev);
}

/* ---- the stop: prompt, even when libvirt is not ----------------------------
 *
 * The loop sees SIGTERM between calls; a call to a daemon that stopped
 * answering returns only when keepalive gives the connection up (about
 * 20 s), and the disconnect would wait on that daemon again.  A thread of
 * its own notices a stop signal pending (without taking it from the loop's
 * signal source), sets the interrupt flag apply looks at, gives the stop
 * STOP_GRACE_S, then ends the process as a normal stop: nothing else can
 * take the main thread out of libvirt's wait. */

struct stop_guard {
    pthread_t thread;
    bool started;
    int sfd;              /* a signalfd for SIGTERM and SIGINT, never read */
    int efd;              /* the loop's word: stopping, or finished */
    atomic_int state;     /* 0 watching, 1 stopping, 2 finished */
    volatile sig_atomic_t *stop;
    char *host_name;
    bool notify;
    struct zr_watch_ops ops;
};

static void stop_guard_tell(struct stop_guard *g, int state)
{
    atomic_store(&g->state, state);
    uint64_t one = 1;
    ssize_t r = write(g->efd, &one, sizeof(one));
    (void)r;
}

/* Waits for a stop signal pending or the loop's word. */
static void stop_guard_wait_stop(struct stop_guard *g)
{
    struct pollfd pfd[2] = {{.fd = g->sfd, .events = POLLIN}, {.fd = g->efd, .events = POLLIN}};
    while (atomic_load(&g->state) == 0 && !(pfd[0].revents & POLLIN))
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            break;
    sigset_t pending;
    sigpending(&pending);
    if (!*g->stop && (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)))
        *g->stop = sigismember(&pending, SIGTERM) ? SIGTERM : SIGINT;
}

/* Whether the loop finished within the grace. */
static bool stop_guard_wait_finish(struct stop_guard *g)
{
    struct pollfd pfd = {.fd = g->efd, .events = POLLIN};
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t end = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + STOP_GRACE_S * 1000;
    while (atomic_load(&g->state) != 2) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t left = end - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        if (left <= 0)
            return false;
        uint64_t v;
        if (poll(&pfd, 1, (int)left) > 0 && read(g->efd, &v, sizeof(v)) < 0)
            continue;
    }
    return true;
}

static void *stop_guard_main(void *arg)
{
    struct stop_guard *g = arg;
    stop_guard_wait_stop(g);
    if (atomic_load(&g->state) == 2 || stop_guard_wait_finish(g))
        return NULL;
    if (g->ops.notice) {
        _cleanup_free_ char *m =
            zr_asprintf("host %s: stopped without waiting any longer for a libvirt call that "
                        "has not returned %d s after the stop",
                        g->host_name, STOP_GRACE_S);
        g->ops.notice(g->ops.data, m);
    }
    if (g->notify)
        zr_notify(ZR_NOTIFY_STATE, "STOPPING=1");
    _exit(0);
}

/* Signals blocked already: the thread inherits the mask. */
static void stop_guard_start(struct stop_guard *g, struct watch *w)
{
    *g = (struct stop_guard){.stop = &w->stop,
                             .host_name = zr_strdup(w->host_name),
                             .notify = w->o->notify,
                             .ops = w->o->ops};
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    g->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    g->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->guard = g;
    g->started = g->sfd >= 0 && g->efd >= 0 &&
                 pthread_create(&g->thread, NULL, stop_guard_main, g) == 0;
}

static void stop_guard_finish(struct stop_guard *g)
{
    if (g->efd >= 0)
        stop_guard_tell(g, 2);
    if (g->started)
        pthread_join(g->thread, NULL);
    closep(&g->sfd);
    closep(&g->efd);
    free(g->host_name);
}

static void watch_finish(struct watch *w)
{
    zr_pool_memory_finish(&w->pool_memory);
    watch_disconnect(w);
    loop_finish(w);
    if (w->ino >= 0) {
        unwatch_paths(w);
        close(w->ino);
    }
    closep(&w->lv_fd);
    for (size_t i = 0; i < w->n_names; i++)
        free(w->names[i]);
    free(w->names);
    free(w->track);
    free(w->by_name);
    free(w->host_name);
    free(w->embed_root);
    zr_inventory_free(w->inv);
    pthread_mutex_destroy(&w->mu);
}

/* The first pass, then ready: also when the host is away (it is retried,
 * and the pass after the reconnect converges it); then the loop until a
 * stop. */
static void watch_loop(struct watch *w)
{
    if (watch_connect(w) < 0)
        arm(w->t_reconnect, mono_usec() + w->reconnect_wait);
    arm(w->t_poll, mono_usec());
    full_pass(w);
    notify_status(w, "READY=1\n");
    on_post(w->post, w);
    if (!w->stop)
        sd_event_loop(w->ev);
    if (w->o->notify)
        tell_systemd(w->o, ZR_NOTIFY_STATE, "STOPPING=1");
}

int zr_watch_run(struct zr_inventory *inv, const struct zr_watch_options *o, struct zr_error *err)
{
    struct watch w = {.o = o,
                      .inv = inv,
                      .cb = {-1, -1, -1, -1},
                      .ino = -1,
                      .def_ino = -1,
                      .lv_fd = -1,
                      .wd_file = -1,
                      .reconnect_wait = RECONNECT_FIRST_USEC,
                      .resync_wait = BACKOFF_FIRST_USEC};
    pthread_mutex_init(&w.mu, NULL);
    w.host_name = zr_strdup(o->host_name);
    w.host = find_host(inv, w.host_name);
    int r = !w.host ? -ENOENT : loop_setup(&w, err);
    if (!w.host)
        zr_error_set(err, NULL, 0, 0, "no host '%s' in the inventory", o->host_name);
    if (r == 0)
        r = zr_libvirt_init(err);
    if (r < 0) {
        watch_finish(&w);
        return r;
    }
    w.track = zr_new0(struct guest_track, w.host->n_guests);
    w.by_name = guests_by_name(w.host);
    note_embed_root(&w);
    struct stop_guard guard;
    stop_guard_start(&guard, &w);
    watch_loop(&w);
    watch_finish(&w);
    stop_guard_finish(&guard);
    return 0;
}

/* ---- several hosts: one process each ----------------------------------------
 *
 * The supervisor of fleet.h, as apply's hosts: runs use it: a child per
 * host runs zr_watch_run(), one that fails is started again after a pause
 * (a timer per host on the supervisor's loop); SIGHUP is passed on, a stop
 * ends them with SIGTERM. */

#define RESTART_USEC (5 * USEC_PER_SEC)

struct watch_fleet {
    struct zr_inventory *inv;
    const struct zr_watch_options *o;
    struct zr_supervisor *sup;
    sd_event_source **restart; /* per host */
    sd_event_source *t_watchdog;
    uint64_t watchdog_usec;
};

static int fleet_child(void *data, size_t i, int fd)
{
    const struct watch_fleet *f = data;
    const struct zr_watch_options *o = f->o;
    /* Only the supervisor talks to systemd (NotifyAccess=main). */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    struct zr_watch_options co = *o;
    co.host_name = f->inv->hosts[i].name;
    co.notify = false;
    struct zr_error err = {0};
    int r = zr_watch_run(f->inv, &co, &err);
    if (r < 0 && o->ops.notice)
        o->ops.notice(o->ops.data, err.message);
    return r < 0 ? 1 : 0;
}

static void fleet_start(struct watch_fleet *f, size_t i)
{
    if (zr_supervisor_start(f->sup, i) < 0)
        arm(f->restart[i], mono_usec() + RESTART_USEC);
}

static int on_fleet_restart(sd_event_source *s, uint64_t usec, void *data)
{
    struct watch_fleet *f = data;
    for (size_t i = 0; i < f->inv->n_hosts; i++)
        if (f->restart[i] == s)
            fleet_start(f, i);
    return 0;
}

/* A child that ended: one that failed is started again later; one that
 * exited 0 (after a stop) is not. */
static void fleet_ended(void *data, size_t i, const siginfo_t *si, const char *out, size_t len)
{
    struct watch_fleet *f = data;
    const struct zr_watch_options *o = f->o;
    if (si->si_code == CLD_EXITED && si->si_status == 0)
        return;
    arm(f->restart[i], mono_usec() + RESTART_USEC);
    if (o->ops.notice) {
        int st = si->si_code == CLD_EXITED ? (si->si_status & 0xff) << 8 : si->si_status & 0x7f;
        _cleanup_free_ char *m = zr_asprintf(
            "host %s: its watch process ended (status 0x%x); starting it again in %llu s",
            f->inv->hosts[i].name, (unsigned)st,
            (unsigned long long)(RESTART_USEC / USEC_PER_SEC));
        o->ops.notice(o->ops.data, m);
    }
}

static void fleet_signal(void *data, int sig)
{
    struct watch_fleet *f = data;
    if (sig == SIGHUP)
        zr_supervisor_kill(f->sup, SIGHUP);
    else
        zr_supervisor_exit(f->sup);
}

static int on_fleet_watchdog(sd_event_source *s, uint64_t usec, void *data)
{
    struct watch_fleet *f = data;
    tell_systemd(f->o, ZR_NOTIFY_DROPPABLE, "WATCHDOG=1");
    arm(s, mono_usec() + f->watchdog_usec / 2);
    return 0;
}

/* The supervisor and its timers: a restart timer per host, the watchdog. */
static int fleet_setup(struct watch_fleet *f)
{
    struct zr_supervisor_ops ops = {
        .data = f, .child = fleet_child, .ended = fleet_ended, .signal = fleet_signal};
    int r;
    f->sup = zr_supervisor_new(f->inv->n_hosts, (const int[]){SIGTERM, SIGINT, SIGHUP, 0}, &ops,
                               &r);
    if (!f->sup)
        return r;
    sd_event *ev = zr_supervisor_event(f->sup);
    for (size_t i = 0; i < f->inv->n_hosts && r >= 0; i++) {
        r = sd_event_add_time(ev, &f->restart[i], CLOCK_MONOTONIC, UINT64_MAX,
                              TIMER_ACCURACY_USEC, on_fleet_restart, f);
        if (r >= 0)
            r = sd_event_source_set_enabled(f->restart[i], SD_EVENT_OFF);
    }
    if (r >= 0 && f->watchdog_usec)
        r = sd_event_add_time_relative(ev, &f->t_watchdog, CLOCK_MONOTONIC, 0,
                                       TIMER_ACCURACY_USEC, on_fleet_watchdog, f);
    return r;
}

static void fleet_finish(struct watch_fleet *f)
{
    for (size_t i = 0; i < f->inv->n_hosts; i++)
        f->restart[i] = sd_event_source_disable_unref(f->restart[i]);
    free(f->restart);
    f->t_watchdog = sd_event_source_disable_unref(f->t_watchdog);
    zr_supervisor_free(f->sup);
    zr_inventory_free(f->inv);
}

int zr_watch_fleet(struct zr_inventory *inv, const struct zr_watch_options *o)
{
    struct watch_fleet f = {
        .inv = inv, .o = o, .restart = zr_new0(sd_event_source *, inv->n_hosts)};
    if (!o->notify || sd_watchdog_enabled(0, &f.watchdog_usec) <= 0)
        f.watchdog_usec = 0;
    int r = fleet_setup(&f);
    if (r < 0) {
        if (o->ops.notice) {
            _cleanup_free_ char *m = zr_asprintf("cannot set up the event loop: %s", strerror(-r));
            o->ops.notice(o->ops.data, m);
        }
        fleet_finish(&f);
        return 1;
    }
    if (o->notify) {
        _cleanup_free_ char *text =
            zr_asprintf("READY=1\nSTATUS=watching %zu hosts, one process each", inv->n_hosts);
        tell_systemd(o, ZR_NOTIFY_STATE, text);
    }
    for (size_t i = 0; i < inv->n_hosts; i++)
        fleet_start(&f, i);
    zr_supervisor_loop(f.sup);
    if (o->notify)
        tell_systemd(o, ZR_NOTIFY_STATE, "STOPPING=1");
    int rc = zr_supervisor_stop(f.sup, SIGTERM);
    fleet_finish(&f);
    return rc;
}
