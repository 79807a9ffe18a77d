#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "domain.h"
#include "pool.h"
#include "state.h"
#include "uri.h"
#include "xml.h"

static pthread_once_t base_once = PTHREAD_ONCE_INIT, event_once = PTHREAD_ONCE_INIT;
static int base_status, event_status;

/* libvirt's remote client stops and restarts the event loop's watch on its
 * socket around every call, and each time the loop's thread wakes up to
 * find nothing to do: two thread switches per call, which cost apply (the
 * loop bounds its calls with keepalive) half again plan's CPU time for the
 * same reads (docs/design.md, "Performance (issue 27)", fifth round).  So
 * the thread pauses between iterations: the wake-ups of a pause are
 * handled in one, and a keepalive, a domain event or a lost connection is
 * seen at most this much later.  Not while the loop also serves an
 * embedded driver: its QEMU monitor replies come through the loop, one
 * round trip after another. */
#define LOOP_PAUSE_NSEC (20 * 1000 * 1000L)
static atomic_bool loop_serves_embedded;

static void *event_loop(void *arg)
{
    for (;;) {
        if (virEventRunDefaultImpl() < 0)
            break;
        if (!atomic_load(&loop_serves_embedded))
            nanosleep(&(struct timespec){.tv_nsec = LOOP_PAUSE_NSEC}, NULL);
    }
    return NULL;
}

/* libvirt prints errors to stderr by default; we report them ourselves. */
static void silent_error(void *data, virErrorPtr e)
{
}

static void base_setup(void)
{
    zr_xml_init();
    virSetErrorFunc(NULL, silent_error);
    if (virInitialize() < 0)
        base_status = -EIO;
}

static void event_setup(void)
{
    if (virEventRegisterDefaultImpl() < 0) {
        event_status = -EIO;
        return;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, event_loop, NULL) != 0) {
        event_status = -EAGAIN;
        return;
    }
    pthread_detach(t);
}

static int libvirt_setup(bool events, struct zr_error *err)
{
    pthread_once(&base_once, base_setup);
    if (base_status < 0) {
        zr_error_set(err, NULL, 0, 0, "cannot initialise libvirt: %s", zr_libvirt_error());
        return base_status;
    }
    if (!events)
        return 0;
    pthread_once(&event_once, event_setup);
    if (event_status < 0)
        zr_error_set(err, NULL, 0, 0, "cannot start libvirt's event loop: %s", zr_libvirt_error());
    return event_status;
}

int zr_libvirt_init(struct zr_error *err)
{
    return libvirt_setup(true, err);
}

/* The one place that decides whether a connection gets libvirt's event
 * loop.  It is needed for domain events (apply's live detach, watch), by
 * the embedded driver, and for libvirt's default URI, which may name an
 * embedded root and is not known before the open.  A run that only reads a
 * daemon does without: with a loop registered, libvirt's remote client
 * wakes the loop's thread around every call, which made reading a host's
 * guests take half again as much CPU time until the thread pauses between
 * iterations (event_loop()), and still a few per cent since.  Once
 * started, the loop serves every later connection of the process. */
static bool needs_event_loop(const char *uri, enum zr_conn_use use)
{
    if (use == ZR_CONN_EVENTS)
        return true;
    if (!uri || !*uri)
        uri = getenv("LIBVIRT_DEFAULT_URI");
    return !uri || !*uri || zr_uri_may_be_embedded(uri);
}

/* Whether the open talks to a daemon, which may fail to answer.  The
 * embedded driver runs in this process and its first open may probe QEMU
 * for long: that wait has no deadline, only a signal ends it.  libvirt's
 * own default (no URI anywhere) is a daemon's. */
static bool daemon_uri(const char *uri)
{
    if (!uri || !*uri)
        uri = getenv("LIBVIRT_DEFAULT_URI");
    return !uri || !*uri || !zr_uri_may_be_embedded(uri);
}

