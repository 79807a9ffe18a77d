#!/usr/bin/env python3
"""A libvirtd that accepts connections but never answers (issue 22, defects 6 and 7).

A stopped daemon (SIGSTOP) is the simplest such daemon: the kernel still accepts the
client's connect() on its listening socket, and no RPC reply ever comes. Each test has a
daemon of its own (lab.PrivateDaemon), stops it and always lets it go on (SIGCONT) and
closes it afterwards: the shared daemon on qemu:///system is never touched.

FrozenPlanApplyTest  plan and apply give up after ZPCI_RECONCILE_CONNECT_TIMEOUT with an
                     error naming the URI and the deadline (text, JSON, metrics), and end
                     at once on SIGINT or SIGTERM while they wait; a bad inventory ends
                     them at once though the open started beside it waits.
FrozenMidApplyTest   apply whose daemon freezes mid-run fails the call in progress after
                     about the same deadline (keepalive) and skips the rest; a plan stuck
                     after the open still ends on ^C.
FrozenWatchTest      watch ends within 5 s of SIGTERM while it connects to such a daemon,
                     and when the daemon freezes under a connected watch.
ConnectTimeoutValueTest  a bad ZPCI_RECONCILE_CONNECT_TIMEOUT is an error (no daemon).

The only timed expectations are the issue's: an exit within 5 s of a signal; everything
else is a generous deadline on a condition.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import lab
from lab import hostdev_xml, s390x_guest
from test_watch import EXIT_S, Notify, Watch, fake, wait_until, write_inventory

# A run that hangs is cut off here, so that the test fails instead of blocking the suite.
HANG_S = 90


class FrozenDaemonCase(unittest.TestCase):
    """A private daemon, started; self.freeze() stops it until the test ends."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='zrfrozen-')
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.daemon = lab.PrivateDaemon(prefix='zrfrozen-daemon-')
        self.addCleanup(self.daemon.close)
        self.daemon.start()
        self.uri = self.daemon.uri
        self.inv = os.path.join(self.dir, 'inventory.yaml')
        self.metrics = os.path.join(self.dir, 'run.prom')

    def freeze(self):
        os.kill(self.daemon.pid, signal.SIGSTOP)
        # Registered after close(): cleanups run last in, first out, so the daemon goes on
        # before it is closed, whatever the test did.
        self.addCleanup(self.thaw)

    def thaw(self):
        if self.daemon.proc and self.daemon.proc.poll() is None:
            os.kill(self.daemon.pid, signal.SIGCONT)


class FrozenPlanApplyTest(FrozenDaemonCase):

    def setUp(self):
        super().setUp()
        write_inventory(self.inv, {'zrfrozen-g': []})
        self.freeze()

    def run_frozen(self, *args, timeout_s=None):
        env = {'LIBVIRT_DEFAULT_URI': None, 'ZPCI_RECONCILE_CONNECT_TIMEOUT': timeout_s}
        try:
            return lab.run_tool(list(args) + ['-c', self.uri, '--metrics-file', self.metrics,
                                              self.inv], env=env, timeout=HANG_S)
        except subprocess.TimeoutExpired:
            self.fail('%s still waits for the stopped daemon after %d s' % (args[0], HANG_S))

    def check_failed_host(self, rc, out, err, message):
        """-o json: the usual document of a host that could not be reached, and metrics."""
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)
        self.assertEqual(doc['actions'], [], out)
        host = doc['hosts'][0]
        self.assertEqual((host['host'], host['reached']), ('default', False), out)
        self.assertIn(message, host['error'], out)
        with open(self.metrics) as f:
            self.assertIn('zpci_reconcile_host_up{host="default"} 0\n', f.read())

    def test_plan_gives_up_after_the_deadline(self):
        rc, out, err = self.run_frozen('plan', timeout_s=2)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('%s did not answer within 2 s' % self.uri, out + err)

    def test_plan_json_gives_up_after_the_deadline(self):
        rc, out, err = self.run_frozen('plan', '-o', 'json', timeout_s=2)
        self.check_failed_host(rc, out, err, '%s did not answer within 2 s' % self.uri)

    def test_apply_gives_up_after_the_deadline(self):
        rc, out, err = self.run_frozen('apply', '-o', 'json', timeout_s=2)
        self.check_failed_host(rc, out, err, '%s did not answer within 2 s' % self.uri)

    def test_a_bad_inventory_does_not_wait_for_the_daemon(self):
        # --connect opens the connection while the inventory is read; an inventory that
        # fails ends the run at once, whatever that open still waits for
        with open(self.inv, 'w') as f:
            f.write('version: 1\nguests:\n  zrfrozen-g: {hostdevs: [{source: 0000:00:00.0, uid: 1}]}\n')
        for verb in ('plan', 'apply'):
            rc, out, err = self.run_frozen(verb, timeout_s=HANG_S * 2)
            self.assertEqual(rc, 1, out + err)
            self.assertIn("inventory.yaml:3:", err)
            self.assertNotIn('did not answer', out + err)

    def interrupt_while_waiting(self, verb, sig):
        env = {'LIBVIRT_DEFAULT_URI': None}     # the default deadline, 30 s
        proc = lab.start_tool([verb, '-c', self.uri, '-o', 'json', '--metrics-file',
                               self.metrics, self.inv], env=env)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.communicate()))
        time.sleep(1)       # connecting by now: nothing else can happen before
        self.assertIsNone(proc.poll(), 'ended before the signal')
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=EXIT_S)
        except subprocess.TimeoutExpired:
            self.fail('%s did not end within %d s of signal %d' % (verb, EXIT_S, sig))
        self.check_failed_host(proc.returncode, out, err, 'interrupted by signal %d' % sig)
        self.assertIn(self.uri, json.loads(out)['hosts'][0]['error'])

    def test_sigint_ends_plan_while_it_waits(self):
        self.interrupt_while_waiting('plan', signal.SIGINT)

    def test_sigint_ends_apply_while_it_waits(self):
        self.interrupt_while_waiting('apply', signal.SIGINT)

    def test_sigterm_ends_apply_while_it_waits(self):
        self.interrupt_while_waiting('apply', signal.SIGTERM)


