#!/usr/bin/env python3
"""Pools (issue 26) through the real binary against real libvirt.

EmbedPoolTest   members: pools on a qemu:///embed root (no node devices needed): the pick
                in text and JSON, apply, the definitions read back, a second plan in sync,
                stickiness, inventory order, exhaustion, export, selector pools refused;
                the chooser and the preflight share one read of each host fact (counted and
                failed through the fault shim): both report the one failed listing.
FleetPoolTest   a hosts: inventory of two embedded roots (one process per host): the pool
                name crosses the process boundary, each host chooses on its own.
SystemPoolTest  qemu:///system: a vendor: pool of this machine's virtio functions, read
                from its node devices; they have no IOMMU group, so the host check refuses
                the chosen one, naming it. A members: pool with --no-host-check applies.
                One domain and one PCI node device listing per plan and apply run.
WatchPoolTest   watch on qemu:///system repairs a pool entry with the same rules.

Guests are named zrpool-<pid>-*; sources on qemu:///system come from a PCI domain of this
process's own (as tests/integration/test_watch.py does), so no other test meets them.
"""

import json
import os
import shutil
import tempfile
import textwrap
import time
import unittest

import lab
from test_watch import Notify
from lab import EmbedLab, hostdev_xml, injected, run_tool, s390x_guest


