/* The command line: options, wiring of the stages, exit codes.  Everything
 * else lives in zr-core. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "apply.h"
#include "config.h"
#include "inventory.h"
#include "output.h"
#include "plan.h"
#include "preflight.h"
#include "state.h"

enum {
    EXIT_IN_SYNC = 0,
    EXIT_ERROR = 1,
    EXIT_CHANGES = 2,
};

typedef enum {
    COLOR_AUTO,
    COLOR_ALWAYS,
    COLOR_NEVER,
} color_mode;

struct options {
    const char *uri;
    zr_format format;
    bool config_only;
    unsigned timeout_s;
    bool dry_run;
    bool atomic;
    bool no_host_check;
    unsigned jobs;
    int verbosity; /* -1 quiet, 0 normal, 1 verbose */
    color_mode color;
    const char *verb;
    char **args;
    int n_args;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

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
           "      --no-host-check   do not look wanted sources up among the host's PCI devices\n"
           "  -j, --jobs N          guests read at once per host (default 4)\n"
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

/* Returns 1 to go on, 0 when done (help/version), <0 on a usage error. */
static int parse_argv(int argc, char **argv, struct options *o)
{
    enum {
        OPT_CONFIG_ONLY = 0x100,
        OPT_TIMEOUT,
        OPT_DRY_RUN,
        OPT_ATOMIC,
        OPT_NO_HOST_CHECK,
        OPT_COLOR,
        OPT_VERSION,
    };
    static const struct option longopts[] = {
        {"connect", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"config-only", no_argument, NULL, OPT_CONFIG_ONLY},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"atomic", no_argument, NULL, OPT_ATOMIC},
        {"no-host-check", no_argument, NULL, OPT_NO_HOST_CHECK},
        {"jobs", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"color", required_argument, NULL, OPT_COLOR},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {0},
    };
    int c;

    /* GNU getopt permutes, so options may follow the command. */
    while ((c = getopt_long(argc, argv, "c:o:j:qvh", longopts, NULL)) >= 0) {
        switch (c) {
        case 'c':
            o->uri = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "text") == 0)
                o->format = ZR_FORMAT_TEXT;
            else if (strcmp(optarg, "json") == 0)
                o->format = ZR_FORMAT_JSON;
            else {
                fprintf(stderr, "zpci-reconcile: --output takes text or json, got '%s'\n", optarg);
                return -EINVAL;
            }
            break;
        case OPT_CONFIG_ONLY:
            o->config_only = true;
            break;
        case OPT_TIMEOUT:
            if (parse_uint("--timeout", optarg, 0, 86400, &o->timeout_s) < 0)
                return -EINVAL;
            break;
        case OPT_DRY_RUN:
            o->dry_run = true;
            break;
        case OPT_ATOMIC:
            o->atomic = true;
            break;
        case OPT_NO_HOST_CHECK:
            o->no_host_check = true;
            break;
        case 'j':
            if (parse_uint("--jobs", optarg, 1, 256, &o->jobs) < 0)
                return -EINVAL;
            break;
        case 'q':
            o->verbosity = -1;
            break;
        case 'v':
            o->verbosity = 1;
            break;
        case OPT_COLOR:
            if (strcmp(optarg, "auto") == 0)
                o->color = COLOR_AUTO;
            else if (strcmp(optarg, "always") == 0)
                o->color = COLOR_ALWAYS;
            else if (strcmp(optarg, "never") == 0)
                o->color = COLOR_NEVER;
            else {
                fprintf(stderr, "zpci-reconcile: --color takes auto, always or never, got '%s'\n",
                        optarg);
                return -EINVAL;
            }
            break;
        case 'h':
            help();
            return 0;
        case OPT_VERSION:
            printf("zpci-reconcile %s\n", ZR_VERSION);
            return 0;
        case '?':
            fprintf(stderr, "Try 'zpci-reconcile --help'.\n");
            return -EINVAL;
        default:
            abort();
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "zpci-reconcile: no command given; try 'zpci-reconcile --help'\n");
        return -EINVAL;
    }
    o->verb = argv[optind];
    o->args = argv + optind + 1;
    o->n_args = argc - optind - 1;
    return 1;
}

static struct zr_inventory *load_inventory(const char *path)
{
    struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_load(path, &errs);
    if (!inv)
        zr_errors_print(&errs, stderr);
    zr_errors_finish(&errs);
    return inv;
}

