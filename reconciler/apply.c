#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "apply.h"
#include "domain.h"
#include "inventory.h"
#include "pool.h"
#include "state.h"
#include "uri.h"

/* ---- waiting for a live detach ------------------------------------------ */

/* Device removal events, as libvirt delivers them on its event thread.
 * Each worker waits for one domain at a time in its own slot (a guest's
 * actions all run on one worker), so an event wakes only the workers
 * watching its domain's slot. */
struct removal_slot {
    char uuid[VIR_UUID_STRING_BUFLEN]; /* the domain being watched, "" when idle */
    unsigned generation;               /* bumped on every event for it */
    bool failed;                       /* a removal-failed event for it */
};

struct removal_watch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct removal_slot *slots; /* one per worker */
    size_t n_slots;
};

static void removal_event(struct removal_watch *w, virDomainPtr dom, bool failed)
{
    char uuid[VIR_UUID_STRING_BUFLEN];
    bool known = virDomainGetUUIDString(dom, uuid) == 0;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; known && i < w->n_slots; i++) {
        struct removal_slot *s = &w->slots[i];
        if (*s->uuid && strcmp(s->uuid, uuid) == 0) {
            s->generation++;
            s->failed |= failed;
        }
    }
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void on_removed(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
    removal_event(opaque, dom, false);
}

static void on_removal_failed(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
    removal_event(opaque, dom, true);
}

/* Is a device with this kind and source still in the running guest (or,
 * with VIR_DOMAIN_XML_INACTIVE, in the persistent definition)? */
static int has_device(virDomainPtr dom, unsigned xml_flags, const struct zr_action *a, char **error)
{
    char *xml = virDomainGetXMLDesc(dom, xml_flags);
    if (!xml) {
        *error = zr_asprintf("cannot re-read the running guest: %s", zr_libvirt_error());
        return -EIO;
    }
    struct zr_device_list devs = {0};
    struct zr_error e = {0};
    int r = zr_domain_parse_devices(xml, strlen(xml), "running guest", &devs, &e);
    free(xml);
    if (r < 0) {
        *error = zr_strdup(e.message);
        zr_error_finish(&e);
        return r;
    }
    bool found = zr_device_list_find(&devs, a->kind, &a->source) != NULL;
    zr_device_list_finish(&devs);
    return found;
}

static int live_has_device(virDomainPtr dom, const struct zr_action *a, char **error)
{
    return has_device(dom, 0, a, error);
}

/* libvirt may return from a live detach before the guest let go of the
 * device; the detach is complete only when the live XML no longer has it.
 * Events wake us early; the XML is the proof. */
static int wait_removed(struct removal_watch *w, struct removal_slot *slot, virDomainPtr dom,
                        const struct zr_action *a, unsigned timeout_s, unsigned since,
                        const char **how, char **error)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_s;

    for (bool first = true;; first = false) {
        pthread_mutex_lock(&w->lock);
        unsigned gen = slot->generation;
        bool failed = slot->failed;
        pthread_mutex_unlock(&w->lock);
        /* What told us, for -v: libvirt waits a few seconds for the guest
         * inside the call, so a quick guest is gone at the first look;
         * later, an event for the guest since the call (generation
         * `since`) or else the once-a-second re-read. */
        *how = first          ? "the guest let go during libvirt's call"
               : gen != since ? "device-removed event"
                              : "seen in the live XML";

        if (failed) {
            *error =
                zr_strdup("the guest refused to release the device (device-removal-failed event)");
            return -EBUSY;
        }
        int present = live_has_device(dom, a, error);
        if (present < 0)
            return present;
        if (!present)
            return 0;

        struct timespec now, wake;
        clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec > deadline.tv_sec ||
            (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
            *error = zr_asprintf("libvirt accepted the detach, but the guest still holds the "
                                 "device after %u s (--timeout)",
                                 timeout_s);
            return -ETIMEDOUT;
        }
        /* Re-check at least every second in case an event was missed. */
        wake = now;
        wake.tv_sec += 1;
        if (wake.tv_sec > deadline.tv_sec ||
            (wake.tv_sec == deadline.tv_sec && wake.tv_nsec > deadline.tv_nsec))
            wake = deadline;
        pthread_mutex_lock(&w->lock);
        while (slot->generation == gen &&
               pthread_cond_timedwait(&w->cond, &w->lock, &wake) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&w->lock);
    }
}

/* ---- running actions ----------------------------------------------------- */

static unsigned action_flags(const struct zr_action *a)
{
    return (a->live ? VIR_DOMAIN_AFFECT_LIVE : 0) | (a->config ? VIR_DOMAIN_AFFECT_CONFIG : 0);
}

/* libvirt's message for a failed mutating call, with what a reader needs
 * to act on it: a guest that stopped since it was read gets a hint. */
