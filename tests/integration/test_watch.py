#!/usr/bin/env python3
"""zpci-reconcile watch against a real libvirtd on qemu:///system (issue 15).

SharedWatchTest   the machine's libvirtd, shared: only guests named zrwatch-<pid>-* are
                  created and removed, sources come from a PCI domain of this process's
                  own (--no-host-check), and the tool reaches the daemon through a socket
                  symlink of the test's own, so its per-URI apply lock never meets another
                  test's.
RestartWatchTest  a libvirtd of the test's own (lab.PrivateDaemon), killed and started
                  again under a running watch: the shared daemon is never stopped.
RemoteWatchTest   watch over qemu+tcp:// (tests/tcpdaemon.py): a config-only change seen
                  through the daemon's event (libvirt 11.3) or the poll (9.0), the poll
                  at its full rate on both.
EmbedUriWatchTest watch on a qemu:///embed root whose inventory's uri changes to one the
                  process cannot open any more.
CliWatchTest      option errors, no libvirt.

The test waits for watch's first pass through systemd's notify protocol: NOTIFY_SOCKET
points at a datagram socket the test reads (READY=1, STATUS=, RELOADING=1). Every wait is
a deadline on a condition; the only timed expectations are the issue's: a repair within
5 s, an exit within 5 s of SIGTERM.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import lab
from lab import hostdev_xml, s390x_guest
from tcpdaemon import TcpDaemon

PREFIX = 'zrwatch-%d-' % os.getpid()
FAKE_DOMAIN = 0x1000 + (os.getpid() * 7) % 0xe000
REPAIR_S = 5   # the issue: drift is repaired within 5 s
EXIT_S = 5     # the issue: SIGTERM ends watch within 5 s


def fake(n):
    return '%04x:%02x:00.0' % (FAKE_DOMAIN, n)


def write_inventory(path, guests, via_rename=True):
    """guests: {name: [source, ...]}; written to a temp file renamed over path."""
    lines = ['version: 1', 'guests:']
    for name, srcs in guests.items():
        lines.append('  %s:' % name)
        lines.append('    hostdevs:' + ('' if srcs else ' []'))
        lines += ['      - source: %s' % s for s in srcs]
    text = '\n'.join(lines) + '\n'
    tmp = path + '.tmp' if via_rename else path
    with open(tmp, 'w') as f:
        f.write(text)
    if via_rename:
        os.rename(tmp, path)


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError('not within %ss: %s' % (timeout, what))
        time.sleep(0.1)


class Notify:
    """A datagram socket as systemd's NOTIFY_SOCKET; collects every message."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def read(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (socket.timeout, BlockingIOError):
                return self.messages

    def count(self, key):
        return sum(1 for m in self.read() for line in m.split('\n') if line.startswith(key))

    def wait(self, key, n=1, timeout=60):
        wait_until(lambda: self.count(key) >= n, timeout, '%d x %s on NOTIFY_SOCKET (got %r)'
                   % (n, key, self.messages))

    def close(self):
        self.sock.close()


def wait_repairs_counted(path, n, timeout=10):
    """The metrics file watch wrote, once it counts n repairs.  It is written after the
    report is printed: on a loaded machine it can lag."""
    def counted():
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        return text if re.search(r'(?m)^zpci_reconcile_watch_repairs_total %d$' % n, text) else None
    return wait_until(counted, timeout, 'the metrics file counts %d repair(s)' % n)