static int verb_validate(const struct options *o, const char *path)
{
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = load_inventory(path);
    if (!inv)
        return EXIT_ERROR;
    size_t guests = zr_inventory_count_guests(inv), devices = zr_inventory_count_devices(inv);
    if (o->verbosity >= 0)
        printf("%s: valid (%zu host%s, %zu guest%s, %zu device%s)\n", inv->file, inv->n_hosts,
               inv->n_hosts == 1 ? "" : "s", guests, guests == 1 ? "" : "s", devices,
               devices == 1 ? "" : "s");
    return EXIT_IN_SYNC;
}

/* Everything known about one host while planning and applying it. */
struct host_run {
    const struct zr_host *host;
    virConnectPtr conn;
    char *uri; /* as libvirt reports it once connected */
    struct zr_guest_state *states;
    size_t first_guest; /* index of its first guest in zr_plan.guests */
    size_t first_action, end_action;
    int lock_fd;
    char *error;
};

static void plan_host(struct zr_plan *plan, struct host_run *h, const struct options *o,
                      bool applying)
{
    const struct zr_host *host = h->host;
    struct zr_plan_options popts = {.config_only = o->config_only};
    struct zr_error err = {0};
    const char *uri = o->uri ? o->uri : host->uri;

    h->first_guest = plan->n_guests;
    h->lock_fd = -1;
    h->conn = zr_connect(uri, &err);
    if (!h->conn) {
        for (size_t g = 0; g < host->n_guests; g++)
            zr_plan_guest_error(plan, host->name, uri, host->guests[g].name, "%s", err.message);
        zr_error_finish(&err);
        return;
    }
    h->uri = zr_connect_uri(h->conn);
    if (!h->uri) /* libvirt could not say: name it as asked */
        h->uri = zr_strdup(uri ? uri : "libvirt's default URI");

    if (applying) {
        h->lock_fd = zr_apply_lock(h->uri, &err);
        if (h->lock_fd < 0) {
            for (size_t g = 0; g < host->n_guests; g++)
                zr_plan_guest_error(plan, host->name, h->uri, host->guests[g].name, "%s",
                                    err.message);
            zr_error_finish(&err);
            return;
        }
    }

    h->states = zr_state_read(h->conn, host, o->jobs);
    char **check = o->no_host_check ? zr_new0(char *, host->n_guests)
                                    : zr_preflight_host(plan, h->conn, h->uri, host, h->states,
                                                        o->jobs, applying);
    for (size_t g = 0; g < host->n_guests; g++) {
        struct zr_guest_state *st = &h->states[g];
        if (st->error) {
            _cleanup_free_ char *near = st->dom ? NULL : zr_state_near_miss(h->conn, st->wanted->name);
            if (near)
                zr_plan_guest_error(plan, host->name, h->uri, st->wanted->name,
                                    "%s (did you mean '%s'?)", st->error, near);
            else
                zr_plan_guest_error(plan, host->name, h->uri, st->wanted->name, "%s", st->error);
        } else if (check[g]) {
            zr_plan_guest_error(plan, host->name, h->uri, st->wanted->name, "%s", check[g]);
        } else {
            zr_plan_guest(plan, host->name, h->uri, st->wanted, &st->config,
                          st->active ? &st->live : NULL, &popts);
        }
    }
    zr_preflight_errors_free(check, host->n_guests);
}

static void host_run_finish(struct host_run *h)
{
    if (h->states)
        zr_state_free(h->states, h->host->n_guests);
    zr_apply_unlock(h->lock_fd);
    if (h->conn)
        virConnectClose(h->conn);
    free(h->uri);
    free(h->error);
}

static bool use_color(const struct options *o)
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