static char *call_error(virDomainPtr dom, const struct zr_action *a)
{
    /* A copy: the next libvirt call resets (frees) the thread's error. */
    char *msg = zr_strdup(zr_libvirt_error());
    virErrorPtr e = virGetLastError();
    if (a->live && e && e->code == VIR_ERR_OPERATION_INVALID && virDomainIsActive(dom) == 0) {
        char *more = zr_asprintf("%s (the guest stopped since it was read; apply again to "
                                 "change its persistent definition)",
                                 msg);
        free(msg);
        return more;
    }
    return msg;
}

/* A failed mutating call: libvirt's message, and what kind of refusal. */
static void set_failed(const struct zr_action *a, struct zr_action_result *res,
                       virDomainPtr dom)
{
    /* Classified first: call_error() makes another call, which resets
     * the thread's error. */
    zr_error_code code = zr_libvirt_error_code(ZR_ERR_LIBVIRT_REFUSED);
    zr_result_set(res, ZR_RESULT_FAILED, call_error(dom, a));
    res->error_code = code;
}

/* Starts watching dom's removal events in `slot`; returns the slot's
 * generation before the call. */
static unsigned watch_domain(struct removal_watch *w, struct removal_slot *slot, virDomainPtr dom)
{
    char uuid[VIR_UUID_STRING_BUFLEN] = "";
    virDomainGetUUIDString(dom, uuid);
    pthread_mutex_lock(&w->lock);
    memcpy(slot->uuid, uuid, sizeof(uuid));
    slot->failed = false;
    unsigned since = slot->generation;
    pthread_mutex_unlock(&w->lock);
    return since;
}

static void unwatch_domain(struct removal_watch *w, struct removal_slot *slot)
{
    pthread_mutex_lock(&w->lock);
    slot->uuid[0] = '\0';
    pthread_mutex_unlock(&w->lock);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A live detach libvirt accepted: done once the guest let go of it.  With
 * progress, *note says when that was. */
static void finish_live_detach(const struct zr_action *a, struct zr_action_result *res,
                               virDomainPtr dom, struct removal_watch *w,
                               struct removal_slot *slot, unsigned since, const struct timespec *t0,
                               const struct zr_apply_options *o, char **note)
{
    char *error = NULL;
    const char *how = "";
    int r = wait_removed(w, slot, dom, a, o->timeout_s, since, &how, &error);
    if (r < 0) {
        /* With CONFIG, libvirt has already removed it from the
         * definition: say so (the running guest and the definition now
         * disagree), and record it for --atomic. */
        char *shown = a->config
                          ? zr_asprintf("%s; the persistent definition no longer has it", error)
                          : zr_strdup(error);
        zr_result_set(res, ZR_RESULT_FAILED, shown);
        res->error_code = r == -ETIMEDOUT ? ZR_ERR_TIMEOUT : ZR_ERR_LIBVIRT_REFUSED;
        res->config_removed = a->config;
        res->cause = error;
        return;
    }
    zr_result_set(res, ZR_RESULT_DONE, NULL);
    if (o->progress) {
        char src[ZR_PCI_ADDR_STRLEN];
        *note = zr_asprintf("  %s left the running guest after %.1f s (%s)\n",
                            zr_pci_addr_format(&a->source, src), seconds_since(t0), how);
    }
}

/* The action's one mutating call (and, for a live detach, the wait for the
 * guest to let go), on the worker that owns `slot`.  *note gets a progress
 * line to print after the action's own, or stays NULL. */
static void run_action(const struct zr_action *a, struct zr_action_result *res, virDomainPtr dom,
                       struct removal_watch *w, struct removal_slot *slot,
                       const struct zr_apply_options *o, char **note)
{
    if (a->op == ZR_OP_ATTACH) {
        if (virDomainAttachDeviceFlags(dom, a->xml, action_flags(a)) < 0)
            set_failed(a, res, dom);
        else
            zr_result_set(res, ZR_RESULT_DONE, NULL);
        return;
    }

    unsigned since = a->live ? watch_domain(w, slot, dom) : 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (virDomainDetachDeviceFlags(dom, a->xml, action_flags(a)) < 0)
        set_failed(a, res, dom);
    else if (a->live)
        finish_live_detach(a, res, dom, w, slot, since, &t0, o, note);
    else
        zr_result_set(res, ZR_RESULT_DONE, NULL);
    if (a->live)
        unwatch_domain(w, slot);
}

/* An attach waits for the detaches it depends on (same function, or a zPCI
 * id, slot or MAC freed in the same guest). */
static char *unmet_dependency(const struct zr_plan *plan, const struct zr_run *run,
                              const struct zr_action *a)
{
    for (size_t i = 0; i < a->n_deps; i++) {
        const struct zr_action *d = &plan->actions[a->deps[i]];
        zr_result r = zr_run_result(run, a->deps[i])->result;
        if (r != ZR_RESULT_DONE) {
            char src[ZR_PCI_ADDR_STRLEN];
            return zr_asprintf("depends on the detach of %s %s from %s, which %s",
                               zr_kind_to_string(d->kind), zr_pci_addr_format(&d->source, src),
                               plan->guests[d->guest_index].guest,
                               r == ZR_RESULT_FAILED ? "failed" : "did not run");
        }
    }
    return NULL;
}

/* ---- one host's run ------------------------------------------------------- */

/* A guest's in-scope devices as --atomic saved them: each device's element
 * without generated aliases (what is compared) and its description (what
 * a message shows), sorted by element, so a re-read can be compared. */
struct saved_device {
    char *xml;
    char *desc;
};

struct saved_devices {
    struct saved_device *items;
    size_t n;
};

struct saved_guest {
    bool touched; /* some action of this host is on the guest */
    bool live;    /* some of them change the running guest */
    struct saved_devices config, running;
};

/* An action's progress lines, printed in the plan's order whichever
 * worker ran it: `head` once it started, `tail` once it finished. */
struct action_out {
    char *head, *tail;
    bool finished;
};

struct host_run {
    const struct zr_plan *plan;
    struct zr_run *run; /* what this run writes */
    size_t first, end;
    virConnectPtr conn;
    virDomainPtr *doms;
    const struct zr_apply_options *o;
    struct removal_watch w;
    struct saved_guest *saved; /* per plan guest, with --atomic */
    /* Shared by the workers, under `lock`. */
    pthread_mutex_t lock;
    bool *gone;             /* per plan guest: libvirt no longer knows it */
    char *lost;             /* libvirt's message when the connection dropped */
    size_t failed;          /* actions that failed */
    size_t not_run;         /* actions skipped */
    bool interrupted;       /* a signal came: start nothing more */
    struct action_out *out; /* per action of the host, with progress */
    size_t printed;         /* out[0 .. printed) are on stderr */
};

static void saved_devices_finish(struct saved_devices *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].xml);
        free(s->items[i].desc);
    }
    free(s->items);
    *s = (struct saved_devices){0};
}

