"""Hostile inputs through the real binary, against a qemu:///embed root.

Each hostile inventory must give exit status 1 and a clear message, quickly, and leave
a guest that a valid inventory would have changed exactly as it was. Guests whose names
hold quotes, markup characters or non-ASCII letters must be planned, applied and
reported (text and JSON) like any other.
"""

import json
import os
import stat
import tempfile
import textwrap
import time
import unittest

import lab
from lab import EmbedLab, hostdev_xml, run_tool, s390x_guest

# Generous: each case takes well under a second plainly; ASan builds are slower.
QUICK_SECONDS = 20

# A valid inventory would replace linux1's hostdev (uid 1 -> 9) and attach another.
WOULD_CHANGE = """\
version: 1
guests:
  linux1:
    hostdevs:
      - source: 0001:00:00.0
        zpci: {uid: 0x0009}
      - source: 0002:00:00.0
"""


def alias_bomb(levels, width):
    lines = ['version: 1', 'a0: &a0 [%s]' % ', '.join(['"lol"'] * width)]
    for i in range(1, levels):
        lines.append('a%d: &a%d [%s]' % (i, i, ', '.join(['*a%d' % (i - 1)] * width)))
    lines.append('guests: {linux1: {hostdevs: *a%d}}' % (levels - 1))
    return '\n'.join(lines) + '\n'


# name: (bytes of the file, text expected in the output)
HOSTILE_FILES = {
    'alias-bomb': (alias_bomb(10, 10).encode(),
                   'would expand the inventory to more than 3000000 YAML nodes'),
    # one anchor of 20000 nodes used many times: each alias fits, their sum does not
    'alias-sum': (('version: 1\nbig: &big [%s]\nguests: {linux1: {hostdevs: [%s]}}\n' % (
        ', '.join(['x'] * 20000), ', '.join(['*big'] * 200))).encode(),
        'would expand the inventory to more than 3000000 YAML nodes'),
    'deep-flow-nesting': (b'version: 1\nguests: ' + b'[' * 200000 + b']' * 200000 + b'\n',
                          'the inventory nests deeper than 64 levels'),
    'deep-block-nesting': (('version: 1\nguests:\n' + ''.join(
        '%s- \n' % ('  ' * i) for i in range(1, 2000))).encode(),
        'the inventory nests deeper than 64 levels'),
    'huge-scalar': (b'version: 1\nguests:\n  linux1:\n    hostdevs:\n      - source: "'
                    + b'0' * (32 * 1024 * 1024 - 100) + b'"\n',
                    "'source' must be a PCI address"),
    # libyaml allows 1024 characters in a simple key
    'huge-key': (b'version: 1\n' + b'k' * (32 * 1024 * 1024 - 100) + b': 1\nguests: {}\n',
                 "this key is 33554332 characters long; YAML reads a key written as "
                 "'KEY: VALUE' only up to 1024 characters"),
    'many-errors': (b'version: 1\nguests:\n  linux1:\n    hostdevs:\n' +
                    b'      - {source: 0001:00:00.0, managed: maybe}\n' * 50000,
                    'too many errors; stopped after 20'),
    'too-many-nodes': (b'version: 1\nguests:\n  linux1:\n    hostdevs: [' +
                       b'0,' * 3100000 + b']\n',
                       'the inventory has more than 3000000 YAML nodes'),
    'nul-byte': (WOULD_CHANGE.encode().replace(b'linux1', b'linux\x001'),
                 'NUL byte in the inventory'),
    'invalid-utf8': (WOULD_CHANGE.encode().replace(b'linux1:', b'linux\xe91:'),
                     'not valid UTF-8 (byte 0xe9)'),
    'utf16': (b'\xff\xfe' + WOULD_CHANGE.encode('utf-16-le'), 'the inventory is UTF-16'),
    'over-the-limit': (WOULD_CHANGE.encode() + b'#' * (32 * 1024 * 1024),
                       'larger than the limit of 33554432 bytes'),
}


class HostileTestCase(unittest.TestCase):
    def setUp(self):
        self.lab = EmbedLab()
        self.addCleanup(self.lab.close)
        self.lab.define(s390x_guest('linux1', hostdev_xml('0001:00:00.0', zpci_uid=1, zpci_fid=0)))
        self.dir = tempfile.mkdtemp(prefix='zr-hostile-', dir=self.lab.root)

    def tool(self, *args, stdin=None):
        return run_tool(list(args) + ['-c', self.lab.uri], stdin=stdin,
                        env={'LIBVIRT_DEFAULT_URI': None}, timeout=120)

    def assert_refused(self, path, expected, stdin=None, verbs=('apply', 'plan', 'validate')):
        before = self.lab.dumpxml('linux1')
        for verb in verbs:
            with self.subTest(verb=verb):
                t0 = time.monotonic()
                rc, out, err = self.tool(verb, path, stdin=stdin)
                elapsed = time.monotonic() - t0
                self.assertEqual(rc, 1, out + err)
                self.assertIn(expected, err, err[:2000])
                self.assertLess(elapsed, QUICK_SECONDS, '%s took %.1fs' % (verb, elapsed))
                # a message, not the input: a hostile file is not echoed back whole
                self.assertLess(len(err), 64 * 1024, 'the error output is %d bytes' % len(err))
        self.assertEqual(self.lab.dumpxml('linux1'), before, 'the guest was changed')


