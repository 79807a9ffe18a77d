#!/usr/bin/env python3
"""apply with its pool of workers (ZR_APPLY_THREADS, reconciler/apply.h) against apply
with one (ZPCI_RECONCILE_APPLY_THREADS=1): the same report, the same progress lines in
the same order, the same domain XML at the end - with functions moving between guests,
zPCI ids swapping within a guest, failures, --atomic and a signal.

Two qemu:///embed roots get the same guests; one runs sequentially, the other in
parallel. Failures are pinned to a guest with the fault shim's FUNCTION@GUEST specs
(tests/fault/zr-fault.c), so they hit the same action whatever order the workers make
their calls in.
"""

import json
import os
import re
import tempfile
import unittest
import xml.etree.ElementTree as ET

import lab
from lab import EmbedLab, hostdev_xml, s390x_guest

SEQUENTIAL = '1'
PARALLEL = None  # the tool's default pool


def fleet():
    """(definitions, inventory): guests with every kind of dependency an apply has."""
    defs, inv = [], ['version: 1', 'guests:']

    def want(name, *devices):
        inv.append('  %s:' % name)
        inv.append('    hostdevs:%s' % ('' if devices else ' []'))
        for source, uid, fid in devices:
            inv.append('      - source: %s' % source)
            if uid is not None:
                inv.append('        zpci: {uid: %d, fid: %d}' % (uid, fid))

    for i in range(1, 5):
        # a function moves from src-i to dst-i: detached from one, attached to the other
        fn = '%04x:00:00.0' % (0x10 + i)
        defs.append(s390x_guest('src-%d' % i, hostdev_xml(fn, zpci_uid=1, zpci_fid=1)))
        defs.append(s390x_guest('dst-%d' % i))
        want('src-%d' % i)
        want('dst-%d' % i, (fn, 1, 1))
        # swap-i's two functions swap their zPCI ids: both detached, then both attached
        a, b = '%04x:00:00.0' % (0x20 + i), '%04x:00:01.0' % (0x20 + i)
        defs.append(s390x_guest('swap-%d' % i, hostdev_xml(a, zpci_uid=1, zpci_fid=1) +
                                hostdev_xml(b, zpci_uid=2, zpci_fid=2)))
        want('swap-%d' % i, (a, 2, 2), (b, 1, 1))
    for i in range(1, 9):
        # plain-i trades one function for another with the same ids, and gains one
        old, new, more = ('%04x:00:00.0' % (0x30 + i), '%04x:01:00.0' % (0x30 + i),
                          '%04x:02:00.0' % (0x30 + i))
        defs.append(s390x_guest('plain-%d' % i, hostdev_xml(old, zpci_uid=1, zpci_fid=1)))
        want('plain-%d' % i, (new, 1, 1), (more, None, None))
    defs.append(s390x_guest('steady', hostdev_xml('0040:00:00.0', zpci_uid=1, zpci_fid=1)))
    want('steady', ('0040:00:00.0', 1, 1))
    return defs, '\n'.join(inv) + '\n'


NAMES = sorted(re.search(r'<name>(.*)</name>', d).group(1) for d in fleet()[0])


class Run:
    """One lab and what an apply in it printed."""

    def __init__(self, test, threads):
        self.lab = EmbedLab()
        test.addCleanup(self.lab.close)
        defs, text = fleet()
        self.lab.define_many(defs)
        self.inv = os.path.join(self.lab.root, 'inventory.yaml')
        with open(self.inv, 'w') as f:
            f.write(text)
        self.threads = threads
        self.before = self.state()

    def apply(self, *args, fault=None):
        fd, counts = tempfile.mkstemp(prefix='zrcounts-', dir=self.lab.root)
        os.close(fd)
        env = lab.fault_env(fault, counts, apply_threads=self.threads)
        env['LIBVIRT_DEFAULT_URI'] = None
        self.rc, out, err = lab.run_tool(['apply', '-v'] + list(args) +
                                         ['-c', self.lab.uri, self.inv], env=env)
        # the root's path is the one thing two labs print differently
        self.out = out.replace(self.lab.root, 'ROOT')
        self.err = err.replace(self.lab.root, 'ROOT')
        self.calls = lab.read_counts(counts)
        return self

    def json(self, *args, fault=None):
        self.apply('-o', 'json', *args, fault=fault)
        return json.loads(self.out)

    def mutating(self):
        return (self.calls.get('virDomainAttachDeviceFlags', 0),
                self.calls.get('virDomainDetachDeviceFlags', 0))

    def state(self):
        """Every guest's persistent XML, its generated uuid left out."""
        return {n: re.sub(r'<uuid>.*</uuid>', '', self.lab.dumpxml(n)) for n in NAMES}