class FrozenMidApplyTest(FrozenDaemonCase):

    def test_apply_fails_the_call_the_daemon_never_answers(self):
        # apply runs libvirt's event loop, so keepalive bounds the calls after the open
        n = 60
        names = ['zrfrozen-%02d' % i for i in range(n)]
        self.daemon.lab.define_many([s390x_guest(x) for x in names])
        write_inventory(self.inv, {x: [fake(i)] for i, x in enumerate(names)})
        env = {'LIBVIRT_DEFAULT_URI': None, 'ZPCI_RECONCILE_CONNECT_TIMEOUT': 2,
               'ZPCI_RECONCILE_APPLY_THREADS': 1}
        proc = lab.start_tool(['apply', '-v', '--no-host-check', '-o', 'json', '-c', self.uri,
                               self.inv], env=env)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.communicate()))
        for line in proc.stderr:
            if line.startswith('[30/%d] ' % n):
                break
        self.freeze()
        try:
            out, err = proc.communicate(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            self.fail('apply still waits for the stopped daemon after %d s' % HANG_S)
        self.assertEqual(proc.returncode, 1, err)
        results = [a['result'] for a in json.loads(out)['actions']]
        self.assertEqual(results.count('failed'), 1, out)
        self.assertIn('lost the connection to %s' % self.uri, err)
        self.assertEqual(results.count('done') + results.count('skipped') + 1, n, out)


    def test_sigint_still_ends_a_plan_stuck_after_the_open(self):
        # plan has no keepalive (no event loop on a daemon URI): a call stuck in libvirt
        # after the open must still end at ^C, as it always did (killed by the signal)
        write_inventory(self.inv, {'zrfrozen-g': []})
        env = lab.fault_env('virConnectListAllDomains:1:stop')
        env['LIBVIRT_DEFAULT_URI'] = None
        proc = lab.start_tool(['plan', '-c', self.uri, self.inv], env=env)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.communicate()))
        lab.wait_stopped(proc)      # connected, about to list the guests
        self.freeze()
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(1)               # in the call by now
        self.assertIsNone(proc.poll(), 'ended before the signal')
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=EXIT_S)
        except subprocess.TimeoutExpired:
            self.fail('plan did not end within %d s of ^C' % EXIT_S)
        self.assertEqual(proc.returncode, -signal.SIGINT)


class FrozenWatchTest(FrozenDaemonCase):

    def watch(self):
        notify = Notify(os.path.join(self.dir, 'notify'))
        self.addCleanup(notify.close)
        w = Watch(['watch', self.inv, '-c', self.uri, '--no-host-check'],
                  {'LIBVIRT_DEFAULT_URI': None, 'NOTIFY_SOCKET': notify.path})
        self.addCleanup(w.kill)
        return w, notify

    def assert_stops(self, w):
        rc = w.stop(timeout=EXIT_S)
        self.assertIsNotNone(rc, 'watch still runs %d s after SIGTERM: %s' % (
            EXIT_S, w.stderr()))
        self.assertEqual(rc, 0, w.stderr())

    def test_sigterm_while_connecting(self):
        write_inventory(self.inv, {'zrfrozen-g': []})
        self.freeze()
        w, _ = self.watch()
        time.sleep(1)       # in its first connection by now
        self.assertIsNone(w.proc.poll(), w.stderr())
        self.assert_stops(w)
        # a stop, not a host that could not be reached
        self.assertNotIn('retrying', w.stderr())
        self.assertNotIn('interrupted', w.stderr())

    def test_sigterm_when_the_daemon_froze_under_it(self):
        # A guest, so that watch reads its definition every second (the poll): a call
        # is under way when the daemon stops answering.
        g = 'zrfrozen-watched'
        self.daemon.lab.define(s390x_guest(g, hostdev_xml(fake(3))))
        write_inventory(self.inv, {g: [fake(3)]})
        w, notify = self.watch()
        notify.wait('READY=1')
        self.freeze()
        time.sleep(2)       # the next poll is stuck in the daemon
        self.assertIsNone(w.proc.poll(), w.stderr())
        self.assert_stops(w)
        self.assertIn('zpci-reconcile: host default: stopped without waiting any longer for a '
                      'libvirt call', w.stderr())


class ConnectTimeoutValueTest(unittest.TestCase):
    """ZPCI_RECONCILE_CONNECT_TIMEOUT that is not 1 to 3600: an error before connecting."""

    def test_bad_values(self):
        d = tempfile.mkdtemp(prefix='zrfrozen-')
        self.addCleanup(shutil.rmtree, d, True)
        inv = os.path.join(d, 'inventory.yaml')
        write_inventory(inv, {'g': []})
        for bad in ('0', '3601', '-1', '2s', ' 5', 'x'):
            for verb in ('plan', 'apply', 'watch'):
                rc, out, err = lab.run_tool([verb, '-c', 'test:///default', inv],
                                            env={'ZPCI_RECONCILE_CONNECT_TIMEOUT': bad})
                self.assertEqual(rc, 1, verb + ' ' + bad)
                self.assertIn("zpci-reconcile: ZPCI_RECONCILE_CONNECT_TIMEOUT needs a whole "
                              "number from 1 to 3600, got '%s'\n" % bad, err, verb)


if __name__ == '__main__':
    lab.main()