static int cmp_saved(const void *a, const void *b)
{
    return strcmp(((const struct saved_device *)a)->xml, ((const struct saved_device *)b)->xml);
}

static int save_devices(virDomainPtr dom, bool live, struct saved_devices *out, char **error)
{
    char *xml = virDomainGetXMLDesc(dom, live ? 0 : VIR_DOMAIN_XML_INACTIVE);
    if (!xml) {
        *error = zr_strdup(zr_libvirt_error());
        return -EIO;
    }
    struct zr_device_list devs = {0};
    struct zr_error e = {0};
    int r = zr_domain_parse_devices(xml, strlen(xml),
                                    live ? "running guest" : "persistent definition", &devs, &e);
    free(xml);
    if (r < 0) {
        *error = zr_strdup(e.message);
        zr_error_finish(&e);
        return r;
    }
    out->items = zr_new0(struct saved_device, devs.n);
    for (size_t i = 0; i < devs.n; i++) {
        char *x = zr_domain_detach_xml(&devs.items[i]);
        out->items[i].xml = x ? x : zr_strdup("");
        out->items[i].desc = zr_device_describe(&devs.items[i]);
    }
    out->n = devs.n;
    zr_device_list_finish(&devs);
    qsort(out->items, out->n, sizeof(*out->items), cmp_saved);
    return 0;
}

/* What differs between two saved device sets, for a person: "now holds
 * hostdev ... (not before); no longer holds hostdev ...", or NULL. */
static char *saved_diff(const struct saved_devices *before, const struct saved_devices *after)
{
    struct zr_memstream m;
    FILE *f = zr_memstream_open(&m);
    size_t i = 0, j = 0;
    bool any = false;
    while (i < before->n || j < after->n) {
        int c = i == before->n  ? 1
                : j == after->n ? -1
                                : strcmp(before->items[i].xml, after->items[j].xml);
        if (c == 0) {
            i++, j++;
            continue;
        }
        fprintf(f, "%s%s %s", any ? "; " : "", c < 0 ? "no longer holds" : "now holds",
                c < 0 ? before->items[i++].desc : after->items[j++].desc);
        any = true;
    }
    char *s = zr_memstream_close(&m);
    if (!any) {
        free(s);
        return NULL;
    }
    return s;
}

/* --atomic: the in-scope devices of every guest the host's actions touch,
 * read right before the first call (one XMLDesc per guest and state). */
struct save_job {
    struct host_run *h;
    const size_t *guests; /* the touched guests */
    char **why;           /* per touched guest: why it could not be saved */
};

