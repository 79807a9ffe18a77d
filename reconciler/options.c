/* The command line's options.  See options.h. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "options.h"

static void help(void)
{
    printf("Usage: zpci-reconcile [OPTIONS] COMMAND [ARGS]\n"
           "\n"
           "Declarative PCI passthrough (hostdev, zPCI) for libvirt guests.\n"
           "\n"
           "Commands:\n"
           "  validate INVENTORY   check the inventory offline (no libvirt connection)\n"
           "  plan INVENTORY       show what apply would change (exit 2 when changes are pending)\n"
           "  apply INVENTORY      attach and detach devices until the guests match\n"
           "  export [GUEST...]    print the current state as an inventory (YAML)\n"
           "  watch INVENTORY      apply, then repair drift on libvirt's events until SIGTERM\n"
           "\n"
           "INVENTORY may be - for standard input.\n"
           "\n"
           "Options:\n"
           "  -c, --connect URI     libvirt URI (wins over the inventory's uri)\n"
           "  -o, --output FORMAT   text (default) or json\n"
           "      --config-only     change only persistent definitions; report live drift\n"
           "      --timeout SECONDS wait this long for a live detach to complete (default 30)\n"
           "      --dry-run         with apply: only plan\n"
           "      --atomic          with apply: undo a host's done actions if one fails\n"
           "      --no-host-check   skip the host's node devices: functions the host lacks,\n"
           "                        IOMMU groups, SR-IOV, drivers, NUMA, hotplug ports (the\n"
           "                        check that no other guest holds a function still runs)\n"
           "  -j, --jobs N          hosts handled at once with hosts: (default 4)\n"
           "      --metrics-file PATH\n"
           "                        with plan/apply/watch: write Prometheus metrics of the\n"
           "                        run (watch: rewritten after each repair)\n"
           "      --live            with export: the running state, not the persistent one\n"
           "      --all             with export: every guest, also those without devices\n"
           "      --resync DURATION with watch: full pass interval besides events (default\n"
           "                        15m; a number with s, m or h)\n"
           "  -q, --quiet           print only the summary line\n"
           "  -v, --verbose         more detail on stderr\n"
           "      --color WHEN      auto (default), always or never\n"
           "  -h, --help            show this help\n"
           "      --version         show the version\n"
           "\n"
           "Exit status: 0 in sync / done, 1 error, 2 changes pending (plan).\n"
           "See zpci-reconcile(1) and, for the inventory, zpci-reconcile-inventory(5).\n");
}

/* Decimal digits only: strtoul() would also take blanks, a sign and, for
 * "-1", wrap around.  Returns 0, -EINVAL (not a number) or -ERANGE. */
static int strict_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (len == 0)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULONG_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return v > max ? -ERANGE : 0;
}

int options_parse_uint(const char *what, const char *s, unsigned min, unsigned max, unsigned *out,
                       struct zr_errors *errs)
{
    unsigned long v = 0;
    if (strict_uint(s, strlen(s), max, &v) < 0 || v < min) {
        zr_errors_add(errs, NULL, 0, 0, NULL, "%s needs a whole number from %u to %u, got '%s'",
                      what, min, max, s);
        return -EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

/* `s` as one of `names` (NULL-terminated) into *out; else says what --opt
 * takes. */
static int parse_choice(const char *opt, const char *s, const char *const *names, int *out,
                        struct zr_errors *errs)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    zr_errors_add(errs, NULL, 0, 0, NULL, "%s takes %s%s%s or %s, got '%s'", opt, names[0],
                  names[2] ? ", " : "", names[2] ? names[1] : "", names[2] ? names[2] : names[1],
                  s);
    return -EINVAL;
}

/* A duration: a whole number and a unit, s, m or h (1 s to 7 days). */
static int parse_duration(const char *opt, const char *s, unsigned *out, struct zr_errors *errs)
{
    static const struct {
        char suffix;
        unsigned long seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}};
    size_t len = strlen(s);
    for (size_t i = 0; len > 0 && i < ELEMENTSOF(units); i++) {
        unsigned long v = 0;
        if (s[len - 1] != units[i].suffix ||
            strict_uint(s, len - 1, 7UL * 86400 / units[i].seconds, &v) < 0 || v == 0)
            continue;
        *out = (unsigned)(v * units[i].seconds);
        return 0;
    }
    zr_errors_add(errs, NULL, 0, 0, NULL,
                  "%s needs a duration from 1s to 7 days, a whole number with s, m or h (90s, "
                  "15m, 1h), got '%s'",
                  opt, s);
    return -EINVAL;
}

