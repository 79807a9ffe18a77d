#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inventory.h"
#include "uri.h"

/* Table-driven over tests/data/inventory/{ok,bad} and examples/: every ok
 * file loads, every bad file fails with exactly the messages in its .err
 * (ZR_REGENERATE=1 rewrites those instead; review the diff). */

#define DATA_DIR "tests/data/inventory"

static const char *srcdir(void)
{
    const char *s = getenv("ZR_SRCDIR");
    cr_assert(s && *s, "ZR_SRCDIR is not set (run the tests through meson)");
    return s;
}

/* Messages name files relative to the directory the test runs in, so the
 * expected output does not depend on where the checkout is. */
static void enter(const char *rel)
{
    char *dir = zr_asprintf("%s/%s", srcdir(), rel);
    cr_assert_eq(chdir(dir), 0, "chdir %s: %s", dir, strerror(errno));
    free(dir);
}

static char *errors_text(const struct zr_errors *errs)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    zr_errors_print(errs, f);
    fclose(f);
    return buf;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    int c;
    while ((c = fgetc(f)) != EOF)
        fputc(c, out);
    fclose(out);
    fclose(f);
    return buf;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the files in srcdir/rel ending in `suffix`; malloc'd. */
static size_t list_files(const char *rel, const char *suffix, char ***out)
{
    const char *root = getenv("ZR_SRCDIR");
    char **names = NULL;
    size_t n = 0;
    if (!root)
        return 0;
    char *dir = zr_asprintf("%s/%s", root, rel);
    DIR *d = opendir(dir);
    free(dir);
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!has_suffix(e->d_name, suffix))
            continue;
        names = zr_reallocarray(names, n + 1, sizeof(*names));
        names[n++] = zr_strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), name_cmp);
    *out = names;
    return n;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ---- parameters: one test per file -------------------------------------- */

struct file_param {
    char *dir;  /* relative to the source root */
    char *name; /* file name in dir */
};

static char *cr_strdup_(const char *s)
{
    char *p = cr_malloc(strlen(s) + 1);
    strcpy(p, s);
    return p;
}

static void free_params(struct criterion_test_params *ctp)
{
    struct file_param *p = ctp->params;
    for (size_t i = 0; i < ctp->length; i++) {
        cr_free(p[i].dir);
        cr_free(p[i].name);
    }
    cr_free(ctp->params);
}

static struct criterion_test_params make_params(const char *const *dirs, size_t n_dirs)
{
    struct file_param *params = NULL;
    size_t n = 0;
    for (size_t i = 0; i < n_dirs; i++) {
        char **names = NULL;
        size_t m = list_files(dirs[i], ".yaml", &names);
        struct file_param *grown = cr_malloc((n + m) * sizeof(*grown) + 1);
        if (params) {
            memcpy(grown, params, n * sizeof(*grown));
            cr_free(params);
        }
        params = grown;
        for (size_t j = 0; j < m; j++)
            params[n++] = (struct file_param){cr_strdup_(dirs[i]), cr_strdup_(names[j])};
        free_names(names, m);
    }
    return cr_make_param_array(struct file_param, params, n, free_params);
}

ParameterizedTestParameters(inventory_files, ok)
{
    static const char *const dirs[] = {DATA_DIR "/ok", "examples"};
    return make_params(dirs, 2);
}

ParameterizedTest(struct file_param *p, inventory_files, ok)
{
    struct zr_errors errs = {0};
    enter(p->dir);
    struct zr_inventory *inv = zr_inventory_load(p->name, &errs);
    char *text = errors_text(&errs);

    cr_expect_not_null(inv, "%s/%s should load, got:\n%s", p->dir, p->name, text);
    cr_expect_eq(errs.n, 0, "%s/%s: %s", p->dir, p->name, text);
    if (inv)
        cr_expect_str_eq(inv->file, p->name);
    free(text);
    zr_inventory_free(inv);
    zr_errors_finish(&errs);
}

ParameterizedTestParameters(inventory_files, bad)
{
    static const char *const dirs[] = {DATA_DIR "/bad"};
    return make_params(dirs, 1);
}

