/* Table-driven plan cases: tests/data/plan/<case>/ holds inventory.yaml,
 * <guest>.xml (persistent definition; absent = guest not found),
 * <guest>.live.xml (running guest; absent = not running), an optional
 * `options` file (words: config-only), and the expected plan as
 * expected.json and expected.txt.  ZR_REGENERATE=1 rewrites the expected
 * files. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "inventory.h"
#include "output.h"
#include "plan.h"
#include "render.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        buf = realloc(buf, cap += 65536);
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(data, f);
    fclose(f);
}

/* Paths are built on the heap: no truncation to reason about. */
static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    cr_assert_geq(vasprintf(&s, fmt, ap), 0);
    va_end(ap);
    return s;
}

static bool load_devices(const char *path, struct zr_device_list *out)
{
    size_t len;
    char *xml = read_file(path, &len);
    if (!xml)
        return false;
    struct zr_error err = {0};
    int r = zr_domain_parse_devices(xml, len, path, out, &err);
    cr_assert_eq(r, 0, "%s: %s", path, err.message ? err.message : "");
    free(xml);
    return true;
}

static struct zr_plan *plan_case(const char *dir)
{
    char *path = pathf("%s/inventory.yaml", dir);
    struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_load(path, &errs);
    if (!inv)
        zr_errors_print(&errs, stderr);
    cr_assert_not_null(inv, "%s does not load", path);
    free(path);

    struct zr_plan_options opts = {0};
    path = pathf("%s/options", dir);
    char *words = read_file(path, NULL);
    free(path);
    if (words && strstr(words, "config-only"))
        opts.config_only = true;
    free(words);

    struct zr_plan *plan = calloc(1, sizeof(*plan));
    for (size_t h = 0; h < inv->n_hosts; h++) {
        const struct zr_host *host = &inv->hosts[h];
        for (size_t g = 0; g < host->n_guests; g++) {
            const struct zr_guest *guest = &host->guests[g];
            struct zr_device_list config = {0}, live = {0};
            path = pathf("%s/%s.xml", dir, guest->name);
            bool found = load_devices(path, &config);
            free(path);
            if (!found) {
                zr_plan_guest_error(plan, host->name, host->uri, guest->name,
                                    ZR_ERR_NOT_FOUND, /* as state.c says it */
                                    "guest '%s' not found", guest->name);
                continue;
            }
            path = pathf("%s/%s.live.xml", dir, guest->name);
            bool running = load_devices(path, &live);
            free(path);
            zr_plan_guest(plan, host->name, host->uri, guest, &config, running ? &live : NULL,
                          &opts);
            zr_device_list_finish(&config);
            zr_device_list_finish(&live);
        }
    }
    zr_render_plan(plan, 0);
    zr_plan_finalize(plan);
    plan->has_hosts = inv->has_hosts;
    zr_inventory_free(inv);
    zr_errors_finish(&errs);
    return plan;
}

static char *render(const struct zr_plan *plan, zr_format format)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    struct zr_output_options o = {.format = format};
    /* A plan alone: no run, every action planned. */
    zr_output_plan(f, &(struct zr_report){.plan = *plan}, &o);
    fclose(f);
    return s;
}

static void check_expected(const char *dir, const char *name, const char *actual)
{
    char *path = pathf("%s/%s", dir, name);
    const char *regen = getenv("ZR_REGENERATE");
    if (regen && *regen) {
        write_file(path, actual);
        free(path);
        return;
    }
    char *expected = read_file(path, NULL);
    cr_assert_not_null(expected, "%s is missing (run with ZR_REGENERATE=1 and review)", path);
    cr_expect_str_eq(actual, expected, "%s differs.\n--- actual ---\n%s", path, actual);
    free(expected);
    free(path);
}

/* One case of tests/data/plan: a fixed-size name, so the parameter holds no
 * pointer and needs no cleanup across Criterion's runner and workers. */
struct plan_case {
    char name[128];
};

static int case_cmp(const void *a, const void *b)
{
    return strcmp(((const struct plan_case *)a)->name, ((const struct plan_case *)b)->name);
}

static void free_cases(struct criterion_test_params *p)
{
    cr_free(p->params);
}

/* Every directory of tests/data/plan, sorted: one test each, so a failing
 * case does not hide the ones after it. */
ParameterizedTestParameters(plan, table_driven_case)
{
    const char *src = getenv("ZR_SRCDIR");
    char *root = pathf("%s/tests/data/plan", src ? src : ".");
    DIR *d = opendir(root);
    size_t n = 0, cap = 64;
    struct plan_case *cases = cr_malloc(cap * sizeof(*cases));
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(cases->name))
            continue;
        if (n == cap)
            cases = cr_realloc(cases, (cap *= 2) * sizeof(*cases));
        snprintf(cases[n++].name, sizeof(cases->name), "%s", e->d_name);
    }
    if (d)
        closedir(d);
    free(root);
    qsort(cases, n, sizeof(*cases), case_cmp);
    return cr_make_param_array(struct plan_case, cases, n, free_cases);
}

