/* What a plan, or an apply's recorded results, add up to: the one place
 * where actions and guests are counted, so the text summary line, the JSON
 * `summary` and the metrics file print the same numbers.  Reads only the
 * plan (its actions' results, its guests' errors); decides nothing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "run.h"

/* How the guests of a run came out (docs/output.md, "Counting").  A guest
 * counts under each property it has: one that apply changed and where
 * another action failed is changed and failed; one whose actions were all
 * skipped or rolled back is neither. */
struct zr_guest_counts {
    size_t total;
    size_t changed; /* plan: an action planned; apply: an action done */
    size_t failed;  /* not planned (an error), or an action failed */
    size_t in_sync; /* planned without error, no action */
    size_t drifted; /* planned with an action, whatever became of it */
};

struct zr_summary {
    /* Actions by op: in a plan every one, in an apply the done ones (a
     * replacement is one of each). */
    size_t calls[ZR_OP__COUNT];
    /* Changes, as the text line counts them: a replacement is `replaced`
     * once its attach is done, `detached` when only its detach was. */
    size_t attached, detached, replaced;
    size_t by_result[ZR_RESULT__COUNT];
    struct zr_guest_counts guests;
    size_t hosts_failed;
    /* Per host record, in plan->hosts order (n_hosts items): its guests,
     * and its actions by op, kind and result (`planned` counts every
     * action, the others what apply made of it). */
    size_t n_hosts;
    struct zr_guest_counts *host_guests;
    size_t (*host_actions)[ZR_OP__COUNT][ZR_KIND__COUNT][ZR_RESULT__COUNT];
};

/* Counts a report: its plan and what the run made of it.  With `applied`,
 * only `done` actions changed anything; without, the plan's actions are
 * what would change. */
void zr_summary_count(const struct zr_report *r, bool applied, struct zr_summary *s);
void zr_summary_finish(struct zr_summary *s);

/* The run ends with exit status 1: a host or guest failed, or an action
 * failed or was skipped. */
bool zr_summary_is_error(const struct zr_summary *s);

/* The exit status of a plan or apply run (zpci-reconcile(1)):
 * ZR_EXIT_ERROR when something failed or a signal cut the run short,
 * ZR_EXIT_CHANGES for a plan with actions pending, else ZR_EXIT_IN_SYNC. */
enum {
    ZR_EXIT_IN_SYNC = 0,
    ZR_EXIT_ERROR = 1,
    ZR_EXIT_CHANGES = 2,
};
int zr_summary_exit_status(const struct zr_report *r, bool applied, bool interrupted);