static void save_one(void *ctx, unsigned worker, size_t j)
{
    struct save_job *c = ctx;
    size_t g = c->guests[j];
    struct saved_guest *s = &c->h->saved[g];
    if (save_devices(c->h->doms[g], false, &s->config, &c->why[j]) == 0 && s->live)
        save_devices(c->h->doms[g], true, &s->running, &c->why[j]);
}

/* The reads run on the apply workers (threads); the error names the first
 * guest, in the report's order, that could not be saved. */
static int save_host(struct host_run *h, unsigned threads, char **error)
{
    for (size_t i = h->first; i < h->end; i++) {
        const struct zr_action *a = &h->plan->actions[i];
        struct saved_guest *s = &h->saved[a->guest_index];
        s->touched = true;
        s->live |= a->live;
    }
    _cleanup_free_ size_t *guests = zr_new0(size_t, h->end - h->first);
    size_t n = 0;
    for (size_t g = 0; g < h->plan->n_guests; g++)
        if (h->saved[g].touched)
            guests[n++] = g;
    _cleanup_free_ char **why = zr_new0(char *, n);
    struct save_job job = {.h = h, .guests = guests, .why = why};
    zr_pool_run(n, threads, save_one, &job);
    int r = 0;
    for (size_t j = 0; j < n; j++) {
        if (why[j] && r == 0) {
            *error = zr_asprintf("--atomic could not save guest '%s' before changing it: %s",
                                 h->plan->guests[guests[j]].guest, why[j]);
            r = -EIO;
        }
        free(why[j]);
    }
    return r;
}

/* After a rollback: re-read each touched guest and say where it is not as
 * it was. */
static void verify_rollback(struct host_run *h)
{
    for (size_t g = 0; g < h->plan->n_guests; g++) {
        struct saved_guest *s = &h->saved[g];
        if (!s->touched)
            continue;
        const struct zr_plan_guest *pg = &h->plan->guests[g];
        for (int live = 0; live <= (s->live ? 1 : 0); live++) {
            struct saved_devices now = {0};
            char *why = NULL;
            const char *what = live ? "running guest" : "persistent definition";
            if (save_devices(h->doms[g], live, &now, &why) < 0) {
                zr_run_add_warning(h->run, h->plan, pg->host, pg->guest, ZR_ERR_ROLLBACK,
                                   "after rollback, cannot re-read the %s: %s", what, why);
                free(why);
                continue;
            }
            _cleanup_free_ char *diff = saved_diff(live ? &s->running : &s->config, &now);
            if (diff)
                zr_run_add_warning(h->run, h->plan, pg->host, pg->guest, ZR_ERR_ROLLBACK,
                                   "after rollback, the %s is not as before: %s", what, diff);
            saved_devices_finish(&now);
        }
    }
}

/* The XML that undoes a done action: a detach is undone by attaching what
 * was removed; an attach by detaching what libvirt now holds (it may have
 * filled in a MAC or zPCI ids the attach XML did not carry). */
static char *undo_xml(const struct zr_action *a, virDomainPtr dom, char **error)
{
    if (a->op == ZR_OP_DETACH)
        return zr_strdup(a->xml);
    char *xml = virDomainGetXMLDesc(dom, a->live ? 0 : VIR_DOMAIN_XML_INACTIVE);
    if (!xml) {
        *error = zr_asprintf("cannot re-read the guest: %s", zr_libvirt_error());
        return NULL;
    }
    struct zr_device_list devs = {0};
    char *out = NULL;
    if (zr_domain_parse_devices(xml, strlen(xml), "rollback", &devs, NULL) == 0) {
        const struct zr_device *d = zr_device_list_find(&devs, a->kind, &a->source);
        out = d ? zr_domain_detach_xml(d) : NULL;
    }
    zr_device_list_finish(&devs);
    free(xml);
    if (!out)
        *error = zr_strdup("the attached device is no longer in the guest");
    return out;
}

/* Why a done action could not be undone, and what the guest is left with:
 * the function it lost (an undone detach) or still holds (an undone
 * attach), and the virsh call that finishes the undo by hand.  `why` is
 * the undo call's error, NULL when the lost connection left no call to
 * try. */
static char *undo_failed(const struct zr_plan *plan, const struct zr_action *a, const char *why)
{
    _cleanup_free_ char *desc = zr_device_describe(&a->device);
    const char *guest = plan->guests[a->guest_index].guest;
    const char *flags = a->live && a->config ? "--config --live" : a->live ? "--live" : "--config";
    bool detach = a->op == ZR_OP_DETACH;
    _cleanup_free_ char *state =
        detach ? zr_asprintf("guest '%s' lost %s", guest, desc)
               : zr_asprintf("guest '%s' still holds %s, which this run attached", guest, desc);
    _cleanup_free_ char *head =
        why ? zr_asprintf("rollback failed: %s: %s failed: %s", state,
                          detach ? "attaching it again" : "detaching it", why)
            : zr_asprintf("not rolled back, the connection to libvirt was lost: %s", state);
    return zr_asprintf("%s; %s it with virsh %s %s FILE %s, FILE holding this action's xml "
                       "(-o json)",
                       head, detach ? "restore" : "remove",
                       detach ? "attach-device" : "detach-device", guest, flags);
}