ParameterizedTest(struct plan_case *c, plan, table_driven_case)
{
    const char *src = getenv("ZR_SRCDIR");
    cr_assert_not_null(src, "ZR_SRCDIR is not set");
    char *dir = pathf("%s/tests/data/plan/%s", src, c->name);
    struct zr_plan *plan = plan_case(dir);
    char *json = render(plan, ZR_FORMAT_JSON);
    char *text = render(plan, ZR_FORMAT_TEXT);
    check_expected(dir, "expected.json", json);
    check_expected(dir, "expected.txt", text);
    free(json);
    free(text);
    zr_plan_finish(plan);
    free(plan);
    free(dir);
}

/* The cases are found at all (a wrong ZR_SRCDIR would run none of them). */
Test(plan, table_driven_cases_are_found)
{
    const char *src = getenv("ZR_SRCDIR");
    cr_assert_not_null(src, "ZR_SRCDIR is not set");
    char *root = pathf("%s/tests/data/plan", src);
    DIR *d = opendir(root);
    cr_assert_not_null(d, "%s: %s", root, strerror(errno));
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    free(root);
    cr_assert_geq(n, 30, "expected at least 30 plan cases, found %zu", n);
}

/* Helpers for the invariant tests below. */
static struct zr_device hostdev(const char *source, int uid)
{
    struct zr_device d = {.kind = ZR_KIND_HOSTDEV, .managed = true};
    cr_assert_eq(zr_pci_addr_parse(source, &d.source), 0);
    if (uid > 0) {
        d.has_zpci_uid = true;
        d.zpci_uid = (uint32_t)uid;
    }
    return d;
}

Test(plan, uid_swap_attaches_wait_for_both_detaches)
{
    struct zr_guest g = {.name = "g", .prune = true};
    *zr_device_list_append(&g.devices) = hostdev("0001:00:00.0", 2);
    *zr_device_list_append(&g.devices) = hostdev("0002:00:00.0", 1);
    struct zr_device_list cur = {0};
    *zr_device_list_append(&cur) = hostdev("0001:00:00.0", 1);
    *zr_device_list_append(&cur) = hostdev("0002:00:00.0", 2);

    struct zr_plan plan = {0};
    zr_plan_guest(&plan, "default", NULL, &g, &cur, NULL, NULL);
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);

    cr_assert_eq(plan.n_actions, 4);
    cr_assert_eq(plan.actions[0].op, ZR_OP_DETACH);
    cr_assert_eq(plan.actions[1].op, ZR_OP_DETACH);
    for (size_t i = 2; i < 4; i++) {
        /* Each attach needs its own function freed and its uid freed by the
         * other detach. */
        cr_assert_eq(plan.actions[i].op, ZR_OP_ATTACH);
        cr_assert_eq(plan.actions[i].n_deps, 2, "attach %zu has %zu deps", i,
                     plan.actions[i].n_deps);
    }
    zr_plan_finish(&plan);
    zr_device_list_finish(&g.devices);
    zr_device_list_finish(&cur);
}

/* Each action says what it is for, and a replacement's halves name each
 * other: nothing downstream works it out again. */
Test(plan, replacement_halves_have_roles_and_name_each_other)
{
    struct zr_guest g = {.name = "g", .prune = true};
    *zr_device_list_append(&g.devices) = hostdev("0001:00:00.0", 2); /* uid changes */
    *zr_device_list_append(&g.devices) = hostdev("0003:00:00.0", 0); /* missing */
    struct zr_device_list cur = {0};
    *zr_device_list_append(&cur) = hostdev("0001:00:00.0", 1);
    *zr_device_list_append(&cur) = hostdev("0002:00:00.0", 0); /* not in inventory */

    struct zr_plan plan = {0};
    zr_plan_guest(&plan, "default", NULL, &g, &cur, NULL, NULL);
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);

    size_t seen[ZR_ROLE__COUNT] = {0};
    cr_assert_eq(plan.n_actions, 4);
    for (size_t i = 0; i < plan.n_actions; i++) {
        const struct zr_action *a = &plan.actions[i];
        seen[a->role]++;
        if (!zr_action_is_replacement(a)) {
            cr_expect_eq(a->pair, ZR_NO_PAIR);
            cr_expect_eq(a->n_changes, 0);
            continue;
        }
        cr_assert_neq(a->pair, ZR_NO_PAIR);
        const struct zr_action *b = &plan.actions[a->pair];
        cr_expect_eq(b->pair, i);
        cr_expect_eq(b->role, a->role == ZR_ROLE_REPLACE_OUT ? ZR_ROLE_REPLACE_IN
                                                             : ZR_ROLE_REPLACE_OUT);
        cr_assert_eq(a->n_changes, 1);
        cr_expect_str_eq(a->changes[0].field, "zpci.uid");
        cr_expect_str_eq(a->changes[0].old, "0x0001");
        cr_expect_str_eq(a->changes[0].new, "0x0002");
    }
    for (zr_role r = 0; r < ZR_ROLE__COUNT; r++)
        cr_expect_eq(seen[r], 1, "role %d: %zu actions", (int)r, seen[r]);
    zr_plan_finish(&plan);
    zr_device_list_finish(&g.devices);
    zr_device_list_finish(&cur);
}

