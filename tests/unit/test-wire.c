/* wire: a plan that crosses the pipe from a host's process to the parent
 * must come out exactly as it went in (every field the output and metrics
 * read), and anything cut short or corrupted must be refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "inventory.h"
#include "output.h"
#include "plan.h"
#include "wire.h"
#include "render.h"

static const char inventory[] =
    "version: 1\n"
    "guests:\n"
    "  linux1:\n"
    "    hostdevs:\n"
    "      - {source: 0001:00:00.0, zpci: {uid: 0x0009}}\n"
    "      - {source: 0005:00:00.0, managed: false, guest_address: 0000:00:05.0,\n"
    "         boot_order: 4, rom: {bar: true, file: /x.rom, enabled: false}}\n"
    "    interfaces:\n"
    "      - source: 0004:00:00.0\n"
    "        mac: \"02:00:00:00:00:09\"\n"
    "      - source: 0006:00:00.0\n"
    "        virtualport: {type: 802.1Qbg, managerid: 1, typeid: 2, typeidversion: 3,\n"
    "                      instanceid: 09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f}\n"
    "      - {source: 0007:00:00.0, vlan: 7}\n"
    "  ghost: {}\n";

static const char domain[] =
    "<domain><devices>"
    "<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>"
    "<source><address domain='1' bus='0' slot='0' function='0'/></source>"
    "<alias name='hostdev0'/>"
    "<address type='pci' domain='0' bus='0' slot='1' function='0'><zpci uid='1' fid='0'/></address>"
    "</hostdev>"
    "<interface type='hostdev' managed='yes'><mac address='02:00:00:00:00:01'/>"
    "<source><address type='pci' domain='4' bus='0' slot='0' function='0'/></source>"
    "<virtualport type='802.1Qbh'><parameters profileid='fin'/></virtualport>"
    "<vlan trunk='yes'><tag id='1'/><tag id='2'/></vlan>"
    "<model type='virtio'/>"
    "</interface>"
    "<hostdev mode='subsystem' type='pci'>"
    "<source><address domain='2' bus='0' slot='0' function='0'/></source></hostdev>"
    "</devices></domain>";

static struct zr_report make_report(void)
{
    struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_parse("wire.yaml", inventory, strlen(inventory), &errs);
    if (!inv)
        zr_errors_print(&errs, stderr);
    cr_assert_not_null(inv);
    struct zr_device_list cur = {0};
    struct zr_error err = {0};
    cr_assert_eq(zr_domain_parse_devices(domain, strlen(domain), "wire", &cur, &err), 0, "%s",
                 err.message);

    struct zr_report report = {0};
    struct zr_plan plan = {0};
    struct zr_plan_host *h = zr_plan_add_host(&plan, "kvm1", "qemu+tcp://127.0.0.1/system");
    h->reached = true;
    zr_plan_add_host(&plan, "kvm2", NULL)->error = strdup("cannot connect: \"refused\"\n");
    zr_plan_guest(&plan, "kvm1", "qemu+tcp://127.0.0.1/system", &inv->hosts[0].guests[0], &cur,
                  &cur, NULL);
    zr_plan_guest_error(&plan, "kvm1", NULL, "ghost", ZR_ERR_NOT_FOUND, "guest '%s' not found",
                        "ghost");
    struct zr_pci_addr src = {.domain = 7};
    zr_plan_add_warning(&plan, "kvm1", "linux1", &src, ZR_ERR_NO_FUNCTION,
                        "host has no PCI function");
    zr_plan_add_warning(&plan, "kvm1", NULL, NULL, ZR_ERR_NO_NODEDEVS, "host check skipped");
    zr_render_plan(&plan, 0);
    zr_plan_finalize(&plan);
    cr_assert_geq(plan.n_actions, 6);
    /* An attach a pool entry took names its pool (issue 26). */
    for (size_t i = 0; i < plan.n_actions; i++)
        if (plan.actions[i].op == ZR_OP_ATTACH && !plan.actions[i].device.pool) {
            plan.actions[i].device.pool = strdup("nics");
            plan.actions[i].device.pool_mark = (struct zr_mark){7, 15};
            break;
        }
    /* As apply leaves them: one of each result, a warning of its own
     * (after the plan's first), the time the host took. */
    struct zr_run *run = &report.run;
    zr_run_set_seconds(run, 0, 1.25);
    for (size_t i = 0; i < plan.n_actions; i++) {
        struct zr_action_result *r = zr_run_record(run, &plan, i);
        r->result = (zr_result)(i % ZR_RESULT__COUNT);
        if (r->result == ZR_RESULT_FAILED || r->result == ZR_RESULT_SKIPPED)
            r->error = strdup("libvirt said no");
        /* The fact --atomic acts on in the host's own process. */
        if (r->result == ZR_RESULT_FAILED && plan.actions[i].op == ZR_OP_DETACH) {
            r->config_removed = true;
            r->cause = strdup("the guest did not let go");
        }
        if (i % 2)
            plan.actions[i].note = strdup("SR-IOV virtual function of 0000:02:00.1");
    }
    zr_run_add_warning(run, &plan, "kvm1", "linux1", ZR_ERR_ROLLBACK, "after rollback: %s", "odd");
    run->warnings[0].after = 1;
    zr_device_list_finish(&cur);
    zr_inventory_free(inv);
    zr_errors_finish(&errs);
    report.plan = plan;
    return report;
}

static char *render(const struct zr_report *r, zr_format format)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    struct zr_output_options o = {.format = format, .applied = true};
    zr_output_plan(f, r, &o);
    fclose(f);
    return s;
}