def device_sets(state):
    """state with each guest's hostdev elements as a sorted list: a rollback restores
    every element (ids, guest address) but attaches them again last, so their order in
    <devices> may change."""
    out = {}
    for name, text in state.items():
        root = ET.fromstring(text)
        devices = root.find('devices')
        hostdevs = devices.findall('hostdev')
        for el in hostdevs:
            devices.remove(el)
        out[name] = (ET.tostring(root, encoding='unicode'),
                     sorted(ET.tostring(el, encoding='unicode').strip() for el in hostdevs))
    return out


def progress(err):
    return [l for l in err.splitlines() if l.startswith(('[', 'rollback:', '  '))]


class ParallelApplyTest(unittest.TestCase):
    def pair(self):
        return Run(self, SEQUENTIAL), Run(self, PARALLEL)

    def assertSameRun(self, seq, par):
        self.assertEqual(par.rc, seq.rc, par.out + par.err)
        self.assertEqual(par.out, seq.out)
        self.assertEqual(progress(par.err), progress(seq.err))
        self.assertEqual(par.err, seq.err)
        self.assertEqual(par.mutating(), seq.mutating())
        self.assertEqual(par.state(), seq.state())

    def test_same_report_order_and_end_state(self):
        # the first detach and the first attach are slow: in parallel, later actions
        # finish first, and their lines must still come after theirs
        slow = 'virDomainDetachDeviceFlags@src-1:1:slow,virDomainAttachDeviceFlags@dst-1:1:slow'
        seq, par = self.pair()
        for run in (seq, par):
            run.apply(fault=slow)
        self.assertEqual(seq.rc, 0, seq.out + seq.err)
        self.assertSameRun(seq, par)
        # 4 moves, 4 swaps of two replacements, 8 trades and 8 new functions
        detaches, attaches = 4 + 8 + 8, 4 + 8 + 8 + 8
        self.assertEqual(par.mutating(), (attaches, detaches))
        lines = progress(par.err)
        self.assertEqual(len(lines), attaches + detaches)
        self.assertEqual([int(l[1:l.index('/')]) for l in lines],
                         list(range(1, attaches + detaches + 1)))
        # detaches first: the move's detach from src-1 comes before its attach to dst-1
        self.assertTrue(all(l.split()[1] == 'detach' for l in lines[:detaches]), lines)
        self.assertEqual(par.lab.devices('src-1'), [])
        self.assertEqual([d['source'] for d in par.lab.devices('dst-1')], ['0011:00:00.0'])
        self.assertNotEqual(par.state(), par.before)
        # in sync: nothing to do, no mutating call
        par.apply()
        self.assertEqual((par.rc, par.mutating()), (0, (0, 0)), par.out + par.err)

    def test_failures_hit_the_same_actions(self):
        # the move to dst-2 fails, slowly (later actions finish first, their lines
        # must still follow its "failed" line); swap-3's first detach fails, so its
        # attaches that need the freed ids are skipped; plain-5 is gone by its first attach
        fault = ('virDomainAttachDeviceFlags@dst-2:1:slow,virDomainAttachDeviceFlags@dst-2:1,'
                 'virDomainDetachDeviceFlags@swap-3:1:slow,virDomainDetachDeviceFlags@swap-3:1,'
                 'virDomainAttachDeviceFlags@plain-5:1:no-domain')
        seq, par = self.pair()
        docs = [run.json(fault=fault) for run in (seq, par)]
        self.assertEqual(seq.rc, 1, seq.out + seq.err)
        self.assertSameRun(seq, par)
        self.assertEqual(docs[1]['actions'], docs[0]['actions'])
        results = {(a['guest'], a['op'], a['result']) for a in docs[1]['actions']}
        self.assertIn(('dst-2', 'attach', 'failed'), results)
        self.assertIn(('swap-3', 'detach', 'failed'), results)
        self.assertIn(('swap-3', 'attach', 'skipped'), results)
        self.assertIn(('plain-5', 'attach', 'skipped'), results)
        self.assertEqual(par.lab.devices('src-2'), [])   # detached, as the report says
        self.assertEqual(par.lab.devices('dst-2'), [])

    def test_atomic_rolls_back_exactly(self):
        fault = 'virDomainAttachDeviceFlags@plain-6:1'
        seq, par = self.pair()
        docs = [run.json('--atomic', fault=fault) for run in (seq, par)]
        for run, doc in zip((seq, par), docs):
            self.assertEqual(run.rc, 1, run.out + run.err)
            # everything as before, nothing left to warn about
            self.assertEqual(device_sets(run.state()), device_sets(run.before))
            self.assertEqual([w for w in doc['warnings'] if 'rollback' in w['message']], [])
            results = [a['result'] for a in doc['actions']]
            self.assertEqual(results.count('failed'), 1, results)
            self.assertEqual(set(results) - {'rolled back', 'skipped', 'failed'}, set())
            # one call per action done, one per undo, and the failed one
            undone = results.count('rolled back')
            self.assertEqual(sum(run.mutating()), 2 * undone + 1)
            # the undo runs in reverse plan order of what was done
            rollback = [l for l in progress(run.err) if l.startswith('rollback:')]
            self.assertEqual(len(rollback), undone)
            done = [(a['op'], a['guest'], a['source']) for a in doc['actions']
                    if a['result'] == 'rolled back']
            undo = {'attach': 'detach', 'detach': 'attach'}
            self.assertEqual([(l.split()[1], l.split()[5], l.split()[3]) for l in rollback],
                             [(undo[op], g, s) for op, g, s in reversed(done)])
        # the same actions in the same order, and every detach was done before the failure
        self.assertEqual([(a['guest'], a['op'], a['source']) for a in docs[1]['actions']],
                         [(a['guest'], a['op'], a['source']) for a in docs[0]['actions']])
        self.assertTrue(all(a['result'] == 'rolled back' for a in docs[1]['actions']
                            if a['op'] == 'detach'))
        self.assertEqual(par.state(), seq.state())

    def test_signal_stops_new_actions_and_reports_honestly(self):
        run = Run(self, PARALLEL)
        metrics = os.path.join(run.lab.root, 'zr.prom')
        doc = run.json('--metrics-file', metrics,
                       fault='virDomainDetachDeviceFlags@plain-2:1:sigint')
        self.assertEqual(run.rc, 1, run.err)
        self.assertIn('interrupted by signal 2; stopped after the calls in progress', run.err)
        results = [(a['guest'], a['op'], a['source'], a['result']) for a in doc['actions']]
        done = [r for r in results if r[3] == 'done']
        # plain-2's detach was under way: it finished; every attach is left undone
        self.assertIn(('plain-2', 'detach', '0032:00:00.0', 'done'), done)
        self.assertTrue(all(r[1] == 'detach' for r in done), done)
        self.assertEqual({r[3] for r in results} - {'done', 'skipped'}, set())
        # a worker that had not started its next action did not start it
        self.assertLess(len(done), sum(1 for r in results if r[1] == 'detach'))
        self.assertEqual(run.mutating(), (0, len(done)))
        # what the report says is what the guests hold
        for guest, op, source, result in results:
            held = [d['source'] for d in run.lab.devices(guest)]
            if op == 'detach':
                self.assertEqual(source not in held, result == 'done', (guest, source, held))
        # issue 22: the counters are the guests the run changed, as their XML shows,
        # the same in JSON and metrics; a skipped action fails no guest
        touched = {guest for guest, _, _, result in results if result == 'done'}
        now = run.state()
        self.assertEqual(touched, {n for n in NAMES if now[n] != run.before[n]})
        s = doc['summary']
        self.assertEqual((s['guests_changed'], s['guests_failed'], s['failed']),
                         (len(touched), 0, 0))
        with open(metrics) as f:
            prom = f.read()
        for state, n in (('changed', len(touched)), ('failed', 0), ('in_sync', 1)):
            self.assertIn('zpci_reconcile_guests{host="default",state="%s"} %d\n' % (state, n),
                          prom)


    def test_bad_thread_count_changes_nothing(self):
        run = Run(self, PARALLEL)
        for value in ('0', '65', 'four', '-1', '4x', ' 4', '+4', '4 '):
            rc, out, err = lab.run_tool(['apply', '-c', run.lab.uri, run.inv],
                                        env={'ZPCI_RECONCILE_APPLY_THREADS': value,
                                             'LIBVIRT_DEFAULT_URI': None})
            self.assertEqual(rc, 1, value + ': ' + out + err)
            self.assertEqual(err, "zpci-reconcile: ZPCI_RECONCILE_APPLY_THREADS needs a whole "
                                  "number from 1 to 64, got '%s'\n" % value)
        self.assertEqual(run.state(), run.before)
        # watch refuses it the same way, before its first pass
        rc, out, err = lab.run_tool(['watch', '-c', run.lab.uri, run.inv],
                                    env={'ZPCI_RECONCILE_APPLY_THREADS': '0',
                                         'LIBVIRT_DEFAULT_URI': None})
        self.assertEqual(rc, 1, out + err)
        self.assertIn("ZPCI_RECONCILE_APPLY_THREADS needs a whole number from 1 to 64, got '0'",
                      err)
        self.assertEqual(run.state(), run.before)
        # empty is unset: the default pool
        rc, out, err = lab.run_tool(['apply', '-q', '-c', run.lab.uri, run.inv],
                                    env={'ZPCI_RECONCILE_APPLY_THREADS': '',
                                         'LIBVIRT_DEFAULT_URI': None})
        self.assertEqual(rc, 0, out + err)


if __name__ == '__main__':
    lab.main()