class Watch:
    """A running `zpci-reconcile watch`; stdout and stderr are collected by threads."""

    def __init__(self, args, env):
        self.proc = lab.start_tool(args, env=env)
        self.out, self.err = [], []
        self.threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.out)),
                        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err))]
        for t in self.threads:
            t.daemon = True
            t.start()

    @staticmethod
    def _pump(stream, into):
        for line in stream:
            into.append(line)

    def stdout(self):
        return ''.join(self.out)

    def stderr(self):
        return ''.join(self.err)

    def stop(self, timeout=EXIT_S):
        """SIGTERM; returns the exit status (None when it did not end in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except Exception:
            return None
        for t in self.threads:
            t.join(timeout=10)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class WatchTestCase(unittest.TestCase):
    lab = None
    uri = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='zrwatch-test-')
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.inv = os.path.join(self.dir, 'inventory.yaml')

    def start_watch(self, *extra, env=None):
        """watch on self.inv; returns (Watch, Notify) once the first pass is done."""
        notify = Notify(os.path.join(self.dir, 'notify-%d' % len(os.listdir(self.dir))))
        self.addCleanup(notify.close)
        e = {'LIBVIRT_DEFAULT_URI': None, 'NOTIFY_SOCKET': notify.path}
        e.update(env or {})
        w = Watch(['watch', self.inv, '-c', self.uri, '--no-host-check'] + list(extra), e)
        self.addCleanup(w.kill)
        try:
            notify.wait('READY=1')
        except AssertionError:
            w.kill()
            self.fail('watch never got ready: %s%s' % (w.stdout(), w.stderr()))
        return w, notify

    def sources(self, name, inactive=True):
        return sorted(d['source'] for d in self.lab.devices(name, inactive=inactive))

    def wait_sources(self, name, want, timeout=REPAIR_S, w=None):
        try:
            wait_until(lambda: self.sources(name) == sorted(want), timeout,
                       '%s holds %s' % (name, want))
        except AssertionError as e:
            raise AssertionError('%s; has %s; watch said:\n%s%s' % (
                e, self.sources(name), w.stdout() if w else '', w.stderr() if w else ''))


class SharedWatchTest(lab.OwnSystemURICase, WatchTestCase):
    PREFIX = PREFIX
    SOCK_PREFIX = 'zrwatch-sock-'

    def guest(self, short, srcs, running=False):
        name = PREFIX + short
        self.lab.define(s390x_guest(name, ''.join(hostdev_xml(s) for s in srcs)))
        self.addCleanup(self.lab.undefine, name)
        if running:
            self.lab.start(name)
            self.addCleanup(lambda: self.lab.is_active(name) and self.lab.destroy(name))
        return name

    def test_detach_behind_its_back_comes_back(self):
        g = self.guest('detach', [fake(1)])
        write_inventory(self.inv, {g: [fake(1)]})
        metrics = os.path.join(self.dir, 'watch.prom')
        w, _ = self.start_watch('--metrics-file', metrics)
        self.assertEqual(w.stdout(), '', 'a guest in sync is not reported')
        self.lab.detach(g, hostdev_xml(fake(1)), config=True)
        self.wait_sources(g, [fake(1)], w=w)
        wait_until(lambda: 'attach hostdev %s' % fake(1) in w.stdout(), 10, 'the repair printed')
        self.assertIn('Apply: 1 attached', w.stdout())
        text = wait_repairs_counted(metrics, 1)
        self.assertIn('# TYPE zpci_reconcile_watch_repairs_total counter', text)
        self.assertRegex(text, r'zpci_reconcile_watch_last_event_timestamp_seconds [1-9]')
        # the shared daemon keeps its guests in /etc/libvirt/qemu: followed (issue 27)
        self.assertRegex(text, r'(?m)^zpci_reconcile_watch_definitions_followed 1$')
        promtool = shutil.which('promtool')
        if promtool:
            check = subprocess.run([promtool, 'check', 'metrics'], input=text, text=True,
                                   capture_output=True)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertEqual(w.stop(), 0)

    def test_redefined_without_the_device_is_repaired(self):
        g = self.guest('redefine', [fake(2)])
        write_inventory(self.inv, {g: [fake(2)]})
        w, _ = self.start_watch()
        xml = re.sub(r'<hostdev.*?</hostdev>\s*', '', self.lab.dumpxml(g), flags=re.S)
        self.lab.define(xml)
        self.wait_sources(g, [fake(2)], w=w)
        self.assertEqual(w.stop(), 0)

    def test_guest_defined_after_start_is_converged(self):
        g = PREFIX + 'later'
        write_inventory(self.inv, {g: [fake(3)]})
        w, _ = self.start_watch()
        self.assertIn("'%s'" % g, w.stdout() + w.stderr(), 'the missing guest is reported')
        self.guest('later', [])
        self.wait_sources(g, [fake(3)], w=w)
        self.assertEqual(w.stop(), 0)

    def test_inventory_renamed_over_is_applied(self):
        g = self.guest('rename', [fake(4)])
        write_inventory(self.inv, {g: [fake(4)]})
        w, notify = self.start_watch()
        write_inventory(self.inv, {g: [fake(4), fake(5)]})
        self.wait_sources(g, [fake(4), fake(5)], w=w)
        notify.wait('RELOADING=1')
        # and an edit in place (no rename) too
        write_inventory(self.inv, {g: [fake(5)]}, via_rename=False)
        self.wait_sources(g, [fake(5)], w=w)
        # a reload reads the file and re-adds its watches: that is no change of it
        reloads = notify.count('RELOADING=1')
        self.lab.detach(g, hostdev_xml(fake(5)), config=True)
        self.wait_sources(g, [fake(5)], w=w)
        self.assertEqual(notify.count('RELOADING=1'), reloads, notify.messages)
        self.assertEqual(w.stop(), 0)

    def test_sighup_rereads_the_inventory(self):
        # The inventory is a symlink whose target's path has a symlink of its own
        # (inventory.yaml -> shared/current/inventory.yaml, current -> 1): watch follows
        # the path as given, not links inside a link's target, so only SIGHUP can bring
        # the swapped-in file in.
        g = self.guest('hup', [fake(6)])
        shared = os.path.join(self.dir, 'shared')
        for n, src in ((1, fake(6)), (2, fake(7))):
            os.makedirs(os.path.join(shared, str(n)))
            write_inventory(os.path.join(shared, str(n), 'inventory.yaml'), {g: [src]})
        os.symlink('1', os.path.join(shared, 'current'))
        os.symlink('shared/current/inventory.yaml', self.inv)
        w, notify = self.start_watch()
        tmp = os.path.join(shared, 'current.tmp')
        os.symlink('2', tmp)
        os.rename(tmp, os.path.join(shared, 'current'))
        w.proc.send_signal(signal.SIGHUP)
        notify.wait('RELOADING=1')
        notify.wait('READY=1', n=2)
        self.wait_sources(g, [fake(7)], w=w)
        self.assertEqual(w.stop(), 0)

    def test_invalid_edit_changes_nothing(self):
        g = self.guest('invalid', [fake(8)])
        write_inventory(self.inv, {g: [fake(8)]})
        w, notify = self.start_watch()
        bad = os.path.join(self.dir, 'bad.tmp')
        with open(bad, 'w') as f:
            f.write('version: 1\nguests:\n  %s:\n    hostdevs:\n      - source: 0000:zz:00.0\n'
                    % g)
        os.rename(bad, self.inv)
        wait_until(lambda: re.search(r'inventory\.yaml:5:\d+: error', w.stderr()), 10,
                   'the position of the error on stderr: ' + w.stderr())
        notify.wait('READY=1', n=2)
        self.assertIsNone(w.proc.poll(), 'watch still runs')
        self.assertEqual(self.sources(g), [fake(8)])
        # the last good inventory is still in force: drift is still repaired
        self.lab.detach(g, hostdev_xml(fake(8)), config=True)
        self.wait_sources(g, [fake(8)], w=w)
        self.assertEqual(w.stop(), 0)

    def test_changed_by_someone_else_is_named(self):
        g = self.guest('fight', [fake(15)])
        write_inventory(self.inv, {g: [fake(15)]})
        w, _ = self.start_watch()
        for _ in range(3):
            self.lab.detach(g, hostdev_xml(fake(15)), config=True)
            # the third repair is spaced out by the reversal backoff (3 s)
            self.wait_sources(g, [fake(15)], timeout=REPAIR_S + 5, w=w)
        wait_until(lambda: "guest '%s' is changed by someone else" % g in w.stderr(), 10,
                   'the warning: ' + w.stderr())
        self.assertEqual(w.stop(), 0)

    def test_plan_and_apply_by_hand_while_watching(self):
        g = self.guest('byhand', [fake(16)])
        write_inventory(self.inv, {g: [fake(16)]})
        w, _ = self.start_watch()
        env = {'LIBVIRT_DEFAULT_URI': None}
        for verb in ('plan', 'apply'):
            rc, out, err = lab.run_tool([verb, self.inv, '-c', self.uri, '--no-host-check'],
                                        env=env)
            self.assertEqual(rc, 0, '%s: %s%s' % (verb, out, err))
        self.assertEqual(w.stop(), 0)

    def test_repair_waits_for_a_manual_apply_lock(self):
        # A manual apply of another guest, held stopped before its attach with the
        # host's lock taken: watch's repair meets the lock, says so, and is retried
        # once the apply ends.
        g = self.guest('locked', [fake(17)])
        other = self.guest('locked-other', [])
        write_inventory(self.inv, {g: [fake(17)]})
        w, _ = self.start_watch()
        manual = os.path.join(self.dir, 'manual.yaml')
        write_inventory(manual, {other: [fake(18)]})
        env = lab.fault_env('virDomainAttachDeviceFlags:1:stop')
        env['LIBVIRT_DEFAULT_URI'] = None
        proc = lab.start_tool(['apply', manual, '-c', self.uri, '--no-host-check'], env=env)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        try:
            lab.wait_stopped(proc)
            self.lab.detach(g, hostdev_xml(fake(17)), config=True)
            wait_until(lambda: 'another zpci-reconcile apply (pid %d)' % proc.pid in w.stdout(),
                       10, 'the lock met: ' + w.stdout() + w.stderr())
            self.assertEqual(self.sources(g), [])
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, out + err)
        self.wait_sources(g, [fake(17)], timeout=REPAIR_S + 10, w=w)
        self.assertEqual(self.sources(other), [fake(18)])
        self.assertEqual(w.stop(), 0)

    def test_sigterm_exits_0_within_5s(self):
        g = self.guest('term', [fake(9)])
        write_inventory(self.inv, {g: [fake(9)]})
        w, _ = self.start_watch('--resync', '1h')
        self.assertEqual(w.stop(timeout=EXIT_S), 0, w.stderr())

    def test_notify_socket_gets_ready_and_status(self):
        g = self.guest('notify', [fake(10)])
        write_inventory(self.inv, {g: [fake(10)]})
        # WatchdogSec=1s as systemd passes it: pings every half of it
        w, notify = self.start_watch(env={'WATCHDOG_USEC': '1000000'})
        notify.wait('WATCHDOG=1', n=2, timeout=10)
        # reading the inventory is no change of it: no reload without one
        self.assertEqual(notify.count('RELOADING=1'), 0, notify.messages)
        status = [line for m in notify.read() for line in m.split('\n')
                  if line.startswith('STATUS=')]
        self.assertTrue(status, notify.messages)
        self.assertIn('watching 1 guest on default: 1 in sync, 0 repairs', status[-1])
        self.assertEqual(w.stop(), 0)

    def test_refused_repair_backs_off(self):
        # A running guest whose definition has the device and whose live state lacks it:
        # the live attach is refused by libvirt (no VFIO here), again and again.
        g = self.guest('refused', [], running=True)
        if not self.lab.is_active(g):
            self.skipTest('the s390x guest does not stay active')
        self.lab.attach(g, hostdev_xml(fake(11)), config=True, live=False)
        write_inventory(self.inv, {g: [fake(11)]})
        w, _ = self.start_watch('-o', 'json')
        t0 = time.monotonic()
        wait_until(lambda: len(w.out) >= 2, 30, 'a retry of the refused repair')
        time.sleep(max(0, 20 - (time.monotonic() - t0)))
        lines = [json.loads(line) for line in w.out]
        attempts = [d for d in lines if any(a['result'] == 'failed' for a in d['actions'])]
        # with 3 s, 6 s, 12 s between attempts: 3 or 4 in 20 s; without backoff hundreds
        self.assertGreaterEqual(len(attempts), 2, w.stdout())
        self.assertLessEqual(len(attempts), 5, w.stdout())
        self.assertEqual(self.sources(g, inactive=False), [])
        self.assertEqual(w.stop(), 0)


    def test_half_written_inventory_is_never_applied(self):
        # issue 22 #1: a writer that pauses between two writes to the inventory (a config
        # tool writing in chunks, cat over a pipe, scp, an editor writing in place).  The
        # first half is a valid inventory missing a device: read half-way, watch would
        # detach that device and attach it again once the rest arrived.
        g = self.guest('half', [fake(20), fake(21)])
        write_inventory(self.inv, {g: [fake(20), fake(21)]})
        metrics = os.path.join(self.dir, 'watch.prom')
        w, notify = self.start_watch('--metrics-file', metrics)
        head = 'version: 1\nguests:\n  %s:\n    hostdevs:\n      - source: %s\n' % (g, fake(20))
        tail = '      - source: %s\n      - source: %s\n' % (fake(21), fake(22))
        with open(self.inv, 'w') as f:
            f.write(head)
            f.flush()
            # well past the old 0.2 s of quiet; the device must stay all along
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                self.assertEqual(self.sources(g), [fake(20), fake(21)],
                                 'half an inventory applied: ' + w.stdout() + w.stderr())
                time.sleep(0.1)
            f.write(tail)
        # the complete file is applied once it is closed
        self.wait_sources(g, [fake(20), fake(21), fake(22)], w=w)
        notify.wait('RELOADING=1')
        self.assertNotIn('detach hostdev', w.stdout())
        self.assertEqual(w.stop(), 0, w.stderr())
        self.assertNotIn('detach hostdev', w.stdout())
        with open(metrics) as f:
            text = f.read()
        # one repair: the complete file's attach, no detach and re-attach before it
        self.assertRegex(text, r'zpci_reconcile_watch_repairs_total 1\b')

    def test_function_moved_by_hand_between_inventory_guests(self):
        # issue 22 #2: a function moved by hand from guest A to guest B, both in the
        # inventory, which gives it to A.  A's repair must not call B "not named by the
        # inventory" nor fail: B gives the function up in the same run, before A's attach.
        a = self.guest('move-a', [fake(23)])
        b = self.guest('move-b', [])
        write_inventory(self.inv, {a: [fake(23)], b: []})
        w, _ = self.start_watch('-o', 'json')
        # one virsh process: A's repair must meet the function held by B
        dev = os.path.join(self.dir, 'dev.xml')
        with open(dev, 'w') as f:
            f.write(hostdev_xml(fake(23)))
        self.lab.virsh('detach-device %s %s --config ; attach-device %s %s --config'
                       % (a, dev, b, dev))
        self.wait_sources(a, [fake(23)], timeout=REPAIR_S + 5, w=w)
        self.wait_sources(b, [], w=w)
        self.assertEqual(w.stop(), 0, w.stderr())
        text = w.stdout() + w.stderr()
        self.assertNotIn('not named by the inventory', text)
        self.assertNotIn('does not name', text)
        for line in w.out:
            doc = json.loads(line)
            self.assertEqual(doc['errors'], [], line)
            self.assertEqual(doc['summary']['failed'], 0, line)
            self.assertEqual(doc['summary']['guests_failed'], 0, line)
            self.assertFalse([a_ for a_ in doc['actions'] if a_['result'] != 'done'], line)

    def test_unread_notify_socket_never_blocks(self):
        # issue 22 #5: a NOTIFY_SOCKET nobody reads holds ~10 datagrams; status messages
        # beyond that must be dropped, not block repairs or SIGTERM.
        names = [PREFIX + 'nread%02d' % i for i in range(22)]
        self.lab.define_many([s390x_guest(n, hostdev_xml(fake(0x40 + i)))
                              for i, n in enumerate(names)])
        for n in names:
            self.addCleanup(self.lab.undefine, n)
        write_inventory(self.inv, {n: [fake(0x40 + i)] for i, n in enumerate(names)})
        # read up to READY=1, never after it
        notify = Notify(os.path.join(self.dir, 'notify-unread'))
        self.addCleanup(notify.close)
        w = Watch(['watch', self.inv, '-c', self.uri, '--no-host-check'],
                  {'LIBVIRT_DEFAULT_URI': None, 'NOTIFY_SOCKET': notify.path})
        self.addCleanup(w.kill)
        notify.wait('READY=1')
        dev = os.path.join(self.dir, 'dev-%d.xml')
        cmds = []
        for i, n in enumerate(names):
            with open(dev % i, 'w') as f:
                f.write(hostdev_xml(fake(0x40 + i)))
            cmds.append('detach-device %s %s --config' % (n, dev % i))
        self.lab.virsh(' ; '.join(cmds))
        for i, n in enumerate(names):
            self.wait_sources(n, [fake(0x40 + i)], timeout=30, w=w)
        self.assertEqual(w.stdout().count('Apply: 1 attached'), len(names), w.stdout())
        self.assertEqual(w.stop(timeout=EXIT_S), 0, w.stderr())

    def test_symlinked_directory_swap_is_followed(self):
        # issue 22 #8: the usual release layout, DIR/current -> releases/N, swapped
        # atomically (ln -s + rename): watch follows the path as given, without SIGHUP.
        g = self.guest('release', [fake(24)])
        for n, src in ((1, fake(24)), (2, fake(25))):
            os.makedirs(os.path.join(self.dir, 'releases', str(n)))
            write_inventory(os.path.join(self.dir, 'releases', str(n), 'inv.yaml'), {g: [src]})
        os.symlink('releases/1', os.path.join(self.dir, 'current'))
        self.inv = os.path.join(self.dir, 'current', 'inv.yaml')
        w, notify = self.start_watch()
        tmp = os.path.join(self.dir, 'current.tmp')
        os.symlink('releases/2', tmp)
        os.rename(tmp, os.path.join(self.dir, 'current'))
        self.wait_sources(g, [fake(25)], w=w)
        notify.wait('RELOADING=1')
        # and the new target's file is watched: an edit there is applied too
        write_inventory(self.inv, {g: [fake(25), fake(26)]})
        self.wait_sources(g, [fake(25), fake(26)], w=w)
        self.assertEqual(w.stop(), 0, w.stderr())

    def test_hosts_one_process_each(self):
        # two hosts: the same daemon through two socket paths, two URIs of their own
        g1 = self.guest('host1', [fake(13)])
        g2 = self.guest('host2', [fake(14)])
        os.symlink('/run/libvirt/libvirt-sock', os.path.join(self.dir, 'sock2'))
        uri2 = 'qemu:///system?socket=%s/sock2' % self.dir
        invdir = os.path.join(self.dir, 'inv')
        os.mkdir(invdir)
        self.inv = os.path.join(invdir, 'inventory.yaml')

        def hosts_inventory(path, src2):
            with open(path, 'w') as f:
                f.write('version: 1\nhosts:\n'
                        '  one:\n    uri: "%s"\n    guests:\n      %s:\n        hostdevs:\n'
                        '          - source: %s\n'
                        '  two:\n    uri: "%s"\n    guests:\n      %s:\n        hostdevs:\n'
                        '          - source: %s\n' % (self.uri, g1, fake(13), uri2, g2, src2))

        hosts_inventory(self.inv, fake(14))
        notify = Notify(os.path.join(self.dir, 'notify-hosts'))
        self.addCleanup(notify.close)
        w = Watch(['watch', self.inv, '--no-host-check', '-o', 'json'],
                  {'LIBVIRT_DEFAULT_URI': None, 'NOTIFY_SOCKET': notify.path})
        self.addCleanup(w.kill)
        notify.wait('READY=1')
        self.assertIn('watching 2 hosts', ''.join(notify.read()))
        # each host's process repairs its own guest
        for g, src in ((g1, fake(13)), (g2, fake(14))):
            # READY=1 comes from the supervisor once the children started, not
            # after their first passes: a few seconds more for those
            self.lab.detach(g, hostdev_xml(src), config=True)
            self.wait_sources(g, [src], timeout=REPAIR_S + 10, w=w)
        docs = [json.loads(line) for line in w.out]
        self.assertEqual(sorted(d['hosts'][0]['host'] for d in docs), ['one', 'two'], w.stdout())
        # SIGHUP to the supervisor reaches the hosts' processes: the directory is
        # swapped, so inotify cannot see the new file
        newdir = os.path.join(self.dir, 'inv.new')
        os.mkdir(newdir)
        hosts_inventory(os.path.join(newdir, 'inventory.yaml'), fake(19))
        os.rename(invdir, os.path.join(self.dir, 'inv.old'))
        os.rename(newdir, invdir)
        w.proc.send_signal(signal.SIGHUP)
        self.wait_sources(g2, [fake(19)], w=w)
        self.assertEqual(self.sources(g1), [fake(13)])
        self.assertEqual(w.stop(), 0, w.stderr())


class RestartWatchTest(WatchTestCase):
    """libvirtd killed and started again under watch: a daemon of the test's own."""

    def setUp(self):
        super().setUp()
        self.daemon = lab.PrivateDaemon(prefix='zrwatch-daemon-')
        self.addCleanup(self.daemon.close)
        self.daemon.start()
        self.lab = self.daemon.lab
        self.uri = self.daemon.uri

    def test_reconnects_and_repairs(self):
        g = 'zrwatch-restart'
        self.lab.define(s390x_guest(g, hostdev_xml(fake(12))))
        write_inventory(self.inv, {g: [fake(12)]})
        w, _ = self.start_watch()
        self.daemon.kill(signal.SIGKILL)
        wait_until(lambda: 'lost the connection' in w.stderr(), 30, 'the loss noticed')
        self.daemon.start()
        wait_until(lambda: 'connected again' in w.stderr(), 60,
                   'reconnected: ' + w.stderr())
        self.assertIsNone(w.proc.poll())
        self.lab.detach(g, hostdev_xml(fake(12)), config=True)
        self.wait_sources(g, [fake(12)], w=w)
        self.assertEqual(w.stop(), 0)


