/* What a run made of a plan, kept apart from the plan: the result of each
 * action, what the run found (an undo that failed), the time each host
 * took.  Written by apply (in a hosts: run in the host's process; wire.h
 * carries it to the parent, fleet.h merges it) and by watch's runs; the
 * decision stage never writes it, and nothing writes the plan once the
 * decision stage returned it.  Output, summary and metrics read both. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "plan.h"

/* What a run made of one action. */
struct zr_action_result {
    zr_result result;
    char *error;              /* FAILED: the message shown; SKIPPED: why */
    zr_error_code error_code; /* what kind of failure (hints key on it) */
    /* A live+config detach failed after libvirt had already taken the
     * device out of the persistent definition: a fact --atomic acts on.
     * `cause` is then the failure itself, without what follows from it. */
    bool config_removed;
    char *cause;
};

/* A warning of the run, shown after the plan's warning it followed. */
struct zr_run_warning {
    struct zr_warning w;
    size_t after; /* how many of the plan's warnings come before it */
};

struct zr_run {
    /* Indexed like the plan's actions; NULL until a run records one (every
     * action is then PLANNED). */
    struct zr_action_result *results;
    size_t n_results;
    struct zr_run_warning *warnings;
    size_t n_warnings;
    /* Wall time spent on each of the plan's hosts, indexed like its hosts;
     * 0 beyond n_seconds. */
    double *seconds;
    size_t n_seconds;
};

/* A run's outcome: the plan the decision stage returned, and the run. */
struct zr_report {
    struct zr_plan plan;
    struct zr_run run;
};

/* Action i's result: PLANNED when no run recorded one. */
const struct zr_action_result *zr_run_result(const struct zr_run *run, size_t i);

/* The record of action i of `plan`, for a run to write (the first call
 * gives every action a PLANNED record, so workers may then write theirs
 * at once). */
struct zr_action_result *zr_run_record(struct zr_run *run, const struct zr_plan *plan, size_t i);

/* Sets a result: its error (taken), its code reset to ZR_ERR_OTHER and no
 * fact beyond it. */
void zr_result_set(struct zr_action_result *r, zr_result result, char *error);
void zr_result_finish(struct zr_action_result *r);

/* Records a warning the run found, after the plan's warnings so far. */
void zr_run_add_warning(struct zr_run *run, const struct zr_plan *plan, const char *host,
                        const char *guest, zr_error_code code, const char *fmt, ...)
    _printf_(6, 7);

/* The time spent on host hi of the plan. */
void zr_run_set_seconds(struct zr_run *run, size_t hi, double seconds);
double zr_run_seconds(const struct zr_run *run, size_t hi);

void zr_run_finish(struct zr_run *run);

/* Every warning of the report in the order it was found: the plan's, with
 * the run's after those they followed.  Returns an array of n pointers
 * (to free; the warnings stay the report's). */
const struct zr_warning **zr_report_warnings(const struct zr_report *r, size_t *n);

/* Moves everything `src` holds to the end of `dst` (see zr_plan_append())
 * and leaves `src` empty: a report without results gets PLANNED ones when
 * the other has some. */
void zr_report_append(struct zr_report *dst, struct zr_report *src);

void zr_report_finish(struct zr_report *r);
