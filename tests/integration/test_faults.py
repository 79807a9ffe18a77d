#!/usr/bin/env python3
"""Every libvirt call's failure path, against a qemu:///embed root.

The tool runs with the fault shim (tests/fault/zr-fault.c) preloaded: ZR_FAULT makes the
n-th call of a named libvirt function fail with the libvirt error
"zr-fault: FUNCTION call N failed", everything else is real libvirt. The tests assert the
exact messages a user reads and the exit status, and that nothing changed where nothing
may change. -j 1 keeps the order of the reads, so "the n-th virDomainGetXMLDesc" names
one guest.

Not reachable here: the re-read while waiting for a live detach (apply.c wait_removed)
needs a running guest holding a PCI device live, which needs VFIO.
"""

import json
import os
import pty
import shutil
import subprocess
import tempfile
import textwrap
import unittest

import lab
from lab import hostdev_xml, injected


class FaultTestCase(lab.EmbedToolCase):
    shim_always = True

    def snapshot(self, *names):
        return {n: self.lab.dumpxml(n) for n in names}


TWO_GUESTS = """
    version: 1
    guests:
      alpha:
        hostdevs:
          - source: 0001:00:00.0
      bravo:
        hostdevs:
          - source: 0002:00:00.0
    """


class ConnectionFaultTest(FaultTestCase):
    def setUp(self):
        super().setUp()
        self.define('alpha')
        self.inventory("""
            version: 1
            guests:
              alpha:
                hostdevs:
                  - source: 0001:00:00.0
            """)

    def test_connect_fails(self):
        rc, out, err = self.tool('apply', self.inv, fault='virConnectOpen:1')
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(out.splitlines()[0], 'alpha: error: cannot connect to %s: %s' % (
            self.lab.uri, injected('virConnectOpen', 1)))
        self.assertEqual(self.lab.devices('alpha'), [])

    def test_event_loop_fails(self):
        rc, doc, err = self.tool_json('plan', self.inv, fault='virEventRegisterDefaultImpl:1')
        self.assertEqual(rc, 1, err)
        self.assertEqual(doc['errors'], [{
            'host': 'default', 'guest': 'alpha',
            'message': "cannot start libvirt's event loop: " +
                       injected('virEventRegisterDefaultImpl', 1)}])

    def test_uri_unknown_falls_back_to_the_one_asked_for(self):
        rc, doc, err = self.tool_json('apply', self.inv, fault='virConnectGetURI:1')
        self.assertEqual(rc, 0, err)
        self.assertEqual([(a['uri'], a['result']) for a in doc['actions']],
                         [(self.lab.uri, 'done')])

    def test_event_registration_fails_apply_still_works(self):
        self.define('beta', hostdev_xml('0009:00:00.0'))
        self.inventory("""
            version: 1
            guests:
              beta:
                hostdevs: []
            """)
        rc, out, err = self.tool('apply', '-v', self.inv,
                                 fault='virConnectDomainEventRegisterAny:1')
        self.assertEqual(rc, 0, out + err)
        self.assertIn('zpci-reconcile: no device removal events (%s); a live detach is checked '
                      'every second instead\n' % injected('virConnectDomainEventRegisterAny', 1),
                      err)
        self.assertEqual(self.lab.devices('beta'), [])


