#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "domain.h"
#include "state.h"

/* ---- waiting for a live detach ------------------------------------------ */

/* Device removal events, as libvirt delivers them on its event thread. */
struct removal_watch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned generation; /* bumped on every event */
    bool failed;         /* a removal-failed event for the watched domain */
    char *domain_uuid;   /* the domain being watched, NULL when idle */
};

static bool event_for_watched(struct removal_watch *w, virDomainPtr dom)
{
    char uuid[VIR_UUID_STRING_BUFLEN];
    return w->domain_uuid && virDomainGetUUIDString(dom, uuid) == 0 &&
           strcmp(uuid, w->domain_uuid) == 0;
}

static void on_removed(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
    struct removal_watch *w = opaque;
    pthread_mutex_lock(&w->lock);
    if (event_for_watched(w, dom))
        w->generation++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void on_removal_failed(virConnectPtr conn, virDomainPtr dom, const char *alias,
                              void *opaque)
{
    struct removal_watch *w = opaque;
    pthread_mutex_lock(&w->lock);
    if (event_for_watched(w, dom)) {
        w->failed = true;
        w->generation++;
    }
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Is a device with this kind and source still in the running guest? */
static int live_has_device(virDomainPtr dom, const struct zr_action *a, char **error)
{
    char *xml = virDomainGetXMLDesc(dom, 0);
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
    bool found = false;
    for (size_t i = 0; i < devs.n && !found; i++)
        found = devs.items[i].kind == a->kind && zr_pci_addr_eq(&devs.items[i].source, &a->source);
    zr_device_list_finish(&devs);
    return found;
}

/* libvirt may return from a live detach before the guest let go of the
 * device; the detach is complete only when the live XML no longer has it.
 * Events wake us early; the XML is the proof. */
static int wait_removed(struct removal_watch *w, virDomainPtr dom, const struct zr_action *a,
                        unsigned timeout_s, char **error)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_s;

    for (;;) {
        pthread_mutex_lock(&w->lock);
        unsigned gen = w->generation;
        bool failed = w->failed;
        pthread_mutex_unlock(&w->lock);

        if (failed) {
            *error = zr_strdup("the guest refused to release the device (device-removal-failed event)");
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
        while (w->generation == gen &&
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

static void set_result(struct zr_action *a, zr_result r, char *error)
{
    a->result = r;
    free(a->error);
    a->error = error;
}

static void run_action(struct zr_action *a, virDomainPtr dom, struct removal_watch *w,
                       const struct zr_apply_options *o)
{
    if (!dom) {
        set_result(a, ZR_RESULT_SKIPPED, zr_strdup("the guest is gone"));
        return;
    }
    if (a->op == ZR_OP_ATTACH) {
        if (virDomainAttachDeviceFlags(dom, a->xml, action_flags(a)) < 0)
            set_result(a, ZR_RESULT_FAILED, zr_strdup(zr_libvirt_error()));
        else
            set_result(a, ZR_RESULT_DONE, NULL);
        return;
    }

    if (a->live) {
        char uuid[VIR_UUID_STRING_BUFLEN] = "";
        virDomainGetUUIDString(dom, uuid);
        pthread_mutex_lock(&w->lock);
        free(w->domain_uuid);
        w->domain_uuid = zr_strdup(uuid);
        w->failed = false;
        pthread_mutex_unlock(&w->lock);
    }
    if (virDomainDetachDeviceFlags(dom, a->xml, action_flags(a)) < 0) {
        set_result(a, ZR_RESULT_FAILED, zr_strdup(zr_libvirt_error()));
    } else if (a->live) {
        char *error = NULL;
        if (wait_removed(w, dom, a, o->timeout_s, &error) < 0)
            set_result(a, ZR_RESULT_FAILED, error);
        else
            set_result(a, ZR_RESULT_DONE, NULL);
    } else {
        set_result(a, ZR_RESULT_DONE, NULL);
    }
    if (a->live) {
        pthread_mutex_lock(&w->lock);
        free(w->domain_uuid);
        w->domain_uuid = NULL;
        pthread_mutex_unlock(&w->lock);
    }
}

/* An attach waits for the detaches it depends on (same function, or a zPCI
 * id, slot or MAC freed in the same guest). */
static char *unmet_dependency(const struct zr_plan *plan, const struct zr_action *a)
{
    for (size_t i = 0; i < a->n_deps; i++) {
        const struct zr_action *d = &plan->actions[a->deps[i]];
        if (d->result != ZR_RESULT_DONE) {
            char src[ZR_PCI_ADDR_STRLEN];
            return zr_asprintf("depends on the detach of %s %s from %s, which %s",
                               zr_kind_to_string(d->kind), zr_pci_addr_format(&d->source, src),
                               plan->guests[d->guest_index].guest,
                               d->result == ZR_RESULT_FAILED ? "failed" : "did not run");
        }
    }
    return NULL;
}

/* The XML that undoes a done action: a detach is undone by attaching what
 * was removed; an attach by detaching what libvirt now holds (it may have
 * filled in a MAC or zPCI ids the attach XML did not carry). */
static char *undo_xml(const struct zr_action *a, virDomainPtr dom)
{
    if (a->op == ZR_OP_DETACH)
        return zr_strdup(a->xml);
    char *xml = virDomainGetXMLDesc(dom, a->live ? 0 : VIR_DOMAIN_XML_INACTIVE);
    if (!xml)
        return NULL;
    struct zr_device_list devs = {0};
    char *out = NULL;
    if (zr_domain_parse_devices(xml, strlen(xml), "rollback", &devs, NULL) == 0)
        for (size_t i = 0; i < devs.n && !out; i++)
            if (devs.items[i].kind == a->kind && zr_pci_addr_eq(&devs.items[i].source, &a->source))
                out = zr_domain_detach_xml(&devs.items[i]);
    zr_device_list_finish(&devs);
    free(xml);
    return out;
}

static void rollback(struct zr_plan *plan, size_t first, size_t end, virDomainPtr *doms,
                     struct removal_watch *w, const struct zr_apply_options *o)
{
    for (size_t i = end; i-- > first;) {
        struct zr_action *a = &plan->actions[i];
        if (a->result != ZR_RESULT_DONE)
            continue;
        virDomainPtr dom = doms[a->guest_index];
        _cleanup_free_ char *xml = undo_xml(a, dom);
        struct zr_action undo = {
            .guest_index = a->guest_index,
            .op = a->op == ZR_OP_ATTACH ? ZR_OP_DETACH : ZR_OP_ATTACH,
            .kind = a->kind,
            .source = a->source,
            .live = a->live,
            .config = a->config,
            .xml = xml,
        };
        if (!xml) {
            set_result(a, ZR_RESULT_DONE,
                       zr_asprintf("rollback failed: cannot find the attached device: %s",
                                   zr_libvirt_error()));
            continue;
        }
        run_action(&undo, dom, w, o);
        if (undo.result == ZR_RESULT_DONE)
            set_result(a, ZR_RESULT_ROLLED_BACK, NULL);
        else
            set_result(a, ZR_RESULT_DONE, zr_asprintf("rollback failed: %s", undo.error));
        free(undo.error);
        if (o->progress) {
            char src[ZR_PCI_ADDR_STRLEN];
            fprintf(stderr, "rollback: %s %s %s on %s: %s\n", zr_op_to_string(undo.op),
                    zr_kind_to_string(a->kind), zr_pci_addr_format(&a->source, src),
                    plan->guests[a->guest_index].guest,
                    a->result == ZR_RESULT_ROLLED_BACK ? "done" : a->error);
        }
    }
}

size_t zr_apply_host(struct zr_plan *plan, size_t first, size_t end, virConnectPtr conn,
                     virDomainPtr *doms, const struct zr_apply_options *o)
{
    struct removal_watch w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    /* Registered before the first detach, so no event can be missed. */
    int cb_removed = virConnectDomainEventRegisterAny(
        conn, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
        VIR_DOMAIN_EVENT_CALLBACK(on_removed), &w, NULL);
    int cb_failed = virConnectDomainEventRegisterAny(
        conn, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
        VIR_DOMAIN_EVENT_CALLBACK(on_removal_failed), &w, NULL);

    size_t failed = 0;
    for (size_t i = first; i < end; i++) {
        struct zr_action *a = &plan->actions[i];
        char src[ZR_PCI_ADDR_STRLEN];
        if (o->interrupt && *o->interrupt) {
            set_result(a, ZR_RESULT_SKIPPED, zr_strdup("interrupted by a signal"));
            continue;
        }
        if (o->atomic && failed) {
            set_result(a, ZR_RESULT_SKIPPED, zr_strdup("an earlier action on this host failed (--atomic)"));
            continue;
        }
        char *unmet = a->op == ZR_OP_ATTACH ? unmet_dependency(plan, a) : NULL;
        if (unmet) {
            set_result(a, ZR_RESULT_SKIPPED, unmet);
            continue;
        }
        if (o->progress)
            fprintf(stderr, "[%zu/%zu] %s %s %s on %s [%s]\n", i - first + 1, end - first,
                    zr_op_to_string(a->op), zr_kind_to_string(a->kind),
                    zr_pci_addr_format(&a->source, src), plan->guests[a->guest_index].guest,
                    a->live && a->config ? "live+config" : a->live ? "live" : "config");
        run_action(a, doms[a->guest_index], &w, o);
        if (a->result == ZR_RESULT_FAILED)
            failed++;
    }
    if (o->atomic && failed)
        rollback(plan, first, end, doms, &w, o);

    if (cb_removed >= 0)
        virConnectDomainEventDeregisterAny(conn, cb_removed);
    if (cb_failed >= 0)
        virConnectDomainEventDeregisterAny(conn, cb_failed);
    free(w.domain_uuid);
    return failed;
}

/* ---- one apply per host at a time ---------------------------------------- */

static char *lock_path(const char *uri)
{
    const char *dir = "/run/lock";
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (getuid() != 0 && xdg && *xdg)
        dir = xdg;
    else if (access(dir, W_OK) != 0)
        dir = "/tmp";
    /* The URI names the host; keep the file name short and safe. */
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return zr_asprintf("%s/zpci-reconcile-%016llx.lock", dir, (unsigned long long)h);
}

int zr_apply_lock(const char *uri, struct zr_error *err)
{
    _cleanup_free_ char *path = lock_path(uri ? uri : "");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        zr_error_set(err, NULL, 0, 0, "cannot open lock file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char holder[64] = "";
        ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        zr_error_set(err, NULL, 0, 0,
                     "another zpci-reconcile apply (pid %s) is changing %s; lock file %s",
                     *holder ? holder : "unknown", uri, path);
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