zr_error_code zr_libvirt_error_code(zr_error_code fallback)
{
    virErrorPtr e = virGetLastError();
    if (!e)
        return fallback;
    switch (e->code) {
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_AUTH_CANCELLED:
    case VIR_ERR_AUTH_UNAVAILABLE:
        return ZR_ERR_AUTH;
    case VIR_ERR_NO_DOMAIN:
        return ZR_ERR_NOT_FOUND;
    case VIR_ERR_SYSTEM_ERROR:
        /* int1 is the errno of a failed system call. Only the client's
         * socket (libvirt's RPC layer) tells a missing daemon or a refused
         * user; the daemon's own calls fail with the same errnos for host
         * reasons (libvirt 11.3's live attach: EPERM raising QEMU's locked-
         * memory limit, ENOENT reading the kernel's modules.alias). */
        if (e->domain != VIR_FROM_RPC)
            break;
        if (e->int1 == EACCES || e->int1 == EPERM)
            return ZR_ERR_AUTH;
        if (e->int1 == ENOENT || e->int1 == ECONNREFUSED)
            return ZR_ERR_NO_DAEMON;
        break;
    default:
        break;
    }
    /* Where libvirt has no code of its own for the cause, only its text
     * tells: polkit without a system bus (an internal error), and a host
     * without VFIO (one of many unsupported configurations). */
    const char *m = e->message ? e->message : "";
    if (strstr(m, "Unable to get system bus connection"))
        return ZR_ERR_AUTH;
    if (strstr(m, "support VFIO PCI passthrough") ||
        strstr(m, "support passthrough of host PCI devices"))
        return ZR_ERR_NO_VFIO;
    return fallback;
}

const char *zr_libvirt_error(void)
{
    const char *m = virGetLastErrorMessage();
    return m && *m ? m : "unknown libvirt error";
}

/* ---- opening a connection, with a deadline -------------------------------
 *
 * A daemon that accepts the socket but never answers (stopped, or stuck
 * behind a lock) would keep virConnectOpen() waiting for ever, and libvirt
 * restarts its poll() on EINTR, so a signal would not end the wait either.
 * The open therefore runs on a thread of its own while the caller waits
 * for it with a deadline, looking at the interrupt flag as it waits.  An
 * open that does not come back in time is abandoned: its thread closes
 * the connection itself should it ever get one. */

/* How often a wait looks at the interrupt flag: a signal handler cannot
 * wake a condition variable. */
#define INTERRUPT_POLL_S 0.1

struct pending_open {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when done */
    unsigned refs;     /* the opener's and the waiter's */
    bool done;
    char *uri;
    virConnectPtr conn;
    zr_error_code code; /* libvirt's error is per thread: taken on the opener's */
    char *message;
    struct pending_open *next; /* in `abandoned` */
    bool listed;
    /* Started ahead of its caller (zr_connect_early()): kept for it once
     * done, where an abandoned open is closed. */
    bool early;
};

/* Opens given up while their daemon had not answered, at most one per
 * URI, each holding a reference: a later open of the same URI waits for
 * that one instead of starting another, so a daemon that stays stopped
 * under watch's reconnects holds one thread, not one per try.  Lock
 * order: abandoned_mu, then a pending_open's mu. */
static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pending_open *abandoned;

/* Takes `p` out of `abandoned` (under abandoned_mu); the list's reference
 * goes to the caller. */
static void unlist(struct pending_open *p)
{
    for (struct pending_open **q = &abandoned; *q; q = &(*q)->next)
        if (*q == p) {
            *q = p->next;
            p->listed = false;
            return;
        }
}

static void pending_unref(struct pending_open *p)
{
    pthread_mutex_lock(&p->mu);
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (!last)
        return;
    if (p->conn)
        virConnectClose(p->conn);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->uri);
    free(p->message);
    free(p);
}

static void *open_thread(void *arg)
{
    struct pending_open *p = arg;
    virConnectPtr c = virConnectOpen(p->uri);
    pthread_mutex_lock(&abandoned_mu);
    pthread_mutex_lock(&p->mu);
    p->conn = c;
    if (!c) {
        p->code = zr_libvirt_error_code(ZR_ERR_CONNECT);
        p->message = zr_strdup(zr_libvirt_error());
    }
    p->done = true;
    bool listed = p->listed && !p->early;
    if (listed) /* nobody waits: too late to be of use */
        unlist(p);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&abandoned_mu);
    if (listed)
        pending_unref(p);
    pending_unref(p); /* closes c when the waiter has gone */
    return NULL;
}

/* `inline_open`: when no thread can be started, open on this one, without
 * a deadline; else give up (NULL). */
