#!/usr/bin/env python3
"""What the report says is what happened, whatever went wrong (issue 13).

Against qemu:///embed roots, with the fault shim (tests/fault/zr-fault.c) where a call
must fail or a signal must land at one exact call. Each test compares the text, the JSON
and the guests' XML: the three must tell the same story, and the next plan must agree.
"""

import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import textwrap

import lab
from lab import hostdev_xml, injected, s390x_guest


class ReportTestCase(lab.EmbedToolCase):
    """Runs inject faults only where a test asks: the others use apply's own pool."""


REPLACE_ALPHA = """
    version: 1
    guests:
      alpha:
        hostdevs:
          - source: 0001:00:00.0
            zpci: {uid: 0x0002}
    """


class HalfDoneReplacementTest(ReportTestCase):
    """The detach of a replacement succeeded, its attach failed: the guest lost it."""

    def setUp(self):
        super().setUp()
        self.define('alpha', hostdev_xml('0001:00:00.0', zpci_uid=1, zpci_fid=0))
        self.inventory(REPLACE_ALPHA)

    def test_text_json_xml_and_next_plan_agree(self):
        fault = 'virDomainAttachDeviceFlags:1'
        rc, out, err = self.tool('apply', self.inv, fault=fault)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('alpha:\n  ~ replace hostdev 0001:00:00.0 zpci uid=0x0002 fid=0x00000000 '
                      'guest_address=0000:00:01.0 [config] failed: detached, not attached '
                      'again: %s\n' % injected('virDomainAttachDeviceFlags', 1), out)
        # the guest was changed (it lost the function) and failed
        self.assertIn('Apply: 0 attached, 1 detached, 0 replaced, 1 failed on 1 of 1 guests '
                      '(1 with errors).\n', out)
        self.assertEqual(self.lab.devices('alpha'), [])

        # the JSON, run again from the same start
        self.lab.attach('alpha', hostdev_xml('0001:00:00.0', zpci_uid=1, zpci_fid=0))
        rc, doc, err = self.tool_json('apply', self.inv, fault=fault)
        self.assertEqual(rc, 1, err)
        self.assertEqual([(a['op'], a['result']) for a in doc['actions']],
                         [('detach', 'done'), ('attach', 'failed')])
        s = doc['summary']
        self.assertEqual((s['attach'], s['detach'], s['replace'], s['failed']), (0, 1, 0, 1))
        self.assertEqual(self.lab.devices('alpha'), [])

        # the next plan sees what the report said: the function is missing
        rc, out, err = self.tool('plan', self.inv)
        self.assertEqual(rc, 2, out + err)
        self.assertIn('alpha:\n  + attach hostdev 0001:00:00.0 zpci uid=0x0002 [config]\n', out)
        self.assertIn('Plan: 1 to attach, 0 to detach, 0 to replace on 1 of 1 guests.', out)


