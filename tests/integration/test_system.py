#!/usr/bin/env python3
"""plan and apply against a real libvirtd on qemu:///system.

SharedDaemonTest   the machine's libvirtd (lab.SystemLab), shared with whoever else tests
                   here: only guests named zrapply-sys-<pid>-* are created and removed,
                   and the daemon is never stopped. Running s390x guests make the live
                   path real; without VFIO a live attach fails the way it does on a host
                   without it. The tool is pointed at the daemon as
                   qemu:///system?socket=/run/libvirt/libvirt-sock: the same daemon and
                   driver, but a URI of its own, so the per-URI apply lock this file takes
                   (also while a run is held stopped) never makes a parallel apply on
                   plain qemu:///system fail.
PrivateDaemonTest  a libvirtd of the test's own (lab.PrivateDaemon) for what would disturb
                   others: killing the daemon mid-apply, holding the apply lock, long runs
                   interrupted by signals.

Races ("between plan and apply") are made deterministic with the fault shim's stop
action: the tool raises SIGSTOP right before a chosen libvirt call, the test changes the
world with virsh, then lets it continue.
"""

import json
import os
import re
import shutil
import signal
import tempfile
import unittest
import xml.etree.ElementTree as ET

import lab
from lab import hostdev_xml, s390x_guest

SHARED_URI = 'qemu:///system?socket=/run/libvirt/libvirt-sock'
# This machine's libvirtd lists its PCI functions without an IOMMU group (no IOMMU, no
# VFIO): the host check refuses to give one to a guest, which could never start with it.
def no_iommu(f):
    return ('%s is in no IOMMU group (the host\'s IOMMU is off), so VFIO cannot assign it and '
            'the guest cannot start with it, with or without --config-only: enable the IOMMU '
            'in the firmware (VT-d or AMD-Vi) and on the kernel command line (intel_iommu=on, '
            'or amd_iommu=on where it is off), reboot, and have vfio-pci available' % f)


def no_iommu_error(guest, f):
    return '%s: error: %s: %s; nothing changed on this guest\n' % (guest, f, no_iommu(f))


LEAVE = '; apply will leave this guest alone'
LIVE_DRIFT_MISSING = 'live drift not fixed (--config-only): hostdev missing in running guest'
NOT_IN_INVENTORY = '(not in inventory)'


# Functions the host does not have, for --no-host-check runs on the shared daemon. The
# conflict check runs with or without --no-host-check, so a source that a guest of another
# run holds (a second copy of this file, another branch's tests) would refuse the attach:
# each process takes its sources from a PCI domain of its own.
FAKE_DOMAIN = 0x1000 + os.getpid() % 0xe000


def fake(n):
    return '%04x:%02x:00.0' % (FAKE_DOMAIN, n)


def write_inventory(path, guests):
    """guests: {name: {'hostdevs': [source or {'source':, 'uid':}], 'prune': bool}}."""
    lines = ['version: 1', 'guests:']
    for name, spec in guests.items():
        lines.append('  %s:' % name)
        if 'prune' in spec:
            lines.append('    prune: %s' % ('true' if spec['prune'] else 'false'))
        devs = spec.get('hostdevs', [])
        lines.append('    hostdevs:' + ('' if devs else ' []'))
        for d in devs:
            d = {'source': d} if isinstance(d, str) else d
            lines.append('      - source: %s' % d['source'])
            if 'uid' in d:
                lines.append('        zpci: {uid: 0x%04x}' % d['uid'])
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def sources(devices):
    return sorted(d['source'] for d in devices)


def ignores_signal(pid, sig):
    """Whether process pid ignores sig (the SigIgn mask in /proc/PID/status)."""
    with open('/proc/%d/status' % pid) as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith('SigIgn:'))
    return bool(mask & (1 << (sig - 1)))


def actions_by(doc):
    """{(guest, op, source): action} of a JSON plan/apply document."""
    return {(a['guest'], a['op'], a['source']): a for a in doc['actions']}


class DaemonTestCase(unittest.TestCase):
    """What both classes share: a temp dir, an inventory writer, the tool on self.uri."""

    uri = None
    lab = None
    PREFIX = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='zrapply-test-')
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.inv = os.path.join(self.dir, 'inventory.yaml')

    def name(self, short):
        return self.PREFIX + short

    def inventory(self, guests):
        return write_inventory(self.inv, guests)

    def tool(self, *args, env=None):
        e = {'LIBVIRT_DEFAULT_URI': None}
        e.update(env or {})
        return lab.run_tool(list(args) + ['-c', self.uri], env=e, timeout=600)

    def tool_json(self, *args, env=None):
        rc, out, err = self.tool('-o', 'json', *args, env=env)
        try:
            return rc, json.loads(out), err
        except ValueError:
            self.fail('not JSON (rc %d): %s\n%s' % (rc, out, err))

    def start_tool(self, *args, fault=None):
        env = lab.fault_env(fault)
        env['LIBVIRT_DEFAULT_URI'] = None
        return lab.start_tool(list(args) + ['-c', self.uri], env=env)

    def resume(self, proc):
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=600)
        return proc.returncode, out, err


