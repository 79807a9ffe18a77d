/* The command line: options (options.c), a verb table and each verb's
 * call into the library; what the verbs share is in cli.c, watch's glue in
 * cli-watch.c.  A host's run is zr_host_run() (host.h), several hosts are
 * zr_fleet_run() (fleet.h); main.c calls no libvirt function and holds no
 * logic a test would want. */
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "export.h"
#include "fleet.h"
#include "output.h"
#include "summary.h"

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
        return inv ? ZR_EXIT_IN_SYNC : ZR_EXIT_ERROR;
    }
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = load_inventory(o->args[0]);
    if (!inv)
        return ZR_EXIT_ERROR;
    size_t guests = zr_inventory_count_guests(inv), devices = zr_inventory_count_devices(inv);
    if (o->verbosity >= 0)
        printf("%s: valid (%zu host%s, %zu guest%s, %zu device%s)\n", inv->file, inv->n_hosts,
               inv->n_hosts == 1 ? "" : "s", guests, guests == 1 ? "" : "s", devices,
               devices == 1 ? "" : "s");
    return ZR_EXIT_IN_SYNC;
}

static int print_report(const struct options *o, bool applying, const struct zr_report *report)
{
    if (interrupted)
        fprintf(stderr,
                "zpci-reconcile: interrupted by signal %d; stopped after the calls in progress\n",
                (int)interrupted);
    struct zr_output_options oo = {
        .format = o->format,
        .color = o->format == ZR_FORMAT_TEXT && cli_use_color(o),
        .quiet = o->verbosity < 0,
        .applied = applying,
    };
    zr_output_plan(stdout, report, &oo);
    fflush(stdout);
    return zr_summary_exit_status(report, applying, interrupted);
}

static int verb_plan_apply(const struct options *o, bool applying)
{
    double t0 = cli_seconds(CLOCK_MONOTONIC);
    /* With --connect the host is known: its connection opens while the
     * inventory is read. */
    if (o->uri)
        zr_host_connect_early(o->uri, applying);
    _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = zr_inventory_load(o->args[0], &errs);
    struct cli_env env = {0};
    if (cli_check_inventory(o, inv, &env, &errs) < 0)
        return cli_run_failed(o, t0, &errs);

    struct zr_host_options ho = cli_host_options(o, &env);
    ho.applying = applying;
    ho.atomic = o->atomic;
    ho.progress_from = o->verbosity > 0                             ? 0
                       : o->verbosity == 0 && isatty(STDERR_FILENO) ? 10
                                                                    : SIZE_MAX;
    ho.interrupt = &interrupted;
    _cleanup_(zr_report_finish) struct zr_report report = {.plan.has_hosts = inv->has_hosts};
    /* A signal gives up a connection that is still being opened (libvirt
     * would restart its wait on EINTR for ever) and reports it; apply then
     * starts no more calls, and a plan of several hosts reports the hosts
     * it could not finish. */
    if (applying || inv->n_hosts > 1)
        on_signals();
    else
        on_plan_signals();
    if (inv->n_hosts == 1)
        zr_host_run(&inv->hosts[0], &ho, &report);
    else
        zr_fleet_run(inv, &ho, o->jobs, &report);
    int rc = print_report(o, applying, &report);
    return cli_write_metrics(o, &report, t0, rc);
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
        cli_print_errors(&errs);
        return ZR_EXIT_ERROR;
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
        return ZR_EXIT_ERROR;
    }
    /* Names come from libvirt: escaped, as in every report. */
    for (size_t i = 0; i < r.n_errors; i++) {
        _cleanup_free_ char *msg = zr_escaped(r.errors[i]);
        fprintf(stderr, "zpci-reconcile: %s\n", msg);
    }
    if (r.n_errors)
        return ZR_EXIT_ERROR;

    int rc = ZR_EXIT_IN_SYNC;
    struct zr_export_warnings warnings = {0};
    if (zr_export_write(stdout, o->uri, r.guests, r.n_guests, &warnings, &err) < 0 ||
        fflush(stdout) != 0) {
        fprintf(stderr, "zpci-reconcile: %s\n",
                err.message ? err.message : "cannot write the inventory");
        zr_error_finish(&err);
        rc = ZR_EXIT_ERROR;
    }
    for (size_t i = 0; i < warnings.n; i++) {
        _cleanup_free_ char *msg = zr_escaped(warnings.items[i]);
        fprintf(stderr, "zpci-reconcile: warning: %s\n", msg);
    }
    zr_export_warnings_finish(&warnings);
    return rc;
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
    {"watch", 1, 1, VERB_WATCH, cli_watch},
};

int main(int argc, char **argv)
{
    double t0 = cli_seconds(CLOCK_MONOTONIC);
    struct options o = {.timeout_s = 30, .jobs = 4};
    _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
    int r = options_parse(argc, argv, &o, &errs);
    if (r == 0)
        return ZR_EXIT_IN_SYNC;

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
        cli_print_errors(&errs);
        return cli_run_failed(&o, t0, &errs);
    }
    /* A write to the socket of a libvirtd that just died must fail with EPIPE,
     * so apply can report the lost connection; by default SIGPIPE would end
     * the process with nothing said.  libvirt leaves this to its clients. */
    signal(SIGPIPE, SIG_IGN);
    return v->run(&o);
}