class InterruptedApplyTest(ReportTestCase):
    """SIGTERM in the middle of a 1000-action apply: 50 guests x 10 replacements."""

    GUESTS, DEVICES = 50, 10

    def setUp(self):
        super().setUp()
        names = ['g%02d' % g for g in range(self.GUESTS)]
        self.lab.define_many([s390x_guest(n, ''.join(
            hostdev_xml('%04x:00:%02x.0' % (g + 1, d), zpci_uid=d + 1, zpci_fid=d)
            for d in range(self.DEVICES))) for g, n in enumerate(names)])
        self.names = names
        self.inventory('version: 1\nguests:\n' + ''.join(
            '  %s:\n    hostdevs:\n' % n + ''.join(
                '      - source: %04x:00:%02x.0\n        zpci: {uid: 0x%04x}\n'
                % (g + 1, d, d + 0x101) for d in range(self.DEVICES))
            for g, n in enumerate(names)))

    def count_devices(self):
        return sum(len(self.lab.devices(n)) for n in self.names)

    def test_each_line_carries_its_result(self):
        total = self.GUESTS * self.DEVICES
        # the signal lands during the 300th detach: it completes, nothing after it runs
        rc, out, err = self.tool('apply', self.inv, fault='virDomainDetachDeviceFlags:300:sigterm')
        self.assertEqual(rc, 1, out + err)
        self.assertIn('zpci-reconcile: interrupted by signal 15; stopped after the calls in '
                      'progress\n', err)
        lines = [l for l in out.splitlines() if l.startswith('  ~ replace')]
        self.assertEqual(len(lines), total)
        half = [l for l in lines if l.endswith('[config] detached, not attached again: not run: '
                                               'interrupted by a signal')]
        skipped = [l for l in lines if l.endswith('[config] skipped: not run: interrupted by a '
                                                  'signal')]
        self.assertEqual((len(half), len(skipped)), (300, total - 300), out)
        # one action at a time: the first 30 guests lost their 10 functions, the other
        # 20 were not touched
        self.assertIn('Apply: 0 attached, 300 detached, 0 replaced, 0 failed, %d skipped on '
                      '30 of %d guests.\n' % (2 * total - 300, self.GUESTS), out)
        self.assertEqual(self.count_devices(), total - 300)
        self.assertEqual(sum(1 for n in self.names if not self.lab.devices(n)), 30)

        # JSON from a fresh start agrees action by action
        lab_devices_before = self.count_devices()
        rc, out, err = self.tool('apply', '-q', self.inv)     # converge: re-attach all
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(self.count_devices(), total)
        self.assertNotEqual(lab_devices_before, total)
        self.inventory(open(self.inv).read().replace('0x01', '0x02'))
        rc, doc, err = self.tool_json('apply', self.inv,
                                      fault='virDomainDetachDeviceFlags:300:sigterm')
        self.assertEqual(rc, 1, err)
        results = [(a['op'], a['result']) for a in doc['actions']]
        self.assertEqual(results, [('detach', 'done')] * 300 +
                         [('detach', 'skipped')] * (total - 300) + [('attach', 'skipped')] * total)
        s = doc['summary']
        self.assertEqual((s['attach'], s['detach'], s['replace'], s['skipped']),
                         (0, 300, 0, 2 * total - 300))
        self.assertEqual(self.count_devices(), total - 300)
        # and the next plan: 300 to attach again, the rest still to replace
        rc, out, err = self.tool('plan', '-q', self.inv)
        self.assertEqual(rc, 2, out + err)
        self.assertEqual(out, 'Plan: 300 to attach, 0 to detach, %d to replace on %d of %d '
                              'guests.\n' % (total - 300, self.GUESTS, self.GUESTS))


class AtomicUndoTest(ReportTestCase):
    """--atomic: "rolled back" only when the undo worked."""

    def setUp(self):
        super().setUp()
        self.define('alpha', hostdev_xml('0001:00:00.0', zpci_uid=1, zpci_fid=0))
        self.define('bravo')
        self.inventory(textwrap.dedent(REPLACE_ALPHA) + '  bravo:\n    hostdevs:\n      - source: 0002:00:00.0\n')

    def test_failed_undo_is_a_failure_naming_the_lost_function(self):
        # attach 1: alpha's new element; 2: bravo's, fails; the undo detaches alpha's new
        # element, then attach 3 (alpha's old element again) fails
        fault = 'virDomainAttachDeviceFlags:2+'
        rc, doc, err = self.tool_json('apply', '--atomic', self.inv, fault=fault)
        self.assertEqual(rc, 1, err)
        detach, attach_a, attach_b = doc['actions']
        self.assertEqual((detach['guest'], detach['op'], detach['result']),
                         ('alpha', 'detach', 'failed'))
        lost = ("rollback failed: guest 'alpha' lost hostdev 0001:00:00.0 zpci uid=0x0001 "
                "fid=0x00000000 guest_address=0000:00:01.0: attaching it again failed: %s; "
                "restore it with virsh attach-device alpha FILE --config, FILE holding this "
                "action's xml (-o json)" % injected('virDomainAttachDeviceFlags', 3))
        self.assertEqual(detach['error'], lost)
        self.assertEqual((attach_a['result'], attach_b['result']), ('rolled back', 'failed'))
        self.assertEqual(doc['summary']['rolled_back'], 1)
        self.assertEqual(doc['summary']['failed'], 2)
        self.assertEqual(self.lab.devices('alpha'), [])

        # following the message restores the guest
        self.lab.attach('alpha', detach['xml'])
        got = [(d['source'], d['zpci_uid'], d['zpci_fid']) for d in self.lab.devices('alpha')]
        self.assertEqual(got, [('0001:00:00.0', 1, 0)])

        rc, out, err = self.tool('apply', '--atomic', self.inv, fault=fault)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('alpha:\n  ~ replace hostdev 0001:00:00.0 zpci uid=0x0002 fid=0x00000000 '
                      'guest_address=0000:00:01.0 [config] failed: %s\n' % lost, out)
        self.assertNotIn('~ replace hostdev 0001:00:00.0 zpci uid=0x0002 fid=0x00000000 '
                         'guest_address=0000:00:01.0 [config] rolled back', out)
        # the undo failed on alpha: a failure, not a change; bravo's attach failed
        self.assertIn('Apply: 0 attached, 0 detached, 0 replaced, 2 failed, 1 rolled back on 0 '
                      'of 2 guests (2 with errors).\n', out)

    def test_undo_that_works_is_rolled_back(self):
        rc, out, err = self.tool('apply', '--atomic', self.inv,
                                 fault='virDomainAttachDeviceFlags:2')
        self.assertEqual(rc, 1, out + err)
        self.assertIn('alpha:\n  ~ replace hostdev 0001:00:00.0 zpci uid=0x0002 fid=0x00000000 '
                      'guest_address=0000:00:01.0 [config] rolled back\n', out)
        self.assertIn('Apply: 0 attached, 0 detached, 0 replaced, 1 failed, 2 rolled back on 0 '
                      'of 2 guests (1 with errors).\n', out)
        got = [(d['source'], d['zpci_uid']) for d in self.lab.devices('alpha')]
        self.assertEqual(got, [('0001:00:00.0', 1)])


