/* The process supervisor for hosts: inventories.  See fleet.h and "Several
 * hosts" in docs/design.md. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fleet.h"
#include "wire.h"

struct worker {
    pid_t pid; /* 0 when not running */
    int fd;    /* read end of its result pipe, -1 when closed */
    char *buf;
    size_t len, cap;
};

/* What the supervisor holds for one run. */
struct fleet {
    const struct zr_inventory *inv;
    const struct zr_host_options *o;
    struct worker *w;
    struct zr_plan *results; /* per host, in inventory order */
    struct pollfd *pfd;
    size_t *owner; /* pfd[k] is the pipe of worker owner[k] */
    sigset_t mask; /* the signal mask to restore, and to wait with */
    size_t next, running, done;
};

static int worker_main(const struct zr_host_options *o, const struct zr_host *host, int fd)
{
    struct zr_plan report = {0};
    zr_host_run(host, o, &report);
    size_t len;
    _cleanup_free_ char *buf = zr_wire_encode(&report, &len);
    zr_plan_finish(&report);
    return zr_write_all(fd, buf, len) < 0 ? 1 : 0;
}

static int start_worker(struct fleet *f, size_t i)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return -e;
    }
    if (pid == 0) {
        close(p[0]);
        for (size_t k = 0; k < f->inv->n_hosts; k++)
            if (f->w[k].fd >= 0)
                close(f->w[k].fd);
        sigprocmask(SIG_SETMASK, &f->mask, NULL);
        /* _exit: the parent's stdio buffers and atexit handlers are the
         * parent's. */
        _exit(worker_main(f->o, &f->inv->hosts[i], p[1]));
    }
    close(p[1]);
    f->w[i].pid = pid;
    f->w[i].fd = p[0];
    return 0;
}

/* Reads what is there; returns >0 to go on, 0 at the end, <0 on error. */
static ssize_t worker_read(struct worker *w)
{
    if (w->cap - w->len < 65536) {
        w->cap = w->cap ? w->cap * 2 : 65536;
        w->buf = zr_reallocarray(w->buf, w->cap, 1);
    }
    ssize_t r = read(w->fd, w->buf + w->len, w->cap - w->len);
    if (r < 0 && errno == EINTR)
        return 1;
    if (r > 0)
        w->len += (size_t)r;
    return r;
}

/* A report for a host whose process did not deliver one. */
static void host_not_run(struct fleet *f, size_t i, zr_error_code code, const char *message)
{
    zr_plan_finish(&f->results[i]);
    zr_host_not_run(&f->inv->hosts[i], f->o, &f->results[i], code, message);
}

static void worker_finish(struct fleet *f, size_t i)
{
    struct worker *w = &f->w[i];
    const char *name = f->inv->hosts[i].name;
    int status = 0;
    close(w->fd);
    w->fd = -1;
    while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
        ;
    w->pid = 0;
    _cleanup_free_ char *buf = TAKE_PTR(w->buf);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
        zr_wire_decode(buf, w->len, &f->results[i]) == 0)
        return;
    _cleanup_free_ char *why = NULL;
    if (WIFSIGNALED(status))
        why = zr_asprintf("the process for host '%s' was killed by signal %d (%s)", name,
                          WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        why = zr_asprintf("the process for host '%s' exited with status %d", name,
                          WEXITSTATUS(status));
    else
        why = zr_asprintf("the process for host '%s' sent no usable result", name);
    host_not_run(f, i, ZR_ERR_OTHER, why);
}

/* A terminal sends ^C to every process; a SIGTERM to us alone (systemctl
 * stop, a timeout) must reach the children too.  Hosts not started yet are
 * not run. */
static void forward_signal(struct fleet *f, int sig)
{
    for (size_t i = 0; i < f->inv->n_hosts; i++)
        if (f->w[i].pid > 0)
            kill(f->w[i].pid, sig);
    for (; f->next < f->inv->n_hosts; f->next++, f->done++)
        host_not_run(f, f->next, ZR_ERR_INTERRUPTED, "not run: interrupted by a signal");
}

static bool interrupted(const struct fleet *f)
{
    return f->o->interrupt && *f->o->interrupt;
}

static void start_workers(struct fleet *f, unsigned jobs)
{
    while (f->running < jobs && f->next < f->inv->n_hosts && !interrupted(f)) {
        int r = start_worker(f, f->next);
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
}

/* Waits for output from any running worker and reads it; a worker whose
 * pipe closed is finished. */
static void wait_workers(struct fleet *f)
{
    size_t np = 0;
    for (size_t i = 0; i < f->inv->n_hosts; i++)
        if (f->w[i].fd >= 0) {
            f->pfd[np] = (struct pollfd){.fd = f->w[i].fd, .events = POLLIN};
            f->owner[np++] = i;
        }
    if (ppoll(f->pfd, np, NULL, &f->mask) < 0) {
        if (errno == EINTR)
            return;
        perror("zpci-reconcile: ppoll");
        abort();
    }
    for (size_t k = 0; k < np; k++) {
        if (!f->pfd[k].revents)
            continue;
        size_t i = f->owner[k];
        if (worker_read(&f->w[i]) > 0)
            continue;
        worker_finish(f, i);
        f->running--;
        f->done++;
    }
}

void zr_fleet_run(const struct zr_inventory *inv, const struct zr_host_options *o, unsigned jobs,
                  struct zr_plan *report)
{
    size_t n = inv->n_hosts;
    _cleanup_free_ struct worker *w = zr_new0(struct worker, n);
    _cleanup_free_ struct zr_plan *results = zr_new0(struct zr_plan, n);
    _cleanup_free_ struct pollfd *pfd = zr_new0(struct pollfd, n);
    _cleanup_free_ size_t *owner = zr_new0(size_t, n);
    struct fleet f = {.inv = inv, .o = o, .w = w, .results = results, .pfd = pfd, .owner = owner};
    for (size_t i = 0; i < n; i++)
        w[i].fd = -1;

    /* Signals stay blocked except inside ppoll(), so one that arrives
     * between the check of the interrupt flag and the wait still wakes
     * it. */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &f.mask);
    fflush(NULL);

    bool forwarded = false;
    while (f.done < n) {
        if (interrupted(&f) && !forwarded) {
            forwarded = true;
            forward_signal(&f, (int)*o->interrupt);
        }
        start_workers(&f, jobs);
        if (f.running > 0)
            wait_workers(&f);
    }
    sigprocmask(SIG_SETMASK, &f.mask, NULL);
    for (size_t i = 0; i < n; i++)
        zr_plan_append(report, &results[i]);
}
