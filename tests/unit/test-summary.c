/* summary: one count of a run, the same in the text line, the JSON summary
 * and the metrics, whatever became of the actions (issue 22: an interrupted
 * apply counted every planned guest as changed, and the metrics counted
 * skipped actions as failed guests). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "output.h"
#include "plan.h"
#include "run.h"
#include "render.h"
#include "summary.h"

/* Guests a (two attaches), b (one detach), c (in sync) and d (not found)
 * on one host. */
static struct zr_report make_report(void)
{
    struct zr_plan plan = {0};
    zr_plan_add_host(&plan, "default", NULL)->reached = true;
    struct zr_guest a = {.name = "a", .prune = true}, b = {.name = "b", .prune = true},
                    c = {.name = "c", .prune = true};
    struct zr_device want[2] = {{.kind = ZR_KIND_HOSTDEV, .source = {.domain = 1}},
                                {.kind = ZR_KIND_HOSTDEV, .source = {.domain = 2}}};
    struct zr_device cur = {.kind = ZR_KIND_HOSTDEV, .source = {.domain = 3}};
    a.devices = (struct zr_device_list){.items = want, .n = 2};
    struct zr_device_list l = {.items = &cur, .n = 1}, none = {0};
    zr_plan_guest(&plan, "default", NULL, &a, &none, NULL, NULL);
    zr_plan_guest(&plan, "default", NULL, &b, &l, NULL, NULL);
    zr_plan_guest(&plan, "default", NULL, &c, &none, NULL, NULL);
    zr_plan_guest_error(&plan, "default", NULL, "d", ZR_ERR_NOT_FOUND, "guest 'd' not found");
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);
    cr_assert_eq(plan.n_actions, 3);
    return (struct zr_report){.plan = plan};
}

/* The action of guest `guest` (an index) with source domain `dom`. */
/* The result record of a guest's action on a source domain, as apply
 * writes it. */
static struct zr_action_result *result_of(struct zr_report *r, size_t guest, unsigned dom)
{
    const struct zr_plan *plan = &r->plan;
    for (size_t i = 0; i < plan->n_actions; i++)
        if (plan->actions[i].guest_index == guest && plan->actions[i].source.domain == dom)
            return zr_run_record(&r->run, plan, i);
    cr_assert_fail("no action of guest %zu on domain %u", guest, dom);
    return NULL;
}

static char *render(const struct zr_report *plan, zr_format format, bool applied)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    struct zr_output_options o = {.format = format, .quiet = true, .applied = applied};
    zr_output_plan(f, plan, &o);
    fclose(f);
    return s;
}

static char *metrics(const struct zr_report *plan, bool applied)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    struct zr_metrics_run run = {.command = applied ? "apply" : "plan", .applied = applied};
    zr_metrics_format(f, plan, &run);
    fclose(f);
    return s;
}

/* The text line, the JSON summary and the metrics' guests all say
 * `changed` changed, `failed` failed and `in_sync` in sync. */
static void assert_reports(const struct zr_report *plan, bool applied, const char *line,
                           size_t changed, size_t failed, size_t in_sync)
{
    char *text = render(plan, ZR_FORMAT_TEXT, applied);
    cr_assert_str_eq(text, line);
    char *json = render(plan, ZR_FORMAT_JSON, applied);
    char *want = NULL;
    cr_assert_geq(asprintf(&want,
                           "\"guests\": 4, \"guests_changed\": %zu, \"guests_in_sync\": %zu, "
                           "\"guests_failed\": %zu",
                           changed, in_sync, failed),
                  0);
    cr_assert_not_null(strstr(json, want), "want %s in\n%s", want, json);
    char *m = metrics(plan, applied);
    const struct {
        const char *state;
        size_t n;
    } states[] = {{"changed", changed}, {"failed", failed}, {"in_sync", in_sync}};
    for (size_t i = 0; i < 3; i++) {
        char *series = NULL;
        cr_assert_geq(asprintf(&series,
                               "zpci_reconcile_guests{host=\"default\",state=\"%s\"} %zu\n",
                               states[i].state, states[i].n),
                      0);
        cr_assert_not_null(strstr(m, series), "want %s in\n%s", series, m);
        free(series);
    }
    free(want);
    free(m);
    free(json);
    free(text);
}