/* A live+config detach that timed out failed, but libvirt had already
 * taken the device out of the persistent definition: put it back there,
 * so --atomic leaves the definition as it was. */
static void rollback_config_half(struct host_run *h, const struct zr_action *a,
                                 struct zr_action_result *res)
{
    virDomainPtr dom = h->doms[a->guest_index];
    char *why = NULL;
    if (!res->config_removed || h->lost ||
        has_device(dom, VIR_DOMAIN_XML_INACTIVE, a, &why) != 0) {
        free(why);
        return;
    }
    char src[ZR_PCI_ADDR_STRLEN];
    zr_pci_addr_format(&a->source, src);
    bool ok = virDomainAttachDeviceFlags(dom, a->xml, VIR_DOMAIN_AFFECT_CONFIG) == 0;
    _cleanup_free_ char *err = ok ? NULL : zr_strdup(zr_libvirt_error());
    _cleanup_free_ char *base = TAKE_PTR(res->cause);
    zr_result_set(res, ZR_RESULT_FAILED,
                  ok ? zr_asprintf("%s; rolled back in the persistent definition (--atomic)", base)
                     : zr_asprintf("%s; the persistent definition no longer has it (rollback "
                                   "failed: %s)",
                                   base, err));
    res->config_removed = !ok;
    res->cause = ok ? NULL : TAKE_PTR(base);
    if (h->o->progress)
        fprintf(stderr, "rollback: attach %s %s on %s [config]: %s\n", zr_kind_to_string(a->kind),
                src, h->plan->guests[a->guest_index].guest, ok ? "done" : err);
}

static void rollback(struct host_run *h)
{
    const struct zr_plan *plan = h->plan;
    for (size_t i = h->end; i-- > h->first;) {
        const struct zr_action *a = &plan->actions[i];
        struct zr_action_result *res = zr_run_record(h->run, plan, i);
        if (res->result == ZR_RESULT_FAILED && a->op == ZR_OP_DETACH)
            rollback_config_half(h, a, res);
        if (res->result != ZR_RESULT_DONE)
            continue;
        virDomainPtr dom = h->doms[a->guest_index];
        char src[ZR_PCI_ADDR_STRLEN];
        zr_pci_addr_format(&a->source, src);
        if (h->lost) {
            zr_result_set(res, ZR_RESULT_FAILED, undo_failed(plan, a, NULL));
            continue;
        }
        char *why = NULL;
        _cleanup_free_ char *xml = undo_xml(a, dom, &why);
        struct zr_action undo = {
            .guest_index = a->guest_index,
            .op = a->op == ZR_OP_ATTACH ? ZR_OP_DETACH : ZR_OP_ATTACH,
            .kind = a->kind,
            .source = a->source,
            .live = a->live,
            .config = a->config,
            .xml = xml,
        };
        struct zr_action_result undone_res = {0};
        if (xml) {
            /* The workers are done: the rollback runs alone, in slot 0. */
            _cleanup_free_ char *note = NULL;
            run_action(&undo, &undone_res, dom, &h->w, &h->w.slots[0], h->o, &note);
            if (note)
                fputs(note, stderr);
            why = TAKE_PTR(undone_res.error);
        }
        bool undone = xml && undone_res.result == ZR_RESULT_DONE;
        zr_result_finish(&undone_res);
        if (undone) {
            zr_result_set(res, ZR_RESULT_ROLLED_BACK, NULL);
        } else {
            /* The guest is neither as it was nor as planned: a failure
             * the reader must act on, never "rolled back". */
            zr_result_set(res, ZR_RESULT_FAILED, undo_failed(plan, a, why));
            /* The rest cannot be undone over a dead connection either. */
            if (virConnectIsAlive(h->conn) == 0)
                h->lost = zr_strdup(why);
        }
        if (h->o->progress) {
            _cleanup_free_ char *guest = zr_escaped(plan->guests[a->guest_index].guest);
            _cleanup_free_ char *msg = zr_escaped(undone ? "done" : why);
            fprintf(stderr, "rollback: %s %s %s on %s [%s]: %s\n", zr_op_to_string(undo.op),
                    zr_kind_to_string(a->kind), src, guest, zr_action_flags_string(a), msg);
        }
        free(why);
    }
}