class CountersTest(ReportTestCase):
    """Issue 22: one set of counters - text summary, JSON summary and metrics - and they
    match the guests whose domain XML the run actually changed, after a signal, a failed
    call and an --atomic rollback. 8 guests get two replacements each, 4 are in sync."""

    CHANGING, STEADY = 8, 4

    def setUp(self):
        super().setUp()
        self.names = ['c%d' % g for g in range(self.CHANGING)] + \
                     ['s%d' % g for g in range(self.STEADY)]
        inv = ['version: 1', 'guests:']
        for g, name in enumerate(self.names):
            sources = ['%04x:00:%02x.0' % (g + 1, d) for d in range(2)]
            self.define(name, *(hostdev_xml(src, zpci_uid=d + 1, zpci_fid=d)
                                for d, src in enumerate(sources)))
            new = name.startswith('c')
            inv += ['  %s:' % name, '    hostdevs:'] + [
                '      - source: %s\n        zpci: {uid: 0x%04x, fid: %d}'
                % (src, d + (0x101 if new else 1), d) for d, src in enumerate(sources)]
        self.inventory('\n'.join(inv) + '\n')
        self.metrics = os.path.join(self.lab.root, 'zr.prom')
        self.before = self.state()

    def state(self):
        return {n: sorted((d['source'], d['zpci_uid'], d['zpci_fid'])
                          for d in self.lab.devices(n)) for n in self.names}

    def changed_in_xml(self):
        now = self.state()
        return sum(1 for n in self.names if now[n] != self.before[n])

    def restore(self):
        for name in self.names:
            for dev in self.lab.devices(name):
                self.lab.detach(name, dev['xml'])
            for src, uid, fid in self.before[name]:
                self.lab.attach(name, hostdev_xml(src, zpci_uid=uid, zpci_fid=fid))
        self.assertEqual(self.state(), self.before)

    def guest_metrics(self):
        with open(self.metrics) as f:
            lines = [l for l in f.read().splitlines() if not l.startswith('#')]
        out = {}
        for l in lines:
            name, value = l.rsplit(' ', 1)
            if name.startswith('zpci_reconcile_guests{'):
                out[name.split('state="')[1].rstrip('"}')] = int(value)
            elif name.startswith('zpci_reconcile_actions{'):
                result = name.split('result="')[1].rstrip('"}')
                out['actions_' + result] = out.get('actions_' + result, 0) + int(value)
        return out

    def check(self, fault, *args, changed, failed):
        """Runs apply twice from the same start (text, then JSON); each time the
        counters must equal `changed` (what the XML shows) and `failed`."""
        rc, out, err = self.tool('apply', '--metrics-file', self.metrics, *args, self.inv,
                                 fault=fault)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(self.changed_in_xml(), changed, out)
        summary = out.splitlines()[-1]
        self.assertIn(' on %d of %d guests' % (changed, len(self.names)), summary)
        self.assertEqual(' (%d with errors)' % failed in summary, failed > 0, summary)
        text_metrics = self.guest_metrics()
        self.restore()

        rc, doc, err = self.tool_json('apply', '--metrics-file', self.metrics, *args, self.inv,
                                      fault=fault)
        self.assertEqual(rc, 1, err)
        self.assertEqual(self.changed_in_xml(), changed)
        s = doc['summary']
        self.assertEqual((s['guests'], s['guests_changed'], s['guests_failed'],
                          s['guests_in_sync']), (len(self.names), changed, failed, self.STEADY))
        touched = {a['guest'] for a in doc['actions'] if a['result'] == 'done'}
        self.assertEqual(len(touched), changed)
        m = self.guest_metrics()
        self.assertEqual(m, text_metrics)
        self.assertEqual((m['changed'], m['failed'], m['in_sync']),
                         (changed, failed, self.STEADY), m)
        for result in ('failed', 'skipped', 'rolled_back'):
            self.assertEqual(m['actions_' + result], s[result], result)
        return doc

    def test_interrupted_apply_counts_the_guests_it_touched(self):
        # the signal lands in the 5th detach: c0 and c1 lose both devices, c2 one
        doc = self.check('virDomainDetachDeviceFlags:5:sigint', changed=3, failed=0)
        self.assertEqual(doc['summary']['detach'], 5)

    def test_failed_call_fails_its_guest(self):
        # c1's first detach fails; c1 still gets its other replacement
        doc = self.check('virDomainDetachDeviceFlags:3', changed=self.CHANGING, failed=1)
        self.assertEqual([a['guest'] for a in doc['actions'] if a['result'] == 'failed'],
                         ['c1'])

    def test_atomic_rollback_changes_no_guest(self):
        doc = self.check('virDomainAttachDeviceFlags:2', '--atomic', changed=0, failed=1)
        self.assertEqual(doc['summary']['rolled_back'], 2 * self.CHANGING + 1)