class HostileInventoryTest(HostileTestCase):
    def test_control_a_valid_inventory_would_change_the_guest(self):
        # Without this the "nothing changed" checks below would prove nothing.
        path = os.path.join(self.dir, 'valid.yaml')
        with open(path, 'w') as f:
            f.write(WOULD_CHANGE)
        rc, out, err = self.tool('plan', path)
        self.assertEqual(rc, 2, out + err)

    def test_hostile_files(self):
        for name, (data, expected) in HOSTILE_FILES.items():
            with self.subTest(name=name):
                path = os.path.join(self.dir, name + '.yaml')
                with open(path, 'wb') as f:
                    f.write(data)
                self.assert_refused(path, expected)
                os.unlink(path)

    def test_hostile_stdin(self):
        # no size to look at: read up to the limit, then refused
        data, _ = HOSTILE_FILES['over-the-limit']
        self.assert_refused('-', 'larger than the limit', stdin=data.decode(),
                            verbs=('apply', 'validate'))
        data, expected = HOSTILE_FILES['alias-bomb']
        self.assert_refused('-', expected, stdin=data.decode(), verbs=('apply',))

    def test_directory(self):
        self.assert_refused(self.dir, 'is a directory, not an inventory file')

    def test_fifo_without_writer_does_not_block(self):
        path = os.path.join(self.dir, 'fifo')
        os.mkfifo(path)
        self.assert_refused(path, 'not a regular file')
        link = os.path.join(self.dir, 'link-to-fifo.yaml')
        os.symlink(path, link)
        self.assert_refused(link, 'not a regular file')

    def test_devices(self):
        self.assert_refused('/dev/zero', 'not a regular file')
        self.assert_refused('/dev/urandom', 'not a regular file')

    def test_unreadable(self):
        if os.geteuid() == 0:
            # root opens any file whatever its mode: a regular file whose read fails
            self.assert_refused('/proc/self/mem', 'cannot read: Input/output error')
        else:
            path = os.path.join(self.dir, 'secret.yaml')
            with open(path, 'w') as f:
                f.write(WOULD_CHANGE)
            os.chmod(path, 0)
            self.assert_refused(path, 'cannot open: Permission denied')

    def test_missing(self):
        self.assert_refused(os.path.join(self.dir, 'no-such.yaml'),
                            'cannot open: No such file or directory')


# Names libvirt accepts that break naive quoting: shell, XML, JSON and YAML all care.
ODD_NAMES = [
    'it\'s "quoted" <&>',
    'gäst-ünïcödé-名前-😀',
    'back\\slash; $(true) `x` %s %n',
]


def yaml_string(s):
    # a JSON string is a YAML double-quoted scalar
    return json.dumps(s, ensure_ascii=False)


class OddGuestNameTest(unittest.TestCase):
    def setUp(self):
        self.lab = EmbedLab()
        self.addCleanup(self.lab.close)
        for i, name in enumerate(ODD_NAMES):
            self.lab.define(s390x_guest(name, hostdev_xml('00%02x:00:00.0' % (0x10 + i),
                                                          zpci_uid=1, zpci_fid=i)))
        self.lab.define(s390x_guest('bystander', hostdev_xml('0030:00:00.0', zpci_uid=1)))
        self.inv = os.path.join(self.lab.root, 'inventory.yaml')
        lines = ['version: 1', 'guests:']
        for i, name in enumerate(ODD_NAMES):
            lines += ['  %s:' % yaml_string(name),
                      '    hostdevs:',
                      '      - source: 00%02x:00:00.0' % (0x10 + i),
                      '        zpci: {uid: 0x0002}',
                      '      - source: 00%02x:00:00.0' % (0x20 + i)]
        with open(self.inv, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')

    def tool(self, *args):
        return run_tool(list(args) + ['-c', self.lab.uri], env={'LIBVIRT_DEFAULT_URI': None})

    def test_names_are_listed_by_virsh_as_defined(self):
        # one name a line (lab.list_names() splits on any space)
        names = self.lab.virsh('list', '--name', '--all').splitlines()
        self.assertEqual(sorted(n for n in names if n), sorted(ODD_NAMES + ['bystander']))

    def test_plan_text_and_json_then_apply_converges(self):
        bystander = self.lab.dumpxml('bystander')

        rc, out, err = self.tool('plan', self.inv)
        self.assertEqual(rc, 2, out + err)
        for name in ODD_NAMES:
            self.assertIn(name, out)
        self.assertIn('Plan: %d to attach, 0 to detach, %d to replace' % (
            len(ODD_NAMES), len(ODD_NAMES)), out)

        rc, out, err = self.tool('-o', 'json', 'plan', self.inv)
        self.assertEqual(rc, 2, out + err)
        doc = json.loads(out)
        self.assertEqual(sorted({a['guest'] for a in doc['actions']}), sorted(ODD_NAMES))
        self.assertEqual(doc['summary']['guests_changed'], len(ODD_NAMES))

        rc, out, err = self.tool('-o', 'json', 'apply', self.inv)
        self.assertEqual(rc, 0, out + err)
        doc = json.loads(out)
        self.assertTrue(all(a['result'] == 'done' for a in doc['actions']), out)

        for i, name in enumerate(ODD_NAMES):
            got = sorted((d['source'], d['zpci_uid']) for d in self.lab.devices(name))
            self.assertEqual(got[0], ('00%02x:00:00.0' % (0x10 + i), 2), name)
            self.assertEqual(got[1][0], '00%02x:00:00.0' % (0x20 + i), name)
            self.assertEqual(len(got), 2, name)
        self.assertEqual(self.lab.dumpxml('bystander'), bystander)

        rc, out, err = self.tool('plan', self.inv)
        self.assertEqual(rc, 0, out + err)


if __name__ == '__main__':
    lab.main()