static struct pending_open *pending_start(const char *uri, bool inline_open)
{
    struct pending_open *p = zr_new0(struct pending_open, 1);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->uri = uri ? zr_strdup(uri) : NULL;
    p->refs = 2;
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int r = pthread_create(&t, &ta, open_thread, p);
    pthread_attr_destroy(&ta);
    if (r != 0 && !inline_open) {
        p->refs = 1;
        pending_unref(p);
        return NULL;
    }
    if (r != 0) /* no thread to spare: open on this one, without a deadline */
        open_thread(p);
    return p;
}

/* Opens being waited for in this process, for zr_connect_waiting(). */
static atomic_int waiting;

bool zr_connect_waiting(void)
{
    return atomic_load(&waiting) > 0;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timespec timespec_at(double t)
{
    double s = floor(t);
    return (struct timespec){.tv_sec = (time_t)s, .tv_nsec = (long)((t - s) * 1e9)};
}

/* Whether an open of `uri` is listed (under abandoned_mu). */
static bool listed_for(const char *uri)
{
    for (struct pending_open *q = abandoned; q; q = q->next)
        if (zr_streq(q->uri, uri))
            return true;
    return false;
}

/* The abandoned open of `uri` (taken out of the list, its reference now
 * the caller's), or a new one. */
static struct pending_open *pending_adopt(const char *uri)
{
    pthread_mutex_lock(&abandoned_mu);
    struct pending_open *p = abandoned;
    while (p && !zr_streq(p->uri, uri))
        p = p->next;
    if (p)
        unlist(p);
    pthread_mutex_unlock(&abandoned_mu);
    return p ? p : pending_start(uri, true);
}

/* Gives up waiting for `p`: unless it finished meanwhile, it is listed
 * for the next open of its URI (when none is listed for it yet). */
static void pending_abandon(struct pending_open *p)
{
    pthread_mutex_lock(&abandoned_mu);
    bool taken = listed_for(p->uri);
    pthread_mutex_lock(&p->mu);
    if (!p->done && !taken) {
        p->refs++;
        p->listed = true;
        p->next = abandoned;
        abandoned = p;
    }
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&abandoned_mu);
    pending_unref(p);
}

void zr_connect_early(const char *uri, enum zr_conn_use use)
{
    struct zr_error err = {0};
    if (!uri || !daemon_uri(uri) || libvirt_setup(needs_event_loop(uri, use), &err) < 0) {
        zr_error_finish(&err);
        return;
    }
    /* One critical section, so that a URI is listed at most once; the
     * opener takes abandoned_mu only when done, so it waits for the list. */
    pthread_mutex_lock(&abandoned_mu);
    struct pending_open *p = listed_for(uri) ? NULL : pending_start(uri, false);
    if (p) {
        pthread_mutex_lock(&p->mu);
        p->early = true;
        p->listed = true; /* the list takes this function's reference */
        p->next = abandoned;
        abandoned = p;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&abandoned_mu);
}

/* Waits for the open until `deadline` (CLOCK_MONOTONIC seconds; INFINITY:
 * none) or a signal; returns whether it is done.  One that is not is
 * abandoned to its thread. */
static bool pending_wait(struct pending_open *p, double deadline, volatile sig_atomic_t *interrupt)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        double now = mono_now();
        if (p->done || (interrupt && *interrupt) || now >= deadline)
            break;
        struct timespec ts = timespec_at(fmin(deadline, now + INTERRUPT_POLL_S));
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    bool done = p->done;
    pthread_mutex_unlock(&p->mu);
    return done;
}

/* Every call on a connection that has the event loop is bounded too:
 * libvirt's keepalive closes one whose daemon stops answering after about
 * interval * (count + 1) seconds, which fails the call in progress.
 * Without the loop (plan on a daemon URI) libvirt cannot send keepalives. */
static void bound_calls(virConnectPtr c, double timeout_s)
{
    int interval = (int)fmax(1, floor(timeout_s / 6));
    int count = (int)fmax(1, floor(timeout_s / interval) - 1);
    if (virConnectSetKeepAlive(c, interval, (unsigned)count) < 0)
        virResetLastError(); /* a driver without keepalive (embed, test) */
}

