"""plan and apply driven through the real binary against a qemu:///embed root.

Every test prepares guests with virsh children (lab.EmbedLab), then runs the tool on the
same root, then reads the resulting definitions back with virsh. Nothing is faked: the
domain XML checked is what libvirt wrote.
"""

import fcntl
import json
import os
import sys
import textwrap
import unittest

import lab
from lab import EmbedLab, hostdev_xml, run_tool, s390x_guest


def iface_xml(source, mac, profileid=None, uid=None, fid=None, vlan=None):
    dom, bus, rest = source.split(':')
    slot, fn = rest.split('.')
    vp = ("<virtualport type='802.1Qbh'><parameters profileid='%s'/></virtualport>" % profileid
          if profileid else '')
    vl = "<vlan><tag id='%d'/></vlan>" % vlan if vlan is not None else ''
    zp = ''
    if uid is not None or fid is not None:
        zp = "<address type='pci'><zpci%s%s/></address>" % (
            " uid='0x%04x'" % uid if uid is not None else '',
            " fid='0x%08x'" % fid if fid is not None else '')
    return ("<interface type='hostdev' managed='yes'><mac address='%s'/>"
            "<source><address type='pci' domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/>"
            "</source>%s%s%s</interface>") % (mac, dom, bus, slot, fn, vl, vp, zp)


# Out-of-scope devices every guest carries: they must survive every apply byte for byte.
BYSTANDER_DEVICES = """
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/zr-test-disk.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <hostdev mode='subsystem' type='mdev' model='vfio-ap'>
      <source><address uuid='8ef0b8e4-e5a9-4cc3-a44a-2b1d8e3b8b3a'/></source>
    </hostdev>
"""


def summary(devices):
    """A comparable view of in-scope devices: sorted (kind, source, uid, fid, managed, mac)."""
    return sorted((d['kind'], d['source'], d['zpci_uid'], d['zpci_fid'], d['managed'],
                   d.get('mac')) for d in devices)


def out_of_scope(domain_xml):
    import xml.etree.ElementTree as ET
    devs = ET.fromstring(domain_xml).find('devices')
    keep = []
    for el in devs:
        if el.tag == 'hostdev' and el.get('type') == 'pci' and el.get('mode') == 'subsystem':
            continue
        if el.tag == 'interface' and el.get('type') == 'hostdev':
            continue
        keep.append(ET.tostring(el, encoding='unicode').strip())
    return keep


class EmbedTestCase(unittest.TestCase):
    def setUp(self):
        self.lab = EmbedLab()
        self.addCleanup(self.lab.close)
        self.inv_path = os.path.join(self.lab.root, 'inventory.yaml')

    def define(self, name, *devices, bystanders=True):
        self.lab.define(s390x_guest(name, ''.join(devices) + (BYSTANDER_DEVICES if bystanders else '')))

    def write_inventory(self, text):
        with open(self.inv_path, 'w') as f:
            f.write(textwrap.dedent(text).lstrip())

    def tool(self, *args, stdin=None):
        return run_tool(list(args) + ['-c', self.lab.uri], stdin=stdin,
                        env={'LIBVIRT_DEFAULT_URI': None})

    def snapshot(self, names):
        return {n: self.lab.dumpxml(n) for n in names}