/* Why an action is not run, or NULL to run it.  Called with h->lock held. */
static char *skip_reason(struct host_run *h, const struct zr_action *a)
{
    if (h->lost)
        return zr_strdup("not run: the connection to libvirt was lost");
    if (h->interrupted)
        return zr_strdup("not run: interrupted by a signal");
    if (h->o->atomic && h->failed)
        return zr_strdup("not run: an earlier action on this host failed (--atomic)");
    if (h->gone[a->guest_index] || !h->doms[a->guest_index])
        return zr_strdup("not run: the guest no longer exists");
    if (a->op == ZR_OP_ATTACH)
        return unmet_dependency(h->plan, h->run, a);
    return NULL;
}

/* After a failed call: was it the connection, or the guest itself?
 * Called with h->lock held. */
static void after_failure(struct host_run *h, const struct zr_action *a,
                          struct zr_action_result *res)
{
    virErrorPtr e = virGetLastError();
    int code = e ? e->code : VIR_ERR_OK;
    h->failed++;
    if (virConnectIsAlive(h->conn) == 0) {
        if (!h->lost)
            h->lost = zr_strdup(res->error);
        char *msg = zr_asprintf("lost the connection to libvirt: %s; the change may or may not "
                                "have been made",
                                res->error);
        zr_result_set(res, ZR_RESULT_FAILED, msg);
    } else if (code == VIR_ERR_NO_DOMAIN) {
        h->gone[a->guest_index] = true;
    }
}

/* Prints the progress lines that are due: each action's, in the plan's
 * order, as soon as every earlier action's are out.  Called with h->lock
 * held. */
static void flush_progress(struct host_run *h)
{
    for (size_t n = h->end - h->first; h->printed < n; h->printed++) {
        struct action_out *p = &h->out[h->printed];
        if (p->head) {
            fputs(p->head, stderr);
            free(TAKE_PTR(p->head));
        }
        if (!p->finished)
            break;
        if (p->tail) {
            fputs(p->tail, stderr);
            free(TAKE_PTR(p->tail));
        }
    }
}

/* Action i's progress: its head line when it starts (tail NULL, not
 * finished), its tail lines when it ends. */
static void progress(struct host_run *h, size_t i, char *head, char *tail, bool finished)
{
    if (!h->out) {
        free(head);
        free(tail);
        return;
    }
    pthread_mutex_lock(&h->lock);
    struct action_out *p = &h->out[i - h->first];
    p->head = head ? head : p->head;
    p->tail = tail;
    p->finished = finished;
    flush_progress(h);
    pthread_mutex_unlock(&h->lock);
}

/* Decides under the lock whether action i runs; when not, records why. */
static bool should_run(struct host_run *h, const struct zr_action *a,
                       struct zr_action_result *res)
{
    pthread_mutex_lock(&h->lock);
    const struct zr_apply_options *o = h->o;
    h->interrupted = h->interrupted || (o->interrupt && *o->interrupt);
    char *skip = skip_reason(h, a);
    if (skip) {
        zr_result_set(res, ZR_RESULT_SKIPPED, skip);
        if (h->interrupted && !h->lost)
            res->error_code = ZR_ERR_INTERRUPTED;
        h->not_run++;
    }
    pthread_mutex_unlock(&h->lock);
    return !skip;
}

/* Runs action i on the worker owning `slot`. */
static void run_one(struct host_run *h, size_t i, struct removal_slot *slot)
{
    const struct zr_plan *plan = h->plan;
    const struct zr_action *a = &plan->actions[i];
    struct zr_action_result *res = &h->run->results[i];
    if (!should_run(h, a, res)) {
        progress(h, i, NULL, NULL, true);
        return;
    }
    bool show = h->out != NULL;
    char src[ZR_PCI_ADDR_STRLEN];
    zr_pci_addr_format(&a->source, src);
    /* Progress goes to a terminal: names escaped as in the report. */
    _cleanup_free_ char *guest = show ? zr_escaped(plan->guests[a->guest_index].guest) : NULL;
    size_t n = i - h->first + 1, total = h->end - h->first;
    if (show)
        progress(h, i,
                 zr_asprintf("[%zu/%zu] %s %s %s on %s [%s]\n", n, total, zr_op_to_string(a->op),
                             zr_kind_to_string(a->kind), src, guest, zr_action_flags_string(a)),
                 NULL, false);
    char *note = NULL;
    run_action(a, res, h->doms[a->guest_index], &h->w, slot, h->o, &note);
    if (res->result == ZR_RESULT_FAILED) {
        pthread_mutex_lock(&h->lock);
        after_failure(h, a, res);
        pthread_mutex_unlock(&h->lock);
        if (show) {
            _cleanup_free_ char *msg = zr_escaped(res->error);
            free(note);
            note = zr_asprintf("[%zu/%zu] failed: %s %s %s on %s: %s\n", n, total,
                               zr_op_to_string(a->op), zr_kind_to_string(a->kind), src, guest, msg);
        }
    }
    progress(h, i, NULL, note, true);
}