ParameterizedTest(struct file_param *p, inventory_files, bad)
{
    struct zr_errors errs = {0};
    enter(DATA_DIR);
    char *path = zr_asprintf("bad/%s", p->name);
    char *err_path = zr_asprintf("bad/%.*s.err", (int)(strlen(p->name) - strlen(".yaml")), p->name);
    struct zr_inventory *inv = zr_inventory_load(path, &errs);
    char *actual = errors_text(&errs);

    cr_expect_null(inv, "%s should not load", path);
    cr_expect_gt(errs.n, 0, "%s failed without an error", path);
    if (zr_streq(getenv("ZR_REGENERATE"), "1")) {
        FILE *f = fopen(err_path, "w");
        cr_assert_not_null(f, "%s: %s", err_path, strerror(errno));
        fputs(actual, f);
        fclose(f);
    } else {
        char *expected = read_text(err_path);
        cr_expect_not_null(expected, "%s is missing (build with -Dregenerate=true once)", err_path);
        if (expected)
            cr_expect_str_eq(actual, expected, "%s: messages differ from %s", path, err_path);
        free(expected);
    }
    free(actual);
    free(path);
    free(err_path);
    zr_inventory_free(inv);
    zr_errors_finish(&errs);
}

Test(inventory_files, enough_cases_and_every_bad_file_has_its_err)
{
    char **yaml = NULL, **err = NULL, **ok = NULL;
    size_t n_yaml = list_files(DATA_DIR "/bad", ".yaml", &yaml);
    size_t n_err = list_files(DATA_DIR "/bad", ".err", &err);
    size_t n_ok = list_files(DATA_DIR "/ok", ".yaml", &ok);

    enter(DATA_DIR "/bad");
    cr_expect_geq(n_yaml, 45);
    cr_expect_geq(n_ok, 10);
    cr_expect_eq(n_yaml, n_err, "%zu bad .yaml files but %zu .err files", n_yaml, n_err);
    for (size_t i = 0; i < n_yaml; i++) {
        char *name = zr_asprintf("%.*s.err", (int)(strlen(yaml[i]) - strlen(".yaml")), yaml[i]);
        cr_expect_eq(access(name, F_OK), 0, "%s has no %s", yaml[i], name);
        free(name);
    }
    free_names(yaml, n_yaml);
    free_names(err, n_err);
    free_names(ok, n_ok);
}

/* ---- model values ------------------------------------------------------- */

static struct zr_inventory *load_ok(const char *rel)
{
    struct zr_errors errs = {0};
    enter(DATA_DIR);
    struct zr_inventory *inv = zr_inventory_load(rel, &errs);
    char *text = errors_text(&errs);
    cr_assert_not_null(inv, "%s:\n%s", rel, text);
    free(text);
    zr_errors_finish(&errs);
    return inv;
}

static struct zr_inventory *parse_ok(const char *yaml)
{
    struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_parse("inline", yaml, strlen(yaml), &errs);
    char *text = errors_text(&errs);
    cr_assert_not_null(inv, "%s", text);
    free(text);
    zr_errors_finish(&errs);
    return inv;
}

static char *parse_bad(const char *yaml)
{
    struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_parse("inline", yaml, strlen(yaml), &errs);
    cr_assert_null(inv);
    char *text = errors_text(&errs);
    zr_errors_finish(&errs);
    return text;
}

static void expect_addr(struct zr_pci_addr a, const char *want)
{
    char buf[ZR_PCI_ADDR_STRLEN];
    cr_expect_str_eq(zr_pci_addr_format(&a, buf), want);
}

/* A hosts: section may list no host (a templated inventory for a group
 * without hypervisors): valid, and there is nothing to plan. */
Test(inventory_model, hosts_without_a_host_is_valid_and_empty)
{
    const char *forms[] = {"version: 1\nhosts:\n", "version: 1\nhosts: {}\n",
                           "version: 1\nhosts:\n #kv guest: {}\n"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct zr_inventory *inv = parse_ok(forms[i]);
        cr_expect(inv->has_hosts, "%s", forms[i]);
        cr_expect_eq(inv->n_hosts, 0, "%s", forms[i]);
        zr_inventory_free(inv);
    }
}

