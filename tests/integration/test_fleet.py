"""Several hosts in one inventory, for real.

Hosts of one hosts: inventory, each a different kind of connection:
  remote   qemu+tcp://127.0.0.1:PORT/system: a private libvirtd (tests/tcpdaemon.py)
  embed1   qemu:///embed?root=A       } two embedded roots and the local daemon: libvirt lets
  embed2   qemu:///embed?root=B       } no process hold more than one of these, so this only
  local    qemu:///system             } works if every host runs in a process of its own
  down     qemu+tcp://127.0.0.1:1/system, nothing listens: fails alone
  nowhere  the same with guests: {}: a host failure no guest line can carry

Nothing is faked: state is read back with virsh from each hypervisor. Guests on the shared
qemu:///system are named zrfleet-fleet-PID-* and removed at the end.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import unittest

import lab
from lab import EmbedLab, hostdev_xml, run_tool, s390x_guest
from tcpdaemon import TcpDaemon


def iface_xml(source, mac):
    dom, bus, rest = source.split(':')
    slot, fn = rest.split('.')
    return ("<interface type='hostdev' managed='yes'><mac address='%s'/>"
            "<source><address type='pci' domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/>"
            "</source></interface>") % (mac, dom, bus, slot, fn)


def no_iommu(f):
    return ('%s is in no IOMMU group (the host\'s IOMMU is off), so VFIO cannot assign it and '
            'the guest cannot start with it, with or without --config-only: enable the IOMMU '
            'in the firmware (VT-d or AMD-Vi) and on the kernel command line (intel_iommu=on, '
            'or amd_iommu=on where it is off), reboot, and have vfio-pci available' % f)


class FleetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        lab.require_root()
        cls.system = lab.SystemLab()
        cls.pci = lab.SystemDaemon.pci_node_devices()
        if len(cls.pci) < 3:
            raise lab.Skip('this machine lists fewer than 3 PCI functions')
        cls.tcp = TcpDaemon().start()

    @classmethod
    def tearDownClass(cls):
        cls.tcp.stop()

    def setUp(self):
        self.tag = 'zrfleet-fleet-%d-' % os.getpid()
        self.remote = self.tcp.lab()
        self.addCleanup(self.remote.cleanup, self.tag)
        self.addCleanup(self.system.cleanup, self.tag)
        self.e1, self.e2 = EmbedLab(), EmbedLab()
        self.addCleanup(self.e1.close)
        self.addCleanup(self.e2.close)
        self.dir = tempfile.mkdtemp(prefix='zrfleet-')
        self.addCleanup(shutil.rmtree, self.dir, True)
        t, p = self.tag, self.pci
        # remote: a uid to change and a device to attach (real host functions: the
        # host check runs over the remote connection and finds them).
        self.remote.define(s390x_guest(t + 'r1', hostdev_xml(p[0], zpci_uid=1)))
        self.remote.define(s390x_guest(t + 'r2'))
        self.e1.define(s390x_guest(t + 'e1', hostdev_xml('0001:00:00.0', zpci_uid=1) +
                                   hostdev_xml('0004:00:00.0', zpci_uid=3)))
        self.e2.define(s390x_guest(t + 'e2'))
        self.system.define(s390x_guest(t + 's1'))
        self.system.define(s390x_guest(t + 's2'))

    def inventory(self, local=True, down=True):
        t, p = self.tag, self.pci
        text = textwrap.dedent('''\
            version: 1
            hosts:
              remote:
                uri: %(remote)s
                guests:
                  %(t)sr1:
                    hostdevs: [{source: %(p0)s, zpci: {uid: 2}}]
                  %(t)sr2:
                    hostdevs: [{source: %(p1)s}]
              embed1:
                uri: %(e1)s
                guests:
                  %(t)se1:
                    hostdevs: [{source: 0001:00:00.0}]
            ''') % dict(t=t, p0=p[0], p1=p[1], remote=self.tcp.uri, e1=self.e1.uri)
        if local:
            # The shared daemon is planned, never applied to here: other test runs may
            # hold its apply lock at any moment.
            text += textwrap.indent(textwrap.dedent('''\
                local:
                  uri: qemu:///system
                  guests:
                    %(t)ss1:
                      hostdevs: [{source: %(p2)s}]
                    %(t)ss2:
                      hostdevs: [{source: 00ff:1f:1f.7}]
                ''') % dict(t=t, p2=p[2]), '  ')
        if down:
            text += textwrap.indent(textwrap.dedent('''\
                down:
                  uri: qemu+tcp://127.0.0.1:1/system
                  guests:
                    %(t)sd1: {}
                ''') % dict(t=t), '  ')
        text += textwrap.indent(textwrap.dedent('''\
            embed2:
              uri: %(e2)s
              guests:
                %(t)se2:
                  interfaces: [{source: 0003:00:00.0, mac: "02:00:00:00:00:07"}]
            ''') % dict(t=t, e2=self.e2.uri), '  ')
        if down:
            text += textwrap.indent(textwrap.dedent('''\
                nowhere:
                  uri: qemu+tcp://127.0.0.1:2/system
                  guests: {}
                '''), '  ')
        path = os.path.join(self.dir, 'fleet-%d%d.yaml' % (local, down))
        with open(path, 'w') as f:
            f.write(text)
        return path

    def tool(self, *args):
        return run_tool(list(args), env={'LIBVIRT_DEFAULT_URI': None})

    def test_plan_is_per_host_and_the_same_whatever_the_timing(self):
        inv = self.inventory()
        p = self.pci
        hosts = ['remote', 'embed1', 'local', 'down', 'embed2', 'nowhere']

        rc, out, err = self.tool('plan', '-o', 'json', inv)
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)
        self.assertEqual([h['host'] for h in doc['hosts']], hosts)
        self.assertEqual([h['reached'] for h in doc['hosts']],
                         [True, True, True, False, True, False])
        self.assertEqual(doc['hosts'][0]['uri'], self.tcp.uri)
        self.assertIn('cannot connect to qemu+tcp://127.0.0.1:1/system', doc['hosts'][3]['error'])
        self.assertIn('cannot connect to qemu+tcp://127.0.0.1:2/system', doc['hosts'][5]['error'])
        self.assertEqual([(e['host'], e['guest']) for e in doc['errors']],
                         [('down', self.tag + 'd1')])
        self.assertEqual(doc['summary']['hosts_failed'], 2)
        got = sorted((a['host'], a['guest'][len(self.tag):], a['op'], a['source'])
                     for a in doc['actions'])
        self.assertEqual(got, sorted([
            ('remote', 'r1', 'detach', self.pci[0]), ('remote', 'r1', 'attach', self.pci[0]),
            ('remote', 'r2', 'attach', self.pci[1]),
            ('embed1', 'e1', 'detach', '0004:00:00.0'),
            ('local', 's1', 'attach', self.pci[2]),
            ('local', 's2', 'attach', '00ff:1f:1f.7'),
            ('embed2', 'e2', 'attach', '0003:00:00.0'),
        ]))
        # Grouped by host in inventory order; on each host detaches first.
        order = [hosts.index(a['host']) for a in doc['actions']]
        self.assertEqual(order, sorted(order))
        for h in hosts:
            ops = [a['op'] for a in doc['actions'] if a['host'] == h]
            self.assertEqual(ops, sorted(ops, key=lambda op: op != 'detach'), h)
        # Sources are looked up among each host's own PCI functions, the remote one's
        # through its connection: the one this machine lacks is reported, and each one
        # attached is in no IOMMU group (this machine has no IOMMU).
        # (What the host uses on a function, e.g. its disk, depends on the machine:
        # test_system.py checks those warnings.)
        leave = '; apply will leave this guest alone'
        self.assertEqual(sorted((w['host'], w['guest'], w['message']) for w in doc['warnings']
                                if not w['message'].startswith('managed: true lets libvirt')),
                         sorted([('embed1', None, 'host check skipped: %s lists no node devices'
                                  % self.e1.uri),
                                 ('embed2', None, 'host check skipped: %s lists no node devices'
                                  % self.e2.uri),
                                 ('local', self.tag + 's1', no_iommu(p[2]) + leave),
                                 ('local', self.tag + 's2',
                                  'host has no PCI function 00ff:1f:1f.7' + leave),
                                 ('remote', self.tag + 'r1', no_iommu(p[0]) + leave),
                                 ('remote', self.tag + 'r2', no_iommu(p[1]) + leave)]))

        rc, text, err = self.tool('plan', inv)
        self.assertEqual(rc, 1, text + err)
        headers = re.findall(r'^== host (\S+) ', text, re.M)
        self.assertEqual(headers, hosts)
        self.assertRegex(text, r'== host nowhere \(qemu\+tcp://127\.0\.0\.1:2/system\) ==\n'
                               r'error: cannot connect')
        self.assertIn(self.tag + 'd1: error: cannot connect', text)
        self.assertIn('; 2 of 6 hosts failed.', text)

        # Whatever finishes first, the output is the same byte for byte.
        for jobs in ('1', '2', '6'):
            self.assertEqual(self.tool('plan', '-j', jobs, inv), (1, text, err), jobs)
            self.assertEqual(self.tool('plan', '-o', 'json', '-j', jobs, inv)[1], out, jobs)

    def test_apply_converges_every_reachable_host_and_fails_the_others(self):
        inv = self.inventory(local=False)
        metrics = os.path.join(self.dir, 'zpci-reconcile.prom')
        # --no-host-check: the remote host's functions are this machine's, in no IOMMU
        # group, which the host check refuses (the plan test above shows it); this test
        # is about converging a fleet.
        rc, out, err = self.tool('apply', '-o', 'json', '--no-host-check', '--metrics-file',
                                 metrics, inv)
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)
        self.assertEqual({a['result'] for a in doc['actions']}, {'done'}, out)
        self.assertEqual(len(doc['actions']), 5, out)

        def summary(lab_, name):
            return sorted((d['kind'], d['source'], d['zpci_uid']) for d in lab_.devices(name))
        t, p = self.tag, self.pci
        self.assertEqual([(k, s, u) for k, s, u in summary(self.remote, t + 'r1')],
                         [('hostdev', p[0], 2)])
        self.assertEqual([s for _, s, _ in summary(self.remote, t + 'r2')], [p[1]])
        self.assertEqual([s for _, s, _ in summary(self.e1, t + 'e1')], ['0001:00:00.0'])
        self.assertEqual([(k, s) for k, s, _ in summary(self.e2, t + 'e2')],
                         [('interface', '0003:00:00.0')])

        with open(metrics) as f:
            prom = f.read()
        for line in ('zpci_reconcile_host_up{host="remote"} 1',
                     'zpci_reconcile_host_up{host="down"} 0',
                     'zpci_reconcile_host_up{host="nowhere"} 0',
                     'zpci_reconcile_guests{host="down",state="failed"} 1',
                     'zpci_reconcile_guests{host="remote",state="drifted"} 2',
                     'zpci_reconcile_actions{host="remote",op="attach",kind="hostdev",'
                     'result="done"} 2',
                     'zpci_reconcile_last_run_exit_status{command="apply"} 1'):
            self.assertIn(line + '\n', prom)
        promtool = shutil.which('promtool')
        if promtool:
            check = subprocess.run([promtool, 'check', 'metrics'], input=prom, text=True,
                                   capture_output=True)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        else:
            print('promtool not installed (Debian package prometheus): metrics not linted')

        # Converged: only the unreachable hosts are left.
        rc, out, err = self.tool('plan', '-o', 'json', inv)
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)
        self.assertEqual(doc['actions'], [])
        self.assertEqual(doc['summary']['guests_in_sync'], 4)
        rc, out, err = self.tool('plan', self.inventory(local=False, down=False))
        self.assertEqual(rc, 0, out + err)
        self.assertIn('Plan: no changes; 4 of 4 guests in sync.', out)

    def test_two_hosts_on_one_uri_are_refused(self):
        path = os.path.join(self.dir, 'same.yaml')
        with open(path, 'w') as f:
            f.write('version: 1\nhosts:\n  a:\n    uri: %s\n    guests: {}\n'
                    '  b:\n    uri: %s\n    guests: {}\n' % (self.e1.uri, self.e1.uri))
        rc, out, err = self.tool('plan', path)
        self.assertEqual((rc, out), (1, ''))
        self.assertIn("same.yaml:6:3: error: host 'b' has the same uri as host 'a' (line 3)", err)


if __name__ == '__main__':
    lab.main()
