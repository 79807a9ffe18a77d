/* The command line's options.  See options.h. */
#include <errno.h>
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

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "zpci-reconcile: %s needs a whole number from %u to %u, got '%s'\n", opt,
                min, max, s);
        return -EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

/* `s` as one of `names` (NULL-terminated) into *out; else says what --opt
 * takes. */
static int parse_choice(const char *opt, const char *s, const char *const *names, int *out)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    fprintf(stderr, "zpci-reconcile: %s takes %s%s%s or %s, got '%s'\n", opt, names[0],
            names[2] ? ", " : "", names[2] ? names[1] : "", names[2] ? names[2] : names[1], s);
    return -EINVAL;
}

/* A duration: a whole number and a unit, s, m or h (1 s to 7 days). */
static int parse_duration(const char *opt, const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    unsigned long unit = !*end || end == s       ? 0
                         : strcmp(end, "s") == 0 ? 1
                         : strcmp(end, "m") == 0 ? 60
                         : strcmp(end, "h") == 0 ? 3600
                                                 : 0;
    if (errno || s[0] == '-' || unit == 0 || v == 0 || v > 7UL * 86400 / unit) {
        fprintf(stderr,
                "zpci-reconcile: %s needs a duration from 1s to 7 days, a whole number with s, "
                "m or h (90s, 15m, 1h), got '%s'\n",
                opt, s);
        return -EINVAL;
    }
    *out = (unsigned)(v * unit);
    return 0;
}

enum {
    OPT_TIMEOUT = 0x100,
    OPT_COLOR,
    OPT_VERSION,
    OPT_METRICS_FILE,
    OPT_RESYNC,
};

/* One option.  Returns 1 to go on, 0 when done (help/version), <0 on a
 * usage error. */
static int parse_option(int c, const char *arg, struct options *o)
{
    static const char *const formats[] = {"text", "json", NULL};
    static const char *const colors[] = {"auto", "always", "never", NULL};
    int choice = 0, r = 0;
    switch (c) {
    case 0: /* a flag getopt_long has set */
        break;
    case 'c':
        o->uri = arg;
        break;
    case 'o':
        r = parse_choice("--output", arg, formats, &choice);
        o->format = (zr_format)choice;
        break;
    case OPT_TIMEOUT:
        r = parse_uint("--timeout", arg, 0, 86400, &o->timeout_s);
        break;
    case 'j':
        r = parse_uint("--jobs", arg, 1, 256, &o->jobs);
        break;
    case 'q':
    case 'v':
        o->verbosity = c == 'q' ? -1 : 1;
        break;
    case OPT_COLOR:
        r = parse_choice("--color", arg, colors, &choice);
        o->color = (color_mode)choice;
        break;
    case 'h':
        help();
        return 0;
    case OPT_VERSION:
        printf("zpci-reconcile %s\n", ZR_VERSION);
        return 0;
    case OPT_METRICS_FILE:
        if (!*arg) {
            fprintf(stderr, "zpci-reconcile: --metrics-file needs a path\n");
            return -EINVAL;
        }
        o->metrics_file = arg;
        break;
    case OPT_RESYNC:
        r = parse_duration("--resync", arg, &o->resync_s);
        o->resync_set = 1;
        break;
    default:
        fprintf(stderr, "Try 'zpci-reconcile --help'.\n");
        return -EINVAL;
    }
    return r < 0 ? r : 1;
}

/* Returns 1 to go on, 0 when done (help/version), <0 on a usage error. */
int options_parse(int argc, char **argv, struct options *o)
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

    /* GNU getopt permutes, so options may follow the command. */
    while ((c = getopt_long(argc, argv, "c:o:j:qvh", longopts, NULL)) >= 0)
        if ((r = parse_option(c, optarg, o)) <= 0)
            return r;
    if (optind >= argc) {
        fprintf(stderr, "zpci-reconcile: no command given; try 'zpci-reconcile --help'\n");
        return -EINVAL;
    }
    o->verb = argv[optind];
    o->args = argv + optind + 1;
    o->n_args = argc - optind - 1;
    return 1;
}