Test(inventory_model, minimal_defaults)
{
    struct zr_inventory *inv = load_ok("ok/minimal.yaml");

    cr_expect_not(inv->has_hosts);
    cr_assert_eq(inv->n_hosts, 1);
    const struct zr_host *h = &inv->hosts[0];
    cr_expect_str_eq(h->name, "default");
    cr_expect_null(h->uri);
    cr_assert_eq(h->n_guests, 1);
    const struct zr_guest *g = &h->guests[0];
    cr_expect_str_eq(g->name, "linux1");
    cr_expect(g->prune);
    cr_expect_eq(g->mark.line, 4);
    cr_expect_eq(g->mark.column, 3);
    cr_assert_eq(g->devices.n, 1);

    const struct zr_device *d = &g->devices.items[0];
    cr_expect_eq(d->kind, ZR_KIND_HOSTDEV);
    expect_addr(d->source, "0002:00:00.0");
    cr_expect(d->managed);
    cr_expect_not(d->has_managed);
    cr_expect_not(d->has_zpci_uid);
    cr_expect_not(d->has_zpci_fid);
    cr_expect_not(d->has_guest_address);
    cr_expect_not(d->has_mac);
    cr_expect_not(d->has_vlan);
    cr_expect_eq(d->vport.type, ZR_VPORT_NONE);
    cr_expect_eq(d->mark.line, 6);
    cr_expect_eq(d->mark.column, 9);
    cr_expect_eq(zr_inventory_count_guests(inv), 1);
    cr_expect_eq(zr_inventory_count_devices(inv), 1);
    zr_inventory_free(inv);
}

Test(inventory_model, full_every_field)
{
    struct zr_inventory *inv = load_ok("ok/full.yaml");
    char buf[ZR_UUID_STRLEN];

    cr_expect_str_eq(inv->hosts[0].uri, "qemu:///system");
    const struct zr_guest *g = &inv->hosts[0].guests[0];
    cr_assert_eq(g->devices.n, 4);

    const struct zr_device *hd = &g->devices.items[0];
    cr_expect_eq(hd->kind, ZR_KIND_HOSTDEV);
    cr_expect(hd->managed && hd->has_managed);
    cr_expect(hd->has_zpci_uid && hd->has_zpci_fid);
    cr_expect_eq(hd->zpci_uid, 1);
    cr_expect_eq(hd->zpci_fid, 0);
    cr_expect(hd->has_guest_address);
    expect_addr(hd->guest_address, "0000:00:01.0");

    const struct zr_device *qbh = &g->devices.items[1];
    cr_expect_eq(qbh->kind, ZR_KIND_INTERFACE);
    expect_addr(qbh->source, "0003:00:00.0");
    cr_expect(qbh->has_mac);
    cr_expect_eq(qbh->mac.b[5], 1);
    cr_expect(!qbh->managed && qbh->has_managed);
    cr_expect_eq(qbh->vport.type, ZR_VPORT_8021QBH);
    cr_expect_str_eq(qbh->vport.profileid, "finance");
    cr_expect_not(qbh->has_vlan);
    cr_expect_eq(qbh->zpci_uid, 2);
    cr_expect_eq(qbh->zpci_fid, 1);

    const struct zr_device *vlan = &g->devices.items[2];
    cr_expect(vlan->has_vlan);
    cr_expect_eq(vlan->vlan, 42);
    cr_expect_eq(vlan->vport.type, ZR_VPORT_NONE);
    cr_expect_not(vlan->has_zpci_uid);
    cr_expect(vlan->has_zpci_fid);
    cr_expect_eq(vlan->zpci_fid, 2);

    const struct zr_device *qbg = &g->devices.items[3];
    cr_expect_eq(qbg->vport.type, ZR_VPORT_8021QBG);
    cr_expect_null(qbg->vport.profileid);
    cr_expect(qbg->vport.has_managerid && qbg->vport.has_typeid && qbg->vport.has_typeidversion &&
              qbg->vport.has_instanceid);
    cr_expect_eq(qbg->vport.managerid, 11);
    cr_expect_eq(qbg->vport.typeid, 0x123456);
    cr_expect_eq(qbg->vport.typeidversion, 2);
    cr_expect_str_eq(zr_uuid_format(&qbg->vport.instanceid, buf),
                     "09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f");
    cr_expect(qbg->has_zpci_uid && !qbg->has_zpci_fid);
    zr_inventory_free(inv);
}

