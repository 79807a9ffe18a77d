/* The command line: options, a verb table, printing and exit codes.  A
 * host's run is zr_host_run() (host.h), several hosts are zr_fleet_run()
 * (fleet.h); main.c calls no libvirt function and holds no logic a test
 * would want. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "export.h"
#include "fleet.h"
#include "host.h"
#include "inventory.h"
#include "metrics.h"
#include "options.h"
#include "output.h"
#include "plan.h"
#include "summary.h"
#include "watch.h"

enum {
    EXIT_IN_SYNC = 0,
    EXIT_ERROR = 1,
    EXIT_CHANGES = 2,
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static void on_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* A plan of one host changes nothing and just ends on a signal, as it
 * always did, even inside a libvirt call that restarts its wait on EINTR;
 * only a connection being opened is given up and reported (exit 1, JSON,
 * metrics), which needs the flag. */
static void on_plan_signal(int sig)
{
    interrupted = sig;
    if (!zr_connect_waiting()) {
        signal(sig, SIG_DFL);
        raise(sig); /* delivered when this handler returns */
    }
}

static void on_plan_signals(void)
{
    struct sigaction sa = {.sa_handler = on_plan_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static struct zr_inventory *load_inventory(const char *path)
{
    _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_load(path, &errs);
    if (!inv)
        zr_errors_print(&errs, stderr);
    return inv;
}

static int verb_validate(const struct options *o)
{
    if (o->format == ZR_FORMAT_JSON) {
        _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
        _cleanup_(zr_inventory_freep) struct zr_inventory *inv =
            zr_inventory_load(o->args[0], &errs);
        if (!inv)
            zr_errors_print(&errs, stderr);
        struct zr_inventory_counts c = {
            .hosts = inv ? inv->n_hosts : 0,
            .guests = inv ? zr_inventory_count_guests(inv) : 0,
            .devices = inv ? zr_inventory_count_devices(inv) : 0,
        };
        const char *file = inv ? inv->file : zr_streq(o->args[0], "-") ? "<stdin>" : o->args[0];
        zr_output_validate(stdout, file, inv ? &c : NULL, &errs);
        return inv ? EXIT_IN_SYNC : EXIT_ERROR;
    }
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = load_inventory(o->args[0]);
    if (!inv)
        return EXIT_ERROR;
    size_t guests = zr_inventory_count_guests(inv), devices = zr_inventory_count_devices(inv);
    if (o->verbosity >= 0)
        printf("%s: valid (%zu host%s, %zu guest%s, %zu device%s)\n", inv->file, inv->n_hosts,
               inv->n_hosts == 1 ? "" : "s", guests, guests == 1 ? "" : "s", devices,
               devices == 1 ? "" : "s");
    return EXIT_IN_SYNC;
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

static double seconds_now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The metrics file's label for this run: plan, apply or watch; NULL for a
 * command that writes no metrics (or none given). */
static const char *metrics_command(const struct options *o)
{
    if (zr_streq(o->verb, "apply"))
        return o->dry_run ? "plan" : "apply";
    return zr_streq(o->verb, "plan") || zr_streq(o->verb, "watch") ? o->verb : NULL;
}

/* The metrics of a plan or apply run; returns the exit status, which a
 * file that cannot be written turns into an error. */
static int write_metrics(const struct options *o, const struct zr_plan *plan, double t0, int rc)
{
    const char *command = metrics_command(o);
    if (!o->metrics_file || !command)
        return rc;
    struct zr_metrics_run run = {
        .command = command,
        .applied = !zr_streq(command, "plan"),
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

/* A run that ends before it plans (a usage error, an invalid inventory, a
 * host that cannot be opened): the errors are already on stderr.  With
 * -o json the command's JSON document still says why, and the metrics get
 * exit status 1, else the alert on it would never fire. */
static int run_failed(const struct options *o, double t0, const struct zr_errors *errs)
{
    if (o->format == ZR_FORMAT_JSON && zr_streq(o->verb, "validate")) {
        zr_output_validate(stdout, o->n_args ? o->args[0] : NULL, NULL, errs);
    } else if (o->format == ZR_FORMAT_JSON && !zr_streq(o->verb, "export")) {
        struct zr_output_options oo = {.format = o->format, .one_line = zr_streq(o->verb, "watch")};
        zr_output_errors(stdout, errs, &oo);
    }
    fflush(stdout);
    struct zr_plan empty = {0};
    return write_metrics(o, &empty, t0, EXIT_ERROR);
}

/* Usage errors, each on a line of its own. */
static void print_errors(const struct zr_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        fputs("zpci-reconcile: ", stderr);
        zr_fputs_escaped(errs->items[i].message, stderr);
        fputc('\n', stderr);
    }
}

static int print_report(const struct options *o, bool applying, const struct zr_plan *plan)
{
    if (interrupted)
        fprintf(stderr,
                "zpci-reconcile: interrupted by signal %d; stopped after the calls in progress\n",
                (int)interrupted);
    struct zr_output_options oo = {
        .format = o->format,
        .color = o->format == ZR_FORMAT_TEXT && use_color(o),
        .quiet = o->verbosity < 0,
        .applied = applying,
    };
    zr_output_plan(stdout, plan, &oo);
    fflush(stdout);

    _cleanup_(zr_summary_finish) struct zr_summary c;
    zr_summary_count(plan, applying, &c);
    if (zr_summary_is_error(&c) || interrupted)
        return EXIT_ERROR;
    return !applying && plan->n_actions > 0 ? EXIT_CHANGES : EXIT_IN_SYNC;
}

/* The settings a run takes from the environment (options.h). */
struct env_settings {
    unsigned threads;
    unsigned connect_s;
};

/* What the inventory must pass besides validation, and the settings of
 * the environment; prints the errors (the inventory's own too). */
static int check_inventory(const struct options *o, const struct zr_inventory *inv,
                           struct env_settings *env, struct zr_errors *errs)
{
    if (!inv) {
        zr_errors_print(errs, stderr);
        return -EINVAL;
    }
    if (o->uri && inv->n_hosts > 1)
        zr_errors_add(errs, NULL, 0, 0, NULL,
                      "--connect cannot be used with an inventory of %zu hosts; each host has "
                      "its own uri",
                      inv->n_hosts);
    else if (options_apply_threads(&env->threads, errs) == 0)
        options_connect_timeout(&env->connect_s, errs);
    print_errors(errs);
    return errs->n ? -EINVAL : 0;
}

static int verb_plan_apply(const struct options *o, bool applying)
{
    double t0 = seconds_now(CLOCK_MONOTONIC);
    _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = zr_inventory_load(o->args[0], &errs);
    struct env_settings env = {0};
    if (check_inventory(o, inv, &env, &errs) < 0)
        return run_failed(o, t0, &errs);

    struct zr_host_options ho = {
        .uri = o->uri,
        .applying = applying,
        .config_only = o->config_only,
        .host_check = !o->no_host_check,
        .timeout_s = o->timeout_s,
        .atomic = o->atomic,
        .progress_from = o->verbosity > 0                             ? 0
                         : o->verbosity == 0 && isatty(STDERR_FILENO) ? 10
                                                                      : SIZE_MAX,
        .interrupt = &interrupted,
        .apply_threads = env.threads,
        .connect_timeout_s = env.connect_s,
    };
    _cleanup_(zr_plan_finish) struct zr_plan plan = {.has_hosts = inv->has_hosts};
    /* A signal gives up a connection that is still being opened (libvirt
     * would restart its wait on EINTR for ever) and reports it; apply then
     * starts no more calls, and a plan of several hosts reports the hosts
     * it could not finish. */
    if (applying || inv->n_hosts > 1)
        on_signals();
    else
        on_plan_signals();
    if (inv->n_hosts == 1)
        zr_host_run(&inv->hosts[0], &ho, &plan);
    else
        zr_fleet_run(inv, &ho, o->jobs, &plan);
    int rc = print_report(o, applying, &plan);
    return write_metrics(o, &plan, t0, rc);
}

static int verb_plan(const struct options *o)
{
    return verb_plan_apply(o, false);
}

static int verb_apply(const struct options *o)
{
    return verb_plan_apply(o, !o->dry_run);
}

/* Writes the inventory only when every guest it covers could be read: a
 * partial file that looks complete would prune what it misses. */
static int verb_export(const struct options *o)
{
    unsigned connect_s;
    _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
    if (options_connect_timeout(&connect_s, &errs) < 0) {
        print_errors(&errs);
        return EXIT_ERROR;
    }
    struct zr_export_request req = {
        .uri = o->uri,
        .connect_timeout_s = connect_s,
        .names = (const char *const *)o->args,
        .n_names = (size_t)o->n_args,
        .live = o->live,
        .all = o->all,
    };
    _cleanup_(zr_export_found_finish) struct zr_export_found r = {0};
    struct zr_error err = {0};
    if (zr_export_read(&req, &r, &err) < 0) {
        fprintf(stderr, "zpci-reconcile: %s\n", err.message);
        zr_error_finish(&err);
        return EXIT_ERROR;
    }
    /* Names come from libvirt: escaped, as in every report. */
    for (size_t i = 0; i < r.n_errors; i++) {
        _cleanup_free_ char *msg = zr_escaped(r.errors[i]);
        fprintf(stderr, "zpci-reconcile: %s\n", msg);
    }
    if (r.n_errors)
        return EXIT_ERROR;

    int rc = EXIT_IN_SYNC;
    struct zr_export_warnings warnings = {0};
    if (zr_export_write(stdout, o->uri, r.guests, r.n_guests, &warnings, &err) < 0 ||
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
    return rc;
}

/* ---- watch ----------------------------------------------------------------- */

static volatile sig_atomic_t reload_requested;

static void on_watch_signal(int sig)
{
    if (sig == SIGHUP) {
        reload_requested = 1;
    } else {
        interrupted = sig;
        zr_watch_stopping();
    }
    zr_watch_wake();
}

/* What the watch callbacks need. */
struct watch_cli {
    const struct options *o;
    bool per_host; /* hosts: with several hosts, one process each */
};

/* The metrics file of a host's process: with several hosts, each writes
 * its own, NAME-HOST.prom beside NAME.prom. */
static char *watch_metrics_path(const struct watch_cli *c, const struct zr_plan *report)
{
    const char *path = c->o->metrics_file;
    if (!c->per_host || !report->n_hosts)
        return zr_strdup(path);
    size_t len = strlen(path);
    bool prom = len > 5 && strcmp(path + len - 5, ".prom") == 0;
    return zr_asprintf("%.*s-%s%s", (int)(prom ? len - 5 : len), path, report->hosts[0].name,
                       prom ? ".prom" : "");
}

static void watch_metrics(const struct watch_cli *c, const struct zr_plan *report,
                          const struct zr_watch_stats *st)
{
    _cleanup_(zr_summary_finish) struct zr_summary n;
    zr_summary_count(report, true, &n);
    struct zr_metrics_watch mw = {.repairs = st->repairs, .last_event = st->last_event};
    struct zr_metrics_run run = {
        .command = "watch",
        .applied = true,
        .end_time = seconds_now(CLOCK_REALTIME),
        .seconds = report->n_hosts ? report->hosts[0].seconds : 0,
        .exit_status = zr_summary_is_error(&n),
        .watch = &mw,
    };
    _cleanup_free_ char *path = watch_metrics_path(c, report);
    struct zr_error err = {0};
    if (zr_metrics_write_file(path, report, &run, &err) < 0) {
        fprintf(stderr, "zpci-reconcile: %s\n", err.message);
        zr_error_finish(&err);
    }
}

/* One repair: apply's text, or one JSON line, written at once so that the
 * blocks of several hosts' processes do not mix. */
static void watch_report(void *data, const struct zr_plan *report, const struct zr_watch_stats *st)
{
    const struct watch_cli *c = data;
    struct zr_output_options oo = {
        .format = c->o->format,
        .color = c->o->format == ZR_FORMAT_TEXT && use_color(c->o),
        .quiet = c->o->verbosity < 0,
        .applied = true,
    };
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        abort();
    if (c->o->format == ZR_FORMAT_JSON)
        zr_output_json_line(m, report, &oo);
    else
        zr_output_plan(m, report, &oo);
    fclose(m);
    zr_write_all(STDOUT_FILENO, buf, len);
    free(buf);
    if (c->o->metrics_file)
        watch_metrics(c, report, st);
}

static void watch_invalid(void *data, const struct zr_errors *errs)
{
    zr_errors_print(errs, stderr);
}

static void watch_notice(void *data, const char *message)
{
    _cleanup_free_ char *m = zr_escaped(message);
    fprintf(stderr, "zpci-reconcile: %s\n", m);
}

static void on_watch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_watch_signal};
    for (size_t i = 0; i < 3; i++)
        sigaction((const int[]){SIGINT, SIGTERM, SIGHUP}[i], &sa, NULL);
}

static int verb_watch(const struct options *o)
{
    double t0 = seconds_now(CLOCK_MONOTONIC);
    /* Before the inventory is read: a SIGHUP must never end the process. */
    on_watch_signals();
    _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = zr_inventory_load(o->args[0], &errs);
    struct env_settings env = {0};
    if (check_inventory(o, inv, &env, &errs) < 0)
        return run_failed(o, t0, &errs);
    struct watch_cli cli = {.o = o, .per_host = inv->n_hosts > 1};
    struct zr_watch_options wo = {
        .path = o->args[0],
        .host_name = inv->hosts[0].name,
        .host = {.uri = o->uri,
                 .config_only = o->config_only,
                 .host_check = !o->no_host_check,
                 .timeout_s = o->timeout_s,
                 .progress_from = o->verbosity > 0 ? 0 : SIZE_MAX,
                 .apply_threads = env.threads,
                 .connect_timeout_s = env.connect_s,
                 .interrupt = &interrupted},
        .resync_s = o->resync_set ? o->resync_s : ZR_WATCH_RESYNC_S,
        .notify = true,
        .stop = &interrupted,
        .reload = &reload_requested,
        .ops = {.data = &cli,
                .report = watch_report,
                .invalid = watch_invalid,
                .notice = watch_notice},
    };
    if (cli.per_host)
        return zr_watch_fleet(TAKE_PTR(inv), &wo);
    struct zr_error err = {0};
    if (zr_watch_run(TAKE_PTR(inv), &wo, &err) < 0) {
        zr_errors_add(&errs, NULL, 0, 0, NULL, "%s", err.message);
        zr_error_finish(&err);
        print_errors(&errs);
        return run_failed(o, t0, &errs);
    }
    return EXIT_IN_SYNC;
}

/* As systemd's verbs.h: name, argument counts, flags, handler. */
struct verb {
    const char *name;
    int min_args, max_args;
    unsigned flags;
    int (*run)(const struct options *o);
};

static const struct verb verbs[] = {
    {"validate", 1, 1, 0, verb_validate},
    {"plan", 1, 1, VERB_RUN, verb_plan},
    {"apply", 1, 1, VERB_RUN | VERB_APPLY, verb_apply},
    {"export", 0, INT_MAX, VERB_EXPORT, verb_export},
    {"watch", 1, 1, VERB_WATCH, verb_watch},
};

int main(int argc, char **argv)
{
    double t0 = seconds_now(CLOCK_MONOTONIC);
    struct options o = {.timeout_s = 30, .jobs = 4};
    _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
    int r = options_parse(argc, argv, &o, &errs);
    if (r == 0)
        return EXIT_IN_SYNC;

    const struct verb *v = NULL;
    for (size_t i = 0; i < ELEMENTSOF(verbs) && o.verb && !v; i++)
        if (strcmp(o.verb, verbs[i].name) == 0)
            v = &verbs[i];
    if (r > 0 && !v)
        zr_errors_add(&errs, NULL, 0, 0, NULL, "unknown command '%s'; try 'zpci-reconcile --help'",
                      o.verb);
    else if (r > 0)
        options_check(&o, v->flags, v->min_args, v->max_args, &errs);
    if (errs.n) {
        print_errors(&errs);
        return run_failed(&o, t0, &errs);
    }
    /* A write to the socket of a libvirtd that just died must fail with EPIPE,
     * so apply can report the lost connection; by default SIGPIPE would end
     * the process with nothing said.  libvirt leaves this to its clients. */
    signal(SIGPIPE, SIG_IGN);
    return v->run(&o);
}
