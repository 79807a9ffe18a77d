/* What the command line's verbs share (main.c, cli-watch.c): colour,
 * usage errors, the metrics file of a run, the report of a run that ends
 * before it plans, and the checks of an inventory and the environment.
 * Part of the executable only. */
#pragma once

#include <stdbool.h>
#include <time.h>

#include "host.h"
#include "inventory.h"
#include "options.h"

/* Seconds of `clock`: the metrics' times, never a deadline. */
double cli_seconds(clockid_t clock);

/* --color, TERM, NO_COLOR and whether stdout is a terminal. */
bool cli_use_color(const struct options *o);

/* Usage errors on stderr, each on a line of its own. */
void cli_print_errors(const struct zr_errors *errs);

/* The metrics of a plan or apply run (t0: its start, CLOCK_MONOTONIC);
 * returns the exit status, which a file that cannot be written turns into
 * an error. */
int cli_write_metrics(const struct options *o, const struct zr_report *report, double t0, int rc);

/* A run that ends before it plans (a usage error, an invalid inventory, a
 * host that cannot be opened): the errors are already on stderr.  With
 * -o json the command's JSON document still says why, and the metrics get
 * exit status 1, else the alert on it would never fire.  Returns 1. */
int cli_run_failed(const struct options *o, double t0, const struct zr_errors *errs);

/* The settings a run takes from the environment (options.h). */
struct cli_env {
    unsigned threads;
    unsigned connect_s;
};

/* What the inventory must pass besides validation, and the settings of
 * the environment; prints the errors (the inventory's own too). */
int cli_check_inventory(const struct options *o, const struct zr_inventory *inv,
                        struct cli_env *env, struct zr_errors *errs);

/* The host options the command line gives a run of plan, apply or watch. */
struct zr_host_options cli_host_options(const struct options *o, const struct cli_env *env);

/* watch INVENTORY (cli-watch.c). */
int cli_watch(const struct options *o);