Test(inventory_model, short_source_is_domain_zero)
{
    struct zr_inventory *inv = load_ok("ok/short-source.yaml");
    const struct zr_guest *g = &inv->hosts[0].guests[0];
    expect_addr(g->devices.items[0].source, "0000:03:00.1");
    expect_addr(g->devices.items[1].source, "0000:1f:1f.7");
    zr_inventory_free(inv);
}

Test(inventory_model, quoting_does_not_change_meaning)
{
    struct zr_inventory *inv = load_ok("ok/quoted-source.yaml");
    const struct zr_device *d = inv->hosts[0].guests[0].devices.items;
    expect_addr(d[0].source, "0002:00:00.0");
    expect_addr(d[1].source, "0002:00:00.1");
    expect_addr(d[2].source, "0002:00:00.2");
    cr_expect(!d[3].managed && d[3].has_managed);
    cr_expect_eq(d[3].zpci_uid, 0x10);
    cr_expect_eq(d[3].zpci_fid, 16);
    zr_inventory_free(inv);
}

Test(inventory_model, hosts_form)
{
    struct zr_inventory *inv = load_ok("ok/hosts.yaml");
    cr_expect(inv->has_hosts);
    cr_assert_eq(inv->n_hosts, 2);
    cr_expect_str_eq(inv->hosts[0].name, "kvm1");
    cr_expect_str_eq(inv->hosts[0].uri, "qemu+ssh://root@kvm1.example.com/system");
    cr_expect_eq(inv->hosts[0].mark.line, 4);
    cr_expect_str_eq(inv->hosts[1].name, "kvm2");
    cr_expect_str_eq(inv->hosts[1].uri, "qemu+tls://kvm2.example.com/system");
    cr_assert_eq(inv->hosts[1].n_guests, 2);
    cr_expect_str_eq(inv->hosts[1].guests[1].name, "linux2");
    cr_expect_not(inv->hosts[1].guests[1].prune);
    cr_expect_eq(zr_inventory_count_guests(inv), 3);
    cr_expect_eq(zr_inventory_count_devices(inv), 2);
    zr_inventory_free(inv);
}

Test(inventory_model, numbers_hex_decimal_leading_zero)
{
    struct zr_inventory *inv = load_ok("ok/numbers.yaml");
    const struct zr_device *d = inv->hosts[0].guests[0].devices.items;
    cr_expect_eq(d[0].zpci_uid, 0xffff);
    cr_expect_eq(d[0].zpci_fid, 0xffffffffu);
    cr_expect_eq(d[1].zpci_uid, 0xfffe);
    cr_expect_eq(d[1].zpci_fid, 0);
    cr_expect_eq(d[2].vlan, 4095);
    zr_inventory_free(inv);

    inv = load_ok("ok/leading-zero.yaml");
    d = inv->hosts[0].guests[0].devices.items;
    cr_expect_eq(d[0].zpci_uid, 10);
    cr_expect_eq(d[0].zpci_fid, 10);
    cr_expect_eq(d[1].vlan, 42);
    zr_inventory_free(inv);
}

Test(inventory_model, yes_no_booleans)
{
    struct zr_inventory *inv = load_ok("ok/yes-no.yaml");
    const struct zr_guest *g = &inv->hosts[0].guests[0];
    cr_expect_not(g->prune);
    cr_expect(!g->devices.items[0].managed && g->devices.items[0].has_managed);
    cr_expect(g->devices.items[1].managed && g->devices.items[1].has_managed);
    zr_inventory_free(inv);
}