def wait_for(cond, timeout):
    """Polls cond() until it is true or timeout seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.2)
    return cond()

PREFIX = 'zrpool-%d-' % os.getpid()
FAKE_DOMAIN = 0x1000 + (os.getpid() * 11) % 0xe000


def fake(n):
    return '%04x:%02x:00.0' % (FAKE_DOMAIN, n)


def sources(lab_, name, kind=None):
    return sorted(d['source'] for d in lab_.devices(name) if kind is None or d['kind'] == kind)


def actions(doc):
    return [(a['guest'], a['op'], a['kind'], a['source'], a.get('pool')) for a in doc['actions']]


class EmbedPoolTest(lab.EmbedToolCase):
    POOLS = """
        version: 1
        pools:
          lab:
            members: [0003:00:00.0, 0001:00:00.0, 0002:00:00.0]
        """

    def inventory(self, guests):
        super().inventory(textwrap.dedent(self.POOLS).lstrip() + textwrap.dedent(guests))

    def test_plan_shows_the_pick_apply_makes_it_and_the_next_plan_is_in_sync(self):
        self.define('web1')
        self.define('web2')
        self.inventory("""
            guests:
              web1:
                interfaces:
                  - pool: lab
                    mac: "52:54:00:00:00:01"
              web2:
                hostdevs:
                  - pool: lab
                    count: 2
            """)
        rc, out, err = self.tool('plan', self.inv)
        self.assertEqual(rc, 2, out + err)
        self.assertIn('+ attach interface 0003:00:00.0 (pool lab) mac=52:54:00:00:00:01 [config]',
                      out)
        self.assertIn('+ attach hostdev 0001:00:00.0 (pool lab) [config]', out)
        self.assertIn('+ attach hostdev 0002:00:00.0 (pool lab) [config]', out)
        rc, out, err = self.tool('-o', 'json', 'plan', self.inv)
        self.assertEqual(sorted(actions(json.loads(out))), [
            ('web1', 'attach', 'interface', '0003:00:00.0', 'lab'),
            ('web2', 'attach', 'hostdev', '0001:00:00.0', 'lab'),
            ('web2', 'attach', 'hostdev', '0002:00:00.0', 'lab')])
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(sources(self.lab, 'web1', 'interface'), ['0003:00:00.0'])
        self.assertEqual(sources(self.lab, 'web2', 'hostdev'), ['0001:00:00.0', '0002:00:00.0'])
        self.assertIn('52:54:00:00:00:01', self.lab.dumpxml('web1'))
        rc, out, err = self.tool('plan', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('web1: in sync', out)
        self.assertIn('web2: in sync', out)

    def test_a_guest_keeps_what_it_holds_the_rest_go_in_inventory_order(self):
        self.define('first')
        self.define('second', hostdev_xml('0003:00:00.0'))
        self.define('third', hostdev_xml('0001:00:00.0'), hostdev_xml('0002:00:00.0'))
        self.inventory("""
            guests:
              first:
                hostdevs: [{pool: lab}]
              second:
                hostdevs: [{pool: lab}]
              third:
                hostdevs: [{pool: lab}]
            """)
        rc, out, err = self.tool('-o', 'json', 'apply', self.inv)
        doc = json.loads(out)
        # second and third keep what they hold (third its lowest one, and it lets 0002
        # go); first is served with every member held until this run ends: it waits.
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(sources(self.lab, 'second'), ['0003:00:00.0'])
        self.assertEqual(sources(self.lab, 'third'), ['0001:00:00.0'])
        self.assertIn(('third', 'detach', 'hostdev', '0002:00:00.0', None), actions(doc))
        self.assertEqual([(e['guest'], e['message']) for e in doc['errors']], [
            ('first', "pool 'lab' has 0 free functions, guest 'first' wants 1 more; nothing "
                      "changed on this guest")])
        # The next run: 0002 is free now, and first takes it.
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(sources(self.lab, 'first'), ['0002:00:00.0'])
        rc, out, err = self.tool('plan', self.inv)
        self.assertEqual(rc, 0, out + err)

    def test_exhausted_pool_refuses_that_guest_only(self):
        self.define('holder', hostdev_xml('0001:00:00.0'))
        self.define('greedy', hostdev_xml('0004:00:00.0'))
        self.define('modest')
        self.inventory("""
            guests:
              greedy:
                hostdevs:
                  - pool: lab
                    count: 3
              modest:
                hostdevs: [{pool: lab}]
            """)
        before = self.lab.dumpxml('greedy')
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("greedy: error: pool 'lab' has 2 free functions, guest 'greedy' wants 3 "
                      "more; nothing changed on this guest", out)
        self.assertEqual(self.lab.dumpxml('greedy'), before, 'the refused guest is untouched')
        self.assertEqual(sources(self.lab, 'modest'), ['0003:00:00.0'])
        self.assertEqual(sources(self.lab, 'holder'), ['0001:00:00.0'])

    def test_a_refused_guest_keeps_what_it_would_have_let_go(self):
        # greedy would detach 0009 (not listed), but its pool entry cannot be served, so
        # nothing changes on it and it keeps 0009: taker cannot have it in this run.
        self.define('greedy', hostdev_xml('0009:00:00.0'))
        self.define('taker')
        self.inventory("""
            guests:
              greedy:
                hostdevs:
                  - pool: lab
                    count: 4
              taker:
                hostdevs: [{source: 0009:00:00.0}]
            """)
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("greedy: error: pool 'lab' has 3 free functions, guest 'greedy' wants 4 "
                      "more", out)
        self.assertIn("taker: error: 0009:00:00.0 is held by guest 'greedy', which this run "
                      "leaves alone (it has an error)", out)
        self.assertEqual(sources(self.lab, 'greedy'), ['0009:00:00.0'])
        self.assertEqual(sources(self.lab, 'taker'), [])

    def test_a_named_source_is_never_chosen(self):
        self.define('named')
        self.define('pooled')
        self.inventory("""
            guests:
              pooled:
                hostdevs: [{pool: lab}]
              named:
                hostdevs: [{source: 0003:00:00.0}]
            """)
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(sources(self.lab, 'pooled'), ['0001:00:00.0'])
        self.assertEqual(sources(self.lab, 'named'), ['0003:00:00.0'])

    def test_export_writes_plain_sources(self):
        self.define('web1')
        self.inventory("""
            guests:
              web1:
                interfaces: [{pool: lab, mac: "52:54:00:00:00:07"}]
            """)
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 0, out + err)
        rc, out, err = self.tool('export', 'web1')
        self.assertEqual(rc, 0, err)
        self.assertIn('source: 0003:00:00.0', out)
        self.assertNotIn('pool', out)

    def test_selector_pool_needs_node_devices(self):
        self.define('db1', hostdev_xml('0005:00:00.0'))
        self.POOLS = """
            version: 1
            pools:
              nvme: {vendor: 0x144d}
            """
        self.inventory("""
            guests:
              db1:
                hostdevs: [{pool: nvme}]
            """)
        before = self.lab.dumpxml('db1')
        for extra in ([], ['--no-host-check']):
            rc, out, err = self.tool(*extra, 'apply', self.inv)
            self.assertEqual(rc, 1, out + err)
            self.assertRegex(out, r"db1: error: pool 'nvme' selects functions by the host's "
                                  r"node devices, and (qemu:///embed\?root=\S+ lists no node "
                                  r"devices|--no-host-check skips reading them)")
        self.assertEqual(self.lab.dumpxml('db1'), before)

    # The chooser and the preflight of one run share its facts (reconciler/facts.h): a
    # listing that fails is read once and both report that one failure.

    def test_a_failed_node_device_listing_is_read_once_and_reported_by_both(self):
        self.define('db1', hostdev_xml('0005:00:00.0'))
        self.define('web1')
        self.POOLS = """
            version: 1
            pools:
              nvme: {vendor: 0x144d}
              lab: {members: [0001:00:00.0]}
            """
        self.inventory("""
            guests:
              db1:
                hostdevs: [{pool: nvme}]
              web1:
                hostdevs: [{pool: lab}]
            """)
        fault = 'virConnectListAllNodeDevices:1+'
        msg = "cannot list the host's PCI devices: " + injected('virConnectListAllNodeDevices', 1)
        counts = os.path.join(self.lab.root, 'counts')
        unserved = ("pool 'nvme' selects functions by the host's node devices, and listing "
                    "them failed: %s (a 'members:' pool needs none); nothing changed on this "
                    "guest" % msg)
        rc, doc, err = self.tool_json('plan', self.inv, fault=fault, counts=counts)
        self.assertEqual(rc, 1, err)
        self.assertEqual(lab.read_counts(counts)['virConnectListAllNodeDevices'], 1)
        self.assertEqual(doc['warnings'], [
            {'host': 'default', 'guest': None, 'source': None,
             'message': "host check skipped: %s; apply will leave this host's guests alone"
                        % msg}])
        self.assertEqual(doc['errors'], [{'host': 'default', 'guest': 'db1', 'message': unserved}])
        self.assertEqual(actions(doc), [('web1', 'attach', 'hostdev', '0001:00:00.0', 'lab')])
        before = self.lab.dumpxml('db1'), self.lab.dumpxml('web1')
        rc, out, err = self.tool('apply', self.inv, fault=fault, counts=counts)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(lab.read_counts(counts)['virConnectListAllNodeDevices'], 1)
        self.assertIn('db1: error: %s\n' % unserved, out)
        self.assertIn('web1: error: %s; nothing changed (--no-host-check skips this check)\n'
                      % msg, out)
        self.assertEqual((self.lab.dumpxml('db1'), self.lab.dumpxml('web1')), before)

    def test_no_node_devices_is_read_once(self):
        self.define('web1')
        self.inventory("""
            guests:
              web1:
                hostdevs: [{pool: lab}]
            """)
        counts = os.path.join(self.lab.root, 'counts')
        rc, doc, err = self.tool_json('plan', self.inv, counts=counts)
        self.assertEqual(rc, 2, err)
        self.assertEqual(lab.read_counts(counts)['virConnectListAllNodeDevices'], 1)
        self.assertEqual(actions(doc), [('web1', 'attach', 'hostdev', '0003:00:00.0', 'lab')])
        self.assertEqual([w['message'] for w in doc['warnings']],
                         ['host check skipped: %s lists no node devices' % self.lab.uri])

    def test_a_failed_guest_listing_is_listed_once_more_not_twice(self):
        # The guests' read lists first (call 1); when that fails, the guests are looked up
        # one by one and the chooser lists again (call 2); the conflict check reports that
        # failure rather than listing a third time.
        self.define('web1')
        self.inventory("""
            guests:
              web1:
                hostdevs: [{pool: lab}]
            """)
        msg = "cannot list the host's guests: " + injected('virConnectListAllDomains', 2)
        counts = os.path.join(self.lab.root, 'counts')
        rc, doc, err = self.tool_json('plan', self.inv, fault='virConnectListAllDomains:1+',
                                      counts=counts)
        self.assertEqual(rc, 2, err)
        self.assertEqual(lab.read_counts(counts)['virConnectListAllDomains'], 2)
        self.assertIn("conflict check skipped: %s; apply will leave this host's guests alone"
                      % msg, [w['message'] for w in doc['warnings']])
        before = self.lab.dumpxml('web1')
        rc, out, err = self.tool('apply', self.inv, fault='virConnectListAllDomains:1+')
        self.assertEqual(rc, 1, out + err)
        self.assertIn('web1: error: %s; nothing changed\n' % msg, out)
        self.assertEqual(self.lab.dumpxml('web1'), before)

    def test_an_unreadable_other_guest_is_read_once(self):
        # The chooser's read of 'other' fails: it cannot see what other holds, and the
        # conflict check reports that read instead of reading other again.
        self.define('other', hostdev_xml('0003:00:00.0'))
        self.define('web1')
        self.inventory("""
            guests:
              web1:
                hostdevs: [{pool: lab}]
            """)
        rc, doc, err = self.tool_json('plan', self.inv, fault='virDomainGetXMLDesc@other:1')
        self.assertEqual(rc, 2, err)
        self.assertIn("conflict check cannot read guest 'other': " +
                      injected('virDomainGetXMLDesc', 1), [w['message'] for w in doc['warnings']])
        self.assertEqual(actions(doc), [('web1', 'attach', 'hostdev', '0003:00:00.0', 'lab')])
        # read for real, other holds 0003: web1 gets the next member
        rc, doc, err = self.tool_json('plan', self.inv)
        self.assertEqual(actions(doc), [('web1', 'attach', 'hostdev', '0001:00:00.0', 'lab')])

    def test_validate_counts_each_function_a_pool_entry_asks_for(self):
        self.inventory("""
            guests:
              web1:
                hostdevs:
                  - pool: lab
                    count: 3
                  - source: 0009:00:00.0
            """)
        rc, out, err = self.tool('validate', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(out, self.inv + ': valid (1 host, 1 guest, 4 devices)\n')
        rc, out, err = self.tool('validate', '-o', 'json', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(json.loads(out)['devices'], 4)

    def test_invalid_pool_entries_change_nothing(self):
        self.define('web1', hostdev_xml('0009:00:00.0'))
        self.inventory("""
            guests:
              web1:
                hostdevs:
                  - pool: labb
                  - pool: lab
                    count: 2
                    boot_order: 1
            """)
        before = self.lab.dumpxml('web1')
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("inventory.yaml:9:15: error: unknown pool 'labb' (pools here: lab)", err)
        self.assertIn("inventory.yaml:12:9: error: 'boot_order' cannot be given with 'count: 2'",
                      err)
        self.assertEqual(self.lab.dumpxml('web1'), before)


class FleetPoolTest(unittest.TestCase):
    def setUp(self):
        self.a = EmbedLab()
        self.addCleanup(self.a.close)
        self.b = EmbedLab()
        self.addCleanup(self.b.close)
        self.inv = os.path.join(self.a.root, 'inventory.yaml')

    def test_each_host_chooses_and_the_pool_name_crosses_processes(self):
        self.a.define(s390x_guest('web1', hostdev_xml('0001:00:00.0')))
        self.a.define(s390x_guest('web2'))
        self.b.define(s390x_guest('web3'))
        with open(self.inv, 'w') as f:
            f.write(textwrap.dedent("""\
                version: 1
                pools:
                  lab: {members: [0001:00:00.0, 0002:00:00.0]}
                hosts:
                  a:
                    uri: %s
                    guests:
                      web2: {hostdevs: [{pool: lab}]}
                  b:
                    uri: %s
                    guests:
                      web3: {hostdevs: [{pool: lab}]}
                """ % (self.a.uri, self.b.uri)))
        rc, out, err = run_tool(['-o', 'json', 'apply', self.inv],
                                env={'LIBVIRT_DEFAULT_URI': None})
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(sorted((a['host'], a['source'], a['pool'])
                                for a in json.loads(out)['actions']),
                         [('a', '0002:00:00.0', 'lab'), ('b', '0001:00:00.0', 'lab')])
        self.assertEqual(sources(self.a, 'web2'), ['0002:00:00.0'])
        self.assertEqual(sources(self.b, 'web3'), ['0001:00:00.0'])
        rc, out, err = run_tool(['plan', self.inv], env={'LIBVIRT_DEFAULT_URI': None})
        self.assertEqual(rc, 0, out + err)


class SystemCase(lab.OwnSystemURICase):
    PREFIX = PREFIX
    SOCK_PREFIX = 'zrpool-sock-'

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='zrpool-test-')
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.inv = os.path.join(self.dir, 'inventory.yaml')

    def guest(self, short, *devices):
        name = PREFIX + short
        self.lab.define(s390x_guest(name, ''.join(devices)))
        self.addCleanup(self.lab.undefine, name)
        return name

    def write(self, text):
        with open(self.inv, 'w') as f:
            f.write(textwrap.dedent(text).lstrip())

    def write_pool(self, members, *guests):
        """An inventory of one members: pool 'lab' and guests that take one function of it."""
        self.write('version: 1\npools:\n  lab: {members: [%s]}\nguests:\n' % ', '.join(members) +
                   ''.join('  %s:\n    hostdevs: [{pool: lab}]\n' % g for g in guests))

    def tool(self, *args, counts=None):
        """The tool on this class's URI; through the fault shim, counting calls, with counts."""
        env = lab.fault_env(counts=counts) if counts else {}
        env['LIBVIRT_DEFAULT_URI'] = None
        return run_tool(list(args) + ['-c', self.uri], env=env, timeout=600)


