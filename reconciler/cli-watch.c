/* The command line's watch: its report, notices and metrics files, beside
 * the loop (watch.c).  See cli.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "metrics.h"
#include "output.h"
#include "summary.h"
#include "watch.h"

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

static void watch_metrics(const struct watch_cli *c, const struct zr_report *report,
                          const struct zr_watch_stats *st)
{
    _cleanup_(zr_summary_finish) struct zr_summary n;
    zr_summary_count(report, true, &n);
    struct zr_metrics_watch mw = {.repairs = st->repairs,
                                  .last_event = st->last_event,
                                  .definitions_followed = st->definitions_followed,
                                  .definitions_announced = st->definitions_announced};
    struct zr_metrics_run run = {
        .command = "watch",
        .applied = true,
        .end_time = cli_seconds(CLOCK_REALTIME),
        .seconds = zr_run_seconds(&report->run, 0),
        .exit_status = zr_summary_is_error(&n),
        .watch = &mw,
    };
    _cleanup_free_ char *path = watch_metrics_path(c, &report->plan);
    struct zr_error err = {0};
    if (zr_metrics_write_file(path, report, &run, &err) < 0) {
        fprintf(stderr, "zpci-reconcile: %s\n", err.message);
        zr_error_finish(&err);
    }
}

/* One repair: apply's text, or one JSON line, written at once so that the
 * blocks of several hosts' processes do not mix. */
static void watch_report(void *data, const struct zr_report *report,
                         const struct zr_watch_stats *st)
{
    const struct watch_cli *c = data;
    struct zr_output_options oo = {
        .format = c->o->format,
        .color = c->o->format == ZR_FORMAT_TEXT && cli_use_color(c->o),
        .quiet = c->o->verbosity < 0,
        .applied = true,
    };
    struct zr_memstream m;
    FILE *f = zr_memstream_open(&m);
    if (c->o->format == ZR_FORMAT_JSON)
        zr_output_json_line(f, report, &oo);
    else
        zr_output_plan(f, report, &oo);
    char *buf = zr_memstream_close(&m);
    zr_write_all(STDOUT_FILENO, buf, m.len);
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

int cli_watch(const struct options *o)
{
    double t0 = cli_seconds(CLOCK_MONOTONIC);
    /* Before the inventory is read: a SIGHUP must never end the process. */
    zr_watch_block_signals();
    _cleanup_(zr_errors_finish) struct zr_errors errs = {0};
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = zr_inventory_load(o->args[0], &errs);
    struct cli_env env = {0};
    if (cli_check_inventory(o, inv, &env, &errs) < 0)
        return cli_run_failed(o, t0, &errs);
    struct watch_cli cli = {.o = o, .per_host = inv->n_hosts > 1};
    struct zr_watch_options wo = {
        .path = o->args[0],
        .host_name = inv->hosts[0].name,
        .host = cli_host_options(o, &env),
        .resync_s = o->resync_set ? o->resync_s : ZR_WATCH_RESYNC_S,
        .notify = true,
        .ops = {.data = &cli,
                .report = watch_report,
                .invalid = watch_invalid,
                .notice = watch_notice},
    };
    wo.host.progress_from = o->verbosity > 0 ? 0 : SIZE_MAX;
    if (cli.per_host)
        return zr_watch_fleet(TAKE_PTR(inv), &wo);
    struct zr_error err = {0};
    if (zr_watch_run(TAKE_PTR(inv), &wo, &err) < 0) {
        zr_errors_add(&errs, NULL, 0, 0, NULL, "%s", err.message);
        zr_error_finish(&err);
        cli_print_errors(&errs);
        return cli_run_failed(o, t0, &errs);
    }
    return ZR_EXIT_IN_SYNC;
}