class EmbedUriWatchTest(unittest.TestCase):
    """watch on a qemu:///embed root (issue 22 #12): a process that opened an embedded
    root cannot open a local daemon URI or a second root, so an inventory whose uri
    changes to one of those is refused like added or removed hosts."""

    def test_uri_this_process_cannot_open_is_refused(self):
        root = lab.EmbedLab()
        self.addCleanup(root.close)
        d = tempfile.mkdtemp(prefix='zrwatch-embed-')
        self.addCleanup(shutil.rmtree, d, True)
        g = 'zrwatch-embed'
        root.define(s390x_guest(g, hostdev_xml(fake(30))))
        inv = os.path.join(d, 'inventory.yaml')

        def inventory(uri, srcs):
            with open(inv + '.tmp', 'w') as f:
                f.write('version: 1\nuri: "%s"\nguests:\n  %s:\n    hostdevs:\n' % (uri, g))
                f.write(''.join('      - source: %s\n' % s for s in srcs))
            os.rename(inv + '.tmp', inv)

        inventory(root.uri, [fake(30)])
        notify = Notify(os.path.join(d, 'notify'))
        self.addCleanup(notify.close)
        w = Watch(['watch', inv, '--no-host-check'],
                  {'LIBVIRT_DEFAULT_URI': None, 'NOTIFY_SOCKET': notify.path})
        self.addCleanup(w.kill)
        notify.wait('READY=1')
        other_root = 'qemu:///embed?root=' + os.path.join(d, 'other-root')
        for n, uri in enumerate(('qemu:///system', other_root), start=1):
            inventory(uri, [fake(31)])
            wait_until(lambda: w.stderr().count('needs a restart') >= n, 30,
                       'the change refused: ' + w.stdout() + w.stderr())
            self.assertIn(uri, w.stderr())
        self.assertNotIn("Missing URI parameter", w.stderr())
        self.assertNotIn('retrying', w.stderr())
        self.assertEqual(w.stdout(), '', 'nothing applied from a refused inventory')
        # the last good inventory and its connection are still in force: an edit on the
        # same root is applied
        inventory(root.uri, [fake(30), fake(32)])
        wait_until(lambda: 'attach hostdev %s' % fake(32) in w.stdout(), 30,
                   'the edit applied: ' + w.stdout() + w.stderr())
        self.assertEqual(w.stop(), 0, w.stderr())
        self.assertEqual(sorted(dv['source'] for dv in root.devices(g)), [fake(30), fake(32)])