class SharedDaemonTest(DaemonTestCase):
    PREFIX = 'zrapply-sys-%d-' % os.getpid()
    uri = SHARED_URI

    @classmethod
    def setUpClass(cls):
        cls.lab = lab.SystemLab()
        # Guests an earlier run of this file left behind (it was killed): their pid is gone.
        for n in cls.lab.list_names():
            m = re.match(r'zrapply-sys-(\d+)-', n)
            if m and not os.path.exists('/proc/' + m.group(1)):
                cls.lab.cleanup(m.group(0))

    def setUp(self):
        super().setUp()
        self.lab.cleanup(self.PREFIX)
        self.addCleanup(self.lab.cleanup, self.PREFIX)

    def define(self, short, *devices, start=False):
        name = self.name(short)
        self.lab.define(s390x_guest(name, ''.join(devices)))
        if start:
            self.lab.start(name)
            self.assertTrue(self.lab.state(name).startswith('crashed'), self.lab.state(name))
        return name

    def free_functions(self, n):
        """n of the host's PCI functions that no guest's definition holds right now.

        Other people's guests live on this daemon too; a function one of them holds
        would turn this test's attach into a (correct) conflict error.
        """
        names = self.lab.list_names()
        held = set()
        if names:
            try:
                out = self.lab.virsh(' ; '.join('dumpxml --inactive %s' % x for x in names))
            except lab.VirshError:   # a guest vanished meanwhile: read them one by one
                out = ''
                for x in names:
                    try:
                        out += self.lab.dumpxml(x)
                    except lab.VirshError:
                        pass
            for doc in out.split('</domain>'):
                if '<domain' in doc:
                    held.update(d['source'] for d in lab.parse_devices(doc + '</domain>'))
        free = [p for p in lab.SystemDaemon.pci_node_devices() if p not in held]
        if len(free) < n:
            raise lab.Skip('needs %d PCI functions no guest holds, the host has %d' % (
                n, len(free)))
        picked = free[-n:]
        for f in picked:
            node = 'pci_' + f.replace(':', '_').replace('.', '_')
            self.assertNotIn('<iommuGroup', self.lab.virsh('nodedev-dumpxml', node),
                             'these tests expect a host without an IOMMU (see no_iommu)')
        return picked

    # ---- the live path, for real ------------------------------------------------------

    def test_live_attach_fails_for_vfio_and_the_definition_stays_unchanged(self):
        run = self.define('run', start=True)
        off = self.define('off')
        f0, f1 = self.free_functions(2)
        self.inventory({run: {'hostdevs': [f0]}, off: {'hostdevs': [f1]}})
        before, before_live = self.lab.dumpxml(run), self.lab.dumpxml(run, inactive=False)

        rc, out, err = self.tool('plan', self.inv)
        self.assertEqual(rc, 2, out + err)
        self.assertIn('  + attach hostdev %s [live+config]\n' % f0, out)
        self.assertIn('  + attach hostdev %s [config]\n' % f1, out)

        # The host check knows first: neither function is in an IOMMU group, so neither
        # guest could start with it; not even the inactive one's definition is changed.
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(no_iommu_error(run, f0), out)
        self.assertIn(no_iommu_error(off, f1), out)
        self.assertEqual(self.lab.dumpxml(run), before)
        self.assertEqual(self.lab.devices(off), [])
        rc, out, err = self.tool('apply', '--config-only', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(no_iommu_error(run, f0), out)
        self.assertEqual(self.lab.dumpxml(run), before)

        # What libvirt itself does without the check (the rest of this test)
        rc, out, err = self.tool('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 1, out + err)
        # libvirt's own message, under the guest's name, on the device's line; not
        # followed by a hint about the connection (libvirt 11.3's refusals here are
        # system errors, whose errno once passed for a missing daemon or a refused user)
        self.assertRegex(out, re.escape('%s:\n  + attach hostdev %s [live+config] failed: '
                                        % (run, f0))
                         + '(?:%s)\n(?!  hint: (?:is libvirt|run as root))' % lab.NO_VFIO_RE)
        self.assertIn('%s:\n  + attach hostdev %s [config] done\n' % (off, f1), out)
        self.assertIn('Apply: 1 attached, 0 detached, 0 replaced, 1 failed on 1 of 2 guests '
                      '(1 with errors).', out)
        # LIVE|CONFIG failed live: the definition was not written, byte for byte
        self.assertEqual(self.lab.dumpxml(run), before)
        self.assertEqual(self.lab.dumpxml(run, inactive=False), before_live)
        self.assertTrue(self.lab.is_active(run))
        # the inactive guest in the same run still converged
        self.assertEqual(sources(self.lab.devices(off)), [f1])

        rc, doc, err = self.tool_json('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 1, err)
        [a] = doc['actions']
        self.assertEqual((a['guest'], a['op'], a['source'], a['live'], a['config']),
                         (run, 'attach', f0, True, True))
        self.assertEqual(a['result'], 'failed')
        self.assertRegex(a['error'], '^(?:%s)$' % lab.NO_VFIO_RE)
        self.assertEqual(doc['summary']['failed'], 1)
        self.assertEqual(a['uri'], SHARED_URI)

        # --config-only changes the running guest's definition and leaves it running
        rc, out, err = self.tool('apply', '--config-only', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('  + attach hostdev %s [config] done\n' % f0, out)
        self.assertEqual(sources(self.lab.devices(run)), [f0])
        self.assertEqual(self.lab.devices(run, inactive=False), [])
        self.assertTrue(self.lab.is_active(run))

        rc, doc, err = self.tool_json('plan', '--config-only', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, err)
        self.assertEqual(doc['actions'], [])
        self.assertIn({'host': 'default', 'guest': run, 'source': f0,
                       'message': LIVE_DRIFT_MISSING}, doc['warnings'])
        rc, out, err = self.tool('plan', self.inv)
        self.assertEqual(rc, 2, out + err)
        self.assertIn('  + attach hostdev %s [live]\n' % f0, out)

    # ---- host preflight against real node devices ---------------------------------------

    def test_host_check_with_the_real_node_devices(self):
        a, b = self.define('a'), self.define('b')
        f0, f1 = self.free_functions(2)
        missing = '00ff:00:1f.7'
        self.assertNotIn(missing, lab.SystemDaemon.pci_node_devices())
        self.inventory({a: {'hostdevs': [f0]}, b: {'hostdevs': [f1, missing]}})
        before_b = self.lab.dumpxml(b)

        rc, doc, err = self.tool_json('plan', self.inv)
        self.assertEqual(rc, 2, err)
        self.assertIn({'host': 'default', 'guest': b, 'source': missing,
                       'message': 'host has no PCI function 00ff:00:1f.7' + LEAVE},
                      doc['warnings'])
        self.assertIn({'host': 'default', 'guest': a, 'source': f0,
                       'message': no_iommu(f0) + LEAVE}, doc['warnings'])
        self.assertEqual(doc['errors'], [])

        counts = os.path.join(self.dir, 'counts')
        rc, out, err = self.tool('apply', self.inv, env=lab.fault_env(counts=counts))
        self.assertEqual(rc, 1, out + err)
        self.assertIn('%s: error: host has no PCI function 00ff:00:1f.7 (node device '
                      'pci_00ff_00_1f_7); nothing changed on this guest\n' % b, out)
        self.assertEqual(self.lab.dumpxml(b), before_b)
        # libvirt would take a real function into an inactive guest's definition, but
        # without an IOMMU group the guest could never start with it
        self.assertIn(no_iommu_error(a, f0), out)
        self.assertEqual(self.lab.devices(a), [])
        # one PCI node device listing for the host, never a lookup per device; the
        # functions are bound to virtio-pci, so one more listing finds what the host
        # uses on them (net and storage node devices)
        calls = lab.read_counts(counts)
        self.assertEqual(calls.get('virConnectListAllNodeDevices'), 2, calls)
        self.assertNotIn('virNodeDeviceLookupByName', calls)
        # one domain listing, shared by the read of the inventory's guests and the
        # conflict check; one connection
        self.assertEqual(calls.get('virConnectListAllDomains'), 1, calls)
        self.assertEqual(calls.get('virConnectOpen'), 1, calls)

        # node device XML only of the functions an action attaches (f0, f1), and of
        # what the host uses on them
        self.assertGreaterEqual(calls.get('virNodeDeviceGetXMLDesc'), 2, calls)

        # --no-host-check: libvirt itself accepts a function the host does not have
        rc, out, err = self.tool('apply', '--no-host-check', self.inv,
                                 env=lab.fault_env(counts=counts))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(sources(self.lab.devices(a)), [f0])
        self.assertEqual(sources(self.lab.devices(b)), sorted([f1, missing]))
        calls = lab.read_counts(counts)
        self.assertNotIn('virConnectListAllNodeDevices', calls)
        self.assertNotIn('virNodeDeviceGetXMLDesc', calls)
        # the conflict check still runs, on the one listing of the host's guests
        self.assertEqual(calls.get('virConnectListAllDomains'), 1, calls)

        # in sync: one listing, and no node device XML is read at all; the connection
        # opened while the inventory was read is the one the run uses
        rc, out, err = self.tool('plan', self.inv, env=lab.fault_env(counts=counts))
        self.assertEqual(rc, 0, out + err)
        calls = lab.read_counts(counts)
        self.assertEqual(calls.get('virConnectOpen'), 1, calls)
        self.assertEqual(calls.get('virConnectListAllNodeDevices'), 1, calls)
        self.assertNotIn('virNodeDeviceGetXMLDesc', calls)

    def test_a_function_held_by_a_guest_the_inventory_does_not_name(self):
        f0, f1 = self.free_functions(2)
        x = self.define('x', hostdev_xml(f0))
        y, z = self.define('y'), self.define('z')
        self.inventory({y: {'hostdevs': [f0]}, z: {'hostdevs': [f1]}})
        before = {n: self.lab.dumpxml(n) for n in (x, y)}

        rc, doc, err = self.tool_json('plan', self.inv)
        self.assertEqual(rc, 2, err)
        self.assertIn({'host': 'default', 'guest': y, 'source': f0,
                       'message': "held by guest '%s', which the inventory does not name"
                                  % x + LEAVE}, doc['warnings'])

        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("%s: error: %s is held by guest '%s', which the inventory does not name; "
                      "libvirt would let both definitions hold it, so nothing changed on this "
                      "guest\n" % (y, f0, x), out)
        self.assertEqual({n: self.lab.dumpxml(n) for n in (x, y)}, before)
        self.assertIn(no_iommu_error(z, f1), out)   # this host has no IOMMU

        # --no-host-check skips the node device lookups only: the conflict check runs
        rc, out, err = self.tool('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("%s: error: %s is held by guest '%s'" % (y, f0, x), out)
        self.assertEqual({n: self.lab.dumpxml(n) for n in (x, y)}, before)
        self.assertEqual(sources(self.lab.devices(z)), [f1])

        # What the check prevents: libvirt lets both definitions hold f0.
        self.lab.attach(y, hostdev_xml(f0))
        self.assertEqual(sources(self.lab.devices(x)), [f0])
        self.assertEqual(sources(self.lab.devices(y)), [f0])
        rc, out, err = self.tool('plan', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("%s: also held by guest '%s', which the inventory does not name: both "
                      "definitions hold this function" % (f0, x), out)

    # ---- the host's topology, on this machine's real virtio functions -----------------

    def write_yaml(self, text):
        with open(self.inv, 'w') as f:
            f.write(text)
        return self.inv

    def test_an_interface_on_a_function_that_is_no_virtual_function(self):
        a, b = self.define('a'), self.define('b')
        f0, f1 = self.free_functions(2)
        self.write_yaml('version: 1\nguests:\n  %s:\n    interfaces:\n      - source: %s\n'
                        '  %s:\n    hostdevs:\n      - source: %s\n' % (a, f0, b, f1))
        before = self.lab.dumpxml(a)
        body = ('%s is not an SR-IOV virtual function (it is a plain PCI function, driver '
                'virtio-pci); libvirt takes an interface of type hostdev on virtual functions '
                'only: list one of its virtual functions, or list it under hostdevs:' % f0)

        rc, doc, err = self.tool_json('plan', self.inv)
        self.assertEqual(rc, 2, err)
        self.assertIn({'host': 'default', 'guest': a, 'source': f0,
                       'message': body + LEAVE}, doc['warnings'])
        self.assertIn({'host': 'default', 'guest': a, 'source': f0,
                       'message': no_iommu(f0) + LEAVE}, doc['warnings'])

        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 1, out + err)
        # the finding about the entry comes before the host's missing IOMMU
        self.assertIn('%s: error: %s: %s; nothing changed on this guest\n' % (a, f0, body), out)
        self.assertEqual(self.lab.dumpxml(a), before)
        self.assertIn(no_iommu_error(b, f1), out)
        self.assertEqual(self.lab.devices(b), [])

        # without the host check libvirt takes it into the definition
        rc, out, err = self.tool('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual([(d['kind'], d['source']) for d in self.lab.devices(a)],
                         [('interface', f0)])
        self.assertEqual(sources(self.lab.devices(b)), [f1])

    def test_managed_false_on_a_function_bound_to_virtio_pci(self):
        a = self.define('a')
        [f0] = self.free_functions(1)
        self.write_yaml('version: 1\nguests:\n  %s:\n    hostdevs:\n      - source: %s\n'
                        '        managed: false\n' % (a, f0))
        before = self.lab.dumpxml(a)
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('%s: error: %s: managed: false needs %s bound to vfio-pci already '
                      '(libvirt will not rebind it), but it is bound to virtio-pci: bind it '
                      '(e.g. driverctl set-override %s vfio-pci) or use managed: true; nothing '
                      'changed on this guest\n' % (a, f0, f0, f0), out)
        self.assertEqual(self.lab.dumpxml(a), before)
        # managed: true is what libvirt can do itself (it rebinds the function); what is
        # left is this host's missing IOMMU
        self.write_yaml('version: 1\nguests:\n  %s:\n    hostdevs:\n      - source: %s\n'
                        % (a, f0))
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(no_iommu_error(a, f0), out)
        self.assertNotIn('managed: false', out)
        self.assertEqual(self.lab.dumpxml(a), before)

    def test_managed_true_on_a_function_the_host_uses_warns(self):
        # The function under the machine's own network interface (link up), found the
        # way the tool finds it: the net node device's parent.
        used = None
        for name in self.lab.virsh('nodedev-list', '--cap', 'net').split():
            xml = ET.fromstring(self.lab.virsh('nodedev-dumpxml', name))
            link = xml.find('capability/link')
            parent = xml.findtext('parent') or ''
            if parent.startswith('pci_') and link is not None and link.get('state') == 'up':
                driver = ET.fromstring(self.lab.virsh('nodedev-dumpxml', parent)).findtext(
                    'driver/name')
                used = (lab.node_name_to_pci(parent), xml.findtext('capability/interface'),
                        driver)
                break
        if not used:
            raise lab.Skip('no network interface with its link up sits on a PCI function')
        f, ifname, driver = used
        a = self.define('a')
        self.write_yaml('version: 1\nguests:\n  %s:\n    hostdevs:\n      - source: %s\n'
                        % (a, f))
        rc, doc, err = self.tool_json('plan', self.inv)
        self.assertEqual(rc, 2, err)
        self.assertIn({'host': 'default', 'guest': a, 'source': f,
                       'message': 'managed: true lets libvirt take %s from its host driver '
                                  '%s, but the host uses it: network interface %s '
                                  '(link up)' % (f, driver, ifname)}, doc['warnings'])
        self.assertEqual(doc['errors'], [])

    def test_plan_shows_the_cascade_apply_follows(self):
        # b holds f0 and is refused (it also wants a function the host lacks), so it keeps
        # f0; a wants f0: apply refuses both, and plan must say so for both.
        f0, f1 = self.free_functions(2)
        a = self.define('a')
        b = self.define('b', hostdev_xml(f0))
        c = self.define('c')
        missing = '00ff:00:1f.7'
        self.inventory({a: {'hostdevs': [f0]}, b: {'hostdevs': [missing]},
                        c: {'hostdevs': [f1]}})

        rc, doc, err = self.tool_json('plan', self.inv)
        self.assertEqual(rc, 2, err)
        self.assertIn({'host': 'default', 'guest': a, 'source': f0,
                       'message': "held by guest '%s', which apply will leave alone (see its "
                                  "warnings)" % b + LEAVE},
                      doc['warnings'])
        self.assertIn({'host': 'default', 'guest': b, 'source': missing,
                       'message': 'host has no PCI function %s' % missing + LEAVE},
                      doc['warnings'])
        # every refusing finding says so (c: this host has no IOMMU)
        self.assertIn({'host': 'default', 'guest': c, 'source': f1,
                       'message': no_iommu(f1) + LEAVE}, doc['warnings'])
        planned_refused = {w['guest'] for w in doc['warnings'] if w['message'].endswith(LEAVE)}

        rc, doc, err = self.tool_json('apply', self.inv)
        self.assertEqual(rc, 1, err)
        refused = {e['guest'] for e in doc['errors']}
        self.assertEqual(refused, {a, b, c})
        self.assertEqual(planned_refused, refused)
        self.assertEqual(sources(self.lab.devices(b)), [f0])
        self.assertEqual(self.lab.devices(a), [])
        self.assertEqual(self.lab.devices(c), [])

    # ---- --atomic ----------------------------------------------------------------------

    def test_atomic_undoes_the_host_when_a_live_attach_fails_in_the_middle(self):
        # a: detach 0001 + attach 0002; r (running): live+config attach fails for VFIO;
        # c: attach 0004, never tried. The host check is off: these functions are made up.
        # One apply worker: with several, c's attach may run beside r's and be rolled
        # back instead (test_parallel.py covers that).
        a = self.define('a', hostdev_xml(fake(1), zpci_uid=1, zpci_fid=0))
        r = self.define('r', start=True)
        c = self.define('c')
        self.inventory({a: {'hostdevs': [fake(2)]}, r: {'hostdevs': [fake(3)]},
                        c: {'hostdevs': [fake(4)]}})
        names = (a, r, c)
        before = {n: self.lab.dumpxml(n) for n in names}
        before_live = self.lab.dumpxml(r, inactive=False)

        rc, doc, err = self.tool_json('apply', '--atomic', '--no-host-check', '-v', self.inv,
                                      env={'ZPCI_RECONCILE_APPLY_THREADS': '1'})
        self.assertEqual(rc, 1, err)
        got = [(x['guest'], x['op'], x['source'], x['result']) for x in doc['actions']]
        self.assertEqual(got, [
            (a, 'detach', fake(1), 'rolled back'),
            (a, 'attach', fake(2), 'rolled back'),
            (r, 'attach', fake(3), 'failed'),
            (c, 'attach', fake(4), 'skipped'),
        ])
        by = actions_by(doc)
        self.assertRegex(by[(r, 'attach', fake(3))]['error'], '^(?:%s)$' % lab.NO_VFIO_RE)
        self.assertEqual(by[(c, 'attach', fake(4))]['skip_reason'],
                         'not run: an earlier action on this host failed (--atomic)')
        self.assertEqual(doc['summary']['rolled_back'], 2)
        self.assertEqual(doc['warnings'], [], 'the re-read after rollback found a difference')
        # undone in reverse order: the attach first, then the detach
        self.assertEqual(re.findall(r'^rollback: .*$', err, re.M), [
            'rollback: detach hostdev ' + fake(2) + ' on %s [config]: done' % a,
            'rollback: attach hostdev ' + fake(1) + ' on %s [config]: done' % a,
        ])
        for n in names:
            self.assertEqual(self.lab.dumpxml(n), before[n], n)
        self.assertEqual(self.lab.dumpxml(r, inactive=False), before_live)

        rc, out, err = self.tool('apply', '--atomic', '--no-host-check', self.inv,
                                 env={'ZPCI_RECONCILE_APPLY_THREADS': '1'})
        self.assertEqual(rc, 1, out + err)
        self.assertIn('  - detach hostdev ' + fake(1) + ' zpci uid=0x0001 fid=0x00000000 '
                      'guest_address=0000:00:01.0 [config] (not in inventory) rolled back\n', out)
        self.assertIn('  + attach hostdev ' + fake(2) + ' [config] rolled back\n', out)
        self.assertIn('  + attach hostdev ' + fake(4) + ' [config] skipped: not run: an earlier '
                      'action on this host failed (--atomic)\n', out)
        # everything undone: no guest changed, the one with the failed call failed
        self.assertIn('Apply: 0 attached, 0 detached, 0 replaced, 1 failed, 1 skipped, '
                      '2 rolled back on 0 of 3 guests (1 with errors).', out)

        # Without --atomic the independent actions stay done.
        rc, out, err = self.tool('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(sources(self.lab.devices(a)), [fake(2)])
        self.assertEqual(sources(self.lab.devices(c)), [fake(4)])

    def test_atomic_undoes_the_host_when_libvirt_refuses_a_zpci_uid_clash(self):
        # k wants 0002 with uid 1. The plan sees k free of uid 1 (a uid another kept device
        # holds is refused by the plan itself, before libvirt), so the clash is made by
        # someone else attaching 0001 with uid 1 to k while apply is stopped before k's
        # attach: libvirt refuses that attach for real, and j's attach before it is undone.
        j = self.define('j')
        k = self.define('k')
        l_ = self.define('l')
        self.inventory({j: {'hostdevs': [fake(3)]},
                        k: {'prune': False, 'hostdevs': [{'source': fake(2), 'uid': 1}]},
                        l_: {'hostdevs': [fake(4)]}})
        before = {n: self.lab.dumpxml(n) for n in (j, l_)}
        rc, out, err = self.run_stopped(
            ['apply', '--atomic', '--no-host-check', '-o', 'json', self.inv],
            lambda: self.lab.attach(k, hostdev_xml(fake(1), zpci_uid=1, zpci_fid=0)),
            fault='virDomainAttachDeviceFlags:2:stop')
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)
        got = [(x['guest'], x['source'], x['result']) for x in doc['actions']]
        self.assertEqual(got, [(j, fake(3), 'rolled back'),
                               (k, fake(2), 'failed'),
                               (l_, fake(4), 'skipped')])
        self.assertIn('is already reserved', doc['actions'][1]['error'])
        for n in (j, l_):
            self.assertEqual(self.lab.dumpxml(n), before[n], n)
        self.assertEqual(sources(self.lab.devices(k)), [fake(1)])

    # ---- the world changes between reading and applying ---------------------------------

    def run_stopped(self, args, change, fault='virDomainAttachDeviceFlags:1:stop'):
        """Start apply, let `change()` run while it is stopped before its first attach."""
        proc = self.start_tool(*args, fault=fault)
        try:
            lab.wait_stopped(proc)
            change()
        finally:
            rc, out, err = self.resume(proc)
        return rc, out, err

    def test_guest_undefined_during_apply(self):
        u1, u2 = self.define('u1'), self.define('u2')
        self.inventory({u1: {'hostdevs': [fake(1), fake(2)]},
                        u2: {'hostdevs': [fake(3)]}})
        rc, out, err = self.run_stopped(['apply', '-j', '1', '--no-host-check', '-o', 'json',
                                         self.inv], lambda: self.lab.undefine(u1))
        self.assertEqual(rc, 1, out + err)
        by = actions_by(json.loads(out))
        first = by[(u1, 'attach', fake(1))]
        self.assertEqual(first['result'], 'failed')
        self.assertRegex(first['error'], r"^Domain not found: no domain with matching uuid "
                                         r"'[0-9a-f-]{36}' \(%s\)$" % u1)
        self.assertEqual((by[(u1, 'attach', fake(2))]['result'],
                          by[(u1, 'attach', fake(2))]['skip_reason']),
                         ('skipped', 'not run: the guest no longer exists'))
        self.assertEqual(by[(u2, 'attach', fake(3))]['result'], 'done')
        self.assertNotIn(u1, self.lab.list_names())

        rc, out, err = self.tool('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("%s: error: guest '%s' not found" % (u1, u1), out)
        self.assertIn('%s: in sync' % u2, out)

    def test_guest_started_during_apply(self):
        s = self.define('s')
        self.inventory({s: {'hostdevs': [fake(1)]}})
        rc, out, err = self.run_stopped(['apply', '--no-host-check', self.inv],
                                        lambda: self.lab.start(s))
        # read inactive, so the plan was a config attach: still right for the definition
        self.assertEqual(rc, 0, out + err)
        self.assertIn('  + attach hostdev ' + fake(1) + ' [config] done\n', out)
        self.assertTrue(self.lab.is_active(s))
        self.assertEqual(sources(self.lab.devices(s)), [fake(1)])
        # the next plan sees the running guest lacks it
        rc, out, err = self.tool('plan', '--no-host-check', self.inv)
        self.assertEqual(rc, 2, out + err)
        self.assertIn('  + attach hostdev ' + fake(1) + ' [live]\n', out)

    def test_guest_stopped_during_apply(self):
        t = self.define('t', start=True)
        self.inventory({t: {'hostdevs': [fake(1)]}})
        before = self.lab.dumpxml(t)
        rc, out, err = self.run_stopped(['apply', '--no-host-check', self.inv],
                                        lambda: self.lab.destroy(t))
        self.assertEqual(rc, 1, out + err)
        self.assertIn('  + attach hostdev ' + fake(1) + ' [live+config] failed: Requested '
                      'operation is not valid: domain is not running (the guest stopped since '
                      'it was read; apply again to change its persistent definition)\n', out)
        self.assertEqual(self.lab.dumpxml(t), before)
        rc, out, err = self.tool('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('  + attach hostdev ' + fake(1) + ' [config] done\n', out)

    def test_device_attached_by_someone_else_during_apply(self):
        d = self.define('d')
        self.inventory({d: {'hostdevs': [fake(1), fake(2)]}})
        rc, out, err = self.run_stopped(
            ['apply', '--no-host-check', self.inv],
            lambda: self.lab.attach(d, hostdev_xml(fake(1))))
        self.assertEqual(rc, 1, out + err)
        self.assertIn('  + attach hostdev ' + fake(1) + ' [config] failed: Requested operation is '
                      'not valid: device is already in the domain configuration\n', out)
        self.assertIn('  + attach hostdev ' + fake(2) + ' [config] done\n', out)
        rc, out, err = self.tool('plan', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, out + err)


class PrivateDaemonTest(DaemonTestCase):
    """Things one must not do to a shared daemon, done to one of our own."""

    PREFIX = 'zrapply-priv-'
    N = 200

    def setUp(self):
        super().setUp()
        # A fresh daemon per test (it starts in half a second): no guests to clean up.
        self.daemon = lab.PrivateDaemon()
        self.addCleanup(self.daemon.close)
        self.daemon.start()
        self.lab = self.daemon.lab
        self.uri = self.daemon.uri

    def many_guests(self, n=None):
        """n inactive guests, each wanting one hostdev of its own: n config attaches."""
        n = n or self.N
        names = ['%s%03d' % (self.PREFIX, i) for i in range(n)]
        self.lab.define_many([s390x_guest(x) for x in names])
        self.inventory({x: {'hostdevs': ['0001:%02x:%02x.0' % (i // 32, i % 32)]}
                        for i, x in enumerate(names)})
        return names

    def definition_sources(self, name):
        """The in-scope sources of the definition file the daemon wrote (it must parse)."""
        with open(self.daemon.definition_path(name)) as f:
            text = f.read()
        ET.fromstring(text)     # raises on a corrupted file
        return sources(lab.parse_devices(text))

    def test_daemon_killed_mid_apply(self):
        names = self.many_guests()
        wanted = {x: '0001:%02x:%02x.0' % (i // 32, i % 32) for i, x in enumerate(names)}
        proc = self.start_tool('apply', '-v', '--no-host-check', '-o', 'json', self.inv)
        try:
            # Kill it once the 100th call is under way: progress goes to stderr first.
            for line in proc.stderr:
                if line.startswith('[100/%d] ' % self.N):
                    break
            self.daemon.kill(signal.SIGKILL)
        finally:
            rest_out, rest_err = proc.communicate(timeout=600)
        rc, doc = proc.returncode, json.loads(rest_out)
        self.assertEqual(rc, 1, rest_err)
        results = [a['result'] for a in doc['actions']]
        self.assertEqual(results.count('failed'), 1, rest_err)
        failed = next(a for a in doc['actions'] if a['result'] == 'failed')
        self.assertTrue(failed['error'].startswith('lost the connection to libvirt: '),
                        failed['error'])
        self.assertTrue(failed['error'].endswith('; the change may or may not have been made'),
                        failed['error'])
        self.assertGreaterEqual(results.count('done'), 99)
        skipped = [a for a in doc['actions'] if a['result'] == 'skipped']
        self.assertEqual({a['skip_reason'] for a in skipped},
                         {'not run: the connection to libvirt was lost'})
        self.assertEqual(len(skipped) + results.count('done') + 1, self.N)
        self.assertRegex(rest_err, r'zpci-reconcile: lost the connection to %s: .+; %d actions '
                                   r'not run\n' % (re.escape(self.uri), len(skipped)))

        # Every definition on disk parses and holds the old or the new device set, and
        # the one for each done action has it.
        for a in doc['actions']:
            got = self.definition_sources(a['guest'])
            self.assertIn(got, ([], [wanted[a['guest']]]), a['guest'])
            if a['result'] == 'done':
                self.assertEqual(got, [wanted[a['guest']]], a['guest'])
            if a['result'] == 'skipped':
                self.assertEqual(got, [], a['guest'])

        self.daemon.start()
        self.assertEqual(len([x for x in self.lab.list_names() if x in wanted]), self.N)
        rc, out, err = self.tool('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, out + err)
        rc, out, err = self.tool('plan', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, out + err)
        for x in names:
            self.assertEqual(self.definition_sources(x), [wanted[x]])

    def test_daemon_killed_mid_atomic_apply_leaves_nothing_to_undo_with(self):
        names = self.many_guests(60)
        proc = self.start_tool('apply', '--atomic', '-v', '--no-host-check', '-o', 'json',
                               self.inv)
        try:
            for line in proc.stderr:
                if line.startswith('[30/60] '):
                    break
            self.daemon.kill(signal.SIGKILL)
        finally:
            out, err = proc.communicate(timeout=600)
        self.assertEqual(proc.returncode, 1, err)
        doc = json.loads(out)
        # done and not undone: a failure that says what the guest holds now
        done = [a for a in doc['actions']
                if a['result'] == 'failed' and a['error'].startswith('not rolled back')]
        self.assertGreaterEqual(len(done), 29)
        self.assertEqual({a['error'].split(': guest')[0] for a in done},
                         {'not rolled back, the connection to libvirt was lost'})
        self.assertIn("still holds hostdev", done[0]['error'])
        self.assertNotIn('rolled back', [a['result'] for a in doc['actions']])
        self.daemon.start()
        rc, out, err = self.tool('apply', '--atomic', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(sum(1 for x in names if self.definition_sources(x)), 60)

    def test_daemon_killed_during_the_rollback(self):
        self.many_guests(10)
        # the 5th attach fails; the rollback's first undo (a detach) waits for the kill
        proc = self.start_tool('apply', '--atomic', '--no-host-check', '-o', 'json', self.inv,
                               fault='virDomainAttachDeviceFlags:5,'
                                     'virDomainDetachDeviceFlags:1:stop')
        try:
            lab.wait_stopped(proc)
            # The next RPC may be written before libvirt's event thread sees the hangup;
            # that write must fail with EPIPE, not kill the tool with SIGPIPE.
            self.assertTrue(ignores_signal(proc.pid, signal.SIGPIPE))
            self.daemon.kill(signal.SIGKILL)
        finally:
            rc, out, err = self.resume(proc)
        self.assertEqual(rc, 1, err)
        results = [(a['result'], a.get('error', '').split(':')[0]) for a in json.loads(out)[
            'actions']]
        self.assertEqual(results, [('failed', 'not rolled back, the connection to libvirt '
                                              'was lost')] * 3 +
                                  [('failed', 'rollback failed')] +
                                  [('failed', 'zr-fault')] + [('skipped', '')] * 5)

    def test_sigint_during_a_long_apply_stops_after_the_current_call(self):
        names = self.many_guests()
        # ^C lands while the 50th attach is being made (the shim raises it in that thread)
        rc, doc, err = self.tool_json('apply', '--no-host-check', self.inv,
                                      env=lab.fault_env('virDomainAttachDeviceFlags:50:sigint'))
        self.assertEqual(rc, 1, err)
        results = [a['result'] for a in doc['actions']]
        self.assertEqual(results, ['done'] * 50 + ['skipped'] * (self.N - 50))
        self.assertEqual({a['skip_reason'] for a in doc['actions'][50:]},
                         {'not run: interrupted by a signal'})
        self.assertIn('zpci-reconcile: interrupted by signal 2; stopped after the calls in progress\n',
                      err)
        self.assertEqual(sum(1 for x in names if self.definition_sources(x)), 50)
        rc, out, err = self.tool('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('Apply: %d attached, 0 detached, 0 replaced, 0 failed on %d of %d guests.'
                      % (self.N - 50, self.N - 50, self.N), out)

    def test_sigterm_from_outside_during_a_long_apply(self):
        names = self.many_guests()
        proc = self.start_tool('apply', '--no-host-check', self.inv,
                               fault='virDomainAttachDeviceFlags:120:stop')
        try:
            lab.wait_stopped(proc)
            os.kill(proc.pid, signal.SIGTERM)   # queued while stopped, handled on SIGCONT
        finally:
            rc, out, err = self.resume(proc)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('zpci-reconcile: interrupted by signal 15; stopped after the calls in progress\n',
                      err)
        done = out.count('] done\n')
        skipped = out.count('] skipped: not run: interrupted by a signal\n')
        # The signal is handled by whichever thread runs first after SIGCONT: the 120th
        # call, and at most the one after it, were made; nothing later was.
        self.assertIn(done, (120, 121), out)
        self.assertEqual(done + skipped, self.N, out)
        self.assertEqual(sum(1 for x in names if self.definition_sources(x)), done)
        rc, out, err = self.tool('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(sum(1 for x in names if self.definition_sources(x)), self.N)

    def test_two_applies_at_once(self):
        g = self.name('lock')
        self.lab.define(s390x_guest(g))
        self.inventory({g: {'hostdevs': ['0001:00:00.0']}})
        first = self.start_tool('apply', '--no-host-check', self.inv,
                                fault='virDomainAttachDeviceFlags:1:stop')
        try:
            lab.wait_stopped(first)   # it holds the lock and is about to attach
            rc, out, err = self.tool('apply', '--no-host-check', self.inv)
            self.assertEqual(rc, 1, out + err)
            self.assertRegex(out, r"%s: error: another zpci-reconcile apply \(pid %d\) is "
                                  r"changing %s; lock file /\S+\.lock\n" % (
                                      g, first.pid, re.escape(self.uri)))
            self.assertEqual(self.lab.devices(g), [])
            rc, out, err = self.tool('plan', '--no-host-check', self.inv)   # no lock needed
            self.assertEqual(rc, 2, out + err)
        finally:
            rc, out, err = self.resume(first)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(sources(self.lab.devices(g)), ['0001:00:00.0'])
        rc, out, err = self.tool('apply', '--no-host-check', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('%s: in sync' % g, out)


if __name__ == '__main__':
    lab.main()
