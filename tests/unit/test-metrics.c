/* metrics: the text format for node_exporter's textfile collector.  The
 * integration test runs promtool on real output; these check the counts
 * and the escaping of label values. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "plan.h"
#include "run.h"
#include "render.h"

static char *format(const struct zr_report *plan, const struct zr_metrics_run *run)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    zr_metrics_format(f, plan, run);
    fclose(f);
    return s;
}

static struct zr_report make_report(void)
{
    struct zr_plan plan = {0};
    zr_plan_add_host(&plan, "kvm\"1\\\n", "qemu:///system")->reached = true;
    zr_plan_add_host(&plan, "down", "qemu+tcp://127.0.0.1:1/system")->error = strdup("refused");
    struct zr_guest g = {.name = "g", .prune = true}, s = {.name = "s", .prune = true};
    struct zr_device cur = {.kind = ZR_KIND_HOSTDEV, .source = {.domain = 1}};
    struct zr_device_list l = {.items = &cur, .n = 1}, none = {0};
    zr_plan_guest(&plan, "kvm\"1\\\n", NULL, &g, &l, NULL, NULL);    /* one detach */
    zr_plan_guest(&plan, "kvm\"1\\\n", NULL, &s, &none, NULL, NULL); /* in sync */
    zr_plan_guest_error(&plan, "down", NULL, "x", ZR_ERR_OTHER, "refused");
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);
    return (struct zr_report){.plan = plan};
}

Test(metrics, counts_per_host_and_escaped_labels)
{
    struct zr_report plan = make_report();
    struct zr_metrics_run run = {
        .command = "plan", .end_time = 1700000000.5, .seconds = 2, .exit_status = 1};
    char *m = format(&plan, &run);
    cr_assert_not_null(
        strstr(m, "zpci_reconcile_last_run_timestamp_seconds{command=\"plan\"} 1700000000.500\n"),
        "%s", m);
    cr_assert_not_null(strstr(m, "zpci_reconcile_last_run_exit_status{command=\"plan\"} 1\n"), "%s",
                       m);
    cr_assert_not_null(strstr(m, "zpci_reconcile_host_up{host=\"kvm\\\"1\\\\\\n\"} 1\n"), "%s", m);
    cr_assert_not_null(strstr(m, "zpci_reconcile_host_up{host=\"down\"} 0\n"), "%s", m);
    cr_assert_not_null(
        strstr(m, "zpci_reconcile_guests{host=\"kvm\\\"1\\\\\\n\",state=\"drifted\"} 1\n"), "%s",
        m);
    cr_assert_not_null(
        strstr(m, "zpci_reconcile_guests{host=\"kvm\\\"1\\\\\\n\",state=\"in_sync\"} 1\n"), "%s",
        m);
    cr_assert_not_null(strstr(m, "zpci_reconcile_guests{host=\"down\",state=\"failed\"} 1\n"), "%s",
                       m);
    cr_assert_not_null(strstr(m, "op=\"detach\",kind=\"hostdev\",result=\"planned\"} 1\n"), "%s",
                       m);
    cr_assert_not_null(strstr(m, "op=\"attach\",kind=\"interface\",result=\"planned\"} 0\n"), "%s",
                       m);
    cr_assert_null(strstr(m, "result=\"done\""), "a plan has no results:\n%s", m);
    free(m);

    /* apply: what became of each action; a failed one fails its guest. */
    zr_run_record(&plan.run, &plan.plan, 0)->result = ZR_RESULT_FAILED;
    run.command = "apply";
    run.applied = true;
    m = format(&plan, &run);
    cr_assert_not_null(strstr(m, "op=\"detach\",kind=\"hostdev\",result=\"failed\"} 1\n"), "%s", m);
    cr_assert_not_null(strstr(m, "op=\"detach\",kind=\"hostdev\",result=\"planned\"} 1\n"), "%s",
                       m);
    cr_assert_not_null(strstr(m, "result=\"rolled_back\"} 0\n"), "%s", m);
    cr_assert_not_null(
        strstr(m, "zpci_reconcile_guests{host=\"kvm\\\"1\\\\\\n\",state=\"failed\"} 1\n"), "%s", m);
    free(m);
    zr_report_finish(&plan);
}

/* watch adds its repairs counter and the time of the last event; plan and
 * apply do not have them. */
Test(metrics, watch_series_only_for_watch)
{
    struct zr_report plan = make_report();
    struct zr_metrics_watch w = {
        .repairs = 7, .last_event = 1700000001.25, .definitions_followed = true};
    struct zr_metrics_run run = {.command = "watch", .applied = true, .watch = &w};
    char *m = format(&plan, &run);
    cr_assert_not_null(strstr(m, "# TYPE zpci_reconcile_watch_repairs_total counter\n"
                                 "zpci_reconcile_watch_repairs_total 7\n"),
                       "%s", m);
    cr_assert_not_null(
        strstr(m, "zpci_reconcile_watch_last_event_timestamp_seconds 1700000001.250\n"), "%s", m);
    cr_assert_not_null(strstr(m, "# TYPE zpci_reconcile_watch_definitions_followed gauge\n"
                                 "zpci_reconcile_watch_definitions_followed 1\n"),
                       "%s", m);
    cr_assert_not_null(strstr(m, "# TYPE zpci_reconcile_watch_definitions_announced gauge\n"
                                 "zpci_reconcile_watch_definitions_announced 0\n"),
                       "%s", m);
    cr_assert_not_null(strstr(m, "zpci_reconcile_last_run_exit_status{command=\"watch\"} 0\n"),
                       "%s", m);
    free(m);
    run.watch = NULL;
    run.command = "apply";
    m = format(&plan, &run);
    cr_assert_null(strstr(m, "watch_"), "%s", m);
    free(m);
    zr_report_finish(&plan);
}

Test(metrics, file_is_replaced_whole_and_readable_by_all)
{
    char dir[] = "/tmp/zr-metrics-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *path = NULL;
    cr_assert_geq(asprintf(&path, "%s/zpci.prom", dir), 0);
    struct zr_report plan = make_report();
    struct zr_metrics_run run = {.command = "plan"};
    struct zr_error err = {0};
    cr_assert_eq(zr_metrics_write_file(path, &plan, &run, &err), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
    /* Nothing else is left in the directory. */
    char *cmd = NULL;
    cr_assert_geq(asprintf(&cmd, "test $(ls -A %s | wc -l) -eq 1", dir), 0);
    cr_assert_eq(system(cmd), 0);
    free(cmd);

    /* A directory that does not exist: an error, nothing written. */
    char *bad = NULL;
    cr_assert_geq(asprintf(&bad, "%s/missing/zpci.prom", dir), 0);
    cr_assert_lt(zr_metrics_write_file(bad, &plan, &run, &err), 0);
    cr_assert_not_null(strstr(err.message, "cannot write metrics to"), "%s", err.message);
    zr_error_finish(&err);

    unlink(path);
    rmdir(dir);
    free(bad);
    free(path);
    zr_report_finish(&plan);
}