Test(inventory_model, empty_guests_want_nothing)
{
    struct zr_inventory *inv = load_ok("ok/empty-guest.yaml");
    const struct zr_host *h = &inv->hosts[0];
    cr_assert_eq(h->n_guests, 4);
    for (size_t i = 0; i < h->n_guests; i++) {
        cr_expect(h->guests[i].prune, "%s", h->guests[i].name);
        cr_expect_eq(h->guests[i].devices.n, 0, "%s", h->guests[i].name);
    }
    zr_inventory_free(inv);
}

Test(inventory_model, aliases_are_copies)
{
    struct zr_inventory *inv = load_ok("ok/anchors.yaml");
    const struct zr_device *d = inv->hosts[0].guests[0].devices.items;
    cr_expect(!d[1].managed && d[1].has_managed);
    cr_expect_eq(d[1].vport.type, ZR_VPORT_8021QBH);
    cr_expect_str_eq(d[1].vport.profileid, "finance");
    /* Each device owns its strings: no sharing between copies. */
    cr_expect_neq(d[0].vport.profileid, d[1].vport.profileid);
    const struct zr_device *other = inv->hosts[0].guests[1].devices.items;
    cr_expect_str_eq(other[0].vport.profileid, "finance");
    zr_inventory_free(inv);
}

Test(inventory_model, yaml11_words_stay_text)
{
    struct zr_inventory *inv = load_ok("ok/yaml11-traps.yaml");
    const struct zr_host *h = &inv->hosts[0];
    cr_expect_str_eq(h->guests[0].name, "on");
    cr_expect_str_eq(h->guests[1].name, "null");
    expect_addr(h->guests[0].devices.items[0].source, "0002:00:00.0");
    cr_expect(h->guests[0].devices.items[1].has_mac);
    zr_inventory_free(inv);
}

Test(inventory_model, bom_and_crlf)
{
    struct zr_inventory *inv = load_ok("ok/bom-crlf.yaml");
    const struct zr_guest *g = &inv->hosts[0].guests[0];
    cr_expect_eq(g->mark.line, 4);
    cr_expect_eq(g->mark.column, 3);
    zr_inventory_free(inv);
}

Test(inventory_model, hostdevs_before_interfaces_in_file_order)
{
    struct zr_inventory *inv = parse_ok("version: 1\n"
                                        "guests:\n"
                                        "  g:\n"
                                        "    interfaces:\n"
                                        "      - source: 0003:00:00.0\n"
                                        "    hostdevs:\n"
                                        "      - source: 0002:00:00.1\n"
                                        "      - source: 0002:00:00.0\n");
    const struct zr_device *d = inv->hosts[0].guests[0].devices.items;
    cr_assert_eq(inv->hosts[0].guests[0].devices.n, 3);
    cr_expect_eq(d[0].kind, ZR_KIND_HOSTDEV);
    expect_addr(d[0].source, "0002:00:00.1");
    expect_addr(d[1].source, "0002:00:00.0");
    cr_expect_eq(d[2].kind, ZR_KIND_INTERFACE);
    cr_expect_eq(d[2].mark.line, 5);
    zr_inventory_free(inv);
}

/* ---- parse and load edge cases ----------------------------------------- */

Test(inventory_parse, refuses_oversized_input_before_parsing)
{
    size_t len = ZR_INVENTORY_MAX_BYTES + 1;
    char *data = calloc(1, len);
    struct zr_errors errs = {0};
    cr_assert_not_null(data);

    cr_expect_null(zr_inventory_parse("big.yaml", data, len, &errs));
    char *text = errors_text(&errs);
    cr_expect_str_eq(text, "big.yaml: error: the inventory is 33554433 bytes; the limit is "
                           "33554432 bytes (32 MiB)\n");
    free(text);
    free(data);
    zr_errors_finish(&errs);
}

