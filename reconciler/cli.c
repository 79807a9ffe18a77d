/* What the command line's verbs share.  See cli.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "metrics.h"
#include "output.h"
#include "summary.h"

double cli_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool cli_use_color(const struct options *o)
{
    switch (o->color) {
    case COLOR_ALWAYS:
        return true;
    case COLOR_NEVER:
        return false;
    case COLOR_AUTO:
        break;
    }
    const char *term = getenv("TERM");
    /* no-color.org: only a non-empty NO_COLOR turns colour off. */
    const char *no_color = getenv("NO_COLOR");
    return isatty(STDOUT_FILENO) && !(no_color && *no_color) && term && strcmp(term, "dumb") != 0;
}

void cli_print_errors(const struct zr_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        fputs("zpci-reconcile: ", stderr);
        zr_fputs_escaped(errs->items[i].message, stderr);
        fputc('\n', stderr);
    }
}

/* The metrics file's label for this run: plan, apply or watch; NULL for a
 * command that writes no metrics (or none given). */
static const char *metrics_command(const struct options *o)
{
    if (zr_streq(o->verb, "apply"))
        return o->dry_run ? "plan" : "apply";
    return zr_streq(o->verb, "plan") || zr_streq(o->verb, "watch") ? o->verb : NULL;
}

int cli_write_metrics(const struct options *o, const struct zr_report *report, double t0, int rc)
{
    const char *command = metrics_command(o);
    if (!o->metrics_file || !command)
        return rc;
    struct zr_metrics_run run = {
        .command = command,
        .applied = !zr_streq(command, "plan"),
        .end_time = cli_seconds(CLOCK_REALTIME),
        .seconds = cli_seconds(CLOCK_MONOTONIC) - t0,
        .exit_status = rc,
    };
    struct zr_error err = {0};
    if (zr_metrics_write_file(o->metrics_file, report, &run, &err) < 0) {
        fprintf(stderr, "zpci-reconcile: %s\n", err.message);
        zr_error_finish(&err);
        return ZR_EXIT_ERROR;
    }
    return rc;
}

int cli_run_failed(const struct options *o, double t0, const struct zr_errors *errs)
{
    if (o->format == ZR_FORMAT_JSON && zr_streq(o->verb, "validate")) {
        zr_output_validate(stdout, o->n_args ? o->args[0] : NULL, NULL, errs);
    } else if (o->format == ZR_FORMAT_JSON && !zr_streq(o->verb, "export")) {
        struct zr_output_options oo = {.format = o->format, .one_line = zr_streq(o->verb, "watch")};
        zr_output_errors(stdout, errs, &oo);
    }
    fflush(stdout);
    struct zr_report empty = {0};
    return cli_write_metrics(o, &empty, t0, ZR_EXIT_ERROR);
}

int cli_check_inventory(const struct options *o, const struct zr_inventory *inv,
                        struct cli_env *env, struct zr_errors *errs)
{
    if (!inv) {
        zr_errors_print(errs, stderr);
        return -EINVAL;
    }
    if (o->uri && inv->n_hosts > 1)
        zr_errors_add(errs, NULL, 0, 0, NULL,
                      "--connect cannot be used with an inventory of %zu hosts; each host has "
                      "its own uri",
                      inv->n_hosts);
    else if (options_apply_threads(&env->threads, errs) == 0)
        options_connect_timeout(&env->connect_s, errs);
    cli_print_errors(errs);
    return errs->n ? -EINVAL : 0;
}

struct zr_host_options cli_host_options(const struct options *o, const struct cli_env *env)
{
    return (struct zr_host_options){
        .uri = o->uri,
        .config_only = o->config_only,
        .host_check = !o->no_host_check,
        .timeout_s = o->timeout_s,
        .apply_threads = env->threads,
        .connect_timeout_s = env->connect_s,
    };
}
