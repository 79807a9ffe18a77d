/* The watch loop and its supervisor for hosts: inventories.  See watch.h
 * and "watch" in docs/operations.md. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "uri.h"
#include "watch.h"

/* Events about one guest within this long become one re-read. */
#define COALESCE_S 0.5
/* libvirt sends no event when only a persistent definition changes (a
 * config-only attach or detach of another client), so the definitions
 * are compared by hash this often, this many guests a round. */
#define POLL_S 1.0
#define POLL_BATCH 64
/* A save is several inotify events (an editor's write-and-rename, a
 * close after a create): they become one re-read this long after the
 * last.  Never a guess that a writer is done: see read_inotify(). */
#define RELOAD_QUIET_S 0.2
/* A guest whose repair failed is retried after 3, 6, 12 ... s, at most 5 min. */
#define BACKOFF_FIRST_S 3.0
#define BACKOFF_MAX_S 300.0
/* Repairs of one guest closer together than this are reversals; from the
 * third on, someone else is changing the guest. */
#define REVERSAL_WINDOW_S 300.0
#define REVERSALS_WARN 3
#define RECONNECT_MAX_S 30.0
/* After SIGTERM a libvirt call in progress gets this long to return; one
 * still stuck (a daemon that stopped answering) is left behind. */
#define STOP_GRACE_S 2.0
/* A child of the fleet that died is started again after this long. */
#define RESTART_S 5.0

static int wake_fds[2] = {-1, -1};

void zr_watch_wake(void)
{
    int e = errno;
    if (wake_fds[1] >= 0) {
        ssize_t r = write(wake_fds[1], "", 1);
        (void)r; /* a full pipe already wakes the loop */
    }
    errno = e;
}

