/* The topology model from libvirt's own node device XML (its test suite's
 * nodedevschemadata, copied to tests/data/nodedev, see the README there),
 * from this machine's real node devices, and from domain XML. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain-cases.h"
#include "topology.h"

/* A node device XML file of tests/data/nodedev. */
static char *fixture(const char *name)
{
    _cleanup_free_ char *rel = zr_asprintf("nodedev/%s", name);
    char *xml = zr_test_data_file(rel);
    cr_assert(xml, "cannot read tests/data/%s: %s (ZR_SRCDIR is set by meson test)", rel,
              strerror(errno));
    return xml;
}

static void parse_fixture(const char *name, struct zr_pci_function *fn)
{
    _cleanup_free_ char *xml = fixture(name);
    struct zr_error err = {0};
    int r = zr_pci_function_parse(xml, strlen(xml), name, fn, &err);
    cr_assert_eq(r, 0, "%s: %s", name, err.message);
}

#define assert_addr(a, s)                                                                          \
    do {                                                                                           \
        char _b[ZR_PCI_ADDR_STRLEN];                                                               \
        cr_assert_str_eq(zr_pci_addr_format(&(a), _b), (s));                                       \
    } while (0)

Test(topology, a_virtual_function)
{
    struct zr_pci_function fn;
    parse_fixture("pci_0000_02_10_7_sriov.xml", &fn);
    assert_addr(fn.addr, "0000:02:10.7");
    cr_assert(fn.is_vf);
    assert_addr(fn.pf, "0000:02:00.1");
    cr_assert_not(fn.is_pf);
    cr_assert_not(fn.bridge);
    cr_assert_null(fn.driver);
    cr_assert_eq(fn.numa_node, 0);
    cr_assert(fn.has_iommu_group);
    cr_assert_eq(fn.iommu_group, 31);
    cr_assert_eq(fn.n_group, 1);
    assert_addr(fn.group[0], "0000:02:10.7");
    zr_pci_function_finish(&fn);
}

Test(topology, physical_functions)
{
    struct zr_pci_function fn;
    parse_fixture("pci_0000_02_10_7_sriov_vfs.xml", &fn);
    cr_assert(fn.is_pf);
    cr_assert_not(fn.is_vf);
    zr_pci_function_finish(&fn);

    parse_fixture("pci_0000_02_10_7_sriov_zero_vfs_max_count.xml", &fn);
    cr_assert(fn.is_pf, "maxCount without VFs enabled yet is still a PF");
    cr_assert_eq(fn.vfs_max, 3);
    zr_pci_function_finish(&fn);

    /* An empty virt_functions capability: the driver does no SR-IOV. */
    parse_fixture("pci_82579LM_network_adapter.xml", &fn);
    cr_assert_not(fn.is_pf);
    cr_assert_not(fn.is_vf);
    cr_assert_str_eq(fn.driver, "e1000e");
    cr_assert_not(fn.has_iommu_group);
    cr_assert_eq(fn.numa_node, -1);
    zr_pci_function_finish(&fn);
}

Test(topology, iommu_groups_and_bridges)
{
    struct zr_pci_function fn;
    parse_fixture("pci_8086_4238_pcie_wireless.xml", &fn);
    cr_assert_eq(fn.iommu_group, 8);
    cr_assert_eq(fn.n_group, 8);
    assert_addr(fn.group[0], "0000:00:1c.0");
    assert_addr(fn.group[7], "0000:0d:00.3");
    cr_assert_not(fn.bridge);
    zr_pci_function_finish(&fn);

    parse_fixture("pci_0000_00_1c_0_header_type.xml", &fn);
    cr_assert(fn.bridge, "a root port (pci-bridge capability)");
    zr_pci_function_finish(&fn);

    parse_fixture("pci_8086_10c9_sriov_pf.xml", &fn);
    cr_assert_eq(fn.n_group, 2);
    assert_addr(fn.group[1], "0000:02:00.1");
    zr_pci_function_finish(&fn);

    /* The class says bridge where libvirt gives no header type. */
    const char *host_bridge = "<device><name>pci_0000_00_00_0</name><capability type='pci'>"
                              "<class>0x060000</class><domain>0</domain><bus>0</bus><slot>0</slot>"
                              "<function>0</function></capability></device>";
    struct zr_error err = {0};
    cr_assert_eq(zr_pci_function_parse(host_bridge, strlen(host_bridge), "x", &fn, &err), 0);
    cr_assert(fn.bridge);
    zr_pci_function_finish(&fn);
}

/* The live lab's L1 (QEMU q35, intel-iommu): two conventional e1000 behind a
 * pcie-pci-bridge share the bridge's IOMMU group. */