Test(inventory_parse, keeps_errors_already_collected)
{
    struct zr_errors errs = {0};
    zr_errors_add(&errs, "earlier", 9, 1, NULL, "an earlier error");
    static const char yaml[] = "version: 1\nguests: []\n";

    cr_expect_null(zr_inventory_parse("x.yaml", yaml, strlen(yaml), &errs));
    cr_assert_eq(errs.n, 2);
    cr_expect_str_eq(errs.items[0].message, "an earlier error");
    cr_expect_str_eq(errs.items[1].file, "x.yaml");
    zr_errors_finish(&errs);
}

Test(inventory_parse, data_need_not_be_nul_terminated)
{
    static const char yaml[] = "version: 1\nguests: {a: {}}\nXXXX";
    struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_parse("x", yaml, strlen(yaml) - 4, &errs);
    cr_expect_not_null(inv);
    zr_inventory_free(inv);
    zr_errors_finish(&errs);
}

Test(inventory_parse, a_repeated_anchor_mistake_is_reported_once)
{
    char *text = parse_bad("version: 1\n"
                           "guests:\n"
                           "  a: {hostdevs: [&d {source: 1:0.0, managed: maybe}]}\n"
                           "  b: {hostdevs: [*d]}\n"
                           "  c: {hostdevs: [*d]}\n");
    cr_expect_str_eq(text,
                     "inline:3:46: error: 'managed' must be true, false, yes or no, got 'maybe'\n"
                     "  a: {hostdevs: [&d {source: 1:0.0, managed: maybe}]}\n"
                     "                                             ^\n"
                     "inline:4:18: error: duplicate source 0000:01:00.0 on host 'default' "
                     "(first used at line 3)\n"
                     "  b: {hostdevs: [*d]}\n"
                     "                 ^\n"
                     "inline:5:18: error: duplicate source 0000:01:00.0 on host 'default' "
                     "(first used at line 3)\n"
                     "  c: {hostdevs: [*d]}\n"
                     "                 ^\n");
    free(text);
}

static char *load_error(const char *path)
{
    struct zr_errors errs = {0};
    cr_expect_null(zr_inventory_load(path, &errs));
    char *text = errors_text(&errs);
    zr_errors_finish(&errs);
    return text;
}

/* Points standard input at `path` for one call, then puts it back. */
static struct zr_inventory *load_stdin_from(const char *path, struct zr_errors *errs)
{
    int saved = dup(STDIN_FILENO);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(saved, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(dup2(fd, STDIN_FILENO), STDIN_FILENO);
    close(fd);
    struct zr_inventory *inv = zr_inventory_load("-", errs);
    dup2(saved, STDIN_FILENO);
    close(saved);
    return inv;
}

/* A path in a fresh temporary directory; scratch_drop removes both. */
static char *scratch_path(const char *name)
{
    char dir[] = "/tmp/zr-test-inventory-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    return zr_asprintf("%s/%s", dir, name);
}

static void scratch_drop(char *path)
{
    unlink(path);
    *strrchr(path, '/') = '\0';
    rmdir(path);
    free(path);
}

/* Expects loading `path` to fail with "PATH: error: MESSAGE". */
static void expect_load_error(const char *path, const char *message)
{
    char *text = load_error(path);
    char *want = zr_asprintf("%s: error: %s\n", path, message);
    cr_expect_str_eq(text, want);
    free(want);
    free(text);
}

#define NOT_REGULAR "not a regular file; to read a pipe, give '-' and redirect it to standard input"

Test(inventory_load, directory)
{
    enter(DATA_DIR);
    expect_load_error("ok", "is a directory, not an inventory file");
}

Test(inventory_load, missing_file)
{
    enter(DATA_DIR);
    expect_load_error("ok/no-such-file.yaml", "cannot open: No such file or directory");
}

Test(inventory_load, fifo_is_refused_without_waiting_for_a_writer)
{
    char *fifo = scratch_path("fifo");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    expect_load_error(fifo, NOT_REGULAR);
    scratch_drop(fifo);
}

Test(inventory_load, device_is_refused)
{
    expect_load_error("/dev/zero", NOT_REGULAR);
}

Test(inventory_load, oversized_file_is_refused_by_its_size)
{
    char *path = scratch_path("big.yaml");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    /* Sparse: costs no disk, and the loader must not read it anyway. */
    cr_assert_eq(ftruncate(fd, (off_t)ZR_INVENTORY_MAX_BYTES + 1), 0);
    close(fd);
    expect_load_error(path, "is 33554433 bytes, larger than the limit of 33554432 bytes "
                            "(32 MiB); refusing to read it");

    /* Standard input has no size to look at: it is read up to the limit. */
    struct zr_errors errs = {0};
    cr_expect_null(load_stdin_from(path, &errs));
    char *text = errors_text(&errs);
    cr_expect_str_eq(text, "<stdin>: error: larger than the limit of 33554432 bytes (32 MiB); "
                           "refusing to read it\n");
    free(text);
    zr_errors_finish(&errs);
    scratch_drop(path);
}

Test(inventory_load, unreadable_file)
{
    char *path = scratch_path("secret.yaml");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0000);
    cr_assert_geq(fd, 0);
    close(fd);
    /* Root opens any file whatever its mode; a file whose read fails
     * stands in for it there. */
    if (geteuid() == 0)
        expect_load_error("/proc/self/mem", "cannot read: Input/output error");
    else
        expect_load_error(path, "cannot open: Permission denied");
    scratch_drop(path);
}