class EventLoopChoiceTest(unittest.TestCase):
    """Which runs start libvirt's event loop (state.c, needs_event_loop): apply always,
    plan only where the URI may need it.  test:///default stands for a daemon URI: an
    in-process driver without an event loop of its own.  With the loop's registration
    failing, a run that starts it fails and says so."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='zr-evloop-')
        self.addCleanup(shutil.rmtree, self.dir)
        self.inv = os.path.join(self.dir, 'inventory.yaml')
        with open(self.inv, 'w') as f:
            f.write('version: 1\nguests:\n  test:\n    hostdevs: []\n')

    def tool(self, *args, env=None):
        e = lab.fault_env('virEventRegisterDefaultImpl:1')
        e['LIBVIRT_DEFAULT_URI'] = None
        e.update(env or {})
        return lab.run_tool(list(args) + [self.inv], env=e)

    def test_plan_on_a_daemon_uri_needs_no_event_loop(self):
        rc, out, err = self.tool('plan', '-c', 'test:///default')
        self.assertEqual(rc, 0, out + err)
        self.assertIn('1 of 1 guests in sync', out)

    def test_plan_of_the_default_uri_resolves_libvirt_default_uri(self):
        rc, out, err = self.tool('plan', env={'LIBVIRT_DEFAULT_URI': 'test:///default'})
        self.assertEqual(rc, 0, out + err)

    def test_plan_of_an_unknown_default_uri_starts_the_loop(self):
        # libvirt's configured default may be an embedded root
        rc, out, err = self.tool('plan')
        self.assertEqual(rc, 1, out + err)
        self.assertIn("cannot start libvirt's event loop: " +
                      injected('virEventRegisterDefaultImpl', 1), out)

    def test_apply_starts_the_loop_for_device_events(self):
        rc, out, err = self.tool('apply', '-c', 'test:///default')
        self.assertEqual(rc, 1, out + err)
        self.assertIn("cannot start libvirt's event loop: " +
                      injected('virEventRegisterDefaultImpl', 1), out)


class ReadFaultTest(FaultTestCase):
    def setUp(self):
        super().setUp()
        self.define('alpha')
        self.define('bravo')
        self.inventory(TWO_GUESTS)

    def assert_only_bravo_changed(self, out):
        self.assertEqual(self.lab.devices('alpha'), [])
        self.assertEqual([d['source'] for d in self.lab.devices('bravo')], ['0002:00:00.0'])
        self.assertIn('bravo:\n  + attach hostdev 0002:00:00.0 [config] done\n', out)

    # Guests are found through one domain listing; when it fails, each guest is
    # looked up on its own, so the lookup faults come after a failed listing.
    NO_LISTING = 'virConnectListAllDomains:1,'

    def test_a_guest_that_cannot_be_looked_up_is_an_error_for_it_alone(self):
        for fault, message in [
                ('virDomainLookupByName:1', "cannot look up guest 'alpha': "),
                ('virDomainIsActive:1', "cannot read the state of guest 'alpha': ")]:
            with self.subTest(fault=fault):
                rc, out, err = self.tool('apply', '--no-host-check', self.inv,
                                         fault=self.NO_LISTING + fault)
                self.assertEqual(rc, 1, out + err)
                self.assertIn('alpha: error: %s%s\n' % (message, injected(*fault.split(':'))),
                              out)
                self.assert_only_bravo_changed(out)
                self.lab.detach('bravo', hostdev_xml('0002:00:00.0'))

    def test_a_guest_whose_xml_cannot_be_read_is_an_error_for_it_alone(self):
        # The guests are read on several threads: either may make the first call.
        rc, out, err = self.tool('apply', self.inv, fault='virDomainGetXMLDesc:1')
        self.assertEqual(rc, 1, out + err)
        message = 'cannot read the persistent definition: ' + injected('virDomainGetXMLDesc', '1')
        failed = [g for g in ('alpha', 'bravo') if '%s: error: %s\n' % (g, message) in out]
        self.assertEqual(len(failed), 1, out)
        [ok] = {'alpha', 'bravo'} - set(failed)
        self.assertEqual(self.lab.devices(failed[0]), [])
        self.assertEqual(len(self.lab.devices(ok)), 1)
        self.assertIn('%s:\n  + attach hostdev' % ok, out)

    def test_lookup_says_no_such_guest(self):
        rc, out, err = self.tool('plan', self.inv,
                                 fault=self.NO_LISTING + 'virDomainLookupByName:1:no-domain')
        self.assertEqual(rc, 1, out + err)
        self.assertIn("alpha: error: guest 'alpha' not found\n", out)

    def test_listing_fails_guests_are_looked_up_one_by_one(self):
        rc, out, err = self.tool('plan', '--no-host-check', self.inv, fault='virConnectListAllDomains:1')
        self.assertEqual(rc, 2, out + err)
        self.assertIn('alpha:\n  + attach hostdev 0001:00:00.0 [config]\n', out)

    def test_node_device_listing_fails(self):
        msg = "cannot list the host's PCI devices: " + injected('virConnectListAllNodeDevices', 1)
        rc, doc, err = self.tool_json('plan', self.inv, fault='virConnectListAllNodeDevices:1')
        self.assertEqual(rc, 2, err)
        self.assertIn({'host': 'default', 'guest': None, 'source': None,
                       'message': 'host check skipped: ' + msg +
                                  "; apply will leave this host's guests alone"}, doc['warnings'])

        before = self.snapshot('alpha', 'bravo')
        rc, out, err = self.tool('apply', self.inv, fault='virConnectListAllNodeDevices:1')
        self.assertEqual(rc, 1, out + err)
        for g in ('alpha', 'bravo'):
            self.assertIn('%s: error: %s; nothing changed (--no-host-check skips this check)\n'
                          % (g, msg), out)
        self.assertEqual(self.snapshot('alpha', 'bravo'), before)

        rc, out, err = self.tool('apply', '--no-host-check', self.inv,
                                 fault='virConnectListAllNodeDevices:1')
        self.assertEqual(rc, 0, out + err)

    def test_no_node_devices_is_only_a_warning(self):
        # what qemu:///embed says by itself, and what no-support from a daemon means
        for fault in (None, 'virConnectListAllNodeDevices:1:no-support'):
            rc, doc, err = self.tool_json('plan', self.inv, fault=fault)
            self.assertEqual(rc, 2, err)
            self.assertEqual(doc['warnings'], [{
                'host': 'default', 'guest': None, 'source': None,
                'message': 'host check skipped: %s lists no node devices' % self.lab.uri}])

    def test_guest_listing_fails(self):
        # One listing serves the read of the inventory's guests and the conflict
        # check; when it fails, the guests are looked up one by one and the
        # conflict check lists once more (listing 2).  Only when that fails too is
        # the check skipped.
        msg = "cannot list the host's guests: " + injected('virConnectListAllDomains', 2)
        counts = os.path.join(self.lab.root, 'counts')
        rc, doc, err = self.tool_json('plan', self.inv, fault='virConnectListAllDomains:1+',
                                      counts=counts)
        self.assertEqual(rc, 2, err)
        self.assertIn('conflict check skipped: %s; apply will leave this host\'s guests alone'
                      % msg, [w['message'] for w in doc['warnings']])
        self.assertEqual(lab.read_counts(counts)['virConnectListAllDomains'], 2)
        before = self.snapshot('alpha', 'bravo')
        rc, out, err = self.tool('apply', self.inv, fault='virConnectListAllDomains:1+')
        self.assertEqual(rc, 1, out + err)
        # --no-host-check does not skip the conflict check, so the message offers no way round
        self.assertIn('alpha: error: %s; nothing changed\n' % msg, out)
        self.assertEqual(self.snapshot('alpha', 'bravo'), before)
        rc, out, err = self.tool('apply', '--no-host-check', self.inv,
                                 fault='virConnectListAllDomains:1+')
        self.assertEqual(rc, 1, out + err)
        self.assertIn('alpha: error: %s; nothing changed\n' % msg, out)
        self.assertEqual(self.snapshot('alpha', 'bravo'), before)

    def test_one_failed_listing_is_listed_again_for_the_conflict_check(self):
        self.define('other', hostdev_xml('0001:00:00.0'))
        rc, doc, err = self.tool_json('plan', self.inv, fault='virConnectListAllDomains:1')
        self.assertEqual(rc, 2, err)
        # the second listing found 'other', which holds what alpha wants
        self.assertIn({'host': 'default', 'guest': 'alpha', 'source': '0001:00:00.0',
                       'message': "held by guest 'other', which the inventory does not name; "
                                  "apply will leave this guest alone"}, doc['warnings'])

    def test_one_listing_per_run(self):
        # the guests' read, the conflict check and the "did you mean" hint of two
        # missing guests share one listing of the host's guests
        self.define('other', hostdev_xml('0003:00:00.0'))
        self.inventory(TWO_GUESTS + """  alpah: {}
      ghost: {}
    """)
        counts = os.path.join(self.lab.root, 'counts')
        rc, out, err = self.tool('plan', self.inv, counts=counts)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("alpah: error: guest 'alpah' not found (did you mean 'alpha'?)\n", out)
        self.assertIn("ghost: error: guest 'ghost' not found\n", out)
        self.assertEqual(lab.read_counts(counts)['virConnectListAllDomains'], 1)

    def test_other_guest_unreadable_is_a_warning(self):
        self.define('other', hostdev_xml('0001:00:00.0'))
        # reads: alpha, bravo (the inventory's), then other (the conflict check)
        rc, doc, err = self.tool_json('plan', self.inv, fault='virDomainGetXMLDesc:3')
        self.assertEqual(rc, 2, err)
        self.assertIn("conflict check cannot read guest 'other': " +
                      injected('virDomainGetXMLDesc', 3), [w['message'] for w in doc['warnings']])
        # read for real, other holds what alpha wants
        rc, doc, err = self.tool_json('plan', self.inv)
        self.assertIn({'host': 'default', 'guest': 'alpha', 'source': '0001:00:00.0',
                       'message': "held by guest 'other', which the inventory does not name; "
                                  "apply will leave this guest alone"}, doc['warnings'])


class CallFaultTest(FaultTestCase):
    def test_failed_attach_others_still_run_and_a_rerun_converges(self):
        self.define('alpha')
        self.define('bravo')
        self.inventory(TWO_GUESTS)
        rc, out, err = self.tool('apply', self.inv, fault='virDomainAttachDeviceFlags:1')
        self.assertEqual(rc, 1, out + err)
        self.assertIn('alpha:\n  + attach hostdev 0001:00:00.0 [config] failed: %s\n' %
                      injected('virDomainAttachDeviceFlags', 1), out)
        self.assertIn('bravo:\n  + attach hostdev 0002:00:00.0 [config] done\n', out)
        self.assertIn('Apply: 1 attached, 0 detached, 0 replaced, 1 failed on 1 of 2 guests '
                      '(1 with errors).', out)
        self.assertEqual(self.lab.devices('alpha'), [])

        counts = os.path.join(self.lab.root, 'counts')
        rc, out, err = self.tool('apply', self.inv, counts=counts)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(lab.read_counts(counts)['virDomainAttachDeviceFlags'], 1)
        # converged: a second apply makes no mutating call at all
        rc, out, err = self.tool('apply', self.inv, counts=counts)
        self.assertEqual(rc, 0, out + err)
        calls = lab.read_counts(counts)
        self.assertNotIn('virDomainAttachDeviceFlags', calls)
        self.assertNotIn('virDomainDetachDeviceFlags', calls)

    def test_failed_detach_skips_the_attach_that_waits_for_it(self):
        self.define('alpha', hostdev_xml('0001:00:00.0', zpci_uid=1, zpci_fid=0))
        self.inventory("""
            version: 1
            guests:
              alpha:
                hostdevs:
                  - source: 0001:00:00.0
                    zpci: {uid: 0x0002}
            """)
        before = self.lab.dumpxml('alpha')
        rc, doc, err = self.tool_json('apply', self.inv, fault='virDomainDetachDeviceFlags:1')
        self.assertEqual(rc, 1, err)
        detach, attach = doc['actions']
        self.assertEqual((detach['op'], detach['result'], detach['error']),
                         ('detach', 'failed', injected('virDomainDetachDeviceFlags', 1)))
        self.assertEqual((attach['op'], attach['result'], attach['skip_reason']),
                         ('attach', 'skipped', 'depends on the detach of hostdev 0001:00:00.0 '
                                               'from alpha, which failed'))
        self.assertEqual(self.lab.dumpxml('alpha'), before)
        rc, out, err = self.tool('apply', self.inv, fault='virDomainDetachDeviceFlags:1')
        self.assertIn('  ~ replace hostdev 0001:00:00.0 zpci uid=0x0002 fid=0x00000000 '
                      'guest_address=0000:00:01.0 [config] failed: %s\n' %
                      injected('virDomainDetachDeviceFlags', 1), out)


class AtomicFaultTest(FaultTestCase):
    def setUp(self):
        super().setUp()
        self.define('alpha')
        self.define('bravo')
        self.inventory(TWO_GUESTS)
        self.before = self.snapshot('alpha', 'bravo')

    def test_cannot_save_the_guests_first(self):
        # reads: alpha 1, bravo 2; --atomic saves alpha with call 3
        rc, doc, err = self.tool_json('apply', '--atomic', self.inv,
                                      fault='virDomainGetXMLDesc:3')
        self.assertEqual(rc, 1, err)
        reason = ("not run: --atomic could not save guest 'alpha' before changing it: " +
                  injected('virDomainGetXMLDesc', 3))
        self.assertEqual([(a['result'], a['skip_reason']) for a in doc['actions']],
                         [('skipped', reason)] * 2)
        self.assertEqual(self.snapshot('alpha', 'bravo'), self.before)

    def test_rollback_call_fails(self):
        rc, doc, err = self.tool_json('apply', '--atomic', self.inv,
                                      fault='virDomainAttachDeviceFlags:2,'
                                            'virDomainDetachDeviceFlags:1')
        self.assertEqual(rc, 1, err)
        a, b = doc['actions']
        self.assertEqual((a['guest'], a['result'], a['error']),
                         ('alpha', 'failed', "rollback failed: guest 'alpha' still holds hostdev "
                          "0001:00:00.0, which this run attached: detaching it failed: " +
                          injected('virDomainDetachDeviceFlags', 1) + "; remove it with virsh "
                          "detach-device alpha FILE --config, FILE holding this action's xml "
                          "(-o json)"))
        self.assertEqual((b['guest'], b['result']), ('bravo', 'failed'))
        [w] = doc['warnings'][1:]    # [0] is the embed root's "no node devices"
        self.assertEqual((w['guest'], w['message']), (
            'alpha', 'after rollback, the persistent definition is not as before: now holds '
                     'hostdev 0001:00:00.0 zpci uid=0x0001 fid=0x00000000 '
                     'guest_address=0000:00:01.0'))
        rc, out, err = self.tool('plan', self.inv)
        self.assertIn('alpha: in sync', out)

    def test_rollback_cannot_reread_the_attached_device(self):
        # reads: alpha 1, bravo 2; saved 3, 4; the undo of alpha's attach re-reads with 5
        rc, doc, err = self.tool_json('apply', '--atomic', self.inv,
                                      fault='virDomainAttachDeviceFlags:2,'
                                            'virDomainGetXMLDesc:5')
        self.assertEqual(rc, 1, err)
        a = doc['actions'][0]
        self.assertEqual((a['result'], a['error']), (
            'failed', "rollback failed: guest 'alpha' still holds hostdev 0001:00:00.0, which "
                      "this run attached: detaching it failed: cannot re-read the guest: " +
                      injected('virDomainGetXMLDesc', 5) + "; remove it with virsh "
                      "detach-device alpha FILE --config, FILE holding this action's xml "
                      "(-o json)"))

    def test_rollback_restores_every_guest(self):
        rc, out, err = self.tool('apply', '--atomic', '-v', self.inv,
                                 fault='virDomainAttachDeviceFlags:2')
        self.assertEqual(rc, 1, out + err)
        self.assertIn('alpha:\n  + attach hostdev 0001:00:00.0 [config] rolled back\n', out)
        self.assertIn('bravo:\n  + attach hostdev 0002:00:00.0 [config] failed: %s\n' %
                      injected('virDomainAttachDeviceFlags', 2), out)
        self.assertIn('rollback: detach hostdev 0001:00:00.0 on alpha [config]: done\n', err)
        self.assertEqual(self.snapshot('alpha', 'bravo'), self.before)

    def test_rollback_of_a_zpci_uid_swap_runs_in_reverse(self):
        # Undoing in execution order would re-attach 0001 while the new 0001 is still
        # there; only the reverse order gets back to the start.
        self.define('swap', hostdev_xml('0001:00:00.0', zpci_uid=1, zpci_fid=0),
                    hostdev_xml('0002:00:00.0', zpci_uid=2, zpci_fid=1))
        self.inventory("""
            version: 1
            guests:
              swap:
                hostdevs:
                  - source: 0001:00:00.0
                    zpci: {uid: 0x0002, fid: 0x00000001}
                  - source: 0002:00:00.0
                    zpci: {uid: 0x0001, fid: 0x00000000}
            """)
        before = self.lab.dumpxml('swap')
        rc, doc, err = self.tool_json('apply', '--atomic', self.inv,
                                      fault='virDomainAttachDeviceFlags:2')
        self.assertEqual(rc, 1, err)
        self.assertEqual([(a['op'], a['source'], a['result']) for a in doc['actions']], [
            ('detach', '0001:00:00.0', 'rolled back'),
            ('detach', '0002:00:00.0', 'rolled back'),
            ('attach', '0001:00:00.0', 'rolled back'),
            ('attach', '0002:00:00.0', 'failed')])
        self.assertEqual(doc['warnings'][1:], [])
        got = sorted((d['source'], d['zpci_uid'], d['zpci_fid'])
                     for d in self.lab.devices('swap'))
        self.assertEqual(got, [('0001:00:00.0', 1, 0), ('0002:00:00.0', 2, 1)])
        # the same elements; libvirt appends a re-attached device, so their order may not be
        key = lambda d: d['source']   # noqa: E731
        self.assertEqual(sorted(lab.parse_devices(self.lab.dumpxml('swap')), key=key),
                         sorted(lab.parse_devices(before), key=key))

    def test_interrupted_atomic_run_is_undone(self):
        self.define('charlie')
        self.inventory(textwrap.dedent(TWO_GUESTS) + textwrap.indent(textwrap.dedent("""
            charlie:
              hostdevs:
                - source: 0003:00:00.0
            """), '  '))
        # ^C lands during the second attach: it completes, then the run stops and undoes
        rc, doc, err = self.tool_json('apply', '--atomic', self.inv,
                                      fault='virDomainAttachDeviceFlags:2:sigint')
        self.assertEqual(rc, 1, err)
        self.assertEqual([(a['guest'], a['result']) for a in doc['actions']], [
            ('alpha', 'rolled back'), ('bravo', 'rolled back'), ('charlie', 'skipped')])
        self.assertIn('zpci-reconcile: interrupted by signal 2; stopped after the calls in progress\n',
                      err)
        self.assertEqual(self.snapshot('alpha', 'bravo'), self.before)
        self.assertEqual(self.lab.devices('charlie'), [])


class ProgressTest(FaultTestCase):
    N = 12

    def setUp(self):
        super().setUp()
        self.define('many')
        self.inventory('version: 1\nguests:\n  many:\n    hostdevs:\n' + ''.join(
            '      - source: 0001:00:%02x.0\n' % i for i in range(self.N)))

    def run_with_tty_stderr(self, *args):
        """The tool with stderr on a terminal, as when a person runs it."""
        master, slave = pty.openpty()
        env = dict(os.environ)
        env.pop('LIBVIRT_DEFAULT_URI', None)
        proc = subprocess.Popen([os.environ['ZR_BINARY']] + list(args) +
                                ['-c', self.lab.uri, self.inv],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=slave, env=env)
        os.close(slave)
        err = b''
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:    # EIO: the tool closed its end
                break
            if not chunk:
                break
            err += chunk
        out = proc.communicate()[0]
        os.close(master)
        return proc.returncode, out.decode(), err.decode().replace('\r\n', '\n')

    def test_progress_on_a_terminal_for_many_actions(self):
        rc, out, err = self.run_with_tty_stderr('apply')
        self.assertEqual(rc, 0, out + err)
        lines = err.splitlines()
        self.assertEqual(len(lines), self.N, err)
        self.assertEqual(lines[0], '[1/12] attach hostdev 0001:00:00.0 on many [config]')
        self.assertEqual(lines[-1], '[12/12] attach hostdev 0001:00:0b.0 on many [config]')

    def test_no_progress_when_not_a_terminal_or_quiet(self):
        rc, out, err = self.tool('apply', self.inv)     # stderr is a pipe
        self.assertEqual((rc, err), (0, ''), out)
        self.assertIn('Apply: 12 attached,', out)
        self.inventory('version: 1\nguests:\n  many:\n    hostdevs: []\n')
        rc, out, err = self.run_with_tty_stderr('apply', '-q')
        self.assertEqual((rc, err), (0, ''), out)
        self.assertEqual(out, 'Apply: 0 attached, 12 detached, 0 replaced, 0 failed on 1 of 1 '
                              'guests.\n')

if __name__ == '__main__':
    lab.main()