class BeforeThePlanTest(ReportTestCase):
    """A run that ends before it plans still reports: JSON and metrics."""

    BAD = """
        version: 1
        guests:
          alpha:
            hostdevs:
              - source: 0001:00:00.0
                zpci: {uid: 0x0000}
              - source: 0001:00:00.0
        """

    def setUp(self):
        super().setUp()
        self.define('alpha')
        self.metrics = os.path.join(self.lab.root, 'zr.prom')

    def read_metrics(self):
        with open(self.metrics) as f:
            return {l.rsplit(' ', 1)[0]: l.rsplit(' ', 1)[1]
                    for l in f.read().splitlines() if not l.startswith('#')}

    def test_invalid_inventory_json_and_metrics(self):
        # a good run first writes exit status 0 ...
        self.inventory('version: 1\nguests:\n  alpha:\n    hostdevs: []\n')
        rc, out, err = self.tool('apply', '--metrics-file', self.metrics, self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(self.read_metrics()[
            'zpci_reconcile_last_run_exit_status{command="apply"}'], '0')

        # ... then an invalid inventory must overwrite it
        self.inventory(self.BAD)
        rc, doc, err = self.tool_json('apply', '--metrics-file', self.metrics, self.inv)
        self.assertEqual(rc, 1, err)
        self.assertEqual(doc['version'], 1)
        self.assertEqual(doc['actions'], [])
        self.assertEqual(doc['errors'], [
            {'host': None, 'guest': None, 'file': self.inv, 'line': 6, 'column': 21,
             'message': "'uid' must be a number from 0x0001 to 0xffff, got '0x0000'"},
            {'host': None, 'guest': None, 'file': self.inv, 'line': 7, 'column': 17,
             'message': "duplicate source 0001:00:00.0 on host 'default' (first used at "
                        "line 5)"}])
        self.assertFalse(doc['errors_truncated'])
        self.assertEqual(doc['summary']['failed'], 0)
        # the human form still goes to stderr
        self.assertIn('%s:6:21: error: ' % self.inv, err)
        m = self.read_metrics()
        self.assertEqual(m['zpci_reconcile_last_run_exit_status{command="apply"}'], '1')

        # plan too, and a usage error of plan/apply
        rc, out, err = self.tool('plan', '--metrics-file', self.metrics, self.inv)
        self.assertEqual((rc, out), (1, ''))
        self.assertEqual(self.read_metrics()[
            'zpci_reconcile_last_run_exit_status{command="plan"}'], '1')
        rc, doc, err = self.tool_json('plan', '--atomic', '--metrics-file', self.metrics,
                                      self.inv)
        self.assertEqual(rc, 1, err)
        self.assertEqual(doc['errors'], [{'host': None, 'guest': None, 'file': None,
                                          'line': None, 'column': None,
                                          'message': '--atomic is only for apply'}])
        os.unlink(self.metrics)
        rc, doc, err = self.tool_json('apply', '--metrics-file', self.metrics)   # no INVENTORY
        self.assertEqual(rc, 1, err)
        self.assertEqual(doc['errors'][0]['message'],
                         "'apply' takes one INVENTORY (a file, or - for stdin)")
        self.assertEqual(self.read_metrics()[
            'zpci_reconcile_last_run_exit_status{command="apply"}'], '1')

    def test_validate_json(self):
        self.inventory(self.BAD)
        rc, out, err = self.tool('validate', '-o', 'json', self.inv)
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)
        self.assertEqual((doc['version'], doc['file'], doc['valid'], doc['devices']),
                         (1, self.inv, False, None))
        self.assertEqual([(e['line'], e['column']) for e in doc['errors']], [(6, 21), (7, 17)])
        self.inventory('version: 1\nguests:\n  alpha:\n    hostdevs:\n'
                       '      - source: 0001:00:00.0\n')
        rc, out, err = self.tool('validate', '-o', 'json', self.inv)
        self.assertEqual((rc, err), (0, ''))
        self.assertEqual(json.loads(out), {
            'version': 1, 'file': self.inv, 'valid': True, 'errors': [],
            'errors_truncated': False, 'hosts': 1, 'guests': 1, 'devices': 1})

    def test_unreadable_inventory_json(self):
        missing = os.path.join(self.lab.root, 'nope.yaml')
        rc, doc, err = self.tool_json('plan', missing)
        self.assertEqual(rc, 1, err)
        [e] = doc['errors']
        self.assertEqual((e['file'], e['line']), (missing, None))
        self.assertIn('No such file or directory', e['message'])

    def test_connection_failure_writes_metrics(self):
        self.inventory('version: 1\nguests:\n  alpha:\n    hostdevs: []\n')
        rc, out, err = self.tool('apply', '--metrics-file', self.metrics, self.inv,
                                 fault='virConnectOpen:1')
        self.assertEqual(rc, 1, out + err)
        m = self.read_metrics()
        self.assertEqual(m['zpci_reconcile_last_run_exit_status{command="apply"}'], '1')
        self.assertEqual(m['zpci_reconcile_host_up{host="default"}'], '0')