class PlanApplyTest(EmbedTestCase):
    """The issue's lab: every kind of difference, one apply, then nothing to do."""

    INVENTORY = """
        version: 1
        guests:
          linux1:                      # uid change + an unlisted device
            hostdevs:
              - source: 0001:00:00.0
                zpci: {uid: 0x0009}
          linux2:                      # nothing yet: a hostdev and an interface
            hostdevs:
              - source: 0002:00:00.0
                zpci: {uid: 0x0001, fid: 0x00000001}
            interfaces:
              - source: 0003:00:00.0
                mac: "02:00:00:00:00:01"
                virtualport: {type: 802.1Qbh, profileid: finance}
                zpci: {uid: 0x0002}
          linux3:                      # in sync
            hostdevs:
              - source: 0005:00:00.0
                managed: false
          linux4:                      # prune: false keeps the unlisted one
            prune: false
            hostdevs:
              - source: 0007:00:00.0
        """

    def setUp(self):
        super().setUp()
        self.define('linux1', hostdev_xml('0001:00:00.0', zpci_uid=1, zpci_fid=0),
                    hostdev_xml('0004:00:00.0', zpci_uid=3, zpci_fid=3))
        self.define('linux2')
        self.define('linux3', hostdev_xml('0005:00:00.0', managed=False, zpci_uid=1, zpci_fid=0))
        self.define('linux4', hostdev_xml('0006:00:00.0', zpci_uid=1, zpci_fid=0))
        self.define('db1', hostdev_xml('0008:00:00.0', zpci_uid=1, zpci_fid=0))
        self.write_inventory(self.INVENTORY)
        self.names = ['linux1', 'linux2', 'linux3', 'linux4', 'db1']

    def test_plan_changes_nothing_and_reports_every_difference(self):
        before = self.snapshot(self.names)
        rc, out, err = self.tool('plan', self.inv_path)
        self.assertEqual(rc, 2, out + err)
        self.assertEqual(self.snapshot(self.names), before, 'plan changed a definition')
        self.assertIn('~ replace hostdev 0001:00:00.0', out)
        self.assertIn('zpci.uid 0x0001 → 0x0009', out)
        self.assertIn('- detach hostdev 0004:00:00.0', out)
        self.assertIn('+ attach hostdev 0002:00:00.0', out)
        self.assertIn('+ attach interface 0003:00:00.0', out)
        self.assertIn('linux3: in sync', out)
        self.assertIn('Plan: 3 to attach, 1 to detach, 1 to replace on 3 of 4 guests.', out)
        self.assertNotIn('db1', out)

        rc, out, err = self.tool('plan', '-o', 'json', self.inv_path)
        self.assertEqual(rc, 2, err)
        doc = json.loads(out)
        self.assertEqual(doc['version'], 1)
        ops = sorted((a['guest'], a['op'], a['source'], a['reason']) for a in doc['actions'])
        self.assertEqual(ops, [
            ('linux1', 'attach', '0001:00:00.0', 'changed: zpci.uid'),
            ('linux1', 'detach', '0001:00:00.0', 'changed: zpci.uid'),
            ('linux1', 'detach', '0004:00:00.0', 'not in inventory'),
            ('linux2', 'attach', '0002:00:00.0', 'missing'),
            ('linux2', 'attach', '0003:00:00.0', 'missing'),
            ('linux4', 'attach', '0007:00:00.0', 'missing'),
        ])
        for a in doc['actions']:
            self.assertEqual((a['live'], a['config'], a['result']), (False, True, 'planned'))
            self.assertTrue(a['uri'].startswith('qemu:///embed?root='), a['uri'])
        # Every detach is listed before every attach.
        seen_attach = False
        for a in doc['actions']:
            seen_attach |= a['op'] == 'attach'
            self.assertFalse(seen_attach and a['op'] == 'detach', doc['actions'])
        self.assertEqual(doc['summary']['guests_changed'], 3)
        self.assertEqual(doc['summary']['guests_in_sync'], 1)
        self.assertEqual(self.snapshot(self.names), before, 'plan -o json changed a definition')

    def test_apply_converges_and_touches_nothing_else(self):
        before = self.snapshot(self.names)
        rc, out, err = self.tool('apply', self.inv_path)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('Apply: 3 attached, 1 detached, 1 replaced, 0 failed on 3 of 4 guests.', out)

        dev = {n: self.lab.devices(n) for n in self.names}
        l1 = summary(dev['linux1'])
        self.assertEqual(len(l1), 1)
        self.assertEqual(l1[0][:3], ('hostdev', '0001:00:00.0', 9))
        self.assertEqual(l1[0][3], 0, 'the fid the inventory leaves out must be kept')
        self.assertEqual(summary(dev['linux2']), [
            ('hostdev', '0002:00:00.0', 1, 1, True, None),
            # libvirt fills in the fid the inventory leaves out: the lowest free one
            ('interface', '0003:00:00.0', 2, 0, True, '02:00:00:00:00:01'),
        ])
        [iface] = [d for d in dev['linux2'] if d['kind'] == 'interface']
        self.assertEqual(iface['virtualport'], {'type': '802.1Qbh', 'profileid': 'finance'})
        self.assertNotIn('<model', iface['xml'])
        # prune: false kept 0006, added 0007
        self.assertEqual([d['source'] for d in dev['linux4']], ['0006:00:00.0', '0007:00:00.0'])
        # In sync and unnamed guests are byte-identical; out-of-scope devices survive.
        self.assertEqual(self.lab.dumpxml('linux3'), before['linux3'])
        self.assertEqual(self.lab.dumpxml('db1'), before['db1'])
        for n in self.names:
            self.assertEqual(out_of_scope(self.lab.dumpxml(n)), out_of_scope(before[n]), n)

        rc, out, err = self.tool('plan', self.inv_path)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('Plan: no changes; 4 of 4 guests in sync.', out)
        after = self.snapshot(self.names)
        rc, out, err = self.tool('apply', '-o', 'json', self.inv_path)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(json.loads(out)['actions'], [])
        self.assertEqual(self.snapshot(self.names), after, 'a second apply changed something')

    def test_dry_run_is_plan(self):
        before = self.snapshot(self.names)
        rc_plan, out_plan, _ = self.tool('plan', self.inv_path)
        rc, out, err = self.tool('apply', '--dry-run', self.inv_path)
        self.assertEqual((rc, out), (rc_plan, out_plan), err)
        self.assertEqual(self.snapshot(self.names), before)

    def test_inventory_from_stdin(self):
        with open(self.inv_path) as f:
            text = f.read()
        rc, out, err = self.tool('plan', '-', stdin=text)
        self.assertEqual(rc, 2, out + err)
        self.assertIn('+ attach hostdev 0002:00:00.0', out)


