/* The command line: options, wiring of the stages, exit codes, and the
 * child processes that run the hosts of a hosts: inventory.  Everything
 * else lives in zr-core. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "apply.h"
#include "config.h"
#include "export.h"
#include "inventory.h"
#include "metrics.h"
#include "output.h"
#include "plan.h"
#include "preflight.h"
#include "state.h"
#include "wire.h"

enum {
    EXIT_IN_SYNC = 0,
    EXIT_ERROR = 1,
    EXIT_CHANGES = 2,
};

/* Guests of one host read at once.  Each read is a round trip to the
 * daemon; a few in flight hide the latency, more gain little over one
 * connection (bench/plan.sh).  -j counts hosts, not these. */
#define READ_THREADS 4

typedef enum {
    COLOR_AUTO,
    COLOR_ALWAYS,
    COLOR_NEVER,
} color_mode;

struct options {
    const char *uri;
    zr_format format;
    bool config_only;
    unsigned timeout_s;
    bool dry_run;
    bool atomic;
    bool no_host_check;
    unsigned jobs;
    const char *metrics_file;
    bool live, all; /* export */
    int verbosity; /* -1 quiet, 0 normal, 1 verbose */
    color_mode color;
    const char *verb;
    char **args;
    int n_args;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static void help(void)
{
    printf("Usage: zpci-reconcile [OPTIONS] COMMAND [ARGS]\n"
           "\n"
           "Declarative PCI passthrough (hostdev, zPCI) for libvirt guests.\n"
           "\n"
           "Commands:\n"
           "  validate INVENTORY   check the inventory offline (no libvirt connection)\n"
           "  plan INVENTORY       show what apply would change (exit 2 when changes are pending)\n"
           "  apply INVENTORY      attach and detach devices until the guests match\n"
           "  export [GUEST...]    print the current state as an inventory (YAML)\n"
           "\n"
           "INVENTORY may be - for standard input.\n"
           "\n"
           "Options:\n"
           "  -c, --connect URI     libvirt URI (wins over the inventory's uri)\n"
           "  -o, --output FORMAT   text (default) or json\n"
           "      --config-only     change only persistent definitions; report live drift\n"
           "      --timeout SECONDS wait this long for a live detach to complete (default 30)\n"
           "      --dry-run         with apply: only plan\n"
           "      --atomic          with apply: undo a host's done actions if one fails\n"
           "      --no-host-check   skip the host's node devices: functions the host lacks,\n"
           "                        IOMMU groups, SR-IOV, drivers, NUMA, hotplug ports (the\n"
           "                        check that no other guest holds a function still runs)\n"
           "  -j, --jobs N          hosts handled at once with hosts: (default 4)\n"
           "      --metrics-file PATH\n"
           "                        with plan/apply: write Prometheus metrics of the run\n"
           "      --live            with export: the running state, not the persistent one\n"
           "      --all             with export: every guest, also those without devices\n"
           "  -q, --quiet           print only the summary line\n"
           "  -v, --verbose         more detail on stderr\n"
           "      --color WHEN      auto (default), always or never\n"
           "  -h, --help            show this help\n"
           "      --version         show the version\n"
           "\n"
           "Exit status: 0 in sync / done, 1 error, 2 changes pending (plan).\n"
           "See zpci-reconcile(1) and, for the inventory, zpci-reconcile-inventory(5).\n");
}

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "zpci-reconcile: %s needs a whole number from %u to %u, got '%s'\n", opt,
                min, max, s);
        return -EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

