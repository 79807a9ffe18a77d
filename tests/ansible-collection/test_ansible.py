#!/usr/bin/env python3
"""The Ansible collection in contrib/ansible, driven by Debian's ansible-core.

ansible-playbook runs against localhost (connection: local) with the module pointed at
the build tree's binary ($ZR_BINARY), on guests of the test's own:

EmbedTest    a qemu:///embed root in a temp dir (guests defined with virsh children
             first: a root is locked by the process that opens it).
SystemTest   the machine's libvirtd, shared: only guests named zrans-<pid>-* are made
             and removed. The URI names the socket (qemu:///system?socket=...), the same
             daemon as qemu:///system but an apply lock of its own, as test_system.py does.
RoleTest     the role on an embedded root: the inventory written from a variable, the
             module run once, idempotence, check mode planning the new text.
DocTest      ansible-doc renders the module and the role; the module's own argument
             checks; the ansible-test sanity tests Debian's ansible-test can run offline
             (the others need a virtualenv from the network) and py_compile; the
             module's helpers on text and documents the binary cannot be made to print
             today (the JSON errors of an invalid inventory, issue 13; hosts: blocks).

The directory is not named `ansible`: tests/ is on sys.path (for lab), and a tests/ansible
would hide ansible-core's package.

Results are read from the registered variable, which the playbook writes as JSON to a
file; the diff is read from ansible-playbook's own output, as a person sees it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import lab  # noqa: E402
from lab import hostdev_xml, s390x_guest  # noqa: E402

SRC = os.environ.get('ZR_SRCDIR') or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
COLLECTION = os.path.join(SRC, 'contrib', 'ansible')
MODULE = os.path.join(COLLECTION, 'plugins', 'modules', 'zpci_reconcile.py')
SHARED_URI = 'qemu:///system?socket=/run/libvirt/libvirt-sock'
FQCN = 'zpci.reconcile.zpci_reconcile'


def need_ansible():
    for tool in ('ansible-playbook', 'ansible-doc'):
        if not shutil.which(tool):
            raise lab.Skip('%s is not installed (Debian: ansible-core)' % tool)


def binary():
    b = os.environ.get('ZR_BINARY')
    if not b or not os.access(b, os.X_OK):
        raise lab.Skip('the tool is not built (ZR_BINARY)')
    return b


class Ansible:
    """A collections path holding zpci.reconcile (a symlink to contrib/ansible) and the
    environment that keeps Ansible's files inside the test's temp dir."""

    def __init__(self, tmp):
        self.tmp = tmp
        coll = os.path.join(tmp, 'collections', 'ansible_collections', 'zpci')
        os.makedirs(coll)
        os.symlink(COLLECTION, os.path.join(coll, 'reconcile'))
        self.env = dict(os.environ)
        self.env.update({
            'ANSIBLE_COLLECTIONS_PATH': os.path.join(tmp, 'collections'),
            'ANSIBLE_LOCAL_TEMP': os.path.join(tmp, 'ansible-local'),
            'ANSIBLE_REMOTE_TEMP': os.path.join(tmp, 'ansible-remote'),
            'ANSIBLE_NOCOLOR': '1',
            'ANSIBLE_RETRY_FILES_ENABLED': '0',
            # the Python that ansible-core (Debian's) runs modules with
            'ANSIBLE_PYTHON_INTERPRETER': ('/usr/bin/python3' if os.path.exists(
                '/usr/bin/python3') else sys.executable),
            'ANSIBLE_LOCALHOST_WARNING': '0',
            'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
            # a role's argument_specs and the module's docs are read from here
            'ANSIBLE_ROLES_PATH': os.path.join(COLLECTION, 'roles'),
        })
        self.env.pop('LIBVIRT_DEFAULT_URI', None)
        self.count = 0

    def run(self, tool, *args):
        proc = subprocess.run([tool] + list(args), capture_output=True, text=True,
                              env=self.env, stdin=subprocess.DEVNULL, timeout=600)
        return proc.returncode, proc.stdout + proc.stderr

    def playbook(self, tasks, check=False, diff=False, extra=()):
        """Run tasks (YAML text, indented 4) on localhost; returns (rc, output, results).

        Every task that registers `r` gets its result written to results.json.
        """
        self.count += 1
        out_json = os.path.join(self.tmp, 'results-%d.json' % self.count)
        play = os.path.join(self.tmp, 'play-%d.yml' % self.count)
        with open(play, 'w') as f:
            f.write('- hosts: localhost\n'
                    '  connection: local\n'
                    '  gather_facts: false\n'
                    '  tasks:\n'
                    + tasks +
                    '    - name: save the result\n'
                    '      ansible.builtin.copy:\n'
                    '        content: "{{ r | to_json }}"\n'
                    '        dest: %s\n'
                    '      check_mode: false\n'
                    '      diff: false\n'
                    '      changed_when: false\n'
                    '      when: r is defined\n' % json.dumps(out_json))
        args = ['-i', 'localhost,', play] + (['--check'] if check else []) + \
            (['--diff'] if diff else []) + list(extra)
        rc, out = self.run('ansible-playbook', *args)
        results = None
        if os.path.exists(out_json):
            with open(out_json) as f:
                results = json.load(f)
        return rc, out, results


def import_module():
    """The module's file as a Python module, for its helpers.

    It imports ansible.module_utils, which lives where the Python that runs
    ansible-core (Debian's /usr/bin/python3) finds it; the test may run under another
    Python 3 (meson's python3 from PATH).
    """
    try:
        import ansible.module_utils.basic  # noqa: F401
    except ImportError:
        out = subprocess.run(['/usr/bin/python3', '-c', 'import ansible, os; print(os.path.'
                              'dirname(os.path.dirname(ansible.__file__)))'],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise lab.Skip('ansible.module_utils is not importable')
        sys.path.append(out.stdout.strip())
        sys.modules.pop('ansible', None)
    sys.path.insert(0, os.path.dirname(MODULE))
    try:
        import zpci_reconcile
    finally:
        sys.path.remove(os.path.dirname(MODULE))
    return zpci_reconcile


def module_task(**args):
    """A task calling the module with args (JSON is YAML), registered as r, errors kept."""
    return ('    - name: zpci_reconcile\n'
            '      %s: %s\n'
            '      register: r\n'
            '      ignore_errors: true\n') % (FQCN, json.dumps(args))


class ModuleTests:
    """What the embedded root and the shared daemon both must show; the mixin needs
    self.lab, self.uri, self.host_check and self.sources(n)."""

    host_check = True

    def setUp(self):
        need_ansible()
        self.binary = binary()
        self.tmp = tempfile.mkdtemp(prefix='zrans-test-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.ansible = Ansible(self.tmp)

    def args(self, **kw):
        a = dict(uri=self.uri, binary=self.binary, host_check=self.host_check)
        a.update(kw)
        return a

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def dumpxml(self, names):
        return {n: self.lab.dumpxml(n) for n in names}

    def test_check_diff_apply_then_idempotent(self):
        f0, f1, f2, f3 = self.sources(4)
        a, b, c = self.name('a'), self.name('b'), self.name('c')
        self.lab.define_many([
            s390x_guest(a, hostdev_xml(f0, zpci_uid=1)),
            s390x_guest(b, hostdev_xml(f2)),
            s390x_guest(c, hostdev_xml(f3)),
        ])
        inv = self.write('inventory.yaml', (
            'version: 1\nguests:\n'
            '  %s:\n    hostdevs:\n'
            '      - source: %s\n        zpci: {uid: 0x0002}\n'
            '      - source: %s\n'
            '  %s:\n    hostdevs:\n      - source: %s\n'
            '  %s:\n    hostdevs: []\n') % (a, f0, f1, b, f2, c))
        before = self.dumpxml([a, b, c])

        # check mode: a plan; changed, nothing changed; --diff shows the plan's lines
        rc, out, r = self.ansible.playbook(module_task(**self.args(inventory=inv)),
                                           check=True, diff=True)
        self.assertEqual(rc, 0, out)
        self.assertFalse(r.get('failed'), out)
        self.assertTrue(r['changed'], out)
        self.assertEqual(r['command'], 'plan')
        self.assertEqual(r['rc'], 2)
        self.assertEqual(sorted((x['guest'], x['op'], x['source'], x['result'])
                                for x in r['actions']),
                         sorted([(a, 'detach', f0, 'planned'), (a, 'attach', f0, 'planned'),
                                 (a, 'attach', f1, 'planned'), (c, 'detach', f3, 'planned')]))
        self.assertEqual(r['summary']['guests_in_sync'], 1)
        # the plan's own lines, under the guest's name (the device as it will be, then
        # each changed field)
        self.assertRegex(out, r'%s:\n  ~ replace hostdev %s zpci uid=0x0002 .*\[config\]\n'
                         r'      zpci\.uid 0x0001 \u2192 0x0002\n' % (re.escape(a), f0))
        self.assertIn('  + attach hostdev %s [config]\n' % f1, out)
        self.assertRegex(out, r'%s:\n  - detach hostdev %s .*\[config\] \(not in inventory\)\n'
                         % (re.escape(c), f3))
        self.assertNotIn('%s:' % b, out)   # in sync: no diff for it
        self.assertEqual(self.dumpxml([a, b, c]), before)

        # state: planned, not in check mode: the same, and still nothing changes
        rc, out, r = self.ansible.playbook(module_task(**self.args(inventory=inv,
                                                                   state='planned')))
        self.assertEqual(rc, 0, out)
        self.assertTrue(r['changed'], out)
        self.assertEqual(r['command'], 'plan')
        self.assertEqual(self.dumpxml([a, b, c]), before)

        # apply: changed, every action done, the guests converge
        rc, out, r = self.ansible.playbook(module_task(**self.args(inventory=inv)), diff=True)
        self.assertEqual(rc, 0, out)
        self.assertFalse(r.get('failed'), out)
        self.assertTrue(r['changed'], out)
        self.assertEqual(r['command'], 'apply')
        self.assertEqual(r['rc'], 0)
        self.assertEqual(len(r['actions']), 4, r['actions'])
        self.assertEqual({x['result'] for x in r['actions']}, {'done'})
        self.assertIn('  + attach hostdev %s [config]\n' % f1, out)   # the diff, before
        devs = {d['source']: d for d in self.lab.devices(a)}
        self.assertEqual(sorted(devs), sorted([f0, f1]))
        self.assertEqual(devs[f0]['zpci_uid'], 2)
        self.assertEqual([d['source'] for d in self.lab.devices(b)], [f2])
        self.assertEqual(self.lab.devices(c), [])
        self.assertEqual(self.dumpxml([b]), {b: before[b]})

        # idempotent: apply again, and check mode again, report no change
        after = self.dumpxml([a, b, c])
        rc, out, r = self.ansible.playbook(module_task(**self.args(inventory=inv)), diff=True)
        self.assertEqual(rc, 0, out)
        self.assertFalse(r['changed'], out)
        self.assertEqual(r['actions'], [])
        self.assertRegex(out, r'localhost\s*:\s*ok=\d+\s+changed=0\s')
        rc, out, r = self.ansible.playbook(module_task(**self.args(inventory=inv)),
                                           check=True, diff=True)
        self.assertEqual(rc, 0, out)
        self.assertFalse(r['changed'], out)
        self.assertEqual(self.dumpxml([a, b, c]), after)

    def test_content_is_applied(self):
        f0, = self.sources(1)
        a = self.name('content')
        self.lab.define(s390x_guest(a))
        content = 'version: 1\nguests:\n  %s:\n    hostdevs:\n      - source: %s\n' % (a, f0)
        rc, out, r = self.ansible.playbook(module_task(**self.args(content=content)))
        self.assertEqual(rc, 0, out)
        self.assertTrue(r['changed'], out)
        self.assertEqual(r['cmd'][-2:], ['apply', '-'])
        self.assertEqual([d['source'] for d in self.lab.devices(a)], [f0])
        rc, out, r = self.ansible.playbook(module_task(**self.args(content=content)))
        self.assertFalse(r['changed'], out)

    def test_bad_inventory_fails_with_its_position_and_changes_nothing(self):
        f0, = self.sources(1)
        a = self.name('bad')
        self.lab.define(s390x_guest(a))
        text = ('version: 1\nguests:\n  %s:\n    hostdevs:\n'
                '      - source: %s\n        zpci: {uid: 0x10000}\n') % (a, f0)
        inv = self.write('bad.yaml', text)
        before = self.dumpxml([a])
        for args, where in ((dict(inventory=inv), inv), (dict(content=text), '<stdin>')):
            rc, out, r = self.ansible.playbook(module_task(**self.args(**args)))
            self.assertEqual(rc, 0, out)    # ignore_errors: the play goes on to save r
            self.assertTrue(r['failed'], out)
            self.assertFalse(r['changed'], out)
            self.assertEqual(r['rc'], 1)
            # the position, and the message, in msg; not the excerpt under it
            self.assertIn('%s:6:21: error: ' % where, r['msg'])
            self.assertIn("'uid' must be a number from 0x0001 to 0xffff", r['msg'])
            self.assertNotIn('^', r['msg'])
            self.assertIn('fatal: [localhost]: FAILED!', out)
            self.assertEqual(self.dumpxml([a]), before)

    def test_missing_inventory_names_the_file(self):
        # The binary's error names the file but no line: msg must still name it.
        inv = os.path.join(self.tmp, 'no-such-inventory.yaml')
        for check in (True, False):
            rc, out, r = self.ansible.playbook(module_task(**self.args(inventory=inv)),
                                               check=check)
            self.assertTrue(r['failed'], out)
            self.assertFalse(r['changed'], out)
            self.assertEqual(r['rc'], 1)
            self.assertIn('%s: error: cannot open: No such file or directory' % inv, r['msg'])

    def test_unknown_guest_fails_with_the_message(self):
        ghost = self.name('ghost')
        inv = self.write('ghost.yaml', 'version: 1\nguests:\n  %s:\n    hostdevs: []\n' % ghost)
        for check in (True, False):
            rc, out, r = self.ansible.playbook(module_task(**self.args(inventory=inv)),
                                               check=check)
            self.assertTrue(r['failed'], out)
            self.assertFalse(r['changed'], out)
            self.assertIn("zpci-reconcile %s failed: %s: guest '%s' not found" % (
                'plan' if check else 'apply', ghost, ghost), r['msg'])
            self.assertEqual(r['errors'][0]['guest'], ghost)


class EmbedTest(ModuleTests, unittest.TestCase):
    host_check = False      # an embedded root has no node devices to look sources up in

    def setUp(self):
        super().setUp()
        self.lab = lab.EmbedLab()
        self.addCleanup(self.lab.close)
        self.uri = self.lab.uri

    def name(self, short):
        return 'zrans-' + short

    def sources(self, n):
        return ['0001:00:%02x.0' % i for i in range(1, n + 1)]

    def test_hosts_inventory(self):
        # two hosts in one inventory (the binary fans out): the diff keeps each host's
        # header, errors name HOST/GUEST
        other = lab.EmbedLab()
        self.addCleanup(other.close)
        g = self.name('h')
        self.lab.define(s390x_guest(g))
        other.define(s390x_guest(g))
        text = ('version: 1\nhosts:\n'
                '  h1:\n    uri: %s\n    guests:\n      %s:\n        hostdevs:\n'
                '          - source: 0001:00:01.0\n'
                '  h2:\n    uri: %s\n    guests:\n      %s:\n        hostdevs:\n'
                '          - source: 0001:00:02.0\n') % (self.lab.uri, g, other.uri, g)
        inv = self.write('hosts.yaml', text)
        args = dict(inventory=inv, binary=self.binary, host_check=False)
        rc, out, r = self.ansible.playbook(module_task(**args), check=True, diff=True)
        self.assertEqual(rc, 0, out)
        self.assertTrue(r['changed'], out)
        self.assertIn('== host h1 (%s) ==\n%s:\n  + attach hostdev 0001:00:01.0 [config]\n'
                      '== host h2 (%s) ==\n%s:\n  + attach hostdev 0001:00:02.0 [config]\n'
                      % (self.lab.uri, g, other.uri, g), out)
        self.assertEqual([h['host'] for h in r['hosts']], ['h1', 'h2'])
        rc, out, r = self.ansible.playbook(module_task(**args))
        self.assertTrue(r['changed'], out)
        self.assertEqual([d['source'] for d in self.lab.devices(g)], ['0001:00:01.0'])
        self.assertEqual([d['source'] for d in other.devices(g)], ['0001:00:02.0'])
        rc, out, r = self.ansible.playbook(module_task(**args))
        self.assertFalse(r['changed'], out)
        ghost = self.name('ghost')
        inv = self.write('ghost.yaml', text + '      %s:\n        hostdevs: []\n' % ghost)
        rc, out, r = self.ansible.playbook(module_task(**dict(args, inventory=inv)))
        self.assertTrue(r['failed'], out)
        self.assertIn("zpci-reconcile apply failed: h2/%s: guest '%s' not found" % (
            ghost, ghost), r['msg'])

    def test_host_check_warning_is_an_ansible_warning(self):
        a = self.name('warn')
        self.lab.define(s390x_guest(a))
        inv = self.write('w.yaml', 'version: 1\nguests:\n  %s:\n    hostdevs:\n'
                         '      - source: 0001:00:01.0\n' % a)
        rc, out, r = self.ansible.playbook(module_task(**self.args(inventory=inv,
                                                                   host_check=True)),
                                           check=True)
        self.assertEqual(rc, 0, out)
        self.assertTrue(r['changed'], out)
        self.assertIn('[WARNING]: host check skipped: %s lists no node' % self.uri,
                      out.replace('\n', ' ').replace('  ', ' '))
        self.assertEqual(r['document']['warnings'][0]['message'],
                         'host check skipped: %s lists no node devices' % self.uri)


class SystemTest(ModuleTests, unittest.TestCase):
    PREFIX = 'zrans-%d-' % os.getpid()
    uri = SHARED_URI
    # This machine's functions are in no IOMMU group (no IOMMU): the host check refuses
    # every attach of one (test_host_check_refusal_is_in_msg); the other tests are about
    # the module.
    host_check = False

    @classmethod
    def setUpClass(cls):
        need_ansible()
        cls.lab = lab.SystemLab()
        for n in cls.lab.list_names():     # left by a killed earlier run: its pid is gone
            m = re.match(r'zrans-(\d+)-', n)
            if m and not os.path.exists('/proc/' + m.group(1)):
                cls.lab.cleanup(m.group(0))

    def setUp(self):
        super().setUp()
        self.lab.cleanup(self.PREFIX)
        self.addCleanup(self.lab.cleanup, self.PREFIX)

    def name(self, short):
        return self.PREFIX + short

    def sources(self, n):
        """n host PCI functions no guest's definition holds (others' guests live here)."""
        held = set()
        for x in self.lab.list_names():
            try:
                held.update(d['source'] for d in self.lab.devices(x))
            except lab.VirshError:   # vanished meanwhile
                pass
        free = [p for p in lab.SystemDaemon.pci_node_devices() if p not in held]
        if len(free) < n:
            raise lab.Skip('needs %d free PCI functions, the host has %d' % (n, len(free)))
        # From the front: test_system.py takes its functions from the back, and a
        # function another test attaches meanwhile would make this one's plan a conflict.
        return free[:n]

    def test_libvirt_failure_is_in_msg(self):
        f0, = self.sources(1)
        run = self.name('run')
        self.lab.define(s390x_guest(run))
        self.lab.start(run)
        inv = self.write('live.yaml', 'version: 1\nguests:\n  %s:\n    hostdevs:\n'
                         '      - source: %s\n' % (run, f0))
        before = self.dumpxml([run])
        rc, out, r = self.ansible.playbook(module_task(**self.args(inventory=inv)))
        self.assertTrue(r['failed'], out)
        self.assertFalse(r['changed'], out)
        self.assertEqual(r['rc'], 1)
        self.assertRegex(r['msg'], re.escape('zpci-reconcile apply failed: %s: attach hostdev %s: '
                                             % (run, f0)) + '(?:%s)' % lab.NO_VFIO_RE)
        self.assertEqual(r['actions'][0]['result'], 'failed')
        self.assertEqual(self.dumpxml([run]), before)


    def test_host_check_refusal_is_in_msg(self):
        f0, = self.sources(1)
        a = self.name('noiommu')
        self.lab.define(s390x_guest(a))
        inv = self.write('noiommu.yaml', 'version: 1\nguests:\n  %s:\n    hostdevs:\n'
                         '      - source: %s\n' % (a, f0))
        before = self.dumpxml([a])
        rc, out, r = self.ansible.playbook(module_task(**self.args(inventory=inv,
                                                                   host_check=True)))
        self.assertTrue(r['failed'], out)
        self.assertFalse(r['changed'], out)
        self.assertIn('zpci-reconcile apply failed: %s: %s: %s is in no IOMMU group' % (a, f0, f0),
                      r['msg'])
        self.assertEqual(self.dumpxml([a]), before)


class RoleTest(unittest.TestCase):
    def setUp(self):
        need_ansible()
        self.binary = binary()
        self.tmp = tempfile.mkdtemp(prefix='zrans-role-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.ansible = Ansible(self.tmp)
        self.lab = lab.EmbedLab()
        self.addCleanup(self.lab.close)
        self.path = os.path.join(self.tmp, 'etc', 'inventory.yaml')

    def role(self, inventory, check=False, diff=False, **more):
        vars_file = os.path.join(self.tmp, 'vars.json')
        with open(vars_file, 'w') as f:
            json.dump(dict({
                'zpci_reconcile_inventory': inventory,
                'zpci_reconcile_inventory_path': self.path,
                'zpci_reconcile_uri': self.lab.uri,
                'zpci_reconcile_host_check': False,
                'zpci_reconcile_binary': self.binary,
            }, **more), f)
        tasks = ('    - ansible.builtin.include_role:\n'
                 '        name: zpci.reconcile.zpci_reconcile\n'
                 '    - ansible.builtin.set_fact:\n'
                 '        r: "{{ zpci_reconcile_result }}"\n')
        return self.ansible.playbook(tasks, check=check, diff=diff,
                                     extra=['-e', '@' + vars_file])

    def test_role_writes_the_inventory_and_converges(self):
        g = 'zrans-role'
        self.lab.define(s390x_guest(g))
        # as group_vars would hold it: PCI addresses quoted, numbers as YAML reads them
        inventory = {'version': 1, 'guests': {g: {'hostdevs': [
            {'source': '0001:00:01.0', 'zpci': {'uid': 5}}]}}}
        before = self.lab.dumpxml(g)

        rc, out, r = self.role(inventory, check=True, diff=True)
        self.assertEqual(rc, 0, out)
        self.assertTrue(r['changed'], out)
        self.assertEqual(r['command'], 'plan')
        self.assertIn('  + attach hostdev 0001:00:01.0 zpci uid=0x0005 [config]', out)
        self.assertFalse(os.path.exists(self.path), out)   # check mode wrote nothing
        self.assertEqual(self.lab.dumpxml(g), before)

        rc, out, r = self.role(inventory)
        self.assertEqual(rc, 0, out)
        self.assertTrue(r['changed'], out)
        self.assertEqual(r['cmd'][-1], self.path)
        with open(self.path) as f:
            self.assertIn("source: '0001:00:01.0'", f.read())
        self.assertEqual(oct(os.stat(self.path).st_mode & 0o777), '0o600')
        [d] = self.lab.devices(g)
        self.assertEqual((d['source'], d['zpci_uid']), ('0001:00:01.0', 5))

        rc, out, r = self.role(inventory)
        self.assertEqual(rc, 0, out)
        self.assertFalse(r['changed'], out)
        self.assertRegex(out, r'localhost\s*:\s*ok=\d+\s+changed=0\s')

        # unquoted in YAML 1.1 a PCI address is a base-60 number: validate refuses it
        # with its position, and the file in place stays as it was
        with open(self.path) as f:
            good = f.read()
        bad = {'version': 1, 'guests': {g: {'hostdevs': [{'source': 3600.0}]}}}
        rc, out, r = self.role(bad)
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r'failed to validate', out)
        self.assertRegex(out, r':5:\d+: error: ', out)
        with open(self.path) as f:
            self.assertEqual(f.read(), good)
        self.assertEqual(len(self.lab.devices(g)), 1)


    def test_role_renders_a_template(self):
        g = 'zrans-tmpl'
        self.lab.define(s390x_guest(g))
        template = os.path.join(self.tmp, 'inventory.yaml.j2')
        with open(template, 'w') as f:
            f.write('version: 1\nguests:\n'
                    '{% for name, source in tmpl_guests.items() %}'
                    '  {{ name }}:\n    hostdevs:\n      - source: {{ source }}\n'
                    '{% endfor %}')
        extra = {'zpci_reconcile_inventory_template': template,
                 'tmpl_guests': {g: '0001:00:07.0'}}
        rc, out, r = self.role({}, **extra)
        self.assertEqual(rc, 0, out)
        self.assertTrue(r['changed'], out)
        with open(self.path) as f:
            self.assertEqual(f.read(), 'version: 1\nguests:\n  %s:\n    hostdevs:\n'
                                       '      - source: 0001:00:07.0\n' % g)
        self.assertEqual([d['source'] for d in self.lab.devices(g)], ['0001:00:07.0'])
        rc, out, r = self.role({}, **extra)
        self.assertFalse(r['changed'], out)
        # both a mapping and a template: refused before anything is written
        os.unlink(self.path)
        rc, out, r = self.role({'version': 1, 'guests': {}}, **extra)
        self.assertNotEqual(rc, 0, out)
        self.assertIn('Set zpci_reconcile_inventory or zpci_reconcile_inventory_template, '
                      'not both', out)
        self.assertFalse(os.path.exists(self.path))

    def test_timer_without_the_package_fails_clearly(self):
        # the package's units, where tests/package/test-deb.sh installs them for a while
        if any(os.path.exists(os.path.join(d, 'zpci-reconcile.timer'))
               for d in ('/lib/systemd/system', '/usr/lib/systemd/system',
                         '/etc/systemd/system')):
            self.skipTest('zpci-reconcile.timer is installed on this machine')
        inventory = {'version': 1, 'guests': {}}
        # the timer reads /etc/zpci-reconcile/inventory.yaml only
        rc, out, r = self.role(inventory, zpci_reconcile_service='timer')
        self.assertNotEqual(rc, 0, out)
        self.assertIn('keep zpci_reconcile_inventory_path /etc/zpci-reconcile/inventory.yaml',
                      out)
        self.assertFalse(os.path.exists(self.path), out)
        # the default path, in check mode (nothing is written): the units are missing
        rc, out, r = self.role(inventory, check=True, zpci_reconcile_service='timer',
                               zpci_reconcile_inventory_path='/etc/zpci-reconcile/'
                                                             'inventory.yaml')
        self.assertNotEqual(rc, 0, out)
        self.assertIn('zpci-reconcile.service and zpci-reconcile.timer are not both installed',
                      out)
        # watch: the same path rule, then its own unit must be there
        rc, out, r = self.role(inventory, zpci_reconcile_service='watch')
        self.assertNotEqual(rc, 0, out)
        self.assertIn('keep zpci_reconcile_inventory_path /etc/zpci-reconcile/inventory.yaml',
                      out)
        if not any(os.path.exists(os.path.join(d, 'zpci-reconcile-watch.service'))
                   for d in ('/lib/systemd/system', '/usr/lib/systemd/system',
                             '/etc/systemd/system')):
            rc, out, r = self.role(inventory, check=True, zpci_reconcile_service='watch',
                                   zpci_reconcile_inventory_path='/etc/zpci-reconcile/'
                                                                 'inventory.yaml')
            self.assertNotEqual(rc, 0, out)
            self.assertIn('zpci-reconcile-watch.service is not installed', out)
        # anything else is refused by the argument spec
        rc, out, r = self.role(inventory, zpci_reconcile_service='cron')
        self.assertNotEqual(rc, 0, out)
        self.assertIn('zpci_reconcile_service', out)
        self.assertIn('none, timer, watch', out)


class DocTest(unittest.TestCase):
    def setUp(self):
        need_ansible()
        self.tmp = tempfile.mkdtemp(prefix='zrans-doc-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.ansible = Ansible(self.tmp)

    def test_ansible_doc_renders_the_module(self):
        rc, out = self.ansible.run('ansible-doc', FQCN)
        self.assertEqual(rc, 0, out)
        # the heading: ansible-core 2.14 (Debian 12) "> ZPCI.RECONCILE.ZPCI_RECONCILE",
        # 2.19 (Debian 13) "> MODULE zpci.reconcile.zpci_reconcile"
        self.assertRegex(out, r'(?m)^> (?:ZPCI\.RECONCILE\.ZPCI_RECONCILE|MODULE %s)\b'
                         % re.escape(FQCN))
        for word in ('OPTIONS', 'EXAMPLES:', 'RETURN VALUES:', 'check mode'):
            self.assertIn(word, out)
        for option in ('inventory', 'content', 'uri', 'state', 'atomic', 'config_only',
                       'timeout', 'host_check', 'binary'):
            # 2.14: the name on a line of its own; 2.19: the name, then its description
            self.assertRegex(out, r'\n[-=] %s(?:\n| {2,}\S)' % option)
        rc, out = self.ansible.run('ansible-doc', '--json', FQCN)
        self.assertEqual(rc, 0, out)
        doc = json.loads(out)[FQCN]
        self.assertEqual(doc['doc']['options']['state']['choices'], ['present', 'planned'])
        self.assertTrue(doc['doc']['options']['host_check']['default'])
        self.assertIn('summary', doc['return'])

    def test_ansible_doc_renders_the_role(self):
        rc, out = self.ansible.run('ansible-doc', '-t', 'role', 'zpci.reconcile.zpci_reconcile')
        self.assertEqual(rc, 0, out)
        self.assertIn('zpci_reconcile_service', out)
        self.assertIn('watch', out)

    def test_argument_spec(self):
        bad = [
            (dict(), 'one of the following is required: inventory, content'),
            (dict(inventory='/x', content='y'),
             'parameters are mutually exclusive: inventory|content'),
            (dict(inventory='/x', state='absent'),
             'value of state must be one of: present, planned, got: absent'),
            (dict(inventory='/x', timeout=86401),
             'timeout must be from 0 to 86400 seconds, got 86401'),
            (dict(inventory='/x', timeout='soon'), "timeout"),
            (dict(inventory='/x', binary='no-such-zpci-reconcile'),
             'Failed to find required executable "no-such-zpci-reconcile"'),
            (dict(inventory='/x', binary='/nonexistent/zpci-reconcile'),
             'binary /nonexistent/zpci-reconcile is not an executable file'),
            (dict(inventory='/x', atomicity=True), 'Unsupported parameters'),
            (dict(content=' \n'), 'content is empty'),
        ]
        tasks = ''.join(module_task(**args).replace('register: r', 'register: r%d' % i)
                        for i, (args, _) in enumerate(bad))
        tasks += '    - ansible.builtin.set_fact:\n        r: [%s]\n' % ', '.join(
            '"{{ r%d }}"' % i for i in range(len(bad)))
        rc, out, results = self.ansible.playbook(tasks)
        self.assertEqual(rc, 0, out)
        for (args, msg), r in zip(bad, results):
            self.assertTrue(r.get('failed'), (args, r))
            self.assertIn(msg, r['msg'], args)

    def test_failure_message_from_a_document_or_from_stderr(self):
        # Today an invalid inventory leaves stdout empty and the error on stderr (the
        # bad-inventory tests above drive that with the real binary); issue 13 makes -o
        # json print a document whose errors carry file, line, column and message.
        # msg must read the same from either.
        m = import_module()
        stderr = ("inv.yaml:6:21: error: 'uid' must be a number from 0x0001 to 0xffff, "
                  "got '0x10000'\n        zpci: {uid: 0x10000}\n                    ^\n")
        doc = {'version': 1, 'actions': [], 'errors': [
            {'file': 'inv.yaml', 'line': 6, 'column': 21,
             'message': "'uid' must be a number from 0x0001 to 0xffff, got '0x10000'"}]}
        self.assertEqual(m.parse_document(''), None)
        self.assertEqual(m.parse_document('not json'), None)
        self.assertEqual(m.failure_parts(None, stderr), m.failure_parts(doc, ''))
        self.assertEqual(m.failure_parts(doc, ''), [
            "inv.yaml:6:21: error: 'uid' must be a number from 0x0001 to 0xffff, got '0x10000'"])
        # an error about the file as a whole: a file, no line; the same as on stderr
        doc = {'errors': [{'host': None, 'guest': None, 'file': 'inv.yaml', 'line': None,
                           'column': None, 'message': 'cannot open: No such file or directory'}]}
        stderr = 'inv.yaml: error: cannot open: No such file or directory\n'
        self.assertEqual(m.failure_parts(doc, ''), [stderr.strip()])
        self.assertEqual(m.failure_parts(None, stderr), m.failure_parts(doc, ''))
        # a guest's error, a host's, a failed and a skipped action, under hosts:
        doc = {'errors': [{'host': 'kvm1', 'guest': 'g', 'message': "guest 'g' not found"}],
               'hosts': [{'host': 'kvm2', 'error': 'cannot connect'}],
               'actions': [{'host': 'default', 'guest': 'a', 'op': 'attach', 'kind': 'hostdev',
                            'source': '0001:00:00.0', 'result': 'failed', 'error': 'E1'},
                           {'host': 'default', 'guest': 'a', 'op': 'attach', 'kind': 'interface',
                            'source': '0002:00:00.0', 'result': 'skipped',
                            'skip_reason': 'R'},
                           {'host': 'default', 'guest': 'a', 'op': 'detach', 'kind': 'hostdev',
                            'source': '0003:00:00.0', 'result': 'done'}]}
        self.assertEqual(m.failure_parts(doc, 'ignored'), [
            "kvm1/g: guest 'g' not found", 'host kvm2: cannot connect',
            'a: attach hostdev 0001:00:00.0: E1',
            'a: attach interface 0002:00:00.0: skipped: R'])

    def test_plan_diffs_split_the_text_per_guest(self):
        m = import_module()
        text = ('== host kvm1 (qemu:///system) ==\n'
                'a:\n  + attach hostdev 0001:00:00.0 [config]\n'
                'b: in sync\n'
                'c: error: guest \'c\' not found\n'
                '== host kvm2 (qemu+ssh://kvm2/system) ==\n'
                'd:\n  ~ replace hostdev 0002:00:00.0 zpci uid=0x0002 [config]\n'
                '      zpci.uid 0x0001 \u2192 0x0002\n'
                '\nWarnings:\n  something\n    hint: try\n'
                '\nPlan: 2 to attach, 1 to detach, 1 to replace on 2 of 4 guests.\n')
        self.assertEqual(m.plan_diffs(text), [
            {'prepared': '== host kvm1 (qemu:///system) ==\n'
                         'a:\n  + attach hostdev 0001:00:00.0 [config]\n'},
            {'prepared': '== host kvm2 (qemu+ssh://kvm2/system) ==\n'
                         'd:\n  ~ replace hostdev 0002:00:00.0 zpci uid=0x0002 [config]\n'
                         '      zpci.uid 0x0001 \u2192 0x0002\n'}])

    def test_py_compile_and_offline_sanity(self):
        subprocess.run([sys.executable, '-m', 'py_compile', MODULE], check=True,
                       env=dict(os.environ, PYTHONPYCACHEPREFIX=self.tmp))
        if not shutil.which('ansible-test'):
            self.skipTest('ansible-test is not installed')
        # ansible-test wants the collection at ansible_collections/NS/NAME, not a symlink
        dest = os.path.join(self.tmp, 'sanity', 'ansible_collections', 'zpci', 'reconcile')
        shutil.copytree(COLLECTION, dest,
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        # The tests Debian's ansible-test runs without a virtualenv: the rest
        # (validate-modules, pylint, pep8, yamllint, import) install theirs from the
        # network. ansible-doc is covered above, the argument spec too.
        tests = ['action-plugin-docs', 'compile', 'empty-init', 'future-import-boilerplate',
                 'line-endings', 'metaclass-boilerplate', 'no-assert', 'no-basestring',
                 'no-dict-iteritems', 'no-dict-iterkeys', 'no-dict-itervalues',
                 'no-get-exception', 'no-illegal-filenames', 'no-main-display',
                 'no-smart-quotes', 'no-unicode-literals', 'replace-urlopen', 'shebang',
                 'symlinks', 'use-argspec-type-path', 'use-compat-six']
        env = dict(self.ansible.env, HOME=self.tmp)
        # ansible-core 2.19 (Debian 13) dropped the Python 2 boilerplate checks
        # (future-import-boilerplate, metaclass-boilerplate, no-basestring, no-dict-*,
        # no-main-display, no-unicode-literals): run those of the list it still has.
        proc = subprocess.run(['ansible-test', 'sanity', '--list-tests'], cwd=dest,
                              capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        available = set(proc.stdout.split())
        tests = [t for t in tests if t in available]
        for t in ('compile', 'empty-init', 'line-endings', 'shebang', 'symlinks',
                  'no-smart-quotes', 'use-argspec-type-path'):
            self.assertIn(t, tests, 'ansible-test no longer has %s' % t)
        argv = ['ansible-test', 'sanity', '--local', '--python',
                '%d.%d' % sys.version_info[:2]]
        for t in tests:
            argv += ['--test', t]
        proc = subprocess.run(argv, cwd=dest, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        for t in tests:
            self.assertIn('Running sanity test "%s"' % t, proc.stdout + proc.stderr)


if __name__ == '__main__':
    lab.main()