/* The environment variable `name` through options_parse_uint(); *out is
 * 0 when it is unset or empty (the caller's default). */
static int env_uint(const char *name, unsigned min, unsigned max, unsigned *out,
                    struct zr_errors *errs)
{
    const char *s = getenv(name);
    *out = 0;
    if (!s || !*s)
        return 0;
    return options_parse_uint(name, s, min, max, out, errs);
}

int options_apply_threads(unsigned *threads, struct zr_errors *errs)
{
    return env_uint("ZPCI_RECONCILE_APPLY_THREADS", 1, 64, threads, errs);
}

int options_connect_timeout(unsigned *seconds, struct zr_errors *errs)
{
    return env_uint("ZPCI_RECONCILE_CONNECT_TIMEOUT", 1, 3600, seconds, errs);
}

enum {
    OPT_TIMEOUT = 0x100,
    OPT_COLOR,
    OPT_VERSION,
    OPT_METRICS_FILE,
    OPT_RESYNC,
};

/* One option.  Returns 1 to go on, 0 when done (help/version), <0 on a
 * bad value (in errs). */
static int parse_option(int c, const char *arg, struct options *o, struct zr_errors *errs)
{
    static const char *const formats[] = {"text", "json", NULL};
    static const char *const colors[] = {"auto", "always", "never", NULL};
    int choice = 0, r = 0;
    switch (c) {
    case 'c':
        o->uri = arg;
        break;
    case 'o':
        r = parse_choice("--output", arg, formats, &choice, errs);
        o->format = r < 0 ? o->format : (zr_format)choice;
        break;
    case OPT_TIMEOUT:
        r = options_parse_uint("--timeout", arg, 0, 86400, &o->timeout_s, errs);
        break;
    case 'j':
        r = options_parse_uint("--jobs", arg, 1, 256, &o->jobs, errs);
        break;
    case 'q':
    case 'v':
        o->verbosity = c == 'q' ? -1 : 1;
        break;
    case OPT_COLOR:
        r = parse_choice("--color", arg, colors, &choice, errs);
        o->color = r < 0 ? o->color : (color_mode)choice;
        break;
    case 'h':
        help();
        return 0;
    case OPT_VERSION:
        printf("zpci-reconcile %s\n", ZR_VERSION);
        return 0;
    case OPT_METRICS_FILE:
        if (!*arg)
            zr_errors_add(errs, NULL, 0, 0, NULL, "--metrics-file needs a path");
        o->metrics_file = *arg ? arg : o->metrics_file;
        r = *arg ? 0 : -EINVAL;
        break;
    case OPT_RESYNC:
        r = parse_duration("--resync", arg, &o->resync_s, errs);
        o->resync_set = 1;
        break;
    default: /* 0: a flag getopt_long has set */
        break;
    }
    return r < 0 ? r : 1;
}

/* The option getopt_long() did not take, as the user wrote it: an unknown
 * or ambiguous one ('?'), or one without its value (':'). */
static void bad_option(int c, char **argv, const struct option *longopts, struct zr_errors *errs)
{
    const char *arg = argv[optind - 1];
    if (strncmp(arg, "--", 2) != 0) {
        zr_errors_add(errs, NULL, 0, 0, NULL,
                      c == ':' ? "option '-%c' needs a value"
                               : "unknown option '-%c'; try 'zpci-reconcile --help'",
                      optopt);
        return;
    }
    size_t len = strcspn(arg, "=");
    if (c == ':') {
        zr_errors_add(errs, NULL, 0, 0, NULL, "option '%.*s' needs a value", (int)len, arg);
        return;
    }
    size_t matches = 0;
    for (const struct option *l = longopts; l->name; l++)
        matches += len > 2 && strncmp(l->name, arg + 2, len - 2) == 0;
    zr_errors_add(errs, NULL, 0, 0, NULL, "%s option '%.*s'; try 'zpci-reconcile --help'",
                  matches > 1 ? "ambiguous" : "unknown", (int)len, arg);
}