Test(inventory_load, dash_is_stdin)
{
    struct zr_errors errs = {0};
    enter(DATA_DIR);

    struct zr_inventory *inv = load_stdin_from("ok/minimal.yaml", &errs);
    cr_assert_not_null(inv);
    cr_expect_str_eq(inv->file, "<stdin>");
    cr_expect_eq(zr_inventory_count_devices(inv), 1);
    zr_inventory_free(inv);

    cr_expect_null(load_stdin_from("bad/version-2.yaml", &errs));
    char *text = errors_text(&errs);
    cr_expect_str_eq(text, "<stdin>:1:10: error: unsupported inventory version 2; this "
                           "zpci-reconcile reads version 1\n"
                           "version: 2\n"
                           "         ^\n");
    free(text);
    zr_errors_finish(&errs);
}

Test(inventory_model, boot_order_rom_and_interface_guest_address)
{
    struct zr_inventory *inv = load_ok("ok/boot-rom-address.yaml");
    const struct zr_guest *g = &inv->hosts[0].guests[0];
    cr_assert_eq(g->devices.n, 3);
    const struct zr_device *h = &g->devices.items[0], *i = &g->devices.items[1],
                           *j = &g->devices.items[2];
    cr_expect(h->has_boot_order && h->boot_order == 1);
    cr_expect(h->rom.has_bar && !h->rom.bar);
    cr_expect(h->rom.has_enabled && h->rom.enabled);
    cr_expect(h->rom.has_file);
    cr_expect_str_eq(h->rom.file, "/usr/share/roms/nic.rom");
    cr_expect_eq(i->kind, ZR_KIND_INTERFACE);
    cr_expect(i->has_guest_address);
    expect_addr(i->guest_address, "0000:00:07.0");
    cr_expect(i->rom.has_file && !i->rom.has_bar && !i->rom.has_enabled);
    cr_expect_str_eq(i->rom.file, "", "an empty file is libvirt's 'no ROM image'");
    cr_expect(j->rom.has_enabled && !j->rom.enabled && !j->has_boot_order);
    zr_inventory_free(inv);
}

/* ---- one spelling per libvirt connection (issue 13) --------------------- */

static void expect_normal(const char *uri, const char *want)
{
    char *got = zr_uri_normalize(uri);
    cr_expect_str_eq(got, want, "%s", uri);
    free(got);
}