/* One phase of a host's run (its detaches, or its attaches) cut into jobs:
 * each job is one guest's actions of the phase, in plan order; jobs are
 * ordered by their guest's first action. */
struct phase {
    struct host_run *h;
    size_t *order;  /* action indices, job by job */
    size_t *starts; /* job j is order[starts[j] .. starts[j + 1]) */
    size_t n_jobs;
};

static void phase_job(void *ctx, unsigned worker, size_t j)
{
    struct phase *p = ctx;
    for (size_t k = p->starts[j]; k < p->starts[j + 1]; k++)
        run_one(p->h, p->order[k], &p->h->w.slots[worker]);
}

/* Runs the host's actions of one kind (op), a guest's on one worker at a
 * time, up to threads guests at once. */
static void run_phase(struct host_run *h, zr_op op, unsigned threads)
{
    const struct zr_plan *plan = h->plan;
    _cleanup_free_ size_t *job_of = zr_new0(size_t, plan->n_guests);
    _cleanup_free_ size_t *count = zr_new0(size_t, h->end - h->first + 1);
    size_t n_jobs = 0, n = 0;
    /* job_of[g] is 1 + the guest's job, 0 when it has none yet. */
    for (size_t i = h->first; i < h->end; i++) {
        const struct zr_action *a = &plan->actions[i];
        if (a->op != op)
            continue;
        if (!job_of[a->guest_index])
            job_of[a->guest_index] = ++n_jobs;
        count[job_of[a->guest_index] - 1]++;
        n++;
    }
    _cleanup_free_ size_t *starts = zr_new0(size_t, n_jobs + 1);
    _cleanup_free_ size_t *fill = zr_new0(size_t, n_jobs + 1);
    for (size_t j = 0; j < n_jobs; j++)
        fill[j + 1] = starts[j + 1] = starts[j] + count[j];
    _cleanup_free_ size_t *order = zr_new0(size_t, n);
    for (size_t i = h->first; i < h->end; i++)
        if (plan->actions[i].op == op)
            order[fill[job_of[plan->actions[i].guest_index] - 1]++] = i;
    struct phase p = {.h = h, .order = order, .starts = starts, .n_jobs = n_jobs};
    zr_pool_run(n_jobs, threads, phase_job, &p);
}

/* Runs the host's actions: every detach, then every attach, each phase on
 * up to o->threads workers; returns the number that failed. */
static size_t run_host(struct host_run *h)
{
    const struct zr_apply_options *o = h->o;
    unsigned threads = o->threads ? o->threads : ZR_APPLY_THREADS;
    run_phase(h, ZR_OP_DETACH, threads);
    run_phase(h, ZR_OP_ATTACH, threads);
    if (h->lost)
        fprintf(stderr, "zpci-reconcile: lost the connection to %s: %s; %zu action%s not run\n",
                h->plan->guests[h->plan->actions[h->first].guest_index].uri, h->lost, h->not_run,
                h->not_run == 1 ? "" : "s");
    /* An interrupted transaction did not finish either: undo it too. */
    if (o->atomic && (h->failed || h->interrupted)) {
        rollback(h);
        if (!h->lost)
            verify_rollback(h);
    }
    return h->failed;
}

/* Runs the host's actions with device removal events registered: before
 * the first detach, so no event can be missed.  Without them a live
 * detach is still confirmed by re-reading the XML every second. */
static size_t run_host_with_events(struct host_run *h)
{
    _cleanup_free_ char *no_events = NULL;
    int cb_removed =
        virConnectDomainEventRegisterAny(h->conn, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_removed), &h->w, NULL);
    if (cb_removed < 0)
        no_events = zr_strdup(zr_libvirt_error());
    int cb_failed =
        virConnectDomainEventRegisterAny(h->conn, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_removal_failed), &h->w, NULL);
    if (cb_failed < 0 && !no_events)
        no_events = zr_strdup(zr_libvirt_error());
    if (no_events && h->o->progress)
        fprintf(stderr,
                "zpci-reconcile: no device removal events (%s); a live detach is "
                "checked every second instead\n",
                no_events);

    size_t failed = run_host(h);

    if (cb_removed >= 0)
        virConnectDomainEventDeregisterAny(h->conn, cb_removed);
    if (cb_failed >= 0)
        virConnectDomainEventDeregisterAny(h->conn, cb_failed);
    return failed;
}