static const char *uri_name(const char *uri)
{
    return uri ? uri : "libvirt's default URI";
}

virConnectPtr zr_connect_with(const char *uri, const struct zr_connect_options *o,
                              struct zr_error *err)
{
    bool events = needs_event_loop(uri, o->use);
    if (!daemon_uri(uri))
        atomic_store(&loop_serves_embedded, true);
    if (libvirt_setup(events, err) < 0)
        return NULL;
    if (o->interrupt && *o->interrupt) {
        zr_error_setc(err, ZR_ERR_INTERRUPTED, "not connected to %s: interrupted by signal %d",
                      uri_name(uri), (int)*o->interrupt);
        return NULL;
    }
    bool daemon = daemon_uri(uri);
    double timeout_s = o->timeout_s > 0 ? o->timeout_s : ZR_CONNECT_TIMEOUT_S;
    atomic_fetch_add(&waiting, 1);
    struct pending_open *p = pending_adopt(uri);
    bool done = pending_wait(p, daemon ? mono_now() + timeout_s : INFINITY, o->interrupt);
    atomic_fetch_sub(&waiting, 1);
    virConnectPtr c = NULL;
    if (!done && o->interrupt && *o->interrupt)
        zr_error_setc(err, ZR_ERR_INTERRUPTED,
                      "not connected to %s: interrupted by signal %d while waiting for it",
                      uri_name(uri), (int)*o->interrupt);
    else if (!done)
        zr_error_setc(err, ZR_ERR_CONNECT, "%s did not answer within %g s", uri_name(uri),
                      timeout_s);
    else if (!p->conn)
        zr_error_setc(err, p->code, "cannot connect to %s: %s", uri_name(uri), p->message);
    else
        c = TAKE_PTR(p->conn);
    if (done)
        pending_unref(p);
    else
        pending_abandon(p);
    if (c && events && daemon)
        bound_calls(c, timeout_s);
    return c;
}

virConnectPtr zr_connect(const char *uri, struct zr_error *err)
{
    return zr_connect_with(uri, &(struct zr_connect_options){.use = ZR_CONN_EVENTS}, err);
}

char *zr_connect_uri(virConnectPtr conn)
{
    char *u = virConnectGetURI(conn);
    char *r = zr_strdup(u);
    free(u);
    return r;
}

/* One flavour's XML into *keep; on failure *error says why. */
static int fetch_flavour(virDomainPtr dom, unsigned flags, const char *flavour, char **keep,
                         char **error)
{
    char *xml = virDomainGetXMLDesc(dom, flags);
    if (!xml) {
        *error = zr_asprintf("cannot read the %s definition: %s", flavour, zr_libvirt_error());
        return -EIO;
    }
    free(*keep);
    *keep = xml;
    return 0;
}

/* The in-scope devices of one flavour's XML into *out; on failure *error
 * (NULL before) says why. */
static int parse_flavour(const char *xml, const char *guest, const char *flavour,
                         struct zr_device_list *out, char **error)
{
    _cleanup_free_ char *what = zr_asprintf("%s (%s)", guest, flavour);
    struct zr_error e = {0};
    int r = zr_domain_parse_devices(xml, strlen(xml), what, out, &e);
    if (r < 0) {
        *error = zr_strdup(e.message);
        zr_error_finish(&e);
    }
    return r;
}

/* A guest's read, first half: its round trips to the daemon (the lookup
 * and state where the listing gave none, then its XML).  On failure
 * st->error says why. */
static int fetch_guest(virConnectPtr conn, struct zr_guest_state *st)
{
    const char *name = st->wanted->name;

    zr_device_list_finish(&st->config);
    zr_device_list_finish(&st->live);
    free(st->error);
    st->error = NULL;
    st->error_code = ZR_ERR_OTHER;

    if (st->listed && !st->dom) {
        st->error = zr_asprintf("guest '%s' not found", name);
        st->error_code = ZR_ERR_NOT_FOUND;
        return -ENOENT;
    }
    if (!st->dom) {
        st->dom = virDomainLookupByName(conn, name);
        if (!st->dom) {
            virErrorPtr e = virGetLastError();
            st->error_code = zr_libvirt_error_code(ZR_ERR_LIBVIRT_REFUSED);
            if (e && e->code == VIR_ERR_NO_DOMAIN)
                st->error = zr_asprintf("guest '%s' not found", name);
            else
                st->error = zr_asprintf("cannot look up guest '%s': %s", name, zr_libvirt_error());
            return -ENOENT;
        }
    }
    if (!st->listed) {
        int active = virDomainIsActive(st->dom);
        if (active < 0) {
            st->error =
                zr_asprintf("cannot read the state of guest '%s': %s", name, zr_libvirt_error());
            return -EIO;
        }
        st->active = active == 1;
    }
    int r =
        fetch_flavour(st->dom, VIR_DOMAIN_XML_INACTIVE, "persistent", &st->config_xml, &st->error);
    if (r == 0 && st->active)
        r = fetch_flavour(st->dom, 0, "live", &st->live_xml, &st->error);
    return r;
}