Test(inventory_uri, normalised_spellings_of_one_connection)
{
    expect_normal("qemu:///system", "qemu:///system");
    expect_normal("qemu:///system/", "qemu:///system");
    expect_normal("qemu:///system?", "qemu:///system");
    expect_normal("QEMU:///system", "qemu:///system");
    expect_normal("qemu+unix:///system", "qemu:///system");
    expect_normal("qemu:///embed?root=/x//root", "qemu:///embed?root=/x/root");
    expect_normal("qemu:///embed?root=/x/./root/", "qemu:///embed?root=/x/root");
    expect_normal("qemu+ssh://root@KVM1:22/system?no_verify=1&keyfile=/k",
                  "qemu+ssh://root@kvm1:22/system?keyfile=/k&no_verify=1");
    /* Different connections stay different. */
    expect_normal("qemu:///session", "qemu:///session");
    expect_normal("qemu+unix://host/system", "qemu+unix://host/system");
    expect_normal("qemu:///embed?root=/x/../root", "qemu:///embed?root=/x/../root");
    expect_normal("not a uri", "not a uri");
}

/* issue 22 #12: what watch, holding an embedded root, can still switch to. */
Test(inventory_uri, what_a_process_holding_an_embedded_root_can_open)
{
    const char *root = "qemu:///embed?root=/var/lib/zr";
    cr_expect(zr_uri_is_embedded(root));
    cr_expect(zr_uri_is_embedded("QEMU:///embed?root=/x"));
    cr_expect(!zr_uri_is_embedded("qemu:///system"));
    cr_expect(!zr_uri_is_embedded("qemu+ssh://kvm1/embed?root=/x"));
    cr_expect(!zr_uri_is_embedded(NULL));
    /* the same root, however spelled; remote transports and hosts */
    cr_expect(!zr_uri_blocked_by_embed(root, root));
    cr_expect(!zr_uri_blocked_by_embed(root, "qemu:///embed?root=/var//lib/zr/"));
    cr_expect(!zr_uri_blocked_by_embed(root, "qemu+ssh://root@kvm1/system"));
    cr_expect(!zr_uri_blocked_by_embed(root, "qemu+tcp://kvm1/system"));
    cr_expect(!zr_uri_blocked_by_embed(root, "qemu://kvm1/system"));
    cr_expect(!zr_uri_blocked_by_embed(root, "test:///default"));
    /* local daemon URIs, a second root, libvirt's default */
    cr_expect(zr_uri_blocked_by_embed(root, "qemu:///system"));
    cr_expect(zr_uri_blocked_by_embed(root, "qemu+unix:///system"));
    cr_expect(zr_uri_blocked_by_embed(root, "qemu:///session"));
    cr_expect(zr_uri_blocked_by_embed(root, "qemu:///system?socket=/run/x/sock"));
    cr_expect(zr_uri_blocked_by_embed(root, "qemu:///embed?root=/other"));
    cr_expect(zr_uri_blocked_by_embed(root, NULL));
}

static void expect_config_dir(const char *uri, const char *want)
{
    _cleanup_free_ char *got = zr_uri_config_dir(uri);
    cr_expect(zr_streq(got, want), "%s: %s, want %s", uri ? uri : "(null)", got ? got : "(null)",
              want ? want : "(null)");
}

/* issue 27: where watch looks for a local daemon's NAME.xml files. */
Test(inventory_uri, where_a_local_qemu_driver_keeps_definitions)
{
    expect_config_dir("qemu:///system", "/etc/libvirt/qemu");
    expect_config_dir("qemu+unix:///system?socket=/tmp/s/sock", "/etc/libvirt/qemu");
    expect_config_dir("qemu:///embed?root=/var//lib/zr/", "/var/lib/zr/etc/qemu");
    expect_config_dir("qemu:///embed?root=/var/lib/a%20b", "/var/lib/a b/etc/qemu");
    expect_config_dir("qemu:///embed?root=relative", NULL);
    setenv("XDG_CONFIG_HOME", "/home/u/.cfg", 1);
    expect_config_dir("qemu:///session", "/home/u/.cfg/libvirt/qemu");
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", "/home/u", 1);
    expect_config_dir("qemu:///session", "/home/u/.config/libvirt/qemu");
    expect_config_dir("qemu+ssh://kvm1/system", NULL);
    expect_config_dir("qemu://kvm1/system", NULL);
    expect_config_dir("test:///default", NULL);
    expect_config_dir("not a uri", NULL);
    expect_config_dir(NULL, NULL);
}
