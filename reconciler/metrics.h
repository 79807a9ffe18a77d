/* Prometheus text-format metrics of one plan or apply run, in the form
 * node_exporter's textfile collector reads, written atomically (a
 * temporary file renamed over the old one in the same directory).  Reads
 * no clock: the caller passes the times.  Decides nothing. */
#pragma once

#include <stdio.h>

#include "error.h"
#include "run.h"

/* watch's own figures: its repairs so far and when it last saw a guest
 * change (a libvirt event or a changed definition), as a Unix time (0: none
 * yet). */
struct zr_metrics_watch {
    unsigned long repairs;
    double last_event;
    /* Changes to persistent definitions are seen through the daemon's
     * definitions directory, not only by the poll. */
    bool definitions_followed;
    /* The daemon sends an event for a config-only attach and detach
     * (libvirt 11.3 and later). */
    bool definitions_announced;
};

struct zr_metrics_run {
    const char *command; /* "plan", "apply" or "watch" */
    bool applied;        /* the report holds apply's results */
    double end_time;     /* Unix time when the run ended, in seconds */
    double seconds;      /* how long the run took */
    int exit_status;     /* the status the process exits with */
    const struct zr_metrics_watch *watch; /* watch only, else NULL */
};

/* Writes the metrics for every host recorded in the report's plan. */
void zr_metrics_format(FILE *f, const struct zr_report *report, const struct zr_metrics_run *run);

/* zr_metrics_format() into PATH, atomically and readable by all (the
 * collector usually runs as another user).  Returns 0 or a negative errno
 * with err filled; the old file is then left as it was. */
int zr_metrics_write_file(const char *path, const struct zr_report *report,
                          const struct zr_metrics_run *run, struct zr_error *err);
