#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "summary.h"

#define PREFIX "zpci_reconcile_"

/* A label value: backslash, double quote and newline escaped, as the text
 * format requires. */
static void label_value(FILE *f, const char *s)
{
    fputc('"', f);
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '\\' || *p == '"')
            fputc('\\', f);
        if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void header(FILE *f, const char *name, const char *help)
{
    fprintf(f, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s gauge\n", name, help, name);
}

/* Label value of a result: Prometheus users expect no spaces. */
static const char *result_label(zr_result r)
{
    return r == ZR_RESULT_ROLLED_BACK ? "rolled_back" : zr_result_to_string(r);
}

/* The last_run_* series: when, how long, how it ended. */
static void format_last_run(FILE *f, const struct zr_metrics_run *run)
{
    header(f, "last_run_timestamp_seconds", "When the last run ended, as a Unix time.");
    fputs(PREFIX "last_run_timestamp_seconds{command=", f);
    label_value(f, run->command);
    fprintf(f, "} %.3f\n", run->end_time);
    header(f, "last_run_duration_seconds", "How long the last run took.");
    fputs(PREFIX "last_run_duration_seconds{command=", f);
    label_value(f, run->command);
    fprintf(f, "} %.6f\n", run->seconds);
    header(f, "last_run_exit_status",
           "Exit status of the last run: 0 in sync or converged, 1 error, 2 changes pending.");
    fputs(PREFIX "last_run_exit_status{command=", f);
    label_value(f, run->command);
    fprintf(f, "} %d\n", run->exit_status);
}

/* watch's own series: its repairs and the last change it saw. */
static void format_watch(FILE *f, const struct zr_metrics_watch *w)
{
    fputs("# HELP " PREFIX "watch_repairs_total Repairs watch made since it started (runs "
          "that changed a guest).\n# TYPE " PREFIX "watch_repairs_total counter\n",
          f);
    fprintf(f, PREFIX "watch_repairs_total %lu\n", w->repairs);
    header(f, "watch_last_event_timestamp_seconds",
           "When watch last saw a guest change (a libvirt event or a changed definition), as "
           "a Unix time (0: none yet).");
    fprintf(f, PREFIX "watch_last_event_timestamp_seconds %.3f\n", w->last_event);
    header(f, "watch_definitions_followed",
           "1: watch sees a change to a persistent definition through the local daemon's "
           "definitions directory at once; 0: not through the directory.");
    fprintf(f, PREFIX "watch_definitions_followed %d\n", w->definitions_followed ? 1 : 0);
    header(f, "watch_definitions_announced",
           "1: the daemon (libvirt 11.3 or later) sends an event for a config-only attach "
           "or detach, which watch takes at once; 0: it sends none (libvirt 9.0). Where "
           "neither this nor watch_definitions_followed is 1, watch sees such a change only "
           "by polling the definitions, 64 guests a second.");
    fprintf(f, PREFIX "watch_definitions_announced %d\n", w->definitions_announced ? 1 : 0);
}

/* The guests of each host: the counts of the JSON summary (docs/output.md,
 * "Counting"), one series per state. */
static void format_guests(FILE *f, const struct zr_plan *plan, const struct zr_summary *c)
{
    header(f, "guests",
           "Guests of the last run with each property, as the JSON summary counts them: "
           "in_sync (no difference), drifted (differences found), changed (plan: an action "
           "planned; apply: an action done), failed (not planned, or an action failed).");
    for (size_t h = 0; h < plan->n_hosts; h++) {
        const struct zr_guest_counts *g = &c->host_guests[h];
        const struct {
            const char *name;
            size_t n;
        } states[] = {{"in_sync", g->in_sync},
                      {"drifted", g->drifted},
                      {"changed", g->changed},
                      {"failed", g->failed}};
        for (size_t s = 0; s < ELEMENTSOF(states); s++) {
            fputs(PREFIX "guests{host=", f);
            label_value(f, plan->hosts[h].name);
            fprintf(f, ",state=\"%s\"} %zu\n", states[s].name, states[s].n);
        }
    }
}

void zr_metrics_format(FILE *f, const struct zr_report *report, const struct zr_metrics_run *run)
{
    const struct zr_plan *plan = &report->plan;
    _cleanup_(zr_summary_finish) struct zr_summary c;
    zr_summary_count(report, run->applied, &c);

    format_last_run(f, run);
    if (run->watch)
        format_watch(f, run->watch);
    header(f, "host_up", "1 when the host was reached (connected, and locked for apply).");
    for (size_t h = 0; h < plan->n_hosts; h++) {
        fputs(PREFIX "host_up{host=", f);
        label_value(f, plan->hosts[h].name);
        fprintf(f, "} %d\n", plan->hosts[h].reached && !plan->hosts[h].error);
    }
    header(f, "host_duration_seconds", "Time spent on the host in the last run.");
    for (size_t h = 0; h < plan->n_hosts; h++) {
        fputs(PREFIX "host_duration_seconds{host=", f);
        label_value(f, plan->hosts[h].name);
        fprintf(f, "} %.6f\n", zr_run_seconds(&report->run, h));
    }
    format_guests(f, plan, &c);
    header(f, "actions",
           "Actions of the last run by operation, device kind and result (planned counts "
           "every action; apply adds done, failed, skipped and rolled_back).");
    for (size_t h = 0; h < plan->n_hosts; h++)
        for (zr_op op = 0; op < ZR_OP__COUNT; op++)
            for (zr_kind k = 0; k < ZR_KIND__COUNT; k++)
                for (zr_result r = 0; r < ZR_RESULT__COUNT; r++) {
                    if (!run->applied && r != ZR_RESULT_PLANNED)
                        continue;
                    fputs(PREFIX "actions{host=", f);
                    label_value(f, plan->hosts[h].name);
                    fprintf(f, ",op=\"%s\",kind=\"%s\",result=\"%s\"} %zu\n", zr_op_to_string(op),
                            zr_kind_to_string(k), result_label(r), c.host_actions[h][op][k][r]);
                }
}

int zr_metrics_write_file(const char *path, const struct zr_report *report,
                          const struct zr_metrics_run *run, struct zr_error *err)
{
    /* The temporary file sits beside the target, so rename() replaces it
     * in one step, and starts with a dot and lacks ".prom", so the
     * collector never reads it half-written. */
    _cleanup_free_ char *dir_copy = zr_strdup(path), *base_copy = zr_strdup(path);
    const char *dir = dirname(dir_copy), *base = basename(base_copy);
    _cleanup_free_ char *tmp = zr_asprintf("%s/.%s.XXXXXX", dir, base);

    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        zr_error_set(err, NULL, 0, 0, "cannot write metrics to %s: %s", path, strerror(e));
        return -e;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        zr_error_set(err, NULL, 0, 0, "cannot write metrics to %s: %s", path, strerror(e));
        return -e;
    }
    zr_metrics_format(f, report, run);
    int e = 0;
    if (fflush(f) != 0 || ferror(f) || fchmod(fd, 0644) < 0 || fsync(fd) < 0)
        e = errno ? errno : EIO;
    if (fclose(f) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e && rename(tmp, path) < 0)
        e = errno;
    if (e) {
        unlink(tmp);
        zr_error_set(err, NULL, 0, 0, "cannot write metrics to %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}
