/* The command line's options: what each one sets, --help, and the checks
 * of values.  Part of the executable only, not of zr-core: a library
 * caller fills zr_host_options (host.h) itself. */
#pragma once

#include <stdbool.h>

#include "output.h"

typedef enum {
    COLOR_AUTO,
    COLOR_ALWAYS,
    COLOR_NEVER,
} color_mode;

struct options {
    const char *uri;
    zr_format format;
    int config_only; /* int: getopt_long sets the flags itself */
    unsigned timeout_s;
    int dry_run;
    int atomic;
    int no_host_check;
    unsigned jobs;
    const char *metrics_file;
    int live, all; /* export */
    unsigned resync_s; /* watch: full pass interval */
    int resync_set;    /* --resync was given */
    int verbosity; /* -1 quiet, 0 normal, 1 verbose */
    color_mode color;
    const char *verb;
    char **args;
    int n_args;
};

/* Fills `o` from argv; on a usage error says why on stderr.  Returns 1 to
 * go on, 0 when done (--help, --version), <0 on a usage error. */
int options_parse(int argc, char **argv, struct options *o);