class OptionErrorsTest(ReportTestCase):
    """Issue 22: a bad option value ends the run with the JSON error object and the
    metrics file, like any other error; numbers are digits only; every message starts
    zpci-reconcile:, never with the path the binary was run by."""

    BAD = [
        (['--timeout', '-1'], "--timeout needs a whole number from 0 to 86400, got '-1'"),
        (['--timeout', '86401'], "--timeout needs a whole number from 0 to 86400, got '86401'"),
        (['--timeout', ' 5'], "--timeout needs a whole number from 0 to 86400, got ' 5'"),
        (['--timeout', '+5'], "--timeout needs a whole number from 0 to 86400, got '+5'"),
        (['-j', '0'], "--jobs needs a whole number from 1 to 256, got '0'"),
        (['-j', '257'], "--jobs needs a whole number from 1 to 256, got '257'"),
        (['-j', '+5'], "--jobs needs a whole number from 1 to 256, got '+5'"),
        (['--color', 'sometimes'], "--color takes auto, always or never, got 'sometimes'"),
    ]
    RESYNC = "--resync needs a duration from 1s to 7 days, a whole number with s, m or h " \
             "(90s, 15m, 1h), got '%s'"

    def setUp(self):
        super().setUp()
        self.define('alpha')
        self.inventory('version: 1\nguests:\n  alpha:\n    hostdevs:\n'
                       '      - source: 0001:00:00.0\n')
        self.metrics = os.path.join(self.lab.root, 'zr.prom')

    def exit_status_metric(self, command):
        with open(self.metrics) as f:
            text = f.read()
        os.unlink(self.metrics)
        return text.split('zpci_reconcile_last_run_exit_status{command="%s"} ' % command)[1][0]

    def assertRefused(self, command, args, message, one_line=False):
        rc, out, err = self.tool('-o', 'json', '--metrics-file', self.metrics, command,
                                 *args, self.inv)
        self.assertEqual((rc, err), (1, 'zpci-reconcile: %s\n' % message), out)
        if one_line:   # watch: JSON Lines
            self.assertEqual(len(out.splitlines()), 1, out)
        doc = json.loads(out)
        self.assertEqual(doc['errors'], [{'host': None, 'guest': None, 'file': None,
                                          'line': None, 'column': None, 'message': message}])
        self.assertEqual((doc['actions'], doc['summary']['failed']), ([], 0))
        self.assertEqual(self.exit_status_metric(command), '1')
        self.assertEqual(self.lab.devices('alpha'), [])

    def test_bad_values_print_json_and_write_metrics(self):
        for args, message in self.BAD:
            with self.subTest(args=args):
                self.assertRefused('apply', args, message)
        for value in (' 1s', '+1s', '0s', '169h', '1 s', '1d'):
            with self.subTest(resync=value):
                self.assertRefused('watch', ['--resync', value], self.RESYNC % value,
                                   one_line=True)

    def test_the_value_is_checked_wherever_json_is_asked_for(self):
        # -o json after the bad value: every option is read before the report
        rc, out, err = self.tool('apply', '--timeout', '+5', '-o', 'json', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(json.loads(out)['errors'][0]['message'],
                         "--timeout needs a whole number from 0 to 86400, got '+5'")
        # plain digits still work, leading zeros are decimal
        rc, out, err = self.tool('plan', '--timeout', '010', '-j', '08', self.inv)
        self.assertEqual(rc, 2, out + err)

    def test_unknown_option_names_the_program(self):
        for args, message in [(['--bogus'], "unknown option '--bogus'"),
                              (['--bogus=1'], "unknown option '--bogus'"),
                              (['-x'], "unknown option '-x'"),
                              (['--co', 'x'], "ambiguous option '--co'")]:
            with self.subTest(args=args):
                rc, out, err = self.tool('plan', *args, self.inv)
                self.assertEqual((rc, out), (1, ''))
                self.assertEqual(err, "zpci-reconcile: %s; try 'zpci-reconcile --help'\n"
                                 % message)
                self.assertNotIn(os.environ['ZR_BINARY'], err)
        rc, out, err = lab.run_tool(['plan', self.inv, '--timeout'])
        self.assertEqual((rc, err), (1, "zpci-reconcile: option '--timeout' needs a value\n"))
        # with -o json, the error object and the metrics
        rc, doc, err = self.tool_json('--metrics-file', self.metrics, 'apply', '--bogus',
                                      self.inv)
        self.assertEqual(rc, 1, err)
        self.assertEqual(doc['errors'][0]['message'],
                         "unknown option '--bogus'; try 'zpci-reconcile --help'")
        self.assertEqual(self.exit_status_metric('apply'), '1')

    def test_validate_json_reports_a_bad_value(self):
        rc, out, err = self.tool('validate', '-o', 'json', '--timeout', '1x', self.inv)
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)
        self.assertEqual((doc['valid'], doc['errors'][0]['message']),
                         (False, "--timeout needs a whole number from 0 to 86400, got '1x'"))