static int wake_open(struct zr_error *err)
{
    if (pipe2(wake_fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        zr_error_set(err, NULL, 0, 0, "cannot create a pipe: %s", strerror(errno));
        return -errno;
    }
    return 0;
}

static void wake_close(void)
{
    int r = wake_fds[0], w = wake_fds[1];
    wake_fds[0] = wake_fds[1] = -1;
    if (r >= 0)
        close(r);
    if (w >= 0)
        close(w);
}

static void wake_drain(void)
{
    char buf[64];
    while (read(wake_fds[0], buf, sizeof(buf)) > 0)
        ;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double realtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double backoff(double first, unsigned n, double max)
{
    return fmin(first * ldexp(1.0, (int)(n > 20 ? 20 : n)), max);
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
    double due;
    double not_before; /* backoff: no repair before this */
    unsigned failures; /* repairs that failed in a row */
    unsigned reversals;
    double last_repair;
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
    struct guest_name *by_name; /* the host's guests sorted by name */

    virConnectPtr conn; /* the events' connection; NULL while away */
    char *embed_root;   /* the embedded root this process opened, if any */
    int cb[4];
    atomic_bool lost;
    bool was_lost;
    double reconnect_at, reconnect_wait;
    double next_resync, resync_wait;
    double next_poll;
    size_t poll_next;

    pthread_mutex_t mu; /* guards names and last_event: libvirt's thread */
    char **names;
    size_t n_names;
    double last_event;

    int ino, wd_file;
    struct path_watch *paths;
    size_t n_paths;
    bool writing; /* the file was modified and not closed yet */
    double reload_at;

    uint64_t watchdog_usec;
    double next_watchdog;
    struct zr_watch_stats stats;
};

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

/* ---- libvirt's events (called on libvirt's event loop thread) ----------- */

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
    zr_watch_wake();
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
    atomic_store(&w->lost, true);
    zr_watch_wake();
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
    atomic_store(&w->lost, false);
    struct zr_connect_options co = {
        .use = ZR_CONN_EVENTS, .timeout_s = w->o->host.connect_timeout_s, .interrupt = w->o->stop};
    w->conn = zr_connect_with(host_uri(w), &co, &err);
    if (!w->conn) {
        if (!w->was_lost && !*w->o->stop)
            notice(w, "host %s: %s; retrying", w->host->name, err.message);
        w->was_lost = true; /* told once: the retries are quiet */
        zr_error_finish(&err);
        return -1;
    }
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
static void enqueue(struct watch *w, size_t g, double due)
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
static bool guest_failed(const struct zr_plan *p, size_t k)
{
    const struct zr_plan_guest *g = &p->guests[k];
    if (g->error)
        return g->error_code != ZR_ERR_NOT_FOUND && g->error_code != ZR_ERR_NOT_FOUND_NEAR;
    for (size_t i = 0; i < p->n_actions; i++)
        if (p->actions[i].guest_index == k &&
            (zr_plan_result(p, i)->result == ZR_RESULT_FAILED ||
             zr_plan_result(p, i)->result == ZR_RESULT_SKIPPED))
            return true;
    return false;
}

static bool guest_repaired(const struct zr_plan *p, size_t k)
{
    for (size_t i = 0; i < p->n_actions; i++)
        if (p->actions[i].guest_index == k && zr_plan_result(p, i)->result == ZR_RESULT_DONE)
            return true;
    return false;
}

/* A repair that worked: closer than the window to the last one it is a
 * reversal, and from the third on the guest is slowed down and named. */
static void note_repair(struct watch *w, size_t g, double now)
{
    struct guest_track *t = &w->track[g];
    bool close = t->last_repair > 0 && now - t->last_repair < REVERSAL_WINDOW_S;
    t->reversals = close ? t->reversals + 1 : 0;
    t->last_repair = now;
    if (t->reversals + 1 < REVERSALS_WARN)
        return;
    double wait = backoff(BACKOFF_FIRST_S, t->reversals - (REVERSALS_WARN - 1), BACKOFF_MAX_S);
    t->not_before = now + wait;
    _cleanup_free_ char *name = zr_escaped(w->host->guests[g].name);
    notice(w,
           "warning: guest '%s' is changed by someone else: repaired %u times within %.0f "
           "minutes; the next repair waits %.0f s",
           name, t->reversals + 1, REVERSAL_WINDOW_S / 60, wait);
}

/* Guest k of a run over the guests idx (NULL: the whole host). */
static size_t run_guest(const size_t *idx, size_t k)
{
    return idx ? idx[k] : k;
}

/* Reads the run's apply report back into its guests' tracks: backoff for
 * failures, reversals for repairs. */
static void account(struct watch *w, const struct zr_plan *done, const size_t *idx, size_t n)
{
    double now = mono();
    /* The host as a whole (no connection, a manual apply's lock) in a full
     * pass: the pass is tried again (full_pass), not each guest. */
    if (done->n_hosts && done->hosts[0].error && !idx)
        return;
    bool any = false;
    for (size_t k = 0; k < n && k < done->n_guests; k++) {
        size_t g = run_guest(idx, k);
        struct guest_track *t = &w->track[g];
        bool failed = guest_failed(done, k);
        t->in_sync = !failed && !done->guests[k].error;
        if (failed) {
            t->not_before = now + backoff(BACKOFF_FIRST_S, t->failures++, BACKOFF_MAX_S);
            t->pending = true;
            t->due = t->not_before;
            continue;
        }
        t->failures = 0;
        if (guest_repaired(done, k)) {
            any = true;
            /* The poll compares with the hash from before the repair, which
             * another change could restore: look at the result once. */
            t->recheck = true;
            note_repair(w, g, now);
        }
    }
    w->stats.repairs += any;
}

/* The pure plan of one guest as read, into p (to finish). */
static void plan_one(const struct watch *w, const struct zr_guest_state *st, struct zr_plan *p)
{
    struct zr_plan_options popts = {.config_only = w->o->host.config_only};
    zr_plan_guest(p, w->host->name, NULL, st->wanted, &st->config, st->active ? &st->live : NULL,
                  &popts);
}

/* Guest g as one read of it on the events' connection tells: in sync when
 * the pure plan of its devices has no action.  The host check of a full
 * run only refuses actions or annotates them, so a guest without any needs
 * no run: no lock, and no reading of every other guest of the host.  Keeps
 * the hash of the definition read; *attaches: the plan attaches a
 * function (which another guest may hold). */
static bool guest_in_sync(struct watch *w, size_t g, bool *attaches)
{
    struct guest_track *t = &w->track[g];
    t->hashed = false;
    *attaches = false;
    if (!w->conn)
        return false;
    struct zr_guest_state *st = zr_new0(struct zr_guest_state, 1);
    st->wanted = &w->host->guests[g];
    bool in_sync = false;
    if (zr_state_read_guest(w->conn, st) == 0 && st->config_xml) {
        t->def_hash = zr_fnv1a64(st->config_xml);
        t->hashed = true;
        struct zr_plan p = {0};
        plan_one(w, st, &p);
        in_sync = p.n_actions == 0 && p.n_guests == 1 && !p.guests[0].error;
        for (size_t i = 0; i < p.n_actions; i++)
            *attaches |= p.actions[i].op == ZR_OP_ATTACH;
        zr_plan_finish(&p);
    }
    zr_state_free(st, 1);
    return in_sync;
}

/* Whether guest `st` holds function `s`, in its definition or running. */
static bool holds(const struct zr_guest_state *st, const struct zr_pci_addr *s)
{
    for (size_t d = 0; !st->error && d < st->config.n; d++)
        if (zr_pci_addr_eq(&st->config.items[d].source, s))
            return true;
    for (size_t d = 0; !st->error && st->active && d < st->live.n; d++)
        if (zr_pci_addr_eq(&st->live.items[d].source, s))
            return true;
    return false;
}

/* Adds to the run every guest of `st` (the host's, read) that holds a
 * function guest m's plan attaches. */
static void tie_holders(const struct watch *w, const struct zr_guest_state *st, size_t m, bool *in,
                        size_t *set, size_t *n)
{
    if (st[m].error)
        return;
    struct zr_plan p = {0};
    plan_one(w, &st[m], &p);
    for (size_t j = 0; j < w->host->n_guests; j++)
        for (size_t i = 0; !in[j] && i < p.n_actions; i++)
            if (p.actions[i].op == ZR_OP_ATTACH && holds(&st[j], &p.actions[i].source)) {
                in[j] = true;
                set[(*n)++] = j;
            }
    zr_plan_finish(&p);
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
 * the host's inventory guests once, keeping their hashes. */
static size_t tied_guests(struct watch *w, size_t g, size_t **out)
{
    size_t total = w->host->n_guests, n = 0;
    _cleanup_free_ bool *in = zr_new0(bool, total);
    size_t *set = zr_new0(size_t, total);
    set[n++] = g;
    in[g] = true;
    struct zr_guest_state *st = zr_state_read(w->conn, w->host, ZR_READ_THREADS);
    for (size_t k = 0; k < n; k++)
        tie_holders(w, st, set[k], in, set, &n);
    for (size_t k = 0; k < n; k++)
        if (st[set[k]].config_xml) {
            w->track[set[k]].def_hash = zr_fnv1a64(st[set[k]].config_xml);
            w->track[set[k]].hashed = true;
        }
    zr_state_free(st, total);
    qsort(set, n, sizeof(*set), index_cmp);
    *out = set;
    return n;
}

/* Whether the whole host needs no apply: a full run's plan (no lock),
 * after hashing the definitions as they are before it, so that a change
 * from here on differs from the kept hash and the poll sees it. */
static bool host_quiet(struct watch *w)
{
    for (size_t g = 0; g < w->host->n_guests; g++)
        hash_guest(w, g);
    struct zr_host_options ho = w->o->host;
    ho.applying = false;
    _cleanup_(zr_plan_finish) struct zr_plan plan = {.has_hosts = w->inv->has_hosts};
    zr_host_run(w->host, &ho, &plan);
    bool quiet = plan_quiet(&plan);
    for (size_t g = 0; quiet && g < w->host->n_guests; g++) {
        w->track[g].in_sync = true;
        w->track[g].failures = 0;
    }
    return quiet;
}

/* Applies the guests idx[0..n) (inventory order; NULL: the whole host) in
 * one run, which locks the host only now; its report goes to the caller.
 * Returns whether the host as a whole failed. */
static bool apply_guests(struct watch *w, const size_t *idx, size_t n)
{
    struct zr_host sub = *w->host;
    _cleanup_free_ struct zr_guest *guests = idx ? zr_new0(struct zr_guest, n) : NULL;
    for (size_t k = 0; idx && k < n; k++)
        guests[k] = w->host->guests[idx[k]]; /* borrowed, as the host's are */
    if (idx) {
        sub.guests = guests;
        sub.n_guests = n;
    }
    struct zr_host_options ho = w->o->host;
    ho.applying = true;
    ho.interrupt = w->o->stop;
    _cleanup_(zr_plan_finish) struct zr_plan done = {.has_hosts = w->inv->has_hosts};
    zr_host_run(&sub, &ho, &done);
    account(w, &done, idx, n);
    pthread_mutex_lock(&w->mu);
    w->stats.last_event = w->last_event;
    pthread_mutex_unlock(&w->mu);
    if (w->o->ops.report)
        w->o->ops.report(w->o->ops.data, &done, &w->stats);
    notify_status(w, "");
    return done.n_hosts && done.hosts[0].error;
}

/* Every guest of the host; a host that failed as a whole is tried again
 * with backoff, else after the resync interval. */
static void full_pass(struct watch *w)
{
    for (size_t g = 0; g < w->host->n_guests; g++)
        w->track[g].pending = false;
    bool failed = !host_quiet(w) && !*w->o->stop && apply_guests(w, NULL, w->host->n_guests);
    if (failed) {
        w->next_resync = mono() + w->resync_wait;
        w->resync_wait = fmin(w->resync_wait * 2, w->o->resync_s);
    } else {
        w->next_resync = mono() + w->o->resync_s;
        w->resync_wait = BACKOFF_FIRST_S;
    }
    notify_status(w, "");
}

/* A re-read of guest g: nothing when it is in sync, else a repair, with
 * the guests that hold what it attaches. */
static void repair_guest(struct watch *w, size_t g)
{
    bool attaches;
    if (guest_in_sync(w, g, &attaches)) {
        w->track[g].in_sync = true;
        w->track[g].failures = 0;
        return;
    }
    if (*w->o->stop)
        return;
    size_t one = g, n = 1;
    _cleanup_free_ size_t *tied = NULL;
    if (attaches && w->conn)
        n = tied_guests(w, g, &tied);
    const size_t *idx = tied ? tied : &one;
    for (size_t k = 0; k < n; k++) /* run now, and accounted for by this run */
        w->track[idx[k]].pending = false;
    apply_guests(w, idx, n);
}

static void run_due(struct watch *w)
{
    bool ran = false;
    for (size_t g = 0; g < w->host->n_guests && !*w->o->stop; g++) {
        struct guest_track *t = &w->track[g];
        double now = mono();
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
    double now = mono();
    for (size_t i = 0; i < n; i++) {
        long g = guest_index(w, names[i]);
        if (g >= 0)
            enqueue(w, (size_t)g, now + COALESCE_S);
        free(names[i]);
    }
    free(names);
}

/* One round of the definition poll: a guest whose persistent definition
 * hashes differently from the last round gets a re-read. */
static void poll_definitions(struct watch *w)
{
    double now = mono();
    size_t n = w->host->n_guests;
    if (!w->conn || now < w->next_poll || n == 0)
        return;
    w->next_poll = now + POLL_S;
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
        w->reload_at = 0;
        return;
    }
    bool settled = ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_DELETE_SELF |
                               IN_MOVE_SELF | IN_MOVED_FROM);
    if (settled || (pw && !pw->file))
        w->writing = false;
    if (!w->writing && !(ev->mask & IN_IGNORED))
        w->reload_at = mono() + RELOAD_QUIET_S;
}

/* Reads what inotify has. */
static void read_inotify(struct watch *w)
{
    union {
        struct inotify_event ev;
        char buf[4096];
    } u;
    ssize_t n;
    while ((n = read(w->ino, u.buf, sizeof(u.buf))) > 0) {
        for (char *p = u.buf; p < u.buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            take_inotify(w, ev);
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
        w->reconnect_at = 0;
        w->reconnect_wait = 1;
        if (watch_connect(w) < 0)
            w->reconnect_at = mono() + w->reconnect_wait;
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
            zr_asprintf("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)(mono() * 1e6));
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

/* ---- the loop -------------------------------------------------------------- */

static void connection_lost(struct watch *w)
{
    watch_disconnect(w);
    w->was_lost = true;
    w->reconnect_wait = 1;
    w->reconnect_at = mono() + w->reconnect_wait;
    notice(w, "host %s: lost the connection to %s; reconnecting", w->host->name,
           host_uri(w) ? host_uri(w) : "libvirt's default URI");
    notify_status(w, "");
}

static void reconnect(struct watch *w)
{
    if (watch_connect(w) < 0) {
        w->was_lost = true;
        w->reconnect_wait = fmin(w->reconnect_wait * 2, RECONNECT_MAX_S);
        w->reconnect_at = mono() + w->reconnect_wait;
        return;
    }
    if (w->was_lost)
        notice(w, "host %s: connected again; running a full pass", w->host->name);
    w->was_lost = false;
    for (size_t g = 0; g < w->host->n_guests; g++)
        w->track[g].hashed = false;
    full_pass(w);
}

static double next_deadline(const struct watch *w)
{
    double d = mono() + 1.0;
    if (w->conn) {
        d = fmin(d, fmin(w->next_resync, w->next_poll));
    } else {
        d = fmin(d, w->reconnect_at);
    }
    if (w->reload_at > 0)
        d = fmin(d, w->reload_at);
    if (w->watchdog_usec)
        d = fmin(d, w->next_watchdog);
    for (size_t g = 0; g < w->host->n_guests; g++)
        if (w->track[g].pending)
            d = fmin(d, fmax(w->track[g].due, w->track[g].not_before));
    return d;
}

static void wait_for(struct watch *w, double deadline)
{
    struct pollfd pfd[2] = {{.fd = wake_fds[0], .events = POLLIN},
                            {.fd = w->ino, .events = POLLIN}};
    double ms = (deadline - mono()) * 1000;
    int timeout = ms <= 0 ? 0 : ms > 1000 ? 1000 : (int)ceil(ms);
    if (poll(pfd, w->ino >= 0 ? 2 : 1, timeout) <= 0)
        return;
    if (pfd[0].revents)
        wake_drain();
    if (w->ino >= 0 && pfd[1].revents)
        read_inotify(w);
}

static void watchdog(struct watch *w)
{
    if (!w->watchdog_usec || mono() < w->next_watchdog)
        return;
    tell_systemd(w->o, ZR_NOTIFY_DROPPABLE, "WATCHDOG=1");
    w->next_watchdog = mono() + (double)w->watchdog_usec / 2e6;
}

static void loop_once(struct watch *w)
{
    if (*w->o->reload) {
        *w->o->reload = 0;
        w->reload_at = 0;
        reload(w);
    }
    if (w->reload_at > 0 && mono() >= w->reload_at) {
        w->reload_at = 0;
        reload(w);
    }
    if (atomic_exchange(&w->lost, false) && w->conn)
        connection_lost(w);
    if (!w->conn && mono() >= w->reconnect_at)
        reconnect(w);
    if (w->conn && mono() >= w->next_resync)
        full_pass(w);
    take_events(w);
    run_due(w);
    poll_definitions(w);
    watchdog(w);
    if (!*w->o->stop)
        wait_for(w, next_deadline(w));
}

/* ---- the stop: prompt, even when libvirt is not ----------------------------
 *
 * The loop sees SIGTERM between calls; a call to a daemon that stopped
 * answering returns only when keepalive gives the connection up (about
 * 20 s), and the disconnect would wait on that daemon again.  A thread of
 * its own gives the stop STOP_GRACE_S, then ends the process as a normal
 * stop: nothing else can take the main thread out of libvirt's wait. */

static sem_t stop_sem; /* posted by zr_watch_stopping(), and when done */

void zr_watch_stopping(void)
{
    int e = errno;
    sem_post(&stop_sem);
    errno = e;
}

struct stop_guard {
    pthread_t thread;
    bool started, finished; /* finished: the stop is complete */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *host_name;
    bool notify;
    struct zr_watch_ops ops;
};

static void *stop_guard_main(void *arg)
{
    struct stop_guard *g = arg;
    while (sem_wait(&stop_sem) < 0 && errno == EINTR)
        ;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)STOP_GRACE_S;
    pthread_mutex_lock(&g->mu);
    while (!g->finished && pthread_cond_timedwait(&g->cv, &g->mu, &ts) != ETIMEDOUT)
        ;
    bool finished = g->finished;
    pthread_mutex_unlock(&g->mu);
    if (finished)
        return NULL;
    if (g->ops.notice) {
        _cleanup_free_ char *m =
            zr_asprintf("host %s: stopped without waiting any longer for a libvirt call that "
                        "has not returned %.0f s after the stop",
                        g->host_name, STOP_GRACE_S);
        g->ops.notice(g->ops.data, m);
    }
    if (g->notify)
        sd_notify(0, "STOPPING=1");
    _exit(0);
}

static void stop_guard_start(struct stop_guard *g, const struct watch *w)
{
    *g = (struct stop_guard){
        .host_name = zr_strdup(w->host_name), .notify = w->o->notify, .ops = w->o->ops};
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    sem_init(&stop_sem, 0, *w->o->stop ? 1 : 0);
    g->started = pthread_create(&g->thread, NULL, stop_guard_main, g) == 0;
}

static void stop_guard_finish(struct stop_guard *g)
{
    pthread_mutex_lock(&g->mu);
    g->finished = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (g->started) {
        sem_post(&stop_sem); /* a stop without zr_watch_stopping() */
        pthread_join(g->thread, NULL);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->host_name);
}

static void watch_finish(struct watch *w)
{
    watch_disconnect(w);
    if (w->ino >= 0) {
        unwatch_paths(w);
        close(w->ino);
    }
    for (size_t i = 0; i < w->n_names; i++)
        free(w->names[i]);
    free(w->names);
    free(w->track);
    free(w->by_name);
    free(w->host_name);
    free(w->embed_root);
    zr_inventory_free(w->inv);
    pthread_mutex_destroy(&w->mu);
    wake_close();
}

int zr_watch_run(struct zr_inventory *inv, const struct zr_watch_options *o, struct zr_error *err)
{
    struct watch w = {.o = o,
                      .inv = inv,
                      .cb = {-1, -1, -1, -1},
                      .ino = -1,
                      .wd_file = -1,
                      .reconnect_wait = 1,
                      .resync_wait = BACKOFF_FIRST_S};
    pthread_mutex_init(&w.mu, NULL);
    w.host_name = zr_strdup(o->host_name);
    w.host = find_host(inv, w.host_name);
    int r = !w.host ? -ENOENT : wake_open(err);
    if (!w.host)
        zr_error_set(err, NULL, 0, 0, "no host '%s' in the inventory", o->host_name);
    if (r == 0)
        r = zr_libvirt_init(err);
    if (r == 0)
        r = inventory_watch(&w, err);
    if (r < 0) {
        watch_finish(&w);
        return r;
    }
    w.track = zr_new0(struct guest_track, w.host->n_guests);
    w.by_name = guests_by_name(w.host);
    note_embed_root(&w);
    if (o->notify && sd_watchdog_enabled(0, &w.watchdog_usec) <= 0)
        w.watchdog_usec = 0;
    struct stop_guard guard;
    stop_guard_start(&guard, &w);
    /* The first pass, then ready: also when the host is away (it is
     * retried, and the pass after the reconnect converges it). */
    if (watch_connect(&w) < 0)
        w.reconnect_at = mono() + w.reconnect_wait;
    full_pass(&w);
    notify_status(&w, "READY=1\n");
    while (!*o->stop)
        loop_once(&w);
    if (o->notify)
        tell_systemd(o, ZR_NOTIFY_STATE, "STOPPING=1");
    watch_finish(&w);
    stop_guard_finish(&guard);
    return 0;
}

/* ---- several hosts: one process each ---------------------------------------- */

struct fleet_child {
    pid_t pid; /* 0: not running */
    double restart_at;
    bool ended; /* exited 0 after a stop: not started again */
};

static pid_t start_child(struct zr_inventory *inv, const struct zr_watch_options *o, size_t i)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid < 0 ? 0 : pid;
    wake_close();
    /* Only the supervisor talks to systemd (NotifyAccess=main). */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    struct zr_watch_options co = *o;
    co.host_name = inv->hosts[i].name;
    co.notify = false;
    struct zr_error err = {0};
    int r = zr_watch_run(inv, &co, &err);
    if (r < 0 && o->ops.notice)
        o->ops.notice(o->ops.data, err.message);
    zr_error_finish(&err);
    /* _exit: the parent's stdio buffers and atexit handlers are the
     * parent's. */
    _exit(r < 0 ? 1 : 0);
}

/* Children that ended: one that failed is started again later. */
static void reap(struct fleet_child *c, size_t n, const struct zr_inventory *inv,
                 const struct zr_watch_options *o)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
        for (size_t i = 0; i < n; i++) {
            if (c[i].pid != pid)
                continue;
            c[i].pid = 0;
            c[i].ended = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            c[i].restart_at = mono() + RESTART_S;
            if (!c[i].ended && o->ops.notice) {
                _cleanup_free_ char *m = zr_asprintf(
                    "host %s: its watch process ended (status 0x%x); starting it again in %.0f s",
                    inv->hosts[i].name, (unsigned)st, RESTART_S);
                o->ops.notice(o->ops.data, m);
            }
        }
}

static void fleet_signal(struct fleet_child *c, size_t n, int sig)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].pid > 0)
            kill(c[i].pid, sig);
}