/* Returns 1 to go on, 0 when done (help/version), <0 on a usage error. */
static int parse_argv(int argc, char **argv, struct options *o)
{
    enum {
        OPT_CONFIG_ONLY = 0x100,
        OPT_TIMEOUT,
        OPT_DRY_RUN,
        OPT_ATOMIC,
        OPT_NO_HOST_CHECK,
        OPT_COLOR,
        OPT_VERSION,
        OPT_METRICS_FILE,
        OPT_LIVE,
        OPT_ALL,
    };
    static const struct option longopts[] = {
        {"connect", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"config-only", no_argument, NULL, OPT_CONFIG_ONLY},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"atomic", no_argument, NULL, OPT_ATOMIC},
        {"no-host-check", no_argument, NULL, OPT_NO_HOST_CHECK},
        {"jobs", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"color", required_argument, NULL, OPT_COLOR},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"metrics-file", required_argument, NULL, OPT_METRICS_FILE},
        {"live", no_argument, NULL, OPT_LIVE},
        {"all", no_argument, NULL, OPT_ALL},
        {0},
    };
    int c;

    /* GNU getopt permutes, so options may follow the command. */
    while ((c = getopt_long(argc, argv, "c:o:j:qvh", longopts, NULL)) >= 0) {
        switch (c) {
        case 'c':
            o->uri = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "text") == 0)
                o->format = ZR_FORMAT_TEXT;
            else if (strcmp(optarg, "json") == 0)
                o->format = ZR_FORMAT_JSON;
            else {
                fprintf(stderr, "zpci-reconcile: --output takes text or json, got '%s'\n", optarg);
                return -EINVAL;
            }
            break;
        case OPT_CONFIG_ONLY:
            o->config_only = true;
            break;
        case OPT_TIMEOUT:
            if (parse_uint("--timeout", optarg, 0, 86400, &o->timeout_s) < 0)
                return -EINVAL;
            break;
        case OPT_DRY_RUN:
            o->dry_run = true;
            break;
        case OPT_ATOMIC:
            o->atomic = true;
            break;
        case OPT_NO_HOST_CHECK:
            o->no_host_check = true;
            break;
        case 'j':
            if (parse_uint("--jobs", optarg, 1, 256, &o->jobs) < 0)
                return -EINVAL;
            break;
        case 'q':
            o->verbosity = -1;
            break;
        case 'v':
            o->verbosity = 1;
            break;
        case OPT_COLOR:
            if (strcmp(optarg, "auto") == 0)
                o->color = COLOR_AUTO;
            else if (strcmp(optarg, "always") == 0)
                o->color = COLOR_ALWAYS;
            else if (strcmp(optarg, "never") == 0)
                o->color = COLOR_NEVER;
            else {
                fprintf(stderr, "zpci-reconcile: --color takes auto, always or never, got '%s'\n",
                        optarg);
                return -EINVAL;
            }
            break;
        case 'h':
            help();
            return 0;
        case OPT_VERSION:
            printf("zpci-reconcile %s\n", ZR_VERSION);
            return 0;
        case OPT_METRICS_FILE:
            if (!*optarg) {
                fprintf(stderr, "zpci-reconcile: --metrics-file needs a path\n");
                return -EINVAL;
            }
            o->metrics_file = optarg;
            break;
        case OPT_LIVE:
            o->live = true;
            break;
        case OPT_ALL:
            o->all = true;
            break;
        case '?':
            fprintf(stderr, "Try 'zpci-reconcile --help'.\n");
            return -EINVAL;
        default:
            abort();
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "zpci-reconcile: no command given; try 'zpci-reconcile --help'\n");
        return -EINVAL;
    }
    o->verb = argv[optind];
    o->args = argv + optind + 1;
    o->n_args = argc - optind - 1;
    return 1;
}

static struct zr_inventory *load_inventory(const char *path)
{
    struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_load(path, &errs);
    if (!inv)
        zr_errors_print(&errs, stderr);
    zr_errors_finish(&errs);
    return inv;
}

