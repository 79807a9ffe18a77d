"""export against real libvirt: the state it writes must validate and plan to nothing.

Guests are defined with virsh children in embedded roots (lab.EmbedLab), then the tool
exports the root and plans its own output against it. The libvirt XML corpus
($ZR_SHARED/corpus/libvirt) is defined into a root of its own, every file libvirt accepts;
the files libvirt refuses and those whose QEMU binary is not installed are printed.
The --live case runs on qemu:///system, where a guest can run.
"""

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import unittest

import fidelity
import lab
from lab import EmbedLab, hostdev_xml, run_tool, s390x_guest

SRC = os.environ.get('ZR_SRCDIR', os.path.join(os.path.dirname(__file__), '..', '..'))


def schema_check():
    """(validator, loader) of tests/schema/check-schema.py, or None without jsonschema."""
    path = os.path.join(SRC, 'tests', 'schema', 'check-schema.py')
    spec = importlib.util.spec_from_file_location('check_schema', path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except SystemExit:  # jsonschema or yaml missing
        return None
    with open(os.path.join(SRC, 'schema', 'inventory.schema.json')) as f:
        validator = mod.jsonschema.Draft202012Validator(json.load(f))
    return validator, mod.load


def iface_xml(source, mac, extra=''):
    dom, bus, rest = source.split(':')
    slot, fn = rest.split('.')
    return ("<interface type='hostdev' managed='yes'><mac address='%s'/>"
            "<source><address type='pci' domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/>"
            "</source>%s</interface>") % (mac, dom, bus, slot, fn, extra)


# Names libvirt accepts (anything without '/') that YAML must quote or escape.
TRICKY_NAMES = ["it's", 'a: b', 'q"uote', 'ünïcödé', '日本語', 'null', 'yes', '123',
                '-dash', '#hash', 'with space', '[x]', '&amp', 'tab\tx', '~', '0x10']


class ExportTestCase(unittest.TestCase):
    def setUp(self):
        self.lab = EmbedLab()
        self.addCleanup(self.lab.close)
        self.dir = tempfile.mkdtemp(prefix='zrfleet-export-')
        self.addCleanup(shutil.rmtree, self.dir, True)

    def tool(self, *args, env=None):
        e = {'LIBVIRT_DEFAULT_URI': None}
        e.update(env or {})
        return run_tool(list(args), env=e)

    def round_trip(self, *export_args, env=None, connect=True):
        """export, then validate and plan the result; returns (yaml, stderr)."""
        args = ['export'] + (['-c', self.lab.uri] if connect else []) + list(export_args)
        rc, out, err = self.tool(*args, env=env)
        self.assertEqual(rc, 0, err)
        path = os.path.join(self.dir, 'export.yaml')
        with open(path, 'w') as f:
            f.write(out)
        rc, vout, verr = self.tool('validate', path)
        self.assertEqual(rc, 0, vout + verr + out)
        rc, pout, perr = self.tool('plan', path, env=env)
        self.assertEqual(rc, 0, 'export does not plan to nothing:\n' + out + pout + perr)
        check = schema_check()
        if check:
            validator, load = check
            errors = [e.message for e in validator.iter_errors(load(path))]
            self.assertEqual(errors, [], out)
        return out, err


class ExportEmbedTest(ExportTestCase):
    def test_round_trip_names_and_warnings(self):
        d = self.lab.define
        d(s390x_guest('zrfleet-zpci', hostdev_xml('0001:00:00.0', zpci_uid=7, zpci_fid=9) +
                      hostdev_xml('0002:00:00.0', managed=False) +
                      iface_xml('0003:00:00.0', '02:00:00:00:00:01',
                                "<vlan><tag id='42'/></vlan><virtualport type='802.1Qbh'>"
                                "<parameters profileid='finance'/></virtualport>")))
        d(s390x_guest('zrfleet-ports',
                      iface_xml('0011:00:00.0', '02:00:00:00:00:11',
                                "<virtualport type='openvswitch'/>") +
                      iface_xml('0012:00:00.0', '02:00:00:00:00:12',
                                "<vlan trunk='yes'><tag id='5'/><tag id='6'/></vlan>") +
                      iface_xml('0013:00:00.0', '02:00:00:00:00:13',
                                "<virtualport type='802.1Qbg'><parameters managerid='11' "
                                "typeid='1193047' typeidversion='2'/></virtualport>") +
                      iface_xml('0014:00:00.0', '02:00:00:00:00:14', "<vlan><tag id='7'/></vlan>")))
        # libvirt accepts one function in two definitions; an inventory cannot say that.
        d(s390x_guest('zrfleet-share1', hostdev_xml('0020:00:00.0')))
        d(s390x_guest('zrfleet-share2', hostdev_xml('0020:00:00.0') + hostdev_xml('0021:00:00.0')))
        d(s390x_guest('zrfleet-empty'))
        for i, name in enumerate(TRICKY_NAMES):
            d(s390x_guest(name, hostdev_xml('%04x:00:00.0' % (0x100 + i))))

        out, err = self.round_trip()
        self.assertNotIn('zrfleet-empty', out)
        self.assertIn('uri: qemu:///embed?root=%s\n' % self.lab.root, out)
        self.assertIn('virtualport: {type: 802.1Qbh, profileid: finance}', out)
        self.assertIn('zpci: {uid: 0x0007, fid: 0x00000009}', out)
        self.assertIn('vlan: 7', out)
        warnings = sorted(l for l in err.splitlines() if l)
        self.assertEqual(warnings, sorted([
            "zpci-reconcile: warning: guest 'zrfleet-zpci': interface 0003:00:00.0: vlan 42 left "
            "out: the inventory cannot hold a vlan beside a virtualport (libvirt refuses the pair "
            "when it starts the guest)",
            "zpci-reconcile: warning: guest 'zrfleet-ports': interface 0011:00:00.0: virtualport "
            "left out: only 802.1Qbh and 802.1Qbg ports can be written",
            "zpci-reconcile: warning: guest 'zrfleet-ports': interface 0012:00:00.0: vlan left "
            "out: the inventory holds one tag, not a trunk, several tags or a native vlan",
            "zpci-reconcile: warning: guest 'zrfleet-share2': hostdev 0020:00:00.0: left out: "
            "guest 'zrfleet-share1' holds this function too (a source appears once per host); "
            "prune: false keeps it",
        ]))
        # Every name comes back unchanged (the plan names each guest it covered).
        rc, pout, perr = self.tool('plan', '-o', 'json', os.path.join(self.dir, 'export.yaml'))
        self.assertEqual(rc, 0, perr)
        path = os.path.join(self.dir, 'names.yaml')
        # '--': a name may start with '-'.
        rc, out, err = self.tool('export', '-c', self.lab.uri, '--', *TRICKY_NAMES)
        self.assertEqual(rc, 0, err)
        with open(path, 'w') as f:
            f.write(out)
        rc, pout, perr = self.tool('plan', '-o', 'json', '-q', path)
        self.assertEqual(rc, 0, pout + perr)
        self.assertEqual(json.loads(pout)['summary']['guests_in_sync'], len(TRICKY_NAMES))
        rc, tout, _ = self.tool('plan', path)
        for name in TRICKY_NAMES:
            self.assertIn('\n%s: in sync\n' % name, '\n' + tout)

    def test_named_all_missing_and_default_uri(self):
        self.lab.define(s390x_guest('zrfleet-b', hostdev_xml('0001:00:00.0')))
        self.lab.define(s390x_guest('zrfleet-a'))
        self.lab.define(s390x_guest('zrfleet-c', hostdev_xml('0002:00:00.0')))

        out, _ = self.round_trip()
        self.assertEqual([l for l in out.splitlines() if l.startswith('  zrfleet')],
                         ['  zrfleet-b:', '  zrfleet-c:'])
        out, _ = self.round_trip('--all')
        self.assertEqual([l for l in out.splitlines() if l.startswith('  zrfleet')],
                         ['  zrfleet-a: {}', '  zrfleet-b:', '  zrfleet-c:'])
        # Named: in the order given, once each; a guest without devices is written.
        out, _ = self.round_trip('zrfleet-c', 'zrfleet-a', 'zrfleet-c')
        self.assertEqual([l for l in out.splitlines() if l.startswith('  zrfleet')],
                         ['  zrfleet-c:', '  zrfleet-a: {}'])
        # A named guest that does not exist: exit 1, nothing on stdout.
        rc, out, err = self.tool('export', '-c', self.lab.uri, 'zrfleet-a', 'zrfleet-nope')
        self.assertEqual((rc, out), (1, ''))
        self.assertIn("guest 'zrfleet-nope' not found", err)
        # --live: no guest runs here; a named one that is not running is an error.
        rc, out, err = self.tool('export', '-c', self.lab.uri, '--live')
        self.assertEqual((rc, out), (0, 'version: 1\nuri: qemu:///embed?root=%s\nguests: {}\n'
                                     % self.lab.root), err)
        rc, out, err = self.tool('export', '-c', self.lab.uri, '--live', 'zrfleet-b')
        self.assertEqual((rc, out), (1, ''))
        self.assertIn("guest 'zrfleet-b' is not running", err)
        # Without -c the file names no URI: it follows LIBVIRT_DEFAULT_URI like the export.
        out, _ = self.round_trip(env={'LIBVIRT_DEFAULT_URI': self.lab.uri}, connect=False)
        self.assertNotIn('uri:', out)
        # Usage errors.
        for args in (['--all', 'zrfleet-a'], ['-o', 'json'], ['--metrics-file', '/tmp/x']):
            rc, out, err = self.tool('export', '-c', self.lab.uri, *args)
            self.assertEqual((rc, out), (1, ''), args)
        rc, out, err = self.tool('export', '-c', 'qemu+tcp://127.0.0.1:1/system')
        self.assertEqual((rc, out), (1, ''))
        self.assertIn('cannot connect', err)


class ExportCorpusTest(ExportTestCase):
    def test_the_libvirt_corpus_round_trips(self):
        corpus = os.path.join(os.environ.get('ZR_SHARED', ''), 'corpus', 'libvirt')
        if not os.path.isdir(corpus):
            raise lab.Skip('no corpus at %s' % corpus)
        # Guests run as root, as tests/start-libvirtd.sh sets for the daemon.  Without it
        # the root's QEMU runs as libvirt-qemu, which cannot open /dev/kvm (0600) here,
        # and libvirt probes the native (x86) QEMU binaries again at every open of the
        # root (~20 s each: "KVM was enabled when probing ..., but it is not available
        # now").
        os.makedirs(os.path.join(self.lab.root, 'etc'), exist_ok=True)
        with open(os.path.join(self.lab.root, 'etc', 'qemu.conf'), 'w') as f:
            f.write('user = "root"\ngroup = "root"\n')
        defined, skipped = [], []
        for fname in sorted(os.listdir(corpus)):
            if not fname.endswith('.xml'):
                continue
            name = 'zrfleet-' + fname[:-4]
            xml, why = fidelity.definition(os.path.join(corpus, fname), name)
            if xml is None:
                skipped.append((fname, why))
                continue
            try:
                self.lab.define(xml)
                defined.append(name)
            except lab.VirshError as e:
                skipped.append((fname, 'libvirt refuses it: ' + e.stderr.strip()))
        print('corpus: %d files defined, %d skipped' % (len(defined), len(skipped)))
        for fname, why in skipped:
            print('  skipped %s: %s' % (fname, why))
        self.assertGreaterEqual(len(defined), 25)

        with_devices = [n for n in defined if self.lab.devices(n)]
        out, err = self.round_trip()
        exported = [l[2:-1] for l in out.splitlines() if l.startswith('  zrfleet')]
        self.assertEqual(exported, sorted(with_devices), out)
        for line in err.splitlines():
            print('  ' + line)
        out, _ = self.round_trip('--all')
        self.assertEqual(len([l for l in out.splitlines() if l.startswith('  zrfleet')]),
                         len(defined))
        # Many files share host functions, which one inventory cannot give two guests;
        # each guest on its own has every device written.
        for name in with_devices:
            out, err = self.round_trip(name)
            self.assertNotIn('holds this function too', err)
            self.assertIn('source:', out, name)


class ExportLiveTest(unittest.TestCase):
    """--live on qemu:///system: a guest runs there (and crashes, preserved)."""

    def setUp(self):
        self.lab = lab.SystemLab()
        self.prefix = 'zrfleet-export-%d-' % os.getpid()
        self.addCleanup(self.lab.cleanup, self.prefix)

    def test_live_exports_the_running_guest(self):
        run, off = self.prefix + 'run', self.prefix + 'off'
        self.lab.define(s390x_guest(run))
        self.lab.define(s390x_guest(off))
        self.lab.start(run)
        rc, out, err = run_tool(['export', '--live', '-c', lab.SYSTEM_URI, run])
        self.assertEqual((rc, out), (0, 'version: 1\nuri: qemu:///system\nguests:\n  %s: {}\n'
                                     % run), err)
        rc, out, err = run_tool(['export', '--live', '-c', lab.SYSTEM_URI, run, off])
        self.assertEqual((rc, out), (1, ''))
        self.assertIn("guest '%s' is not running" % off, err)


if __name__ == '__main__':
    # x86 and ppc64 corpus guests: without /dev/kvm in sight libvirt 9.0 keeps its QEMU
    # capability cache instead of re-probing on every open (LIBVIRT-NOTES.md).
    fidelity.no_kvm_namespace()
    lab.main()
