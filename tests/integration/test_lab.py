#!/usr/bin/env python3
"""The lab itself against real libvirt: what later integration tests stand on.

What libvirt 9.0 / QEMU 7.2 did on Debian 12 without VFIO (checked by these tests):
- embed root, config attach of a PCI hostdev with zPCI ids: accepted; libvirt keeps
  uid/fid and adds a guest PCI address (0000:00:01.0 for the first device); a hostdev
  interface with no <zpci> gets uid 0x0001 / fid 0x00000000 and a PCI slot filled in.
- a second virsh on a root that another process holds: "Failed to acquire pid file
  '<root>/run/qemu/driver.pid': Resource temporarily unavailable".
- qemu:///system, bare s390x guest with <on_crash>preserve</on_crash>: `start` succeeds,
  the guest panics at once (no boot device) and stays active: domstate "crashed
  (panicked)".
- live attach to it: "host doesn't support VFIO PCI passthrough" (with <driver
  name='vfio'/>), "host doesn't support passthrough of host PCI devices" (without);
  with --live --config the persistent definition is left unchanged. --config alone works.
- a guest whose definition holds a PCI hostdev does not start: same VFIO message.
"""

import os
import re
import subprocess
import time
import unittest

import lab

HOSTDEV_ZPCI = (
    "<hostdev mode='subsystem' type='pci' managed='yes'>"
    "<driver name='vfio'/>"
    "<source><address domain='0x0002' bus='0x00' slot='0x00' function='0x0'/></source>"
    "<address type='pci'><zpci uid='0x0001' fid='0x00000000'/></address>"
    "</hostdev>")

INTERFACE = (
    "<interface type='hostdev' managed='yes'>"
    "<source><address type='pci' domain='0x0003' bus='0x00' slot='0x00' function='0x0'/>"
    "</source>"
    "<mac address='02:00:00:00:00:01'/>"
    "<vlan><tag id='42'/></vlan>"
    "</interface>")

NO_PASSTHROUGH = "host doesn't support passthrough of host PCI devices"
PCI_RE = re.compile(r'^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$')


