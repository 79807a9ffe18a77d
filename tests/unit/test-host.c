/* zr_host_run() without main.c: a host's whole run (connect, lock, read,
 * preflight, plan, apply) against a real qemu:///embed root, as a watcher
 * or the Ansible module would call it.  Checks the report and the domain
 * XML libvirt holds afterwards. */
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "domain.h"
#include "host.h"

#define GUEST "zrhosttest"

/* Under ASan, LeakSanitizer's tracer itself crashes (signal 11 while it
 * stops the threads) at the exit of a Criterion child that hosted the
 * embedded QEMU driver; the same runs through the tool, which the
 * integration suites check with leak detection on, do not.  Memory errors
 * are still caught here.  Without ASan this symbol is never called. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}

struct lab {
    char root[PATH_MAX];
    char *uri;
    /* Held for the whole test: the embedded driver stays up between the
     * test's calls and the host's run, as in a watcher. */
    virConnectPtr conn;
    struct zr_inventory *inv;
    struct zr_report report;
};

static const char domain_xml[] =
    "<domain type='qemu'><name>" GUEST "</name><memory unit='KiB'>262144</memory>"
    "<vcpu>1</vcpu><os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>"
    "<devices><emulator>/usr/bin/qemu-system-s390x</emulator>%s</devices></domain>";

static void lab_init(struct lab *l, const char *devices_xml, const char *inventory_guests)
{
    snprintf(l->root, sizeof(l->root), "/tmp/zr-test-host-XXXXXX");
    cr_assert_not_null(mkdtemp(l->root));
    l->uri = zr_asprintf("qemu:///embed?root=%s", l->root);

    /* The test defines its guest on a connection of its own: one process
     * may open its one embedded root as often as it likes. */
    struct zr_error err = {0};
    l->conn = zr_connect(l->uri, &err);
    cr_assert_not_null(l->conn, "%s", err.message);
    _cleanup_free_ char *xml = zr_asprintf(domain_xml, devices_xml);
    _cleanup_(virDomainFreep) virDomainPtr dom = virDomainDefineXML(l->conn, xml);
    cr_assert_not_null(dom, "%s", zr_libvirt_error());

    _cleanup_free_ char *yaml =
        zr_asprintf("version: 1\nuri: \"%s\"\nguests:\n%s", l->uri, inventory_guests);
    struct zr_errors errs = {0};
    l->inv = zr_inventory_parse("inventory.yaml", yaml, strlen(yaml), &errs);
    cr_assert_not_null(l->inv, "%s", errs.n ? errs.items[0].message : "?");
}

static void lab_finish(struct lab *l)
{
    zr_report_finish(&l->report);
    zr_inventory_free(l->inv);
    virConnectClosep(&l->conn);
    free(l->uri);
    _cleanup_free_ char *cmd = zr_asprintf("rm -rf '%s'", l->root);
    cr_expect_eq(system(cmd), 0);
}

/* The sources of the guest's persistent definition, as libvirt has it. */
static size_t defined_sources(const struct lab *l, struct zr_pci_addr *out, size_t max)
{
    struct zr_error err = {0};
    _cleanup_(virDomainFreep) virDomainPtr dom = virDomainLookupByName(l->conn, GUEST);
    cr_assert_not_null(dom);
    _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
    struct zr_device_list devs = {0};
    cr_assert_eq(zr_domain_parse_devices(xml, strlen(xml), GUEST, &devs, &err), 0);
    size_t n = 0;
    for (size_t i = 0; i < devs.n && n < max; i++)
        out[n++] = devs.items[i].source;
    zr_device_list_finish(&devs);
    return n;
}

static const char hostdev_0001[] =
    "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0x0001' bus='0x00' slot='0x00' function='0x0'/></source></hostdev>";

Test(host, plan_says_what_apply_would_do_and_changes_nothing)
{
    struct lab l = {0};
    lab_init(&l, "", "  " GUEST ":\n    hostdevs:\n      - source: 0001:00:00.0\n");
    struct zr_host_options o = {.host_check = false};
    zr_host_run(&l.inv->hosts[0], &o, &l.report);

    cr_assert_eq(l.report.plan.n_hosts, 1);
    cr_expect(l.report.plan.hosts[0].reached);
    cr_expect_null(l.report.plan.hosts[0].error);
    cr_expect_str_eq(l.report.plan.hosts[0].uri, l.uri);
    cr_assert_eq(l.report.plan.n_guests, 1);
    cr_expect_null(l.report.plan.guests[0].error);
    cr_assert_eq(l.report.plan.n_actions, 1);
    const struct zr_action *a = &l.report.plan.actions[0];
    cr_expect_eq(a->op, ZR_OP_ATTACH);
    cr_expect_eq(zr_run_result(&l.report.run, 0)->result, ZR_RESULT_PLANNED);
    cr_expect(a->config && !a->live);
    cr_expect_eq(a->role, ZR_ROLE_ADD);
    _cleanup_free_ char *reason = zr_action_reason(a);
    cr_expect_str_eq(reason, "missing");
    cr_expect_not_null(strstr(a->xml, "domain=\"0x0001\""), "%s", a->xml);

    struct zr_pci_addr src[4];
    cr_expect_eq(defined_sources(&l, src, 4), 0, "plan changed the guest");
    lab_finish(&l);
}