class SystemPoolTest(SystemCase):
    def virtio_functions(self):
        """This machine's virtio functions (vendor 0x1af4) that no guest holds, sorted."""
        held = set()
        for n in self.lab.list_names():
            try:
                held.update(d['source'] for d in self.lab.devices(n))
            except lab.VirshError:
                pass
        free = []
        for f in lab.SystemDaemon.pci_node_devices():
            node = 'pci_' + f.replace(':', '_').replace('.', '_')
            if "vendor id='0x1af4'" in self.lab.virsh('nodedev-dumpxml', node) and f not in held:
                free.append(f)
        if not free:
            raise lab.Skip('no free virtio function on this machine')
        return sorted(free)

    def test_vendor_pool_picks_from_node_devices_and_the_host_check_covers_it(self):
        g = self.guest('vendor')
        self.write("""
            version: 1
            pools:
              virtio: {vendor: 0x1af4, driver: virtio-pci}
            guests:
              %s:
                hostdevs: [{pool: virtio}]
            """ % g)
        want = self.virtio_functions()[0]
        counts = os.path.join(self.dir, 'counts')
        rc, out, err = self.tool('-o', 'json', 'plan', self.inv, counts=counts)
        doc = json.loads(out)
        self.assertEqual(actions(doc), [(g, 'attach', 'hostdev', want, 'virtio')], out + err)
        self.assertTrue(any(w['source'] == want and 'is in no IOMMU group' in w['message']
                            for w in doc['warnings']), doc['warnings'])
        # The chooser reads every PCI function's node device (a vendor pool); the host
        # check's read of the one attached is that same read (reconciler/facts.h), and
        # it reads what the host uses (its net and storage node devices: the function is
        # bound to virtio-pci, not vfio-pci). Each node device once: before, 1 more.
        n_pci = len(lab.SystemDaemon.pci_node_devices())
        n_uses = len(self.lab.virsh('nodedev-list', '--cap', 'net,storage').split())
        self.assertEqual(lab.read_counts(counts).get('virNodeDeviceGetXMLDesc'), n_pci + n_uses)
        before = self.lab.dumpxml(g)
        rc, out, err = self.tool('apply', self.inv, counts=counts)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(lab.read_counts(counts).get('virNodeDeviceGetXMLDesc'), n_pci + n_uses)
        self.assertIn('%s: error: %s: %s is in no IOMMU group' % (g, want, want), out)
        self.assertEqual(self.lab.dumpxml(g), before, 'the host check refused: nothing changed')

    def test_one_read_of_each_fact_per_run(self):
        # The chooser and the preflight share one read of the other guests and one PCI
        # node device listing per run (reconciler/facts.h), in plan and in apply.
        g1 = self.guest('f1', hostdev_xml(fake(8)))
        g2 = self.guest('f2')
        other = self.guest('f-other', hostdev_xml(fake(9)))
        self.write_pool([fake(8), fake(9), fake(10)], g1, g2)
        counts = os.path.join(self.dir, 'counts')
        rc, out, err = self.tool('-o', 'json', 'plan', self.inv, counts=counts)
        doc = json.loads(out)
        # g1 keeps what it holds; other holds fake(9), as the chooser read it
        self.assertEqual(actions(doc), [(g2, 'attach', 'hostdev', fake(10), 'lab')], out + err)
        # the host check, on the same listing: fake(10) is no function of this host
        self.assertIn('host has no PCI function %s' % fake(10),
                      ' '.join(w['message'] for w in doc['warnings']))
        calls = lab.read_counts(counts)
        self.assertEqual(calls.get('virConnectListAllDomains'), 1, calls)
        self.assertEqual(calls.get('virConnectListAllNodeDevices'), 1, calls)
        before = self.lab.dumpxml(g2)
        rc, out, err = self.tool('apply', self.inv, counts=counts)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('%s: error: host has no PCI function %s' % (g2, fake(10)), out)
        self.assertEqual(self.lab.dumpxml(g2), before)
        self.assertEqual(sources(self.lab, other), [fake(9)])
        calls = lab.read_counts(counts)
        self.assertEqual(calls.get('virConnectListAllDomains'), 1, calls)
        self.assertEqual(calls.get('virConnectListAllNodeDevices'), 1, calls)

    def test_members_pool_applies_with_no_host_check_and_stays_in_sync(self):
        g1 = self.guest('m1', hostdev_xml(fake(2)))
        g2 = self.guest('m2')
        self.write("""
            version: 1
            pools:
              lab: {members: [%s, %s, %s]}
            guests:
              %s:
                hostdevs: [{pool: lab}]
              %s:
                interfaces: [{pool: lab, mac: "52:54:00:12:34:56"}]
            """ % (fake(1), fake(2), fake(3), g1, g2))
        rc, out, err = self.tool('--no-host-check', 'apply', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('+ attach interface %s (pool lab) mac=52:54:00:12:34:56' % fake(1), out)
        self.assertEqual(sources(self.lab, g1), [fake(2)])
        self.assertEqual(sources(self.lab, g2, 'interface'), [fake(1)])
        rc, out, err = self.tool('--no-host-check', 'plan', self.inv)
        self.assertEqual(rc, 0, out + err)


class WatchPoolTest(SystemCase):
    def start_watch(self):
        """watch on the inventory, its notify socket read by the test; killed at cleanup."""
        notify = Notify(os.path.join(self.dir, 'notify'))
        self.addCleanup(notify.close)
        proc = lab.start_tool(['watch', self.inv, '-c', self.uri, '--no-host-check',
                               '--resync', '1h'],
                              env={'LIBVIRT_DEFAULT_URI': None, 'NOTIFY_SOCKET': notify.path})
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        return proc, notify

    def test_watch_repairs_a_pool_entry_with_the_same_rules(self):
        g = self.guest('watch', hostdev_xml(fake(5)))
        other = self.guest('other', hostdev_xml(fake(4)))
        self.write_pool([fake(4), fake(5), fake(6)], g)
        proc, notify = self.start_watch()
        notify.wait('READY=1')  # its first pass: in sync, the guest keeps what it holds
        self.assertEqual(sources(self.lab, g), [fake(5)])
        # Behind its back: the other guest gives its function up (the lowest member is
        # free now), then the pool guest loses its own. watch remembers what the guest
        # had and gives it back while it is free, though a lower member is free too.
        self.lab.detach(other, hostdev_xml(fake(4)), config=True)
        self.lab.detach(g, hostdev_xml(fake(5)), config=True)
        wait_for(lambda: sources(self.lab, g) != [], 30)
        self.assertEqual(sources(self.lab, g), [fake(5)])
        # What it had is taken by a guest the inventory does not name: the same rules give
        # it the lowest free member.
        self.lab.detach(g, hostdev_xml(fake(5)), config=True)
        self.lab.attach(other, hostdev_xml(fake(5)), config=True)
        wait_for(lambda: sources(self.lab, g) != [], 30)
        self.assertEqual(sources(self.lab, g), [fake(4)])
        proc.terminate()
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertIn('attach hostdev %s (pool lab)' % fake(5), out)
        self.assertIn('attach hostdev %s (pool lab)' % fake(4), out)

    def test_watch_reports_an_exhausted_pool(self):
        # The pass chooses before it plans: the guest's plan alone has nothing to do (it
        # keeps what it holds), but its refusal is not "in sync" and gets reported.
        g = self.guest('starved')
        self.guest('holder', hostdev_xml(fake(7)))
        self.write_pool([fake(7)], g)
        proc, notify = self.start_watch()
        notify.wait('READY=1')
        proc.terminate()
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertIn("pool 'lab' has 0 free functions, guest '%s' wants 1 more" % g, out + err)
        self.assertEqual(sources(self.lab, g), [])


if __name__ == '__main__':
    lab.main()