class MovesAndSwapsTest(EmbedTestCase):
    def test_move_between_guests_and_uid_swap_in_one_run(self):
        self.define('a', hostdev_xml('0001:00:00.0', zpci_uid=1, zpci_fid=0),
                    hostdev_xml('0002:00:00.0', zpci_uid=2, zpci_fid=1))
        self.define('b', hostdev_xml('0003:00:00.0', zpci_uid=1, zpci_fid=0))
        self.write_inventory("""
            version: 1
            guests:
              a:
                hostdevs:
                  - source: 0001:00:00.0
                    zpci: {uid: 2, fid: 1}
                  - source: 0002:00:00.0
                    zpci: {uid: 1, fid: 0}
                  - source: 0003:00:00.0
              b:
                hostdevs: []
            """)
        rc, out, err = self.tool('apply', self.inv_path)
        self.assertEqual(rc, 0, out + err)
        a = {d['source']: (d['zpci_uid'], d['zpci_fid']) for d in self.lab.devices('a')}
        self.assertEqual(a['0001:00:00.0'], (2, 1))
        self.assertEqual(a['0002:00:00.0'], (1, 0))
        self.assertIn('0003:00:00.0', a)
        self.assertEqual(self.lab.devices('b'), [])
        rc, out, err = self.tool('plan', self.inv_path)
        self.assertEqual(rc, 0, out + err)

    def test_interface_mac_and_profile_change_keeps_zpci(self):
        self.define('n', iface_xml('0003:00:00.0', '02:00:00:00:00:01', profileid='finance',
                                   uid=5, fid=7))
        self.write_inventory("""
            version: 1
            guests:
              n:
                interfaces:
                  - source: 0003:00:00.0
                    mac: "02:00:00:00:00:02"
                    virtualport: {type: 802.1Qbh, profileid: payroll}
            """)
        rc, out, err = self.tool('apply', self.inv_path)
        self.assertEqual(rc, 0, out + err)
        [d] = self.lab.devices('n')
        self.assertEqual(d['mac'], '02:00:00:00:00:02')
        self.assertEqual(d['virtualport'], {'type': '802.1Qbh', 'profileid': 'payroll'})
        self.assertEqual((d['zpci_uid'], d['zpci_fid']), (5, 7))
        self.assertEqual(self.tool('plan', self.inv_path)[0], 0)

    def test_interface_detach_and_vlan(self):
        self.define('n', iface_xml('0003:00:00.0', '02:00:00:00:00:01', vlan=42),
                    iface_xml('0004:00:00.0', '02:00:00:00:00:04'))
        self.write_inventory("""
            version: 1
            guests:
              n:
                interfaces:
                  - source: 0003:00:00.0
                    vlan: 43
            """)
        rc, out, err = self.tool('apply', self.inv_path)
        self.assertEqual(rc, 0, out + err)
        [d] = self.lab.devices('n')
        self.assertEqual((d['source'], d['vlan'], d['mac']), ('0003:00:00.0', [43], '02:00:00:00:00:01'))