def daemon_version(uri):
    """The libvirt version of the daemon behind uri, as a tuple."""
    out = subprocess.run(['virsh', '-c', uri, 'version', '--daemon'], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r'Running against daemon: *(\d+)\.(\d+)\.(\d+)', out)
    if not m:
        raise AssertionError('no daemon version in: ' + out)
    return tuple(int(x) for x in m.groups())


class RemoteWatchTest(WatchTestCase):
    """watch on a host reached over qemu+tcp:// (a libvirtd of the test's own,
    tests/tcpdaemon.py): its definitions directory is not this process's to follow, so a
    config-only change is seen through the daemon's "defined" event where it sends one
    (libvirt 11.3), else by the poll, 64 guests a second (libvirt 9.0 sends no event).
    The poll keeps its full rate on both: 11.3 sends no event for detach-device-alias
    --config."""

    @classmethod
    def setUpClass(cls):
        lab.require_root()
        cls.tcp = TcpDaemon().start()
        cls.uri = cls.tcp.uri
        cls.lab = cls.tcp.lab()
        cls.version = daemon_version(cls.uri)

    @classmethod
    def tearDownClass(cls):
        cls.tcp.stop()

    def test_config_only_change_is_repaired_and_the_poll_keeps_its_rate(self):
        g = PREFIX + 'remote'
        self.lab.define(s390x_guest(g, hostdev_xml(fake(60))))
        self.addCleanup(self.lab.undefine, g)
        write_inventory(self.inv, {g: [fake(60)]})
        metrics = os.path.join(self.dir, 'watch.prom')
        counts = os.path.join(self.dir, 'counts')
        started = time.monotonic()
        w, _ = self.start_watch('--metrics-file', metrics, env=lab.fault_env(counts=counts))
        self.lab.detach(g, hostdev_xml(fake(60)), config=True)
        self.wait_sources(g, [fake(60)], w=w)
        text = wait_repairs_counted(metrics, 1)
        announced = self.version >= (11, 3, 0)
        self.assertRegex(text, r'(?m)^zpci_reconcile_watch_definitions_followed 0$')
        # (anchored: each HELP line begins with the gauge's name and '1:')
        self.assertRegex(text, r'(?m)^zpci_reconcile_watch_definitions_announced %d$' % announced)
        time.sleep(4)  # a few rounds of the full-rate poll, none of a backstop's
        self.assertEqual(w.stop(), 0, w.stderr())
        ran = time.monotonic() - started
        # The poll looks the guest up by name, then reads it (the first pass reads through
        # the listing): a round every second, the first at the start, on either daemon.
        looked_up = lab.read_counts(counts).get('virDomainLookupByName', 0)
        self.assertGreaterEqual(looked_up, int(ran) - 2, (ran, self.version))


