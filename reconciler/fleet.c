/* The process supervisor for hosts: inventories, and apply's use of it.
 * See fleet.h and "Several hosts" in docs/design.md. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fleet.h"
#include "wire.h"

struct slot {
    struct zr_supervisor *s;
    size_t i;
    pid_t pid; /* 0 when not running */
    sd_event_source *child, *io;
    int fd; /* read end of its result pipe, -1 when closed */
    bool exited;
    siginfo_t si;
    char *buf;
    size_t len, cap;
};

struct zr_supervisor {
    sd_event *ev;
    sd_event_source *sig[4];
    struct slot *slot;
    size_t n;
    struct zr_supervisor_ops ops;
    sigset_t mask; /* the signal mask to restore, and the children's */
};

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *data)
{
    struct zr_supervisor *s = data;
    if (s->ops.signal)
        s->ops.signal(s->ops.data, (int)si->ssi_signo);
    return 0;
}

struct zr_supervisor *zr_supervisor_new(size_t n, const int *signals,
                                        const struct zr_supervisor_ops *ops, int *r)
{
    struct zr_supervisor *s = zr_new0(struct zr_supervisor, 1);
    s->n = n;
    s->ops = *ops;
    s->slot = zr_new0(struct slot, n);
    for (size_t i = 0; i < n; i++)
        s->slot[i] = (struct slot){.s = s, .i = i, .fd = -1};
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD); /* sd_event_add_child() needs it blocked */
    for (size_t k = 0; signals[k]; k++)
        sigaddset(&block, signals[k]);
    pthread_sigmask(SIG_BLOCK, &block, &s->mask);
    *r = sd_event_new(&s->ev);
    for (size_t k = 0; *r >= 0 && signals[k] && k < ELEMENTSOF(s->sig); k++)
        *r = sd_event_add_signal(s->ev, &s->sig[k], signals[k], on_signal, s);
    if (*r < 0) {
        zr_supervisor_free(s);
        return NULL;
    }
    return s;
}

static void slot_clear(struct slot *t)
{
    t->child = sd_event_source_disable_unref(t->child);
    t->io = sd_event_source_disable_unref(t->io);
    closep(&t->fd);
    free(t->buf);
    t->buf = NULL;
    t->len = t->cap = 0;
    t->exited = false;
}

void zr_supervisor_free(struct zr_supervisor *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        slot_clear(&s->slot[i]);
    for (size_t k = 0; k < ELEMENTSOF(s->sig); k++)
        s->sig[k] = sd_event_source_disable_unref(s->sig[k]);
    sd_event_unref(s->ev);
    pthread_sigmask(SIG_SETMASK, &s->mask, NULL);
    free(s->slot);
    free(s);
}

sd_event *zr_supervisor_event(struct zr_supervisor *s)
{
    return s->ev;
}

bool zr_supervisor_running(const struct zr_supervisor *s, size_t i)
{
    return s->slot[i].pid > 0;
}

/* The child ended and its pipe, if any, is at its end: the caller is told. */
static void slot_done(struct slot *t)
{
    if (!t->exited || t->fd >= 0)
        return;
    struct zr_supervisor *s = t->s;
    _cleanup_free_ char *out = TAKE_PTR(t->buf);
    size_t len = t->len;
    siginfo_t si = t->si;
    t->pid = 0;
    slot_clear(t);
    s->ops.ended(s->ops.data, t->i, &si, out, len);
}

static int on_child(sd_event_source *src, const siginfo_t *si, void *data)
{
    struct slot *t = data;
    t->si = *si;
    t->exited = true;
    slot_done(t);
    return 0;
}

/* Reads what is there; the end (or an error) closes the pipe. */
static int on_output(sd_event_source *src, int fd, uint32_t revents, void *data)
{
    struct slot *t = data;
    if (t->cap - t->len < 65536) {
        t->cap = t->cap ? t->cap * 2 : 65536;
        t->buf = zr_reallocarray(t->buf, t->cap, 1);
    }
    ssize_t r = read(t->fd, t->buf + t->len, t->cap - t->len);
    if (r > 0)
        t->len += (size_t)r;
    if (r > 0 || (r < 0 && (errno == EINTR || errno == EAGAIN)))
        return 0;
    t->io = sd_event_source_disable_unref(t->io);
    closep(&t->fd);
    slot_done(t);
    return 0;
}

/* In the child: the parent's signal mask, none of the other pipes. */
__attribute__((noreturn)) static void child_main(struct zr_supervisor *s, size_t i, int *p)
{
    closep(&p[0]);
    for (size_t k = 0; k < s->n; k++)
        closep(&s->slot[k].fd);
    pthread_sigmask(SIG_SETMASK, &s->mask, NULL);
    /* _exit: the parent's stdio buffers and atexit handlers are the
     * parent's. */
    _exit(s->ops.child(s->ops.data, i, p[1]));
}

static int slot_watch(struct slot *t, pid_t pid, int fd)
{
    t->pid = pid;
    t->fd = fd;
    int r = sd_event_add_child(t->s->ev, &t->child, pid, WEXITED, on_child, t);
    if (r >= 0 && fd >= 0)
        r = sd_event_add_io(t->s->ev, &t->io, fd, EPOLLIN, on_output, t);
    return r;
}

int zr_supervisor_start(struct zr_supervisor *s, size_t i)
{
    int p[2] = {-1, -1};
    if (s->ops.pipe && pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        child_main(s, i, p);
    int e = errno;
    closep(&p[1]);
    if (pid < 0) {
        closep(&p[0]);
        return -e;
    }
    int r = slot_watch(&s->slot[i], pid, p[0]);
    if (r < 0) { /* cannot follow it: it must not run unseen */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s->slot[i].pid = 0;
        slot_clear(&s->slot[i]);
    }
    return r;
}

void zr_supervisor_kill(struct zr_supervisor *s, int sig)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->slot[i].pid > 0)
            kill(s->slot[i].pid, sig);
}