/* The second half: the devices of the XML fetch_guest() got. */
static int parse_guest(struct zr_guest_state *st)
{
    const char *name = st->wanted->name;
    int r = parse_flavour(st->config_xml, name, "persistent", &st->config, &st->error);
    if (r == 0 && st->active)
        r = parse_flavour(st->live_xml, name, "live", &st->live, &st->error);
    return r;
}

int zr_state_read_guest(virConnectPtr conn, struct zr_guest_state *st)
{
    int r = fetch_guest(conn, st);
    return r < 0 ? r : parse_guest(st);
}

/* The guests' and node devices' reads run on zr_pool_run()'s threads,
 * sharing one connection: each XMLDesc is a round trip to the daemon, and a
 * few in flight hide the latency.  A host's guests are fetched first and
 * parsed afterwards, each half on the pool: a parse between two round trips
 * costs its thread about twice as much CPU, and the daemon more too
 * (docs/design.md, "Performance (issue 27)", sixth round). */

struct read_ctx {
    virConnectPtr conn;
    struct zr_guest_state *states;
};

static void fetch_one(void *ctx, unsigned worker, size_t i)
{
    (void)worker;
    struct read_ctx *c = ctx;
    fetch_guest(c->conn, &c->states[i]);
}

static void parse_one(void *ctx, unsigned worker, size_t i)
{
    (void)worker;
    struct read_ctx *c = ctx;
    if (!c->states[i].error)
        parse_guest(&c->states[i]);
}

/* A listed domain and its name, to sort by. */
struct named_dom {
    const char *name;
    virDomainPtr dom;
};

static int named_dom_cmp(const void *a, const void *b)
{
    return strcmp(((const struct named_dom *)a)->name, ((const struct named_dom *)b)->name);
}