static int verb_plan_apply(const struct options *o, const char *path, bool applying)
{
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = load_inventory(path);
    if (!inv)
        return EXIT_ERROR;
    if (o->uri && inv->n_hosts > 1) {
        fprintf(stderr, "zpci-reconcile: --connect cannot be used with an inventory of %zu hosts; "
                        "each host has its own uri\n",
                inv->n_hosts);
        return EXIT_ERROR;
    }

    struct zr_plan plan = {0};
    _cleanup_free_ struct host_run *hosts = zr_new0(struct host_run, inv->n_hosts);
    for (size_t i = 0; i < inv->n_hosts; i++) {
        hosts[i].host = &inv->hosts[i];
        plan_host(&plan, &hosts[i], o, applying);
    }
    zr_plan_finalize(&plan);

    if (applying) {
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        struct zr_apply_options aopts = {
            .timeout_s = o->timeout_s,
            .atomic = o->atomic,
            .progress = o->verbosity > 0 || (plan.n_actions >= 10 && o->verbosity >= 0 &&
                                             isatty(STDERR_FILENO)),
            .interrupt = &interrupted,
        };
        _cleanup_free_ virDomainPtr *doms = zr_new0(virDomainPtr, plan.n_guests);
        for (size_t i = 0; i < inv->n_hosts; i++) {
            struct host_run *h = &hosts[i];
            if (!h->states)
                continue;
            /* plan_host appended this host's guests in inventory order,
             * skipping none. */
            for (size_t g = 0; g < h->host->n_guests; g++)
                doms[h->first_guest + g] = h->states[g].dom;
            size_t first = 0;
            while (first < plan.n_actions &&
                   (plan.actions[first].guest_index < h->first_guest ||
                    plan.actions[first].guest_index >= h->first_guest + h->host->n_guests))
                first++;
            size_t end = first;
            while (end < plan.n_actions && plan.actions[end].guest_index >= h->first_guest &&
                   plan.actions[end].guest_index < h->first_guest + h->host->n_guests)
                end++;
            zr_apply_host(&plan, first, end, h->conn, doms, &aopts);
        }
        if (interrupted)
            fprintf(stderr, "zpci-reconcile: interrupted by signal %d; stopped after the current call\n",
                    (int)interrupted);
    }

    struct zr_output_options oo = {
        .format = o->format,
        .color = o->format == ZR_FORMAT_TEXT && use_color(o),
        .quiet = o->verbosity < 0,
        .applied = applying,
    };
    zr_output_plan(stdout, &plan, &oo);
    fflush(stdout);

    struct zr_plan_counts c;
    zr_plan_count(&plan, &c);
    int rc;
    if (c.guests_failed || c.failed || c.skipped || interrupted)
        rc = EXIT_ERROR;
    else if (!applying && plan.n_actions > 0)
        rc = EXIT_CHANGES;
    else
        rc = EXIT_IN_SYNC;

    for (size_t i = 0; i < inv->n_hosts; i++)
        host_run_finish(&hosts[i]);
    zr_plan_finish(&plan);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o = {.timeout_s = 30, .jobs = 4};
    int r = parse_argv(argc, argv, &o);
    if (r <= 0)
        return r < 0 ? EXIT_ERROR : EXIT_IN_SYNC;

    static const struct {
        const char *name;
        int min_args, max_args;
    } verbs[] = {
        {"validate", 1, 1},
        {"plan", 1, 1},
        {"apply", 1, 1},
    };
    size_t v;
    for (v = 0; v < ELEMENTSOF(verbs); v++)
        if (strcmp(o.verb, verbs[v].name) == 0)
            break;
    if (v == ELEMENTSOF(verbs)) {
        fprintf(stderr, "zpci-reconcile: unknown command '%s'; try 'zpci-reconcile --help'\n", o.verb);
        return EXIT_ERROR;
    }
    if (o.n_args < verbs[v].min_args || o.n_args > verbs[v].max_args) {
        fprintf(stderr, "zpci-reconcile: '%s' takes one INVENTORY (a file, or - for stdin)\n", o.verb);
        return EXIT_ERROR;
    }
    bool is_apply = strcmp(o.verb, "apply") == 0;
    if ((o.dry_run || o.atomic) && !is_apply) {
        fprintf(stderr, "zpci-reconcile: %s is only for apply\n", o.dry_run ? "--dry-run" : "--atomic");
        return EXIT_ERROR;
    }

    /* libxml2 must be initialised before threads read domain XML at once. */
    xmlInitParser();
    /* A write to the socket of a libvirtd that just died must fail with EPIPE,
     * so apply can report the lost connection; by default SIGPIPE would end
     * the process with nothing said.  libvirt leaves this to its clients. */
    signal(SIGPIPE, SIG_IGN);

    if (strcmp(o.verb, "validate") == 0)
        return verb_validate(&o, o.args[0]);
    return verb_plan_apply(&o, o.args[0], is_apply && !o.dry_run);
}