int options_parse(int argc, char **argv, struct options *o, struct zr_errors *errs)
{
    const struct option longopts[] = {
        {"connect", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"config-only", no_argument, &o->config_only, 1},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"dry-run", no_argument, &o->dry_run, 1},
        {"atomic", no_argument, &o->atomic, 1},
        {"no-host-check", no_argument, &o->no_host_check, 1},
        {"jobs", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"color", required_argument, NULL, OPT_COLOR},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"metrics-file", required_argument, NULL, OPT_METRICS_FILE},
        {"live", no_argument, &o->live, 1},
        {"all", no_argument, &o->all, 1},
        {"resync", required_argument, NULL, OPT_RESYNC},
        {0},
    };
    int c, r;

    /* Our own messages, prefixed as every other one: getopt's would start
     * with argv[0], the path the binary was run by. */
    opterr = 0;
    /* GNU getopt permutes, so options may follow the command.  Every
     * option is read, also after an error, so that the error report
     * knows -o json and --metrics-file wherever they stand. */
    while ((c = getopt_long(argc, argv, ":c:o:j:qvh", longopts, NULL)) >= 0) {
        if (c == '?' || c == ':')
            bad_option(c, argv, longopts, errs);
        else if ((r = parse_option(c, optarg, o, errs)) == 0)
            return 0;
    }
    if (optind < argc) {
        o->verb = argv[optind];
        o->args = argv + optind + 1;
        o->n_args = argc - optind - 1;
    } else if (!errs->n) {
        zr_errors_add(errs, NULL, 0, 0, NULL, "no command given; try 'zpci-reconcile --help'");
    }
    return errs->n || errs->truncated ? -EINVAL : 1;
}

/* Which command takes which option: a flag (int) or a path given to a
 * command outside `verbs` is the error `why`.  The first that applies is
 * said. */
static const struct {
    size_t field; /* offsetof(struct options, ...) */
    bool text;    /* a const char *, else an int */
    unsigned verbs;
    const char *why;
} only_for[] = {
    {offsetof(struct options, dry_run), false, VERB_APPLY, "--dry-run is only for apply"},
    {offsetof(struct options, atomic), false, VERB_APPLY, "--atomic is only for apply"},
    {offsetof(struct options, live), false, VERB_EXPORT, "--live is only for export"},
    {offsetof(struct options, all), false, VERB_EXPORT, "--all is only for export"},
    {offsetof(struct options, resync_set), false, VERB_WATCH, "--resync is only for watch"},
    {offsetof(struct options, metrics_file), true, VERB_RUN | VERB_WATCH,
     "--metrics-file is only for plan, apply and watch"},
};

static bool given(const struct options *o, size_t field, bool text)
{
    const char *at = (const char *)o + field;
    return text ? *(const char *const *)(const void *)at != NULL : *(const int *)(const void *)at;
}

/* An option the command does not take, as a message; NULL when none. */
static const char *misplaced(const struct options *o, unsigned flags)
{
    for (size_t i = 0; i < ELEMENTSOF(only_for); i++)
        if (given(o, only_for[i].field, only_for[i].text) && !(flags & only_for[i].verbs))
            return only_for[i].why;
    if (o->all && o->n_args > 0)
        return "export takes guest names or --all, not both";
    if ((flags & VERB_EXPORT) && o->format == ZR_FORMAT_JSON)
        return "export writes YAML; --output json is for plan and apply";
    return NULL;
}

int options_check(const struct options *o, unsigned flags, int min_args, int max_args,
                  struct zr_errors *errs)
{
    const char *why = misplaced(o, flags);
    if (o->n_args < min_args || o->n_args > max_args)
        zr_errors_add(errs, NULL, 0, 0, NULL, "'%s' takes one INVENTORY (a file, or - for stdin)",
                      o->verb);
    else if (why)
        zr_errors_add(errs, NULL, 0, 0, NULL, "%s", why);
    return errs->n ? -EINVAL : 0;
}