/* Stops the children and waits for them; returns 1 when one failed. */
static int fleet_stop(struct fleet_child *c, size_t n)
{
    fleet_signal(c, n, SIGTERM);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int st;
        if (c[i].pid > 0 && waitpid(c[i].pid, &st, 0) == c[i].pid &&
            !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            rc = 1;
    }
    return rc;
}

int zr_watch_fleet(struct zr_inventory *inv, const struct zr_watch_options *o)
{
    struct zr_error err = {0};
    if (wake_open(&err) < 0) {
        if (o->ops.notice)
            o->ops.notice(o->ops.data, err.message);
        zr_error_finish(&err);
        zr_inventory_free(inv);
        return 1;
    }
    size_t n = inv->n_hosts;
    _cleanup_free_ struct fleet_child *c = zr_new0(struct fleet_child, n);
    uint64_t wd = 0;
    if (!o->notify || sd_watchdog_enabled(0, &wd) <= 0)
        wd = 0;
    if (o->notify) {
        _cleanup_free_ char *text =
            zr_asprintf("READY=1\nSTATUS=watching %zu hosts, one process each", n);
        tell_systemd(o, ZR_NOTIFY_STATE, text);
    }
    while (!*o->stop) {
        for (size_t i = 0; i < n; i++)
            if (!c[i].pid && !c[i].ended && mono() >= c[i].restart_at)
                c[i].pid = start_child(inv, o, i);
        if (*o->reload) {
            *o->reload = 0;
            fleet_signal(c, n, SIGHUP);
        }
        if (wd)
            tell_systemd(o, ZR_NOTIFY_DROPPABLE, "WATCHDOG=1");
        struct pollfd pfd = {.fd = wake_fds[0], .events = POLLIN};
        double ms = wd ? fmin(1000, (double)wd / 2e3) : 1000;
        if (poll(&pfd, 1, (int)ms) > 0)
            wake_drain();
        reap(c, n, inv, o);
    }
    if (o->notify)
        tell_systemd(o, ZR_NOTIFY_STATE, "STOPPING=1");
    int rc = fleet_stop(c, n);
    zr_inventory_free(inv);
    wake_close();
    return rc;
}
