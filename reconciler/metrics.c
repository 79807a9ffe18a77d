#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"

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

typedef enum {
    GUEST_IN_SYNC,
    GUEST_DRIFTED,
    GUEST_FAILED,
    GUEST__COUNT,
} guest_state;

static const char *guest_state_name(guest_state s)
{
    switch (s) {
    case GUEST_IN_SYNC:
        return "in_sync";
    case GUEST_DRIFTED:
        return "drifted";
    case GUEST_FAILED:
        return "failed";
    case GUEST__COUNT:
        break;
    }
    return "?";
}

/* Label value of a result: Prometheus users expect no spaces. */
static const char *result_label(zr_result r)
{
    return r == ZR_RESULT_ROLLED_BACK ? "rolled_back" : zr_result_to_string(r);
}

/* Counts of one host. */
struct host_counts {
    size_t guests[GUEST__COUNT];
    size_t actions[ZR_OP__COUNT][ZR_KIND__COUNT][ZR_RESULT__COUNT];
};

/* The host record a guest belongs to.  Guests come host by host, so the
 * previous answer is tried first. */
static size_t host_of(const struct zr_plan *plan, const char *host, size_t hint)
{
    if (hint < plan->n_hosts && zr_streq(plan->hosts[hint].name, host))
        return hint;
    for (size_t i = 0; i < plan->n_hosts; i++)
        if (zr_streq(plan->hosts[i].name, host))
            return i;
    return SIZE_MAX;
}

static struct host_counts *count(const struct zr_plan *plan)
{
    struct host_counts *c = zr_new0(struct host_counts, plan->n_hosts);
    _cleanup_free_ bool *bad = zr_new0(bool, plan->n_guests);
    for (size_t i = 0; i < plan->n_actions; i++) {
        const struct zr_action *a = &plan->actions[i];
        if (a->result == ZR_RESULT_FAILED || a->result == ZR_RESULT_SKIPPED)
            bad[a->guest_index] = true;
    }
    size_t *host = zr_new0(size_t, plan->n_guests);
    size_t h = 0;
    for (size_t i = 0; i < plan->n_guests; i++) {
        const struct zr_plan_guest *g = &plan->guests[i];
        host[i] = h = host_of(plan, g->host, h);
        if (h == SIZE_MAX)
            continue;
        guest_state s = g->error || bad[i] ? GUEST_FAILED
                        : g->changed       ? GUEST_DRIFTED
                                           : GUEST_IN_SYNC;
        c[h].guests[s]++;
    }
    for (size_t i = 0; i < plan->n_actions; i++) {
        const struct zr_action *a = &plan->actions[i];
        h = host[a->guest_index];
        if (h == SIZE_MAX || a->op >= ZR_OP__COUNT || a->kind >= ZR_KIND__COUNT ||
            a->result >= ZR_RESULT__COUNT)
            continue;
        /* Every action was planned; apply adds what became of it. */
        c[h].actions[a->op][a->kind][ZR_RESULT_PLANNED]++;
        if (a->result != ZR_RESULT_PLANNED)
            c[h].actions[a->op][a->kind][a->result]++;
    }
    free(host);
    return c;
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
}

void zr_metrics_format(FILE *f, const struct zr_plan *plan, const struct zr_metrics_run *run)
{
    _cleanup_free_ struct host_counts *c = count(plan);

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
        fprintf(f, "} %.6f\n", plan->hosts[h].seconds);
    }
    header(f, "guests",
           "Guests by state in the last run: in_sync, drifted (differences found; apply "
           "fixed them), failed (not planned, or an action failed or was skipped).");
    for (size_t h = 0; h < plan->n_hosts; h++)
        for (guest_state s = 0; s < GUEST__COUNT; s++) {
            fputs(PREFIX "guests{host=", f);
            label_value(f, plan->hosts[h].name);
            fprintf(f, ",state=\"%s\"} %zu\n", guest_state_name(s), c[h].guests[s]);
        }
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
                            zr_kind_to_string(k), result_label(r), c[h].actions[op][k][r]);
                }
}

int zr_metrics_write_file(const char *path, const struct zr_plan *plan,
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
    zr_metrics_format(f, plan, run);
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