static int verb_validate(const struct options *o, const char *path)
{
    if (o->format == ZR_FORMAT_JSON) {
        _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
        _cleanup_(zr_inventory_freep) struct zr_inventory *inv = zr_inventory_load(path, &errs);
        if (!inv)
            zr_errors_print(&errs, stderr);
        struct zr_inventory_counts c = {
            .hosts = inv ? inv->n_hosts : 0,
            .guests = inv ? zr_inventory_count_guests(inv) : 0,
            .devices = inv ? zr_inventory_count_devices(inv) : 0,
        };
        const char *file = inv ? inv->file : zr_streq(path, "-") ? "<stdin>" : path;
        zr_output_validate(stdout, file, inv ? &c : NULL, &errs);
        return inv ? EXIT_IN_SYNC : EXIT_ERROR;
    }
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = load_inventory(path);
    if (!inv)
        return EXIT_ERROR;
    size_t guests = zr_inventory_count_guests(inv), devices = zr_inventory_count_devices(inv);
    if (o->verbosity >= 0)
        printf("%s: valid (%zu host%s, %zu guest%s, %zu device%s)\n", inv->file, inv->n_hosts,
               inv->n_hosts == 1 ? "" : "s", guests, guests == 1 ? "" : "s", devices,
               devices == 1 ? "" : "s");
    return EXIT_IN_SYNC;
}

/* Everything known about one host while planning and applying it. */
struct host_run {
    const struct zr_host *host;
    virConnectPtr conn;
    char *uri; /* as libvirt reports it once connected */
    struct zr_guest_state *states;
    size_t first_guest; /* index of its first guest in zr_plan.guests */
    int lock_fd;
};

static double seconds_now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The host as a whole failed (no connection, no lock, its process died):
 * the host record says why, and so does each of its guests, which the plan
 * could not cover. */
static void host_failed(struct zr_plan *plan, size_t hi, const struct zr_host *host,
                        const char *message)
{
    plan->hosts[hi].error = zr_strdup(message);
    for (size_t g = 0; g < host->n_guests; g++)
        zr_plan_guest_error(plan, host->name, plan->hosts[hi].uri, host->guests[g].name, "%s",
                            message);
}

static void plan_host(struct zr_plan *plan, size_t hi, struct host_run *h, const struct options *o,
                      bool applying)
{
    const struct zr_host *host = h->host;
    struct zr_plan_options popts = {.config_only = o->config_only};
    struct zr_error err = {0};

    h->first_guest = plan->n_guests;
    h->conn = zr_connect(plan->hosts[hi].uri, &err);
    if (!h->conn) {
        host_failed(plan, hi, host, err.message);
        zr_error_finish(&err);
        return;
    }
    h->uri = zr_connect_uri(h->conn);
    if (!h->uri) /* libvirt could not say: name it as asked */
        h->uri = zr_strdup(plan->hosts[hi].uri ? plan->hosts[hi].uri : "libvirt's default URI");
    free(plan->hosts[hi].uri);
    plan->hosts[hi].uri = zr_strdup(h->uri);
    plan->hosts[hi].reached = true;

    if (applying) {
        h->lock_fd = zr_apply_lock(h->uri, &err);
        if (h->lock_fd < 0) {
            host_failed(plan, hi, host, err.message);
            zr_error_finish(&err);
            return;
        }
    }

    h->states = zr_state_read(h->conn, host, READ_THREADS);
    /* --no-host-check skips the node device lookups only: the conflict
     * check still runs. */
    struct zr_preflight_notes notes = {0};
    size_t first_action = plan->n_actions;
    char **check = zr_preflight_host(plan, h->conn, h->uri, host, h->states, &popts,
                                     !o->no_host_check, READ_THREADS, applying, &notes);
    for (size_t g = 0; g < host->n_guests; g++) {
        struct zr_guest_state *st = &h->states[g];
        if (st->error) {
            _cleanup_free_ char *near = st->dom ? NULL : zr_state_near_miss(h->conn, st->wanted->name);
            if (near)
                zr_plan_guest_error(plan, host->name, h->uri, st->wanted->name,
                                    "%s (did you mean '%s'?)", st->error, near);
            else
                zr_plan_guest_error(plan, host->name, h->uri, st->wanted->name, "%s", st->error);
        } else if (check[g]) {
            zr_plan_guest_error(plan, host->name, h->uri, st->wanted->name, "%s", check[g]);
        } else {
            zr_plan_guest(plan, host->name, h->uri, st->wanted, &st->config,
                          st->active ? &st->live : NULL, &popts);
        }
    }
    zr_preflight_annotate(plan, first_action, h->first_guest, &notes);
    zr_preflight_notes_finish(&notes);
    zr_preflight_errors_free(check, host->n_guests);
}