class EscapingTest(ReportTestCase):
    """Control characters in names never reach the terminal raw."""

    def test_guest_names_and_messages_are_escaped(self):
        # YAML double-quoted escapes: ESC [2J (clear screen), BEL, CSI (U+009B)
        self.inventory(r"""
            version: 1
            guests:
              "evil\e[2J\aname\u009b31m":
                hostdevs: []
            """)
        rc, out, err = self.tool('plan', '--color', 'never', self.inv)
        self.assertEqual(rc, 1, out + err)
        shown = r'evil\x1b[2J\x07name\u009b31m'
        self.assertIn("%s: error: guest '%s' not found\n" % (shown, shown), out)
        for c in ('\x1b', '\x07', '\u009b'):
            self.assertNotIn(c, out)
        # JSON keeps the name, escaped the JSON way
        rc, doc, err = self.tool_json('plan', self.inv)
        self.assertEqual(doc['errors'][0]['guest'], 'evil\x1b[2J\x07name\u009b31m')

    def test_inventory_errors_are_escaped(self):
        self.inventory(r"""
            version: 1
            guests:
              alpha:
                "\e]0;pwned\a": 1
            """)
        rc, out, err = self.tool('validate', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(r"unknown key '\x1b]0;pwned\x07' in guest 'alpha'", err)
        self.assertNotIn('\x1b', err)


LOCK_DIR = '/run/zpci-reconcile'


def as_nobody(*argv):
    """Run argv as user nobody (runuser, so no password or PAM session is needed)."""
    return subprocess.run(['runuser', '-u', 'nobody', '--'] + list(argv),
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


class LockTest(ReportTestCase):
    """No other local user can stop apply by creating or holding its lock."""

    def setUp(self):
        if os.geteuid() != 0 or not shutil.which('runuser'):
            self.skipTest('needs root and runuser')
        super().setUp()
        self.define('alpha')
        self.inventory('version: 1\nguests:\n  alpha:\n    hostdevs:\n'
                       '      - source: 0001:00:00.0\n')
        self.empty = os.path.join(self.lab.root, 'empty.yaml')
        with open(self.empty, 'w') as f:
            f.write('version: 1\nguests:\n  alpha:\n    hostdevs: []\n')

    def lock_files(self):
        """Every apply lock file a root run could use, old places included."""
        found = set()
        for d in (LOCK_DIR, '/run/lock', '/tmp'):
            if os.path.isdir(d):
                found |= {os.path.join(d, n) for n in os.listdir(d)
                          if n.startswith('zpci-reconcile-') and n.endswith('.lock')}
        return found

    def our_lock(self):
        """The lock file of this lab's URI: the one a run holds. Found from the run itself
        (stopped before its attach, while it holds the lock, its flock in /proc/locks names
        the file's inode), so the locks other tests take beside ours are never touched."""
        env = lab.fault_env('virDomainAttachDeviceFlags:1:stop')
        env['LIBVIRT_DEFAULT_URI'] = None
        proc = lab.start_tool(['-j', '1', 'apply', self.inv, '-c', self.lab.uri], env=env)
        try:
            lab.wait_stopped(proc)
            path = self.locked_by(proc.pid)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
            out, err = proc.communicate(timeout=600)
        self.assertEqual(proc.returncode, 0, out + err)
        rc, out, err = self.tool('apply', self.empty)
        self.assertEqual(rc, 0, out + err)
        return path

    def locked_by(self, pid):
        """The apply lock file process pid holds a flock on."""
        with open('/proc/locks') as f:
            inodes = {int(fields[5].rsplit(':', 1)[1]) for fields in
                      (line.split() for line in f)
                      if fields[1] == 'FLOCK' and fields[4] == str(pid)}
        found = [p for p in self.lock_files() if os.stat(p).st_ino in inodes]
        self.assertEqual(len(found), 1, (inodes, found))
        return found[0]

    def test_nobody_cannot_create_or_hold_the_lock(self):
        path = self.our_lock()
        os.unlink(path)
        # nobody takes the lock first and keeps it: create it, flock it, sleep
        holder = subprocess.Popen(
            ['runuser', '-u', 'nobody', '--', 'python3', '-c',
             'import fcntl, sys, time\n'
             'try:\n'
             '    f = open(sys.argv[1], "a")\n'
             '    fcntl.flock(f, fcntl.LOCK_EX)\n'
             '    print("held", flush=True)\n'
             'except OSError as e:\n'
             '    print("refused", e.errno, flush=True)\n'
             '    sys.exit(0)\n'
             'time.sleep(60)\n', path],
            stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        self.addCleanup(holder.kill)
        self.assertEqual(holder.stdout.readline().split()[0], 'refused')
        self.assertFalse(os.path.exists(path))
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(len(self.lab.devices('alpha')), 1)
        st = os.stat(os.path.dirname(path))
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o700), path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_a_lock_file_of_another_user_is_refused(self):
        path = self.our_lock()
        os.chown(path, 65534, 65534)
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        rc, out, err = self.tool('apply', self.inv)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("alpha: error: refusing lock file %s: it is owned by uid 65534, not by "
                      "this user (uid 0), or is not a regular file; zpci-reconcile did not "
                      "make it, remove it\n" % path, out)
        self.assertEqual(self.lab.devices('alpha'), [])

    def test_two_spellings_of_one_uri_are_one_lock(self):
        path = self.our_lock()
        # the root with a doubled and a trailing slash names the same connection
        odd = self.lab.uri.replace('root=/', 'root=//') + '/'
        e = {'LIBVIRT_DEFAULT_URI': None}
        rc, out, err = lab.run_tool(['apply', self.inv, '-c', odd], env=e)
        self.assertEqual(rc, 0, out + err)
        # It is held as one: with the lock taken, the other spelling is refused.
        # (Not a before/after listing of the lock directory: tests running beside
        # this one add their own lock files to it at any time.)
        with open(path, 'a+') as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            rc, out, err = lab.run_tool(['apply', self.empty, '-c', odd], env=e)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('another zpci-reconcile apply', out)

    def test_nobody_locks_in_a_directory_of_its_own(self):
        # a user without XDG_RUNTIME_DIR gets /tmp/zpci-reconcile-UID, private; one that
        # someone else made first is refused, not used
        d = '/tmp/zpci-reconcile-65534'
        if os.path.lexists(d):
            shutil.rmtree(d)
        os.mkdir(d, 0o777)
        os.chmod(d, 0o777)
        self.addCleanup(shutil.rmtree, d, True)
        binary = lab.runnable_by('nobody', os.environ['ZR_BINARY'], self)
        root = tempfile.mkdtemp(prefix='zr-nobody-')
        self.addCleanup(shutil.rmtree, root, True)
        os.chown(root, 65534, 65534)
        inv = os.path.join(root, 'empty.yaml')
        shutil.copy(self.empty, inv)
        os.chmod(inv, 0o644)
        # nobody's HOME (/nonexistent) is no place for the embedded driver's cache
        argv = ['env', '-u', 'XDG_RUNTIME_DIR', 'HOME=' + root, binary, 'apply', '-c',
                'qemu:///embed?root=%s/r' % root, inv]
        r = as_nobody(*argv)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('refusing the lock directory %s: it is owned by uid 0 with mode 0777'
                      % d, r.stdout)
        shutil.rmtree(d)
        r = as_nobody(*argv)
        self.assertIn("alpha: error: guest 'alpha' not found", r.stdout, r.stderr)
        st = os.stat(d)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (65534, 0o700))


class ScaleTest(ReportTestCase):
    """export of a large host gives a file that plan accepts (issue 13, item 14)."""

    GUESTS, DEVICES = 2000, 20

    def test_export_of_40000_functions_plans_to_nothing(self):
        # 2000 guests x 20 zPCI hostdevs, defined for real in the embedded root
        self.lab.define_many([s390x_guest('big%04d' % g, ''.join(
            hostdev_xml('%04x:%02x:%02x.0' % (g + 1, d // 32, d % 32), zpci_uid=d + 1,
                        zpci_fid=d) for d in range(self.DEVICES)))
            for g in range(self.GUESTS)])
        rc, out, err = self.tool('export')
        self.assertEqual((rc, err), (0, ''))
        with open(self.inv, 'w') as f:
            f.write(out)
        rc, vout, err = self.tool('validate', self.inv)
        self.assertEqual(rc, 0, vout + err)
        self.assertEqual(vout, '%s: valid (1 host, 2000 guests, 40000 devices)\n' % self.inv)
        # The host check is left out: an embedded root has no node devices, so it would
        # only add its warning (its scaling is bench/scale.py's hostcheck case).
        rc, pout, err = self.tool('plan', '-q', '--no-host-check', self.inv)
        self.assertEqual((rc, pout, err),
                         (0, 'Plan: no changes; 2000 of 2000 guests in sync.\n', ''))

    def test_the_loader_holds_65536_devices_of_the_largest_form(self):
        # What docs/inventory.md promises: 65536 devices, each an interface with every
        # key the format has, written as export writes them, in one file.
        lines = ['version: 1', 'guests:']
        for g in range(2048):
            lines += ['  guest-%04d:' % g, '    interfaces:']
            for d in range(32):
                n = g * 32 + d
                lines += [
                    '    - source: %04x:%02x:%02x.%x' % (n >> 8, (n >> 3) & 0x1f, 0, n & 7),
                    '      managed: true',
                    "      mac: '02:00:00:%02x:%02x:%02x'" % (n >> 16, (n >> 8) & 0xff, n & 0xff),
                    '      virtualport: {type: 802.1Qbg, managerid: 255, typeid: 0xffffff, '
                    'typeidversion: 255, instanceid: 8f5cd1f8-2a9c-4e0f-9d1b-%012x}' % n,
                    '      zpci: {uid: 0x%04x, fid: 0x%08x}' % (d + 1, n)]
        with open(self.inv, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        rc, out, err = self.tool('validate', self.inv)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(out, '%s: valid (1 host, 2048 guests, 65536 devices)\n' % self.inv)


if __name__ == '__main__':
    lab.main()