int zr_domain_listing_ensure(virConnectPtr conn, struct zr_domain_listing *l, struct zr_error *err)
{
    if (l->listed)
        return 0;
    virDomainPtr *all = NULL;
    int n = virConnectListAllDomains(conn, &all, 0);
    if (n < 0) {
        l->failures++;
        zr_error_set(err, NULL, 0, 0, "cannot list the host's guests: %s", zr_libvirt_error());
        return -EIO;
    }
    _cleanup_free_ struct named_dom *v = zr_new0(struct named_dom, (size_t)n + 1);
    for (int i = 0; i < n; i++)
        v[i] = (struct named_dom){virDomainGetName(all[i]), all[i]};
    if (n > 0)
        qsort(v, (size_t)n, sizeof(*v), named_dom_cmp);
    l->names = zr_new0(const char *, (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        all[i] = v[i].dom;
        l->names[i] = v[i].name;
    }
    l->doms = all;
    l->n = (size_t)n;
    l->listed = true;
    return 0;
}

void zr_domain_listing_finish(struct zr_domain_listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        virDomainFree(l->doms[i]);
    free(l->doms);
    free(l->names);
    zr_name_index_finish(&l->index);
    *l = (struct zr_domain_listing){0};
}

/* The listed domain named `name`, or NULL (borrowed). */
static virDomainPtr listing_find(const struct zr_domain_listing *l, const char *name)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->names[mid], name);
        if (c == 0)
            return l->doms[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* One listing of the host's domains replaces a lookup and an IsActive round
 * trip per guest: a listed domain carries its id, which libvirt sets to -1
 * for an inactive one.  On a daemon that cannot list, each guest is looked
 * up instead. */
static void resolve_domains(virConnectPtr conn, struct zr_guest_state *states, size_t n,
                            struct zr_domain_listing *listing)
{
    struct zr_error err = {0};
    if (zr_domain_listing_ensure(conn, listing, &err) < 0) {
        zr_error_finish(&err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        virDomainPtr d = listing_find(listing, states[i].wanted->name);
        states[i].listed = true;
        if (d) {
            states[i].dom = d;
            states[i].borrowed = true;
            states[i].active = virDomainGetID(d) != (unsigned int)-1;
        }
    }
}

struct zr_guest_state *zr_state_read_listed(virConnectPtr conn, const struct zr_host *host,
                                            unsigned jobs, struct zr_domain_listing *listing)
{
    struct zr_guest_state *states = zr_new0(struct zr_guest_state, host->n_guests);
    for (size_t i = 0; i < host->n_guests; i++)
        states[i].wanted = &host->guests[i];
    resolve_domains(conn, states, host->n_guests, listing);
    struct read_ctx c = {.conn = conn, .states = states};
    zr_pool_run(host->n_guests, jobs, fetch_one, &c);
    zr_pool_run(host->n_guests, jobs, parse_one, &c);
    return states;
}

struct zr_guest_state *zr_state_read(virConnectPtr conn, const struct zr_host *host, unsigned jobs)
{
    struct zr_domain_listing listing = {0};
    struct zr_guest_state *states = zr_state_read_listed(conn, host, jobs, &listing);
    zr_state_own_domains(states, host->n_guests);
    zr_domain_listing_finish(&listing);
    return states;
}

void zr_state_own_domains(struct zr_guest_state *states, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!states[i].borrowed)
            continue;
        if (virDomainRef(states[i].dom) < 0) /* cannot fail on a live handle */
            abort();
        states[i].borrowed = false;
    }
}

void zr_state_free(struct zr_guest_state *states, size_t n)
{
    if (!states)
        return;
    for (size_t i = 0; i < n; i++) {
        if (states[i].dom && !states[i].borrowed)
            virDomainFree(states[i].dom);
        zr_device_list_finish(&states[i].config);
        zr_device_list_finish(&states[i].live);
        free(states[i].error);
        free(states[i].config_xml);
        free(states[i].live_xml);
    }
    free(states);
}

char *zr_state_near_miss_listed(virConnectPtr conn, struct zr_domain_listing *l, const char *name)
{
    struct zr_error err = {0};
    if (!l->listed && (l->failures > 0 || zr_domain_listing_ensure(conn, l, &err) < 0)) {
        zr_error_finish(&err);
        return NULL;
    }
    if (!l->indexed) {
        zr_name_index_init(&l->index, l->names, l->n);
        l->indexed = true;
    }
    const char *best = zr_name_index_nearest(&l->index, name);
    return best ? zr_strdup(best) : NULL;
}

struct pci_entry {
    struct zr_pci_addr addr;
    virNodeDevicePtr dev;
};

static int pci_entry_cmp(const void *a, const void *b)
{
    return zr_pci_addr_cmp(&((const struct pci_entry *)a)->addr,
                           &((const struct pci_entry *)b)->addr);
}

int zr_state_host_pci(virConnectPtr conn, struct zr_host_pci *out, struct zr_error *err)
{
    virNodeDevicePtr *devs = NULL;
    *out = (struct zr_host_pci){0};
    int count =
        virConnectListAllNodeDevices(conn, &devs, VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV);
    if (count < 0) {
        virErrorPtr e = virGetLastError();
        if (e && (e->code == VIR_ERR_NO_SUPPORT || e->code == VIR_ERR_OPERATION_UNSUPPORTED))
            return -ENOTSUP;
        zr_error_set(err, NULL, 0, 0, "cannot list the host's PCI devices: %s", zr_libvirt_error());
        return -EIO;
    }
    _cleanup_free_ struct pci_entry *entries = zr_new0(struct pci_entry, (size_t)count);
    size_t k = 0;
    for (int i = 0; i < count; i++) {
        /* Node device names are pci_DDDD_BB_SS_F. */
        unsigned d, b, s, f;
        char tail;
        const char *nm = virNodeDeviceGetName(devs[i]);
        if (nm && sscanf(nm, "pci_%4x_%2x_%2x_%1x%c", &d, &b, &s, &f, &tail) == 4 &&
            b <= ZR_PCI_BUS_MAX && s <= ZR_PCI_SLOT_MAX && f <= ZR_PCI_FUNCTION_MAX)
            entries[k++] = (struct pci_entry){{d, (uint8_t)b, (uint8_t)s, (uint8_t)f}, devs[i]};
        else
            virNodeDeviceFree(devs[i]);
    }
    free(devs);
    if (k) /* qsort takes no NULL array, even empty */
        qsort(entries, k, sizeof(*entries), pci_entry_cmp);
    out->addrs = zr_new0(struct zr_pci_addr, k);
    out->devs = zr_new0(virNodeDevicePtr, k);
    for (size_t i = 0; i < k; i++) {
        out->addrs[i] = entries[i].addr;
        out->devs[i] = entries[i].dev;
    }
    out->n = k;
    return 0;
}