static void host_run_finish(struct host_run *h)
{
    if (h->states)
        zr_state_free(h->states, h->host->n_guests);
    zr_apply_unlock(h->lock_fd);
    if (h->conn)
        virConnectClose(h->conn);
    free(h->uri);
}

static void on_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Plans one host into `plan` and, when applying, applies it: the whole
 * life of a host, in this process.  Appends the host record, its guests
 * (all of them, in inventory order) and its actions, finalized. */
static void run_host(const struct options *o, const struct zr_host *host, bool applying,
                     struct zr_plan *plan)
{
    double t0 = seconds_now(CLOCK_MONOTONIC);
    size_t hi = plan->n_hosts, first_action = plan->n_actions;
    zr_plan_add_host(plan, host->name, o->uri ? o->uri : host->uri);
    struct host_run h = {.host = host, .lock_fd = -1};

    plan_host(plan, hi, &h, o, applying);
    zr_plan_finalize(plan);

    if (applying && h.states) {
        on_signals();
        struct zr_apply_options aopts = {
            .timeout_s = o->timeout_s,
            .atomic = o->atomic,
            .progress = o->verbosity > 0 || (plan->n_actions - first_action >= 10 &&
                                             o->verbosity >= 0 && isatty(STDERR_FILENO)),
            .interrupt = &interrupted,
        };
        _cleanup_free_ virDomainPtr *doms = zr_new0(virDomainPtr, plan->n_guests);
        /* plan_host appended this host's guests in inventory order,
         * skipping none. */
        for (size_t g = 0; g < host->n_guests; g++)
            doms[h.first_guest + g] = h.states[g].dom;
        zr_apply_host(plan, first_action, plan->n_actions, h.conn, doms, &aopts);
    }
    host_run_finish(&h);
    plan->hosts[hi].seconds = seconds_now(CLOCK_MONOTONIC) - t0;
}

/* ---- several hosts: one child process each -------------------------------
 *
 * libvirt lets a process open one qemu:///embed root in its life, and no
 * local daemon URI after it; a hosts: inventory may name several roots and
 * qemu:///system.  So each host of such an inventory runs in a child forked
 * after the inventory is loaded (the parent never touches libvirt, so it is
 * single-threaded when it forks), at most --jobs at once.  A child runs
 * run_host() and sends its plan back over a pipe (wire.h); the parent
 * merges the plans in inventory order, so output never depends on which
 * host finished first.  See docs/design.md. */

struct worker {
    pid_t pid; /* 0 when not running */
    int fd;    /* read end of its result pipe, -1 when closed */
    char *buf;
    size_t len, cap;
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int worker_main(const struct options *o, const struct zr_host *host, bool applying, int fd)
{
    struct zr_plan plan = {0};
    run_host(o, host, applying, &plan);
    size_t len;
    _cleanup_free_ char *buf = zr_wire_encode(&plan, &len);
    zr_plan_finish(&plan);
    return write_all(fd, buf, len) < 0 ? EXIT_ERROR : EXIT_IN_SYNC;
}

static int start_worker(const struct options *o, const struct zr_inventory *inv, size_t i,
                        bool applying, struct worker *w, const sigset_t *mask)
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
        for (size_t k = 0; k < inv->n_hosts; k++)
            if (w[k].fd >= 0)
                close(w[k].fd);
        sigprocmask(SIG_SETMASK, mask, NULL);
        /* _exit: the parent's stdio buffers and atexit handlers are the
         * parent's. */
        _exit(worker_main(o, &inv->hosts[i], applying, p[1]));
    }
    close(p[1]);
    w[i].pid = pid;
    w[i].fd = p[0];
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