int zr_supervisor_stop(struct zr_supervisor *s, int sig)
{
    zr_supervisor_kill(s, sig);
    int rc = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct slot *t = &s->slot[i];
        int st;
        if (t->pid > 0 && waitpid(t->pid, &st, 0) == t->pid &&
            !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            rc = 1;
        t->pid = 0;
        slot_clear(t);
    }
    return rc;
}

int zr_supervisor_loop(struct zr_supervisor *s)
{
    return sd_event_loop(s->ev);
}

void zr_supervisor_exit(struct zr_supervisor *s)
{
    sd_event_exit(s->ev, 0);
}

/* ---- plan and apply: one report per host ------------------------------------ */

struct fleet {
    const struct zr_inventory *inv;
    const struct zr_host_options *o;
    struct zr_supervisor *sup;
    struct zr_report *results; /* per host, in inventory order */
    unsigned jobs;
    size_t next, running, done;
    bool forwarded;
};

static int worker_main(void *data, size_t i, int fd)
{
    const struct fleet *f = data;
    struct zr_report report = {0};
    zr_host_run(&f->inv->hosts[i], f->o, &report);
    size_t len;
    _cleanup_free_ char *buf = zr_wire_encode(&report, &len);
    zr_report_finish(&report);
    return zr_write_all(fd, buf, len) < 0 ? 1 : 0;
}

/* A report for a host whose process did not deliver one. */
static void host_not_run(struct fleet *f, size_t i, zr_error_code code, const char *message)
{
    zr_report_finish(&f->results[i]);
    zr_host_not_run(&f->inv->hosts[i], f->o, &f->results[i], code, message);
}

static bool interrupted(const struct fleet *f)
{
    return f->o->interrupt && *f->o->interrupt;
}

static void start_workers(struct fleet *f)
{
    while (f->running < f->jobs && f->next < f->inv->n_hosts && !interrupted(f)) {
        int r = zr_supervisor_start(f->sup, f->next);
        if (r < 0) {
            _cleanup_free_ char *why = zr_asprintf("cannot start a process for host '%s': %s",
                                                   f->inv->hosts[f->next].name, strerror(-r));
            host_not_run(f, f->next, ZR_ERR_OTHER, why);
            f->done++;
        } else {
            f->running++;
        }
        f->next++;
    }
    if (f->done == f->inv->n_hosts)
        zr_supervisor_exit(f->sup);
}

static void worker_ended(void *data, size_t i, const siginfo_t *si, const char *out, size_t len)
{
    struct fleet *f = data;
    const char *name = f->inv->hosts[i].name;
    f->running--;
    f->done++;
    bool exited = si->si_code == CLD_EXITED;
    if (!(exited && si->si_status == 0 && zr_wire_decode(out, len, &f->results[i]) == 0)) {
        _cleanup_free_ char *why =
            !exited ? zr_asprintf("the process for host '%s' was killed by signal %d (%s)", name,
                                  si->si_status, strsignal(si->si_status))
            : si->si_status != 0
                ? zr_asprintf("the process for host '%s' exited with status %d", name,
                              si->si_status)
                : zr_asprintf("the process for host '%s' sent no usable result", name);
        host_not_run(f, i, ZR_ERR_OTHER, why);
    }
    start_workers(f);
}

/* A terminal sends ^C to every process; a SIGTERM to us alone (systemctl
 * stop, a timeout) must reach the children too.  Hosts not started yet are
 * not run. */
static void forward_signal(struct fleet *f, int sig)
{
    if (f->forwarded)
        return;
    f->forwarded = true;
    zr_supervisor_kill(f->sup, sig);
    for (; f->next < f->inv->n_hosts; f->next++, f->done++)
        host_not_run(f, f->next, ZR_ERR_INTERRUPTED, "not run: interrupted by a signal");
    if (f->done == f->inv->n_hosts)
        zr_supervisor_exit(f->sup);
}

static void worker_signal(void *data, int sig)
{
    struct fleet *f = data;
    if (f->o->interrupt && !*f->o->interrupt)
        *f->o->interrupt = sig;
    forward_signal(f, sig);
}

void zr_fleet_run(const struct zr_inventory *inv, const struct zr_host_options *o, unsigned jobs,
                  struct zr_report *report)
{
    size_t n = inv->n_hosts;
    _cleanup_free_ struct zr_report *results = zr_new0(struct zr_report, n);
    struct fleet f = {.inv = inv, .o = o, .results = results, .jobs = jobs};
    struct zr_supervisor_ops ops = {.data = &f,
                                    .pipe = true,
                                    .child = worker_main,
                                    .ended = worker_ended,
                                    .signal = worker_signal};
    int r;
    f.sup = zr_supervisor_new(n, (const int[]){SIGINT, SIGTERM, 0}, &ops, &r);
    if (!f.sup) {
        _cleanup_free_ char *why = zr_asprintf("cannot set up the event loop: %s", strerror(-r));
        for (size_t i = 0; i < n; i++)
            host_not_run(&f, i, ZR_ERR_OTHER, why);
    } else {
        if (interrupted(&f)) /* a signal before the loop's sources */
            forward_signal(&f, (int)*o->interrupt);
        start_workers(&f);
        if (f.done < n)
            zr_supervisor_loop(f.sup);
        zr_supervisor_free(f.sup);
    }
    for (size_t i = 0; i < n; i++)
        zr_report_append(report, &results[i]);
}