/* The plan's refusals and warnings carry a code (hints and callers key on
 * it, never on the message). */
Test(plan, refusals_and_warnings_carry_a_code)
{
    struct zr_guest g = {.name = "g", .prune = false};
    *zr_device_list_append(&g.devices) = hostdev("0001:00:00.0", 5);
    struct zr_device_list cur = {0};
    *zr_device_list_append(&cur) = hostdev("0002:00:00.0", 5); /* kept, holds uid 5 */

    struct zr_plan plan = {0};
    zr_plan_guest(&plan, "default", NULL, &g, &cur, NULL, NULL);
    cr_assert_not_null(plan.guests[0].error);
    cr_expect_eq(plan.guests[0].error_code, ZR_ERR_HELD, "%s", plan.guests[0].error);
    cr_expect_eq(plan.n_actions, 0);

    struct zr_guest d = {.name = "d", .prune = true};
    *zr_device_list_append(&d.devices) = hostdev("0003:00:00.0", 0);
    struct zr_device_list none = {0};
    struct zr_plan_options config_only = {.config_only = true};
    zr_plan_guest(&plan, "default", NULL, &d, &none, &none, &config_only);
    cr_assert_eq(plan.n_warnings, 1);
    cr_expect_eq(plan.warnings[0].code, ZR_ERR_LIVE_DRIFT, "%s", plan.warnings[0].message);
    zr_plan_finish(&plan);
    zr_device_list_finish(&g.devices);
    zr_device_list_finish(&d.devices);
    zr_device_list_finish(&cur);
}

Test(plan, in_sync_guest_gets_no_action)
{
    struct zr_guest g = {.name = "g", .prune = true};
    *zr_device_list_append(&g.devices) = hostdev("0001:00:00.0", 0);
    struct zr_device_list cur = {0};
    *zr_device_list_append(&cur) = hostdev("0001:00:00.0", 7); /* uid filled by libvirt */

    struct zr_plan plan = {0};
    zr_plan_guest(&plan, "default", NULL, &g, &cur, &cur, NULL);
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);
    cr_assert_eq(plan.n_actions, 0);
    cr_assert_not(plan.guests[0].changed);
    zr_plan_finish(&plan);
    zr_device_list_finish(&g.devices);
    zr_device_list_finish(&cur);
}

Test(plan, detaches_of_every_guest_precede_attaches_per_host)
{
    struct zr_guest a = {.name = "a", .prune = true}, b = {.name = "b", .prune = true};
    *zr_device_list_append(&b.devices) = hostdev("0003:00:00.0", 0);
    struct zr_device_list cur_a = {0}, cur_b = {0};
    *zr_device_list_append(&cur_a) = hostdev("0003:00:00.0", 0);

    struct zr_plan plan = {0};
    /* b first: its attach must still come after a's detach. */
    zr_plan_guest(&plan, "default", NULL, &b, &cur_b, NULL, NULL);
    zr_plan_guest(&plan, "default", NULL, &a, &cur_a, NULL, NULL);
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);
    cr_assert_eq(plan.n_actions, 2);
    cr_assert_eq(plan.actions[0].op, ZR_OP_DETACH);
    cr_assert_str_eq(plan.guests[plan.actions[0].guest_index].guest, "a");
    cr_assert_eq(plan.actions[1].op, ZR_OP_ATTACH);
    cr_assert_eq(plan.actions[1].n_deps, 1);
    cr_assert_eq(plan.actions[1].deps[0], 0);
    zr_plan_finish(&plan);
    zr_device_list_finish(&b.devices);
    zr_device_list_finish(&cur_a);
}

/* A device holding, by libvirt's choice, the uid another wanted device
 * names is moved: the named attach waits for its detach and goes before
 * the moved device's attach, which names nothing. */