/* A result for a host whose process did not deliver one. */
static void host_not_run(const struct options *o, const struct zr_host *host,
                         struct zr_plan *result, const char *message)
{
    zr_plan_finish(result);
    zr_plan_add_host(result, host->name, o->uri ? o->uri : host->uri);
    host_failed(result, 0, host, message);
}

static void worker_finish(const struct options *o, struct worker *w, const struct zr_host *host,
                          struct zr_plan *result)
{
    int status = 0;
    close(w->fd);
    w->fd = -1;
    while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
        ;
    w->pid = 0;
    _cleanup_free_ char *buf = TAKE_PTR(w->buf);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && zr_wire_decode(buf, w->len, result) == 0)
        return;
    _cleanup_free_ char *why = NULL;
    if (WIFSIGNALED(status))
        why = zr_asprintf("the process for host '%s' was killed by signal %d (%s)", host->name,
                          WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        why = zr_asprintf("the process for host '%s' exited with status %d", host->name,
                          WEXITSTATUS(status));
    else
        why = zr_asprintf("the process for host '%s' sent no usable result", host->name);
    host_not_run(o, host, result, why);
}

static void run_hosts_forked(const struct options *o, const struct zr_inventory *inv, bool applying,
                             struct zr_plan *plan)
{
    size_t n = inv->n_hosts, next = 0, running = 0, done = 0;
    _cleanup_free_ struct worker *w = zr_new0(struct worker, n);
    _cleanup_free_ struct zr_plan *results = zr_new0(struct zr_plan, n);
    _cleanup_free_ struct pollfd *pfd = zr_new0(struct pollfd, n);
    _cleanup_free_ size_t *owner = zr_new0(size_t, n);
    for (size_t i = 0; i < n; i++)
        w[i].fd = -1;

    /* Signals stay blocked except inside ppoll(), so one that arrives
     * between the check of `interrupted` and the wait still wakes it. */
    sigset_t block, mask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &mask);
    on_signals();
    fflush(NULL);

    bool forwarded = false;
    while (done < n) {
        if (interrupted && !forwarded) {
            /* A terminal sends ^C to every process; a SIGTERM to us alone
             * (systemctl stop, a timeout) must reach the children too. */
            forwarded = true;
            for (size_t i = 0; i < n; i++)
                if (w[i].pid > 0)
                    kill(w[i].pid, interrupted);
            for (; next < n; next++, done++)
                host_not_run(o, &inv->hosts[next], &results[next],
                             "not run: interrupted by a signal");
        }
        while (running < o->jobs && next < n && !interrupted) {
            int r = start_worker(o, inv, next, applying, w, &mask);
            if (r < 0) {
                _cleanup_free_ char *why = zr_asprintf("cannot start a process for host '%s': %s",
                                                       inv->hosts[next].name, strerror(-r));
                host_not_run(o, &inv->hosts[next], &results[next], why);
                done++;
            } else {
                running++;
            }
            next++;
        }
        if (running == 0)
            continue;

        size_t np = 0;
        for (size_t i = 0; i < n; i++)
            if (w[i].fd >= 0) {
                pfd[np] = (struct pollfd){.fd = w[i].fd, .events = POLLIN};
                owner[np++] = i;
            }
        if (ppoll(pfd, np, NULL, &mask) < 0) {
            if (errno == EINTR)
                continue;
            perror("zpci-reconcile: ppoll");
            abort();
        }
        for (size_t k = 0; k < np; k++) {
            if (!pfd[k].revents)
                continue;
            size_t i = owner[k];
            if (worker_read(&w[i]) > 0)
                continue;
            worker_finish(o, &w[i], &inv->hosts[i], &results[i]);
            running--;
            done++;
        }
    }
    sigprocmask(SIG_SETMASK, &mask, NULL);
    for (size_t i = 0; i < n; i++)
        zr_plan_append(plan, &results[i]);
}