class EmbedLabTest(unittest.TestCase):
    def setUp(self):
        self.lab = lab.EmbedLab()
        self.addCleanup(self.lab.close)
        self.lab.define(lab.s390x_guest('zrlab-a'))
        self.lab.define(lab.s390x_guest('zrlab-b'))

    def test_two_guests_config_attach_read_back(self):
        self.assertEqual(sorted(self.lab.list_names()), ['zrlab-a', 'zrlab-b'])
        self.assertEqual(self.lab.list_names(all=False), [])

        self.lab.attach('zrlab-a', HOSTDEV_ZPCI, config=True)

        devs = self.lab.devices('zrlab-a')
        self.assertEqual(len(devs), 1, devs)
        d = devs[0]
        self.assertEqual(d['kind'], 'hostdev')
        self.assertEqual(d['source'], '0002:00:00.0')
        self.assertTrue(d['managed'])
        self.assertEqual(d['driver'], 'vfio')
        self.assertEqual((d['zpci_uid'], d['zpci_fid']), (0x0001, 0x00000000))
        # libvirt assigns the guest-side slot itself
        self.assertIsNotNone(d['guest_address'])
        self.assertRegex(d['guest_address'], PCI_RE)
        self.assertEqual(self.lab.devices('zrlab-b'), [])

    def test_interface_gets_zpci_filled_in(self):
        self.lab.attach('zrlab-b', INTERFACE)
        (d,) = self.lab.devices('zrlab-b')
        self.assertEqual(d['kind'], 'interface')
        self.assertEqual(d['source'], '0003:00:00.0')
        self.assertEqual(d['mac'], '02:00:00:00:00:01')
        self.assertEqual(d['vlan'], [42])
        self.assertIsNone(d['virtualport'])
        self.assertEqual((d['zpci_uid'], d['zpci_fid']), (0x0001, 0x00000000))
        self.assertRegex(d['guest_address'], PCI_RE)

    def test_zpci_uid_clash_and_detach(self):
        self.lab.attach('zrlab-a', HOSTDEV_ZPCI)
        clash = lab.hostdev_xml('0002:00:01.0', zpci_uid=1, zpci_fid=7)
        with self.assertRaises(lab.VirshError) as cm:
            self.lab.attach('zrlab-a', clash)
        self.assertIn('is already reserved', cm.exception.stderr)
        # a hostdev is found by its source alone on detach
        self.lab.detach('zrlab-a', lab.hostdev_xml('0002:00:00.0'))
        self.assertEqual(self.lab.devices('zrlab-a'), [])

    def test_root_is_locked_by_its_opener(self):
        # `virsh event --loop` opens the root and keeps it until it is stopped
        holder = subprocess.Popen(['virsh', '-c', self.lab.uri, 'event', '--all', '--loop'],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        pidfile = os.path.join(self.lab.root, 'run', 'qemu', 'driver.pid')
        try:
            # Wait for the holder's lock by looking at its open files, not by opening
            # the root ourselves: that would race it for the very same lock.
            deadline = time.monotonic() + 30
            while not _holds(holder.pid, pidfile):
                if holder.poll() is not None:
                    self.fail('holder exited: ' + holder.stderr.read().decode())
                self.assertLess(time.monotonic(), deadline, 'holder never took the root')
                time.sleep(0.05)
            with self.assertRaises(lab.VirshError) as cm:
                self.lab.list_names()
            self.assertIn("Failed to acquire pid file '%s'" % pidfile, cm.exception.stderr)
        finally:
            holder.terminate()
            holder.communicate(timeout=30)
        self.assertEqual(sorted(self.lab.list_names()), ['zrlab-a', 'zrlab-b'])


def _holds(pid, path):
    fd_dir = '/proc/%d/fd' % pid
    try:
        fds = os.listdir(fd_dir)
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(os.path.join(fd_dir, fd)) == path:
                return True
        except OSError:
            pass
    return False


class SystemLabTest(unittest.TestCase):
    # libvirtd is shared by everyone testing on this machine, often running this very
    # file at once: names carry this process's pid, so runs never clean up each other
    # (and no longer start with the zrtest-lab- that older copies of this file remove).
    PREFIX = 'zrapply-lab-%d-' % os.getpid()

    @classmethod
    def setUpClass(cls):
        cls.lab = lab.SystemLab()

    def setUp(self):
        self.lab.cleanup(self.PREFIX)
        self.addCleanup(self.lab.cleanup, self.PREFIX)

    def test_pci_node_devices(self):
        devs = lab.SystemDaemon.pci_node_devices()
        self.assertTrue(devs, 'libvirtd lists no PCI node devices')
        for d in devs:
            self.assertRegex(d, PCI_RE)
        self.assertEqual(lab.node_name_to_pci('pci_0000_00_01_0'), '0000:00:01.0')

    def test_live_attach_fails_without_vfio(self):
        name = self.PREFIX + 'live'
        self.lab.define(lab.s390x_guest(name))
        self.lab.start(name)
        self.assertTrue(self.lab.is_active(name))
        # The guest crashes as soon as its firmware finds no boot device: on a loaded
        # machine that takes a moment after start returns.
        deadline = time.monotonic() + 30
        state = self.lab.state(name)
        while not state.startswith('crashed') and time.monotonic() < deadline:
            time.sleep(0.2)
            state = self.lab.state(name)
        self.assertTrue(state.startswith('crashed'), state)

        with self.assertRaises(lab.VirshError) as cm:
            self.lab.attach(name, HOSTDEV_ZPCI, config=False, live=True)
        self.assertRegex(cm.exception.stderr, lab.NO_VFIO_RE)

        no_driver = lab.hostdev_xml('0002:00:00.0', zpci_uid=1, driver=None)
        with self.assertRaises(lab.VirshError) as cm:
            self.lab.attach(name, no_driver, config=False, live=True)
        self.assertIn(NO_PASSTHROUGH, cm.exception.stderr)

        # live+config: the definition is written only if the live part succeeds
        with self.assertRaises(lab.VirshError) as cm:
            self.lab.attach(name, HOSTDEV_ZPCI, config=True, live=True)
        self.assertRegex(cm.exception.stderr, lab.NO_VFIO_RE)
        self.assertEqual(self.lab.devices(name), [])

        # config alone works on a running guest, and only the definition has it
        self.lab.attach(name, HOSTDEV_ZPCI, config=True)
        self.assertEqual([d['source'] for d in self.lab.devices(name)], ['0002:00:00.0'])
        self.assertEqual(self.lab.devices(name, inactive=False), [])
        self.assertTrue(self.lab.is_active(name))

        self.lab.destroy(name)
        self.assertFalse(self.lab.is_active(name))
        # now the definition holds a hostdev, and the guest cannot start any more
        with self.assertRaises(lab.VirshError) as cm:
            self.lab.start(name)
        self.assertRegex(cm.exception.stderr, lab.NO_VFIO_RE)

    def test_cleanup_removes_only_prefixed(self):
        # Other tests use the same daemon at the same time, so only guests this test
        # made are looked at: two with the prefix, one bystander without it.
        bystander = 'zrtestkeep-' + self.PREFIX.rstrip('-')
        self.lab.define(lab.s390x_guest(self.PREFIX + 'x'))
        self.lab.define(lab.s390x_guest(self.PREFIX + 'y'))
        self.lab.define(lab.s390x_guest(bystander))
        self.addCleanup(self.lab.cleanup, bystander)
        self.lab.start(self.PREFIX + 'y')
        self.lab.cleanup(self.PREFIX)
        names = self.lab.list_names()
        self.assertNotIn(self.PREFIX + 'x', names)
        self.assertNotIn(self.PREFIX + 'y', names)
        self.assertIn(bystander, names)


class RunToolTest(unittest.TestCase):
    def test_stdin_env_and_exit_status(self):
        rc, out, err = lab.run_tool(['-c', 'echo "$ZRLAB_X"; cat; echo oops >&2; exit 3'],
                                    stdin='in\n', env={'ZRLAB_X': 'x'}, binary='/bin/sh')
        self.assertEqual((rc, out, err), (3, 'x\nin\n', 'oops\n'))

    def test_version(self):
        rc, out, err = lab.run_tool(['--version'])   # skips until the binary exists
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.strip(), 'no version on stdout')


if __name__ == '__main__':
    lab.main()