Test(host, apply_attaches_and_prunes)
{
    struct lab l = {0};
    lab_init(&l, hostdev_0001, "  " GUEST ":\n    hostdevs:\n      - source: 0002:00:00.0\n");
    struct zr_host_options o = {.applying = true, .progress_from = SIZE_MAX, .timeout_s = 5};
    zr_host_run(&l.inv->hosts[0], &o, &l.report);

    cr_assert_eq(l.report.plan.n_actions, 2);
    cr_expect_eq(l.report.plan.actions[0].op, ZR_OP_DETACH);
    cr_expect_eq(zr_run_result(&l.report.run, 0)->result, ZR_RESULT_DONE, "%s",
                 zr_run_result(&l.report.run, 0)->error);
    cr_expect_eq(l.report.plan.actions[1].op, ZR_OP_ATTACH);
    cr_expect_eq(zr_run_result(&l.report.run, 1)->result, ZR_RESULT_DONE, "%s",
                 zr_run_result(&l.report.run, 1)->error);
    cr_expect(zr_run_seconds(&l.report.run, 0) > 0);
    cr_expect_eq(l.report.plan.n_warnings, 0, "apply wrote nothing into the plan");

    struct zr_pci_addr src[4], want;
    zr_pci_addr_parse("0002:00:00.0", &want);
    cr_assert_eq(defined_sources(&l, src, 4), 1);
    cr_expect(zr_pci_addr_eq(&src[0], &want));

    /* The same options again: a watcher's next round finds nothing to do. */
    zr_report_finish(&l.report);
    zr_host_run(&l.inv->hosts[0], &o, &l.report);
    cr_expect_eq(l.report.plan.n_actions, 0);
    cr_expect_null(l.report.plan.guests[0].error);
    lab_finish(&l);
}

Test(host, an_interrupt_before_apply_changes_nothing)
{
    struct lab l = {0};
    lab_init(&l, "", "  " GUEST ":\n    hostdevs:\n      - source: 0001:00:00.0\n");
    volatile sig_atomic_t interrupted = SIGTERM;
    struct zr_host_options o = {
        .applying = true, .progress_from = SIZE_MAX, .interrupt = &interrupted};
    zr_host_run(&l.inv->hosts[0], &o, &l.report);

    /* A run told to stop does not even open the connection (an open may
     * wait long on a daemon that does not answer); the actions a run that
     * did connect does not start are covered by the integration tests
     * (test_reports.py, test_system.py). */
    cr_assert_eq(l.report.plan.n_hosts, 1);
    cr_expect_not(l.report.plan.hosts[0].reached);
    cr_expect_eq(l.report.plan.hosts[0].error_code, ZR_ERR_INTERRUPTED);
    cr_expect_not_null(strstr(l.report.plan.hosts[0].error, "interrupted by signal 15"), "%s",
                       l.report.plan.hosts[0].error);
    cr_expect_eq(l.report.plan.n_actions, 0);
    struct zr_pci_addr src[4];
    cr_expect_eq(defined_sources(&l, src, 4), 0);
    lab_finish(&l);
}

Test(host, a_host_that_cannot_be_reached_fails_each_guest)
{
    struct lab l = {0};
    lab_init(&l, "", "  " GUEST ":\n    hostdevs:\n      - source: 0001:00:00.0\n");
    struct zr_host_options o = {.uri = "qemu+unix:///system?socket=/nonexistent/zr-no-such-socket"};
    zr_host_run(&l.inv->hosts[0], &o, &l.report);

    cr_assert_eq(l.report.plan.n_hosts, 1);
    cr_expect_not(l.report.plan.hosts[0].reached);
    cr_assert_not_null(l.report.plan.hosts[0].error);
    cr_expect_not_null(strstr(l.report.plan.hosts[0].error, "cannot connect to qemu+unix:///system"),
                       "%s", l.report.plan.hosts[0].error);
    cr_assert_eq(l.report.plan.n_guests, 1);
    cr_expect_str_eq(l.report.plan.guests[0].error, l.report.plan.hosts[0].error);
    /* No socket there: the code says so (hints and callers key on it). */
    cr_expect_eq(l.report.plan.hosts[0].error_code, ZR_ERR_NO_DAEMON);
    cr_expect_eq(l.report.plan.guests[0].error_code, ZR_ERR_NO_DAEMON);
    cr_expect_eq(l.report.plan.n_actions, 0);
    lab_finish(&l);
}