static bool use_color(const struct options *o)
{
    switch (o->color) {
    case COLOR_ALWAYS:
        return true;
    case COLOR_NEVER:
        return false;
    case COLOR_AUTO:
        break;
    }
    const char *term = getenv("TERM");
    /* no-color.org: only a non-empty NO_COLOR turns colour off. */
    const char *no_color = getenv("NO_COLOR");
    return isatty(STDOUT_FILENO) && !(no_color && *no_color) && term && strcmp(term, "dumb") != 0;
}

/* The metrics of a plan or apply run; returns the exit status, which a
 * file that cannot be written turns into an error. */
static int write_metrics(const struct options *o, bool applying, const struct zr_plan *plan,
                         double t0, int rc)
{
    if (!o->metrics_file)
        return rc;
    struct zr_metrics_run run = {
        .command = applying ? "apply" : "plan",
        .applied = applying,
        .end_time = seconds_now(CLOCK_REALTIME),
        .seconds = seconds_now(CLOCK_MONOTONIC) - t0,
        .exit_status = rc,
    };
    struct zr_error err = {0};
    if (zr_metrics_write_file(o->metrics_file, plan, &run, &err) < 0) {
        fprintf(stderr, "zpci-reconcile: %s\n", err.message);
        zr_error_finish(&err);
        return EXIT_ERROR;
    }
    return rc;
}

/* A plan or apply that ends before it plans: the errors are already on
 * stderr; JSON still gets a document and the metrics their exit status
 * (else the alert on it would never fire). */
static int plan_apply_failed(const struct options *o, bool applying, double t0,
                             const struct zr_errors *errs)
{
    struct zr_output_options oo = {.format = o->format, .applied = applying};
    zr_output_errors(stdout, errs, &oo);
    fflush(stdout);
    struct zr_plan empty = {0};
    return write_metrics(o, applying, &empty, t0, EXIT_ERROR);
}

static int verb_plan_apply(const struct options *o, const char *path, bool applying)
{
    double t0 = seconds_now(CLOCK_MONOTONIC);
    _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = zr_inventory_load(path, &errs);
    if (!inv) {
        zr_errors_print(&errs, stderr);
        return plan_apply_failed(o, applying, t0, &errs);
    }
    if (o->uri && inv->n_hosts > 1) {
        zr_errors_add(&errs, NULL, 0, 0, NULL,
                      "--connect cannot be used with an inventory of %zu hosts; each host has "
                      "its own uri",
                      inv->n_hosts);
        fprintf(stderr, "zpci-reconcile: %s\n", errs.items[0].message);
        return plan_apply_failed(o, applying, t0, &errs);
    }

    struct zr_plan plan = {0};
    if (inv->n_hosts == 1)
        run_host(o, &inv->hosts[0], applying, &plan);
    else
        run_hosts_forked(o, inv, applying, &plan);
    if (interrupted)
        fprintf(stderr,
                "zpci-reconcile: interrupted by signal %d; stopped after the current call\n",
                (int)interrupted);

    struct zr_output_options oo = {
        .format = o->format,
        .color = o->format == ZR_FORMAT_TEXT && use_color(o),
        .quiet = o->verbosity < 0,
        .applied = applying,
    };
    zr_output_plan(stdout, &plan, &oo);
    fflush(stdout);

    struct zr_plan_counts c;
    zr_plan_count(&plan, &c);
    int rc;
    if (c.hosts_failed || c.guests_failed || c.failed || c.skipped || interrupted)
        rc = EXIT_ERROR;
    else if (!applying && plan.n_actions > 0)
        rc = EXIT_CHANGES;
    else
        rc = EXIT_IN_SYNC;

    rc = write_metrics(o, applying, &plan, t0, rc);
    zr_plan_finish(&plan);
    return rc;
}