class PlanOnceWatchTest(unittest.TestCase):
    """Each guest is read and planned once per pass (issue 24): the run that repairs goes on
    from the pass's own read and plan, on the watch's connection."""

    def watch_first_pass(self, prefix, entries, pools=''):
        """Three guests of an embedded root, the last without its device, watched until the
        first pass repaired it; `entries` gives guest i's inventory entry. Returns the
        root, the guests, watch's output and the counted libvirt calls."""
        root = lab.EmbedLab()
        self.addCleanup(root.close)
        d = tempfile.mkdtemp(prefix=prefix)
        self.addCleanup(shutil.rmtree, d, True)
        names = ['%s%d' % (prefix, i) for i in range(3)]
        # the last one lacks its device: the first pass repairs it
        for i, g in enumerate(names):
            root.define(s390x_guest(g, hostdev_xml(fake(40 + i)) if i < 2 else ''))
        inv = os.path.join(d, 'inventory.yaml')
        with open(inv, 'w') as f:
            f.write('version: 1\nuri: "%s"\n%sguests:\n' % (root.uri, pools))
            f.write(''.join('  %s:\n    hostdevs:\n      - %s\n' % (g, entries(i))
                            for i, g in enumerate(names)))
        counts = os.path.join(d, 'counts')
        notify = Notify(os.path.join(d, 'notify'))
        self.addCleanup(notify.close)
        env = lab.fault_env(counts=counts)
        env.update({'LIBVIRT_DEFAULT_URI': None, 'NOTIFY_SOCKET': notify.path})
        w = Watch(['watch', inv, '--no-host-check'], env)
        self.addCleanup(w.kill)
        notify.wait('READY=1')
        wait_until(lambda: 'attach hostdev %s' % fake(42) in w.stdout(), 30,
                   'the repair printed: ' + w.stdout() + w.stderr())
        out = w.stdout()
        self.assertEqual(w.stop(), 0, w.stderr())
        return root, names, out, lab.read_counts(counts)

    def test_first_pass_reads_each_guest_once(self):
        root, names, _, c = self.watch_first_pass(
            'zrwatch-once-', lambda i: 'source: %s' % fake(40 + i))
        # one connection: the repair runs on the watch's own
        self.assertEqual(c.get('virConnectOpen', 0), 1, c)
        # one listing, shared by the pass's read and the repair's conflict check
        self.assertEqual(c.get('virConnectListAllDomains', 0), 1, c)
        # the definition poll looks each guest up and reads it (one XMLDesc per lookup);
        # besides, each guest is read once, and the repaired one once more under the lock
        # to see that nobody changed it since (before: 3 reads by the pass's plan and 3 by
        # the apply run)
        polled = c.get('virDomainLookupByName', 0)
        self.assertEqual(c.get('virDomainGetXMLDesc', 0) - polled, 3 + 1, c)
        self.assertEqual(c.get('virDomainAttachDeviceFlags', 0), 1, c)
        self.assertEqual(sorted(dv['source'] for dv in root.devices(names[2])), [fake(42)])

    def test_first_pass_with_pools_chooses_and_plans_once(self):
        # The pass chooses between its read and its plan (issue 26) and the repair goes on
        # from that choice: the first two keep what they hold, the third gets the lowest
        # free member.
        root, names, out, c = self.watch_first_pass(
            'zrwatch-pool-', lambda i: 'pool: lab',
            'pools:\n  lab: {members: [%s]}\n' % ', '.join(fake(40 + i) for i in range(4)))
        self.assertIn('attach hostdev %s (pool lab)' % fake(42), out)
        self.assertEqual(c.get('virConnectOpen', 0), 1, c)
        # one listing, shared by the read, the chooser's look at other guests and the
        # conflict check
        self.assertEqual(c.get('virConnectListAllDomains', 0), 1, c)
        # each guest read once, and under the lock each once more (a choice depends on
        # what every guest holds); a run that chose again would read all three again
        polled = c.get('virDomainLookupByName', 0)
        self.assertEqual(c.get('virDomainGetXMLDesc', 0) - polled, 3 + 3, c)
        self.assertEqual(c.get('virDomainAttachDeviceFlags', 0), 1, c)
        self.assertEqual(sorted(dv['source'] for dv in root.devices(names[2])), [fake(42)])


class CliWatchTest(unittest.TestCase):

    def test_resync_values(self):
        for bad in ('0s', '15', 'm', '-1m', '2d', '99999h'):
            rc, out, err = lab.run_tool(['watch', '/nonexistent', '--resync', bad])
            self.assertEqual(rc, 1, bad)
            self.assertIn("--resync needs a duration", err)
            self.assertIn("'%s'" % bad, err)

    def test_resync_only_for_watch(self):
        rc, out, err = lab.run_tool(['validate', '/nonexistent', '--resync', '1m'])
        self.assertEqual(rc, 1)
        self.assertIn('--resync is only for watch', err)

    def test_invalid_inventory_at_start(self):
        d = tempfile.mkdtemp(prefix='zrwatch-cli-')
        self.addCleanup(shutil.rmtree, d, True)
        p = os.path.join(d, 'inv.yaml')
        with open(p, 'w') as f:
            f.write('version: 1\nguests:\n  g:\n    hostdevs:\n      - source: 0000:zz:00.0\n')
        rc, out, err = lab.run_tool(['watch', p])
        self.assertEqual(rc, 1)
        self.assertRegex(err, r'inv\.yaml:5:\d+: error')


if __name__ == '__main__':
    lab.main()