Test(topology, the_live_labs_group_behind_a_pci_bridge)
{
    struct zr_pci_function fn;
    parse_fixture("lab-pci_0000_01_01_0.xml", &fn);
    cr_assert_eq(fn.iommu_group, 7);
    cr_assert_eq(fn.n_group, 3);
    assert_addr(fn.group[0], "0000:01:01.0");
    assert_addr(fn.group[1], "0000:00:07.0");
    assert_addr(fn.group[2], "0000:01:02.0");
    cr_assert_str_eq(fn.driver, "vfio-pci");
    cr_assert_not(fn.bridge);
    cr_assert(fn.conventional, "no <pci-express>: a conventional PCI function");
    zr_pci_function_finish(&fn);

    parse_fixture("lab-pci_0000_00_07_0.xml", &fn);
    cr_assert(fn.bridge);
    cr_assert_not(fn.conventional, "a bridge is no endpoint");
    cr_assert_null(fn.driver);
    zr_pci_function_finish(&fn);

    parse_fixture("pci_0000_02_10_7_sriov.xml", &fn);
    cr_assert_not(fn.conventional, "<pci-express>");
    zr_pci_function_finish(&fn);
}

Test(topology, this_machines_virtio_function)
{
    struct zr_pci_function fn;
    parse_fixture("host-pci_0000_00_03_0.xml", &fn);
    assert_addr(fn.addr, "0000:00:03.0");
    cr_assert_str_eq(fn.driver, "virtio-pci");
    cr_assert_not(fn.is_vf);
    cr_assert_not(fn.is_pf);
    cr_assert_not(fn.has_iommu_group);
    cr_assert_not(fn.bridge);
    zr_pci_function_finish(&fn);
}

Test(topology, what_is_not_a_pci_function)
{
    struct zr_pci_function fn;
    struct zr_error err = {0};
    _cleanup_free_ char *net = fixture("net_00_13_02_b9_f9_d3.xml");
    cr_assert_eq(zr_pci_function_parse(net, strlen(net), "net", &fn, &err), -EINVAL);
    cr_assert_str_eq(err.message, "not a PCI node device (no <capability type='pci'>)");
    zr_error_finish(&err);

    cr_assert_eq(zr_pci_function_parse("<device>", 8, "x", &fn, &err), -EINVAL);
    cr_assert_str_eq(err.message, "not well-formed XML");
    zr_error_finish(&err);

    const char *dom = "<domain/>";
    cr_assert_eq(zr_pci_function_parse(dom, strlen(dom), "x", &fn, &err), -EINVAL);
    cr_assert_str_eq(err.message, "not a <device> document");
    zr_error_finish(&err);

    const char *bad = "<device><capability type='pci'><domain>0</domain><bus>300</bus>"
                      "<slot>0</slot><function>0</function></capability></device>";
    cr_assert_eq(zr_pci_function_parse(bad, strlen(bad), "x", &fn, &err), -EINVAL);
    zr_error_finish(&err);
}

/* issue 24: node device XML is read by the rules domain XML is (xml.h). */
Test(topology, node_device_xml_by_the_rules_of_domain_xml)
{
    struct zr_pci_function fn;
    struct zr_error err = {0};
    /* An element in a namespace is not libvirt's, as in domain XML. */
    const char *ns = "<device xmlns:x='urn:x'><x:capability type='pci'><domain>0</domain>"
                     "<bus>2</bus><slot>0</slot><function>0</function></x:capability></device>";
    cr_assert_eq(zr_pci_function_parse(ns, strlen(ns), "ns", &fn, &err), -EINVAL);
    cr_assert_str_eq(err.message, "not a PCI node device (no <capability type='pci'>)");
    zr_error_finish(&err);

    /* Attributes are numbers as libvirt reads them: '010' is octal. */
    const char *oct = "<device><capability type='pci'><domain>0</domain><bus>2</bus>"
                      "<slot>0</slot><function>0</function><iommuGroup number='010'/>"
                      "<numa node='011'/></capability></device>";
    cr_assert_eq(zr_pci_function_parse(oct, strlen(oct), "oct", &fn, &err), 0, "%s", err.message);
    cr_assert(fn.has_iommu_group);
    cr_assert_eq(fn.iommu_group, 8);
    cr_assert_eq(fn.numa_node, 9);
    zr_pci_function_finish(&fn);

    /* A DOCTYPE is refused before any declaration in it is read. */
    const char *dt = "<!DOCTYPE device [<!ENTITY e 'x'>]><device/>";
    cr_assert_eq(zr_pci_function_parse(dt, strlen(dt), "dt", &fn, &err), -EINVAL);
    cr_assert_str_eq(err.message, "DOCTYPE declaration refused");
    zr_error_finish(&err);
}

static void parse_use(const char *name, struct zr_host_use *u)
{
    _cleanup_free_ char *xml = fixture(name);
    struct zr_error err = {0};
    cr_assert_eq(zr_host_use_parse(xml, strlen(xml), name, u, &err), 0, "%s", err.message);
}