void zr_host_pci_finish(struct zr_host_pci *pci)
{
    for (size_t i = 0; i < pci->n; i++)
        virNodeDeviceFree(pci->devs[i]);
    free(pci->devs);
    free(pci->addrs);
    *pci = (struct zr_host_pci){0};
}

long zr_host_pci_find(const struct zr_host_pci *pci, const struct zr_pci_addr *a)
{
    size_t lo = 0, hi = pci->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = zr_pci_addr_cmp(&pci->addrs[mid], a);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

struct nodedev_ctx {
    virNodeDevicePtr *devs; /* the i-th device to read */
    char **xml;
    char **errors;
};

static void read_nodedev(void *ctx, unsigned worker, size_t i)
{
    (void)worker;
    struct nodedev_ctx *c = ctx;
    c->xml[i] = virNodeDeviceGetXMLDesc(c->devs[i], 0);
    if (!c->xml[i])
        c->errors[i] = zr_asprintf("cannot read node device %s: %s",
                                   virNodeDeviceGetName(c->devs[i]), zr_libvirt_error());
}

void zr_state_read_node_devices(const struct zr_host_pci *pci, const size_t *idx, size_t n,
                                unsigned jobs, char **xml, char **errors)
{
    _cleanup_free_ virNodeDevicePtr *devs = zr_new0(virNodeDevicePtr, n);
    for (size_t i = 0; i < n; i++)
        devs[i] = pci->devs[idx[i]];
    struct nodedev_ctx c = {.devs = devs, .xml = xml, .errors = errors};
    zr_pool_run(n, jobs, read_nodedev, &c);
}

int zr_state_read_host_uses(virConnectPtr conn, unsigned jobs, char ***xml, size_t *n,
                            struct zr_error *err)
{
    virNodeDevicePtr *devs = NULL;
    *xml = NULL;
    *n = 0;
    int count = virConnectListAllNodeDevices(conn, &devs,
                                             VIR_CONNECT_LIST_NODE_DEVICES_CAP_NET |
                                                 VIR_CONNECT_LIST_NODE_DEVICES_CAP_STORAGE);
    if (count < 0) {
        zr_error_set(err, NULL, 0, 0, "cannot list the host's network and storage devices: %s",
                     zr_libvirt_error());
        return -EIO;
    }
    char **out = zr_new0(char *, (size_t)count);
    _cleanup_free_ char **errors = zr_new0(char *, (size_t)count);
    struct nodedev_ctx c = {.devs = devs, .xml = out, .errors = errors};
    zr_pool_run((size_t)count, jobs, read_nodedev, &c);
    for (int i = 0; i < count; i++) {
        /* One that vanished or cannot be read tells nothing. */
        free(errors[i]);
        virNodeDeviceFree(devs[i]);
    }
    free(devs);
    *xml = out;
    *n = (size_t)count;
    return 0;
}

struct others_ctx {
    virDomainPtr *doms;
    struct zr_other_guest *out;
    char **xml; /* 2 per guest: persistent, live; fetched, then parsed */
};

/* One definition of another guest (flags: persistent or live) into *xml;
 * false when it cannot be read (o says why). */
static bool fetch_other_flavour(virDomainPtr dom, unsigned flags, struct zr_other_guest *o,
                                char **xml)
{
    *xml = virDomainGetXMLDesc(dom, flags);
    if (*xml)
        return true;
    virErrorPtr e = virGetLastError();
    /* Undefined since the listing: it holds nothing any more. */
    if (e && e->code == VIR_ERR_NO_DOMAIN)
        o->gone = true;
    else
        o->error = zr_strdup(zr_libvirt_error());
    return false;
}

/* The in-scope devices of one of its definitions into o->devices, each
 * source once; false when it does not parse (o says why, unless it says
 * something already). */
static bool parse_other_flavour(const char *xml, bool live, struct zr_other_guest *o)
{
    /* Most guests of a host have no device in scope; a scan of their XML
     * spares a parse that would find none. */
    if (!zr_domain_may_hold_devices(xml))
        return true;
    _cleanup_(zr_device_list_finish) struct zr_device_list found = {0};
    char *why = NULL;
    if (parse_flavour(xml, o->name, live ? "live" : "persistent", &found, &why) < 0) {
        if (!o->error)
            o->error = why;
        else
            free(why);
        return false;
    }
    for (size_t d = 0; d < found.n; d++) {
        if (live && zr_device_list_holds(&o->devices, &found.items[d].source))
            continue;
        *zr_device_list_append(&o->devices) = found.items[d];
        found.items[d] = (struct zr_device){0};
    }
    return true;
}

/* As for the inventory's guests: every round trip first, then every parse. */
static void fetch_other(void *ctx, unsigned worker, size_t i)
{
    (void)worker;
    struct others_ctx *c = ctx;
    struct zr_other_guest *o = &c->out[i];
    /* A listed domain's id is -1 when it is not running. */
    if (fetch_other_flavour(c->doms[i], VIR_DOMAIN_XML_INACTIVE, o, &c->xml[2 * i]) &&
        virDomainGetID(c->doms[i]) != (unsigned int)-1)
        fetch_other_flavour(c->doms[i], 0, o, &c->xml[2 * i + 1]);
}

static void parse_other(void *ctx, unsigned worker, size_t i)
{
    (void)worker;
    struct others_ctx *c = ctx;
    char **xml = &c->xml[2 * i];
    if (xml[0] && parse_other_flavour(xml[0], false, &c->out[i]) && xml[1])
        parse_other_flavour(xml[1], true, &c->out[i]);
    free(xml[0]);
    free(xml[1]);
    xml[0] = xml[1] = NULL;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int zr_state_read_others(virConnectPtr conn, const struct zr_host *host,
                         struct zr_domain_listing *listing, unsigned jobs,
                         struct zr_other_guest **out, size_t *n, struct zr_error *err)
{
    *out = NULL;
    *n = 0;
    if (zr_domain_listing_ensure(conn, listing, err) < 0)
        return -EIO;
    _cleanup_free_ virDomainPtr *doms = zr_new0(virDomainPtr, listing->n);
    struct zr_other_guest *others = zr_new0(struct zr_other_guest, listing->n);
    /* The inventory's names, sorted: with the conflict check running on
     * every plan, a scan per listed guest would be quadratic in the host. */
    _cleanup_free_ const char **named = zr_new0(const char *, host->n_guests);
    for (size_t i = 0; i < host->n_guests; i++)
        named[i] = host->guests[i].name;
    if (host->n_guests)
        qsort(named, host->n_guests, sizeof(*named), str_cmp);
    size_t k = 0;
    for (size_t i = 0; i < listing->n; i++) {
        const char *name = listing->names[i];
        if (!name || bsearch(&name, named, host->n_guests, sizeof(*named), str_cmp))
            continue;
        others[k].name = zr_strdup(name);
        doms[k++] = listing->doms[i]; /* borrowed: the listing outlives the reads */
    }
    _cleanup_free_ char **xml = zr_new0(char *, 2 * k);
    struct others_ctx c = {.doms = doms, .out = others, .xml = xml};
    zr_pool_run(k, jobs, fetch_other, &c);
    zr_pool_run(k, jobs, parse_other, &c);
    *out = others;
    *n = k;
    return 0;
}

void zr_other_guests_free(struct zr_other_guest *others, size_t n)
{
    if (!others)
        return;
    for (size_t i = 0; i < n; i++) {
        free(others[i].name);
        zr_device_list_finish(&others[i].devices);
        free(others[i].error);
    }
    free(others);
}