/* ---- export ----------------------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct zr_guest *)a)->name, ((const struct zr_guest *)b)->name);
}

/* Every guest libvirt lists (only running ones with --live), by name: the
 * order libvirt lists them in is not stable. */
static int list_guests(virConnectPtr conn, bool live, struct zr_host *host)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(conn, &doms, live ? VIR_CONNECT_LIST_DOMAINS_ACTIVE : 0);
    if (n < 0)
        return -EIO;
    host->guests = zr_new0(struct zr_guest, (size_t)n);
    for (int i = 0; i < n; i++) {
        host->guests[host->n_guests++].name = zr_strdup(virDomainGetName(doms[i]));
        virDomainFree(doms[i]);
    }
    free(doms);
    if (host->n_guests)
        qsort(host->guests, host->n_guests, sizeof(*host->guests), name_cmp);
    return 0;
}

static void export_host_finish(struct zr_host *host)
{
    for (size_t i = 0; i < host->n_guests; i++)
        free(host->guests[i].name);
    free(host->guests);
}

/* Writes the inventory only when every guest it covers could be read: a
 * partial file that looks complete would prune what it misses. */
static int verb_export(const struct options *o)
{
    struct zr_error err = {0};
    virConnectPtr conn = zr_connect(o->uri, &err);
    if (!conn) {
        fprintf(stderr, "zpci-reconcile: %s\n", err.message);
        zr_error_finish(&err);
        return EXIT_ERROR;
    }

    bool named = o->n_args > 0;
    struct zr_host host = {.name = (char *)"default"};
    if (named) {
        host.guests = zr_new0(struct zr_guest, (size_t)o->n_args);
        for (int i = 0; i < o->n_args; i++) {
            bool seen = false;
            for (size_t j = 0; j < host.n_guests && !seen; j++)
                seen = strcmp(host.guests[j].name, o->args[i]) == 0;
            if (!seen)
                host.guests[host.n_guests++].name = zr_strdup(o->args[i]);
        }
    } else if (list_guests(conn, o->live, &host) < 0) {
        fprintf(stderr, "zpci-reconcile: cannot list the guests of %s: %s\n",
                o->uri ? o->uri : "libvirt's default URI", zr_libvirt_error());
        virConnectClose(conn);
        return EXIT_ERROR;
    }

    struct zr_guest_state *states = zr_state_read(conn, &host, READ_THREADS);
    _cleanup_free_ struct zr_export_guest *out = zr_new0(struct zr_export_guest, host.n_guests);
    size_t n_out = 0;
    int rc = EXIT_IN_SYNC;
    for (size_t g = 0; g < host.n_guests; g++) {
        const struct zr_guest_state *st = &states[g];
        if (st->error) {
            /* Listed a moment ago, undefined since: nothing to export. */
            if (!named && !st->dom)
                continue;
            /* Names come from libvirt: escaped, as in every report. */
            _cleanup_free_ char *msg = zr_escaped(st->error);
            fprintf(stderr, "zpci-reconcile: %s\n", msg);
            rc = EXIT_ERROR;
            continue;
        }
        if (o->live && !st->active) {
            if (named) {
                _cleanup_free_ char *name = zr_escaped(st->wanted->name);
                fprintf(stderr,
                        "zpci-reconcile: guest '%s' is not running; --live exports the running "
                        "state\n",
                        name);
                rc = EXIT_ERROR;
            }
            continue;
        }
        const struct zr_device_list *devices = o->live ? &st->live : &st->config;
        if (named || o->all || devices->n > 0)
            out[n_out++] = (struct zr_export_guest){st->wanted->name, devices};
    }

    if (rc == EXIT_IN_SYNC) {
        struct zr_export_warnings warnings = {0};
        if (zr_export_write(stdout, o->uri, out, n_out, &warnings, &err) < 0 ||
            fflush(stdout) != 0) {
            fprintf(stderr, "zpci-reconcile: %s\n",
                    err.message ? err.message : "cannot write the inventory");
            zr_error_finish(&err);
            rc = EXIT_ERROR;
        }
        for (size_t i = 0; i < warnings.n; i++) {
            _cleanup_free_ char *msg = zr_escaped(warnings.items[i]);
            fprintf(stderr, "zpci-reconcile: warning: %s\n", msg);
        }
        zr_export_warnings_finish(&warnings);
    }

    zr_state_free(states, host.n_guests);
    export_host_finish(&host);
    virConnectClose(conn);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o = {.timeout_s = 30, .jobs = 4};
    int r = parse_argv(argc, argv, &o);
    if (r <= 0)
        return r < 0 ? EXIT_ERROR : EXIT_IN_SYNC;

    static const struct {
        const char *name;
        int min_args, max_args;
    } verbs[] = {
        {"validate", 1, 1},
        {"plan", 1, 1},
        {"apply", 1, 1},
        {"export", 0, INT_MAX},
    };
    size_t v;
    for (v = 0; v < ELEMENTSOF(verbs); v++)
        if (strcmp(o.verb, verbs[v].name) == 0)
            break;
    if (v == ELEMENTSOF(verbs)) {
        fprintf(stderr, "zpci-reconcile: unknown command '%s'; try 'zpci-reconcile --help'\n", o.verb);
        return EXIT_ERROR;
    }
    bool is_apply = strcmp(o.verb, "apply") == 0;
    bool is_export = strcmp(o.verb, "export") == 0;
    bool is_run = is_apply || strcmp(o.verb, "plan") == 0;
    bool args_ok = o.n_args >= verbs[v].min_args && o.n_args <= verbs[v].max_args;
    const char *misplaced =
        !args_ok                      ? "takes one INVENTORY (a file, or - for stdin)"
        : (o.dry_run && !is_apply)    ? "--dry-run is only for apply"
        : (o.atomic && !is_apply)     ? "--atomic is only for apply"
        : (o.live && !is_export)      ? "--live is only for export"
        : (o.all && !is_export)       ? "--all is only for export"
        : (o.metrics_file && !is_run) ? "--metrics-file is only for plan and apply"
        : (o.all && o.n_args > 0)     ? "export takes guest names or --all, not both"
        : (is_export && o.format == ZR_FORMAT_JSON)
            ? "export writes YAML; --output json is for plan and apply"
            : NULL;
    if (misplaced) {
        _cleanup_free_ char *msg =
            args_ok ? zr_strdup(misplaced) : zr_asprintf("'%s' %s", o.verb, misplaced);
        fprintf(stderr, "zpci-reconcile: %s\n", msg);
        if (!is_run)
            return EXIT_ERROR;
        /* Even a usage error of plan/apply writes its metrics and JSON. */
        _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
        zr_errors_add(&errs, NULL, 0, 0, NULL, "%s", msg);
        return plan_apply_failed(&o, is_apply && !o.dry_run, seconds_now(CLOCK_MONOTONIC), &errs);
    }

    /* libxml2 must be initialised before threads read domain XML at once. */
    xmlInitParser();
    /* A write to the socket of a libvirtd that just died must fail with EPIPE,
     * so apply can report the lost connection; by default SIGPIPE would end
     * the process with nothing said.  libvirt leaves this to its clients. */
    signal(SIGPIPE, SIG_IGN);

    if (strcmp(o.verb, "validate") == 0)
        return verb_validate(&o, o.args[0]);
    if (is_export)
        return verb_export(&o);
    return verb_plan_apply(&o, o.args[0], is_apply && !o.dry_run);
}