Test(topology, what_the_host_uses)
{
    struct zr_host_use u;
    parse_use("host-net_eth0.xml", &u);
    cr_assert(u.in_use);
    cr_assert_str_eq(u.parent, "pci_0000_00_03_0");
    cr_assert_str_eq(u.what, "network interface eth0 (link up)");
    zr_host_use_finish(&u);

    parse_use("host-block_vda.xml", &u);
    cr_assert(u.in_use);
    cr_assert_str_eq(u.parent, "pci_0000_00_02_0");
    cr_assert_str_eq(u.what, "disk /dev/vda");
    zr_host_use_finish(&u);

    /* libvirt's fixture gives no link state: nothing says it is in use. */
    parse_use("net_00_13_02_b9_f9_d3.xml", &u);
    cr_assert_not(u.in_use);
    zr_host_use_finish(&u);

    parse_use("hand-net_eth3-down.xml", &u);
    cr_assert_not(u.in_use);
    zr_host_use_finish(&u);
}

static const char *Q35 =
    "<domain type='kvm'><name>q</name>"
    "<numatune><memory mode='strict' nodeset='1-3,^2'/></numatune>"
    "<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os><devices>"
    "<controller type='pci' index='0' model='pcie-root'/>"
    "<controller type='pci' index='1' model='pcie-root-port'>"
    "<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></controller>"
    "<controller type='pci' index='2' model='pcie-root-port'>"
    "<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x1'/></controller>"
    "<controller type='pci' index='3' model='pcie-root-port'><target hotplug='off'/>"
    "<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x2'/></controller>"
    "<controller type='pci' index='4' model='pcie-root-port'>"
    "<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x3'/></controller>"
    "<interface type='network'><source network='default'/>"
    "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>"
    "<disk type='file' device='disk'><target dev='vda' bus='virtio'/>"
    "<address type='pci' domain='0x0000' bus='0x0x04' slot='0x00' function='0x0'/></disk>"
    "</devices></domain>";

Test(topology, a_q35_guest)
{
    struct zr_guest_topology t;
    struct zr_error err = {0};
    cr_assert_eq(zr_guest_topology_parse(Q35, strlen(Q35), "q", &t, &err), 0, "%s", err.message);
    cr_assert(t.q35);
    cr_assert_str_eq(t.nodeset, "1-3,^2");
    /* ports 1, 2, 4 (3 has hotplug off); 1 holds the NIC; the disk's bus is
     * malformed, so port 4 counts as free */
    cr_assert_eq(t.n_ports, 3);
    cr_assert_eq(zr_guest_topology_free_ports(&t), 2);
    cr_assert_eq(t.ports[0].index, 1);
    cr_assert_not(t.ports[0].free);
    zr_guest_topology_finish(&t);

    /* a pcie-to-pci-bridge: 31 slots for conventional functions, one taken;
     * it sits on root port 2, which is then no longer free */
    const char *bridged =
        "<domain><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>"
        "<controller type='pci' index='1' model='pcie-root-port'/>"
        "<controller type='pci' index='2' model='pcie-root-port'/>"
        "<controller type='pci' index='3' model='pcie-to-pci-bridge'>"
        "<address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>"
        "</controller>"
        "<hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x01' "
        "slot='0x01' function='0x0'/></source>"
        "<address type='pci' domain='0x0000' bus='0x03' slot='0x01' function='0x0'/></hostdev>"
        "</devices></domain>";
    cr_assert_eq(zr_guest_topology_parse(bridged, strlen(bridged), "b", &t, &err), 0);
    cr_assert_eq(zr_guest_topology_free_ports(&t), 1);
    cr_assert_eq(zr_guest_topology_free_pci_slots(&t), 30);
    zr_guest_topology_finish(&t);
    cr_assert_eq(zr_guest_topology_parse(Q35, strlen(Q35), "q", &t, &err), 0);
    cr_assert_eq(zr_guest_topology_free_pci_slots(&t), 0, "no PCI bridge");
    zr_guest_topology_finish(&t);

    const char *s390 = "<domain><os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>"
                       "<devices/></domain>";
    cr_assert_eq(zr_guest_topology_parse(s390, strlen(s390), "s", &t, &err), 0);
    cr_assert_not(t.q35);
    cr_assert_null(t.nodeset);
    zr_guest_topology_finish(&t);
}

Test(topology, nodesets)
{
    cr_assert_eq(zr_nodeset_has("0", 0), 1);
    cr_assert_eq(zr_nodeset_has("0", 1), 0);
    cr_assert_eq(zr_nodeset_has("1-3,^2", 2), 0);
    cr_assert_eq(zr_nodeset_has("1-3,^2", 3), 1);
    cr_assert_eq(zr_nodeset_has("0,2", 2), 1);
    cr_assert_eq(zr_nodeset_has("0,2", 1), 0);
    cr_assert_eq(zr_nodeset_has("", 0), -EINVAL);
    cr_assert_eq(zr_nodeset_has("3-1", 2), -EINVAL);
    cr_assert_eq(zr_nodeset_has("1,x", 1), -EINVAL);
    cr_assert_eq(zr_nodeset_has("-1", 1), -EINVAL);
}