size_t zr_apply_host(const struct zr_plan *plan, struct zr_run *run, size_t first, size_t end,
                     virConnectPtr conn, virDomainPtr *doms, const struct zr_apply_options *o)
{
    if (first == end)
        return 0;
    unsigned threads = o->threads ? o->threads : ZR_APPLY_THREADS;
    _cleanup_free_ bool *gone = zr_new0(bool, plan->n_guests);
    _cleanup_free_ struct saved_guest *saved = zr_new0(struct saved_guest, plan->n_guests);
    _cleanup_free_ struct removal_slot *slots = zr_new0(struct removal_slot, threads);
    _cleanup_free_ struct action_out *out =
        o->progress ? zr_new0(struct action_out, end - first) : NULL;
    struct host_run h = {
        .plan = plan,
        .run = run,
        .first = first,
        .end = end,
        .conn = conn,
        .doms = doms,
        .o = o,
        .w = {.lock = PTHREAD_MUTEX_INITIALIZER,
              .cond = PTHREAD_COND_INITIALIZER,
              .slots = slots,
              .n_slots = threads},
        .saved = saved,
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .gone = gone,
        .out = out,
    };
    size_t failed = 0;
    char *error = NULL;
    /* Every result record exists before the workers write theirs. */
    if (end > first)
        zr_run_record(run, plan, first);

    if (o->atomic && save_host(&h, threads, &error) < 0) {
        /* Without the saved state there is nothing to roll back to. */
        for (size_t i = first; i < end; i++)
            zr_result_set(zr_run_record(run, plan, i), ZR_RESULT_SKIPPED,
                          zr_asprintf("not run: %s", error));
        free(error);
    } else {
        failed = run_host_with_events(&h);
    }

    free(h.lost);
    for (size_t g = 0; g < plan->n_guests; g++) {
        saved_devices_finish(&saved[g].config);
        saved_devices_finish(&saved[g].running);
    }
    return failed;
}

/* ---- one apply per host at a time ---------------------------------------- */

/* The lock must live where nobody else can create it: a lock file in a
 * world-writable directory (/run/lock, /tmp) can be created or flock()ed
 * first by any local user, and every apply then fails.  So root's locks are
 * in a directory only root can write (systemd's RuntimeDirectory= makes it
 * for the service), another user's in their own runtime directory. */
static char *lock_dir_path(void)
{
    if (geteuid() == 0)
        return zr_strdup(ZR_LOCK_DIR);
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg == '/')
        return zr_asprintf("%s/zpci-reconcile", xdg);
    return zr_asprintf("/tmp/zpci-reconcile-%u", (unsigned)geteuid());
}

/* Opens the lock directory, creating it private; refuses one that is not
 * ours or that others may write to (then they could replace lock files). */
static int open_lock_dir(const char *dir, struct zr_error *err)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        zr_error_set(err, NULL, 0, 0, "cannot create the lock directory %s: %s", dir,
                     strerror(errno));
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        zr_error_set(err, NULL, 0, 0, "cannot open the lock directory %s: %s", dir,
                     strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 022)) {
        zr_error_set(err, NULL, 0, 0,
                     "refusing the lock directory %s: it is owned by uid %u with mode %04o, "
                     "but must be owned by uid %u and writable by it alone (mode 0700); "
                     "remove it, no apply is safe until then",
                     dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
        close(fd);
        return -1;
    }
    return fd;
}

/* The file name for a URI: two spellings of one connection share it.  A
 * hash keeps the name short and free of '/'; FNV-1a, 64 bits. */
static char *lock_name(const char *uri)
{
    _cleanup_free_ char *norm = zr_uri_normalize(uri);
    return zr_asprintf("zpci-reconcile-%016llx.lock", (unsigned long long)zr_fnv1a64(norm));
}

int zr_apply_lock(const char *uri, struct zr_error *err)
{
    _cleanup_free_ char *dir = lock_dir_path();
    _cleanup_free_ char *name = lock_name(uri ? uri : "");
    _cleanup_(closep) int dfd = open_lock_dir(dir, err);
    if (dfd < 0)
        return -1;
    int fd = openat(dfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (fd < 0) {
        zr_error_set(err, NULL, 0, 0, "cannot open lock file %s/%s: %s", dir, name,
                     strerror(errno));
        return -1;
    }
    /* Only a file this user made can be trusted to be a lock: another
     * user's could be held (or deleted) by them at will. */
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        zr_error_set(err, NULL, 0, 0,
                     "refusing lock file %s/%s: it is owned by uid %u, not by this user (uid "
                     "%u), or is not a regular file; zpci-reconcile did not make it, remove it",
                     dir, name, (unsigned)st.st_uid, (unsigned)geteuid());
        close(fd);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char holder[64] = "";
        ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        zr_error_setc(err, ZR_ERR_LOCK,
                      "another zpci-reconcile apply (pid %s) is changing %s; lock file %s/%s",
                      *holder ? holder : "unknown", uri, dir, name);
        close(fd);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)len, 0) != len) {
        /* The pid is only a courtesy for the next waiter. */
    }
    return fd;
}

void zr_apply_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}