Test(wire, a_plan_comes_back_as_it_went)
{
    struct zr_report rin = make_report();
    size_t len;
    char *buf = zr_wire_encode(&rin, &len);
    struct zr_report rout = {0};
    cr_assert_eq(zr_wire_decode(buf, len, &rout), 0);
    const struct zr_plan in = rin.plan, out = rout.plan;

    for (zr_format f = 0; f < ZR_FORMAT__COUNT; f++) {
        char *a = render(&rin, f), *b = render(&rout, f);
        cr_assert_str_eq(b, a);
        /* The run's warning stands after the plan's first, as found. */
        cr_assert_lt(strstr(b, "host has no PCI function"), strstr(b, "after rollback: odd"));
        cr_assert_lt(strstr(b, "after rollback: odd"), strstr(b, "host check skipped"));
        free(a);
        free(b);
    }
    /* What the output does not show, field by field. */
    cr_assert_eq(out.n_actions, in.n_actions);
    size_t pooled = 0;
    for (size_t i = 0; i < in.n_actions; i++) {
        const struct zr_action *x = &in.actions[i], *y = &out.actions[i];
        cr_assert_eq(y->n_deps, x->n_deps);
        for (size_t j = 0; j < x->n_deps; j++)
            cr_assert_eq(y->deps[j], x->deps[j]);
        char *cx = zr_changes_format(x->changes, x->n_changes);
        char *cy = zr_changes_format(y->changes, y->n_changes);
        cr_assert_str_eq(cy ? cy : "-", cx ? cx : "-");
        free(cx);
        free(cy);
        cr_assert_eq(y->role, x->role);
        cr_assert_eq(y->pair, x->pair);
        cr_assert_str_eq(y->note ? y->note : "-", x->note ? x->note : "-");
        char *dx = zr_device_describe(&x->device), *dy = zr_device_describe(&y->device);
        cr_assert_str_eq(dy, dx);
        free(dx);
        free(dy);
        cr_assert_eq(memcmp(&y->device.vport.instanceid, &x->device.vport.instanceid, 16), 0);
        cr_assert_eq(y->device.vlan_unrepresentable, x->device.vlan_unrepresentable);
        cr_assert(zr_streq(y->device.unrepresentable, x->device.unrepresentable));
        cr_assert_eq(y->device.mark.line, x->device.mark.line);
        cr_assert(zr_streq(y->device.pool, x->device.pool));
        cr_assert_eq(y->device.pool_mark.column, x->device.pool_mark.column);
        pooled += y->device.pool != NULL;
        const struct zr_action_result *rx = zr_run_result(&rin.run, i),
                                      *ry = zr_run_result(&rout.run, i);
        cr_assert_eq(ry->error_code, rx->error_code);
        cr_assert_eq(ry->config_removed, rx->config_removed);
        cr_assert(zr_streq(ry->cause, rx->cause));
    }
    cr_assert_eq(pooled, 1, "the pool name came back on its attach");
    cr_assert_eq(out.n_hosts, 2);
    cr_assert_eq(zr_run_seconds(&rout.run, 0), 1.25);
    cr_assert_eq(zr_run_seconds(&rout.run, 1), 0);
    cr_assert(out.hosts[0].reached);
    cr_assert_null(out.hosts[1].uri);
    cr_assert_str_eq(out.hosts[1].error, in.hosts[1].error);

    /* Appending renumbers guests, dependencies, results, run warnings and
     * host times after what is there. */
    struct zr_report rboth = {0}, again = {0};
    cr_assert_eq(zr_wire_decode(buf, len, &again), 0);
    zr_report_append(&rboth, &rout);
    zr_report_append(&rboth, &again);
    const struct zr_plan *both = &rboth.plan;
    cr_assert_eq(both->n_actions, 2 * in.n_actions);
    cr_assert_eq(both->n_hosts, 4);
    for (size_t i = 0; i < in.n_actions; i++) {
        const struct zr_action *a = &both->actions[in.n_actions + i];
        cr_assert_eq(a->guest_index, in.actions[i].guest_index + in.n_guests);
        for (size_t j = 0; j < a->n_deps; j++)
            cr_assert_eq(a->deps[j], in.actions[i].deps[j] + in.n_actions);
        cr_assert_eq(zr_run_result(&rboth.run, in.n_actions + i)->result,
                     zr_run_result(&rin.run, i)->result);
    }
    cr_assert_eq(rboth.run.n_warnings, 2);
    cr_assert_eq(rboth.run.warnings[1].after, in.n_warnings + 1);
    cr_assert_eq(zr_run_seconds(&rboth.run, 2), 1.25);
    cr_assert_eq(rout.plan.n_guests + rout.run.n_warnings, 0);
    zr_report_finish(&rboth);
    zr_report_finish(&rin);
    free(buf);
}

Test(wire, cut_short_or_corrupted_is_refused)
{
    struct zr_report in = make_report();
    size_t len;
    char *buf = zr_wire_encode(&in, &len);
    for (size_t n = 0; n < len; n++) {
        struct zr_report out = {0};
        cr_assert_eq(zr_wire_decode(buf, n, &out), -EBADMSG, "a prefix of %zu of %zu bytes", n,
                     len);
        cr_assert_eq(out.plan.n_guests + out.plan.n_actions + out.plan.n_warnings +
                         out.plan.n_hosts + out.run.n_results + out.run.n_warnings,
                     0);
    }
    char *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    struct zr_report out = {0};
    cr_assert_eq(zr_wire_decode(longer, len + 1, &out), -EBADMSG);
    /* The first guest count, made huge: refused, not allocated. */
    memset(longer + sizeof("zr-wire-2"), 0xff, 8);
    cr_assert_eq(zr_wire_decode(longer, len, &out), -EBADMSG);
    free(longer);
    free(buf);
    zr_report_finish(&in);
}