class HostNamedDefaultTest(EmbedTestCase):
    def test_a_host_named_default_gets_its_header(self):
        # "default" is only the name of the one host of an inventory without hosts:;
        # under hosts: it is a name like any other, with its header and warning prefix.
        self.define('linux1', bystanders=False)
        self.write_inventory("""
            version: 1
            hosts:
              default:
                uri: %s
                guests:
                  linux1:
                    hostdevs:
                      - source: 0001:00:00.0
            """ % self.lab.uri)
        rc, out, err = run_tool(['plan', self.inv_path], env={'LIBVIRT_DEFAULT_URI': None})
        self.assertEqual(rc, 2, out + err)
        self.assertTrue(out.startswith('== host default (%s) ==\nlinux1:\n' % self.lab.uri), out)
        self.assertIn('\n  default: host check skipped: ', out)
        # without hosts:, the same guests get no header
        self.write_inventory("""
            version: 1
            guests:
              linux1:
                hostdevs:
                  - source: 0001:00:00.0
            """)
        rc, out, err = self.tool('plan', self.inv_path)
        self.assertEqual(rc, 2, out + err)
        self.assertNotIn('== host', out)
        self.assertIn('\n  host check skipped: ', out)


class ErrorsTest(EmbedTestCase):
    def test_missing_guest_is_an_error_for_that_guest_only(self):
        self.define('linux1')
        self.write_inventory("""
            version: 1
            guests:
              linux-1:
                hostdevs:
                  - source: 0001:00:00.0
              linux1:
                hostdevs:
                  - source: 0002:00:00.0
            """)
        rc, out, err = self.tool('apply', self.inv_path)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("linux-1: error: guest 'linux-1' not found (did you mean 'linux1'?)", out)
        self.assertEqual([d['source'] for d in self.lab.devices('linux1')], ['0002:00:00.0'])

    def test_invalid_inventory_changes_nothing(self):
        self.define('linux1', hostdev_xml('0001:00:00.0', zpci_uid=1, zpci_fid=0))
        before = self.lab.dumpxml('linux1')
        self.write_inventory("""
            version: 1
            guests:
              linux1:
                hostdevs:
                  - source: 0001:00:00.0
                    zpci: {uid: 0}
            """)
        rc, out, err = self.tool('apply', self.inv_path)
        self.assertEqual(rc, 1)
        self.assertIn(self.inv_path + ":6:21: error: 'uid' must be", err)
        self.assertEqual(out, '')
        self.assertEqual(self.lab.dumpxml('linux1'), before)

    def test_validate_never_connects(self):
        self.write_inventory("""
            version: 1
            uri: qemu+tcp://192.0.2.1/system
            guests:
              linux1: {}
            """)
        rc, out, err = run_tool(['validate', self.inv_path])
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, self.inv_path + ': valid (1 host, 1 guest, 0 devices)\n')

    def test_unreachable_uri_is_an_error(self):
        self.write_inventory("""
            version: 1
            guests:
              linux1: {}
            """)
        rc, out, err = run_tool(['plan', '-c', 'qemu+unix:///system?socket=/nonexistent/sock',
                                 self.inv_path])
        self.assertEqual(rc, 1, out + err)
        self.assertIn('linux1: error: cannot connect to qemu+unix:///system?socket=/nonexistent/sock', out)

    def test_apply_refuses_while_another_holds_the_lock(self):
        self.define('linux1')
        self.write_inventory("""
            version: 1
            guests:
              linux1:
                hostdevs:
                  - source: 0001:00:00.0
            """)
        # The lock file is keyed by an FNV-1a hash of the (normalised) URI (apply.c);
        # the lab's URI is already in normal form.
        h = 14695981039346656037
        for b in self.lab.uri.encode():
            h = ((h ^ b) * 1099511628211) % (1 << 64)
        lock_dir = '/run/zpci-reconcile' if os.geteuid() == 0 else \
            os.path.join(os.environ.get('XDG_RUNTIME_DIR') or '/tmp', 'zpci-reconcile')
        path = os.path.join(lock_dir, 'zpci-reconcile-%016x.lock' % h)
        os.makedirs(lock_dir, 0o700, exist_ok=True)   # as the first apply would
        with open(path, 'a+') as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.truncate(0)
            f.write('4242\n')
            f.flush()
            rc, out, err = self.tool('apply', self.inv_path)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('another zpci-reconcile apply (pid 4242) is changing', out)
        self.assertEqual(self.lab.devices('linux1'), [])
        # plan does not need the lock
        with open(path, 'a+') as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            rc, out, err = self.tool('plan', self.inv_path)
        self.assertEqual(rc, 2, out + err)


if __name__ == '__main__':
    lab.main()
