/* The command line's options: what each one sets, --help, and the checks
 * of values.  Part of the executable only, not of zr-core: a library
 * caller fills zr_host_options (host.h) itself. */
#pragma once

#include <stdbool.h>

#include "error.h"
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

/* Fills `o` from argv.  Every option is read, also after a bad one, so
 * that the report of the error knows -o and --metrics-file.  Returns 1 to
 * go on, 0 when done (--help, --version), <0 on a usage error, with each
 * error in `errs` (messages without the "zpci-reconcile: " prefix). */
int options_parse(int argc, char **argv, struct options *o, struct zr_errors *errs);

/* The one reader of a number from the command line or the environment:
 * decimal digits only (no blank, sign or base prefix), from min to max.
 * On anything else adds "WHAT needs a whole number from MIN to MAX, got
 * 'S'" to errs and returns -EINVAL. */
int options_parse_uint(const char *what, const char *s, unsigned min, unsigned max, unsigned *out,
                       struct zr_errors *errs);

/* ZPCI_RECONCILE_APPLY_THREADS: how many guests of a host apply changes at
 * once, 1 to 64; *threads is 0 (apply's default) when unset or empty. */
int options_apply_threads(unsigned *threads, struct zr_errors *errs);

/* ZPCI_RECONCILE_CONNECT_TIMEOUT: seconds opening a connection waits for a
 * daemon that does not answer, 1 to 3600; *seconds is 0 (the default,
 * ZR_CONNECT_TIMEOUT_S) when unset or empty. */
int options_connect_timeout(unsigned *seconds, struct zr_errors *errs);

/* What a command accepts besides its arguments. */
enum {
    VERB_RUN = 1 << 0,    /* plan or apply: --metrics-file */
    VERB_APPLY = 1 << 1,  /* --dry-run, --atomic */
    VERB_EXPORT = 1 << 2, /* --live, --all; YAML only */
    VERB_WATCH = 1 << 3,  /* --resync, --metrics-file */
};

/* Options the command does not take, and an argument count outside
 * min_args..max_args: each an error in `errs`.  Returns <0 when any. */
int options_check(const struct options *o, unsigned flags, int min_args, int max_args,
                  struct zr_errors *errs);
