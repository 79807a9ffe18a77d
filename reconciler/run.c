#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

const struct zr_action_result *zr_run_result(const struct zr_run *run, size_t i)
{
    static const struct zr_action_result planned = {.result = ZR_RESULT_PLANNED};
    return run->results && i < run->n_results ? &run->results[i] : &planned;
}

struct zr_action_result *zr_run_record(struct zr_run *run, const struct zr_plan *plan, size_t i)
{
    assert(i < plan->n_actions);
    if (!run->results) {
        run->results = zr_new0(struct zr_action_result, plan->n_actions);
        run->n_results = plan->n_actions;
    }
    assert(run->n_results == plan->n_actions);
    return &run->results[i];
}

void zr_result_finish(struct zr_action_result *r)
{
    free(r->error);
    free(r->cause);
    *r = (struct zr_action_result){0};
}

void zr_result_set(struct zr_action_result *r, zr_result result, char *error)
{
    zr_result_finish(r);
    r->result = result;
    r->error = error;
    r->error_code = ZR_ERR_OTHER;
}

void zr_run_add_warning(struct zr_run *run, const struct zr_plan *plan, const char *host,
                        const char *guest, zr_error_code code, const char *fmt, ...)
{
    struct zr_run_warning *rw = ZR_APPEND(run->warnings, run->n_warnings);
    rw->after = plan->n_warnings;
    rw->w.host = zr_strdup(host);
    rw->w.guest = zr_strdup(guest);
    va_list ap;
    va_start(ap, fmt);
    rw->w.message = zr_vasprintf(fmt, ap);
    va_end(ap);
    rw->w.code = code;
}

void zr_run_set_seconds(struct zr_run *run, size_t hi, double seconds)
{
    if (hi >= run->n_seconds) {
        run->seconds = zr_reallocarray(run->seconds, hi + 1, sizeof(*run->seconds));
        memset(run->seconds + run->n_seconds, 0, (hi + 1 - run->n_seconds) * sizeof(double));
        run->n_seconds = hi + 1;
    }
    run->seconds[hi] = seconds;
}

double zr_run_seconds(const struct zr_run *run, size_t hi)
{
    return hi < run->n_seconds ? run->seconds[hi] : 0;
}

void zr_run_finish(struct zr_run *run)
{
    for (size_t i = 0; run->results && i < run->n_results; i++)
        zr_result_finish(&run->results[i]);
    free(run->results);
    for (size_t i = 0; i < run->n_warnings; i++)
        zr_warning_finish(&run->warnings[i].w);
    free(run->warnings);
    free(run->seconds);
    *run = (struct zr_run){0};
}

const struct zr_warning **zr_report_warnings(const struct zr_report *r, size_t *n)
{
    const struct zr_plan *p = &r->plan;
    const struct zr_run *run = &r->run;
    *n = p->n_warnings + run->n_warnings;
    const struct zr_warning **all = zr_new0(const struct zr_warning *, *n);
    size_t out = 0, k = 0;
    for (size_t i = 0; i <= p->n_warnings; i++) {
        for (; k < run->n_warnings && run->warnings[k].after <= i; k++)
            all[out++] = &run->warnings[k].w;
        if (i < p->n_warnings)
            all[out++] = &p->warnings[i];
    }
    for (; k < run->n_warnings; k++)
        all[out++] = &run->warnings[k].w;
    return all;
}

/* src's results after dst's, each side PLANNED where it has none. */
static void append_results(struct zr_run *dst, size_t dst_actions, struct zr_run *src,
                           size_t src_actions)
{
    if (!dst->results && !src->results)
        return;
    struct zr_action_result *r =
        zr_new0(struct zr_action_result, dst_actions + src_actions);
    if (dst->results)
        memcpy(r, dst->results, dst_actions * sizeof(*r));
    if (src->results)
        memcpy(r + dst_actions, src->results, src_actions * sizeof(*r));
    free(dst->results);
    free(src->results);
    src->results = NULL;
    dst->results = r;
    dst->n_results = dst_actions + src_actions;
}

static void append_run(struct zr_report *dst, struct zr_report *src)
{
    struct zr_run *d = &dst->run, *s = &src->run;
    append_results(d, dst->plan.n_actions, s, src->plan.n_actions);
    for (size_t i = 0; i < s->n_warnings; i++) {
        struct zr_run_warning *w = ZR_APPEND(d->warnings, d->n_warnings);
        *w = s->warnings[i];
        w->after += dst->plan.n_warnings;
    }
    s->n_warnings = 0;
    for (size_t i = 0; i < s->n_seconds; i++)
        zr_run_set_seconds(d, dst->plan.n_hosts + i, s->seconds[i]);
    zr_run_finish(s);
}

void zr_report_append(struct zr_report *dst, struct zr_report *src)
{
    append_run(dst, src);
    zr_plan_append(&dst->plan, &src->plan);
}

void zr_report_finish(struct zr_report *r)
{
    zr_run_finish(&r->run);
    zr_plan_finish(&r->plan);
}