Test(summary, a_plan_counts_what_it_would_change)
{
    struct zr_report plan = make_report();
    assert_reports(
        &plan, false,
        "Plan: 2 to attach, 1 to detach, 0 to replace on 2 of 4 guests (1 with errors).\n", 2, 1,
        1);
    struct zr_summary s;
    zr_summary_count(&plan, false, &s);
    cr_assert_eq(s.guests.drifted, 2);
    cr_assert_eq(s.calls[ZR_OP_ATTACH], 2);
    cr_assert_eq(s.calls[ZR_OP_DETACH], 1);
    zr_summary_finish(&s);
    zr_report_finish(&plan);
}

/* A signal after a's first attach: b was never touched, nobody failed. */
Test(summary, an_interrupted_apply_counts_only_touched_guests)
{
    struct zr_report plan = make_report();
    result_of(&plan, 0, 1)->result = ZR_RESULT_DONE;
    result_of(&plan, 0, 2)->result = ZR_RESULT_SKIPPED;
    result_of(&plan, 1, 3)->result = ZR_RESULT_SKIPPED;
    assert_reports(&plan, true,
                   "Apply: 1 attached, 0 detached, 0 replaced, 0 failed, 2 skipped on 1 of 4 "
                   "guests (1 with errors).\n",
                   1, 1, 1);
    struct zr_summary s;
    zr_summary_count(&plan, true, &s);
    cr_assert_eq(s.by_result[ZR_RESULT_SKIPPED], 2);
    cr_assert(zr_summary_is_error(&s), "skipped actions end the run with status 1");
    zr_summary_finish(&s);
    zr_report_finish(&plan);
}

/* A guest one of whose actions was done and another failed is changed and
 * failed. */
Test(summary, a_failed_action_fails_its_guest_and_a_done_one_changes_it)
{
    struct zr_report plan = make_report();
    result_of(&plan, 0, 1)->result = ZR_RESULT_DONE;
    result_of(&plan, 0, 2)->result = ZR_RESULT_FAILED;
    result_of(&plan, 1, 3)->result = ZR_RESULT_DONE;
    assert_reports(&plan, true,
                   "Apply: 1 attached, 1 detached, 0 replaced, 1 failed on 2 of 4 guests (2 with "
                   "errors).\n",
                   2, 2, 1);
    zr_report_finish(&plan);
}

/* --atomic undid a's attaches after b's detach failed: nothing changed. */
Test(summary, a_rolled_back_guest_is_not_changed)
{
    struct zr_report plan = make_report();
    result_of(&plan, 0, 1)->result = ZR_RESULT_ROLLED_BACK;
    result_of(&plan, 0, 2)->result = ZR_RESULT_ROLLED_BACK;
    result_of(&plan, 1, 3)->result = ZR_RESULT_FAILED;
    assert_reports(&plan, true,
                   "Apply: 0 attached, 0 detached, 0 replaced, 1 failed, 2 rolled back on 0 of 4 "
                   "guests (2 with errors).\n",
                   0, 2, 1);
    zr_report_finish(&plan);
}

Test(summary, a_converged_apply)
{
    struct zr_report plan = make_report();
    for (size_t i = 0; i < plan.plan.n_actions; i++)
        zr_run_record(&plan.run, &plan.plan, i)->result = ZR_RESULT_DONE;
    assert_reports(&plan, true,
                   "Apply: 2 attached, 1 detached, 0 replaced, 0 failed on 2 of 4 guests (1 with "
                   "errors).\n",
                   2, 1, 1);
    zr_report_finish(&plan);
}