Test(plan, libvirt_chosen_uid_moves_and_the_named_attach_waits)
{
    struct zr_guest g = {.name = "g", .prune = true};
    *zr_device_list_append(&g.devices) = hostdev("0000:00:00.0", 0);
    *zr_device_list_append(&g.devices) = hostdev("0001:00:00.0", 1);
    struct zr_device_list cur = {0};
    struct zr_device held = hostdev("0000:00:00.0", 1);
    held.has_zpci_fid = true;
    *zr_device_list_append(&cur) = held;

    struct zr_plan plan = {0};
    zr_plan_guest(&plan, "default", NULL, &g, &cur, NULL, NULL);
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);

    cr_assert_null(plan.guests[0].error, "%s", plan.guests[0].error);
    cr_assert_eq(plan.n_actions, 3);
    cr_expect_eq(plan.actions[0].op, ZR_OP_DETACH);
    cr_expect_eq(plan.actions[0].source.domain, 0);
    _cleanup_free_ char *reason = zr_action_reason(&plan.actions[0]);
    cr_expect_str_eq(reason, "changed: zpci.uid,zpci.fid");
    cr_expect_eq(plan.actions[1].op, ZR_OP_ATTACH);
    cr_expect_eq(plan.actions[1].source.domain, 1, "the named attach goes first");
    cr_assert_eq(plan.actions[1].n_deps, 1);
    cr_expect_eq(plan.actions[1].deps[0], 0);
    cr_expect_eq(plan.actions[2].source.domain, 0);
    cr_expect(!plan.actions[2].device.has_zpci_uid && !plan.actions[2].device.has_zpci_fid,
              "the moved device lets libvirt pick");
    zr_plan_finish(&plan);
    zr_device_list_finish(&g.devices);
    zr_device_list_finish(&cur);
}

/* The plan says what to do and formats no XML; rendering adds it, and
 * makes one call of a persistent and a live attach with the same XML. */
Test(plan, render_adds_the_xml_and_combines_identical_attaches)
{
    struct zr_guest g = {.name = "g", .prune = true};
    *zr_device_list_append(&g.devices) = hostdev("0001:00:00.0", 3);
    struct zr_device_list none = {0};

    struct zr_plan plan = {0};
    zr_plan_guest(&plan, "default", NULL, &g, &none, &none, NULL);
    cr_assert_eq(plan.n_actions, 2, "one attach per flavour before rendering");
    cr_expect_null(plan.actions[0].xml);
    cr_expect_null(plan.actions[1].xml);

    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);
    cr_assert_eq(plan.n_actions, 1);
    cr_expect(plan.actions[0].live && plan.actions[0].config);
    cr_assert_not_null(plan.actions[0].xml);
    cr_expect_not_null(strstr(plan.actions[0].xml, "uid=\"0x0003\""), "%s", plan.actions[0].xml);
    zr_plan_finish(&plan);
    zr_device_list_finish(&g.devices);
}

/* A device whose XML cannot be built (a profileid libvirt would store
 * unescaped; the inventory refuses it, a hand-made model need not) stops
 * its guest, as any guest error does: no action at all, the detach and
 * the other device's attach neither, and the guest says why. */
Test(plan, render_refuses_a_device_whose_xml_cannot_be_built)
{
    struct zr_guest g = {.name = "g", .prune = true};
    struct zr_device *w = zr_device_list_append(&g.devices);
    *w = (struct zr_device){.kind = ZR_KIND_INTERFACE, .managed = true};
    cr_assert_eq(zr_pci_addr_parse("0001:00:00.0", &w->source), 0);
    w->vport.type = ZR_VPORT_8021QBH;
    w->vport.profileid = zr_strdup("it's");
    struct zr_pci_addr source = w->source; /* w moves with the next append */
    *zr_device_list_append(&g.devices) = hostdev("0002:00:00.0", 0);
    struct zr_device_list cur = {0};
    struct zr_device *c = zr_device_list_append(&cur);
    *c = (struct zr_device){.kind = ZR_KIND_INTERFACE, .managed = true, .source = source};

    struct zr_plan plan = {0};
    zr_plan_guest(&plan, "default", NULL, &g, &cur, NULL, NULL);
    cr_assert_eq(plan.n_actions, 3); /* detach + attach of the interface, attach of 0002 */
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);
    cr_expect_eq(plan.n_actions, 0);
    cr_expect_not(plan.guests[0].changed);
    cr_assert_not_null(plan.guests[0].error);
    cr_expect_not_null(strstr(plan.guests[0].error, "cannot build the XML of interface 0001:00:00.0"),
                       "%s", plan.guests[0].error);
    zr_plan_finish(&plan);
    zr_device_list_finish(&g.devices);
    zr_device_list_finish(&cur);
}
