"""Fidelity checks on libvirt's own test-suite domains, shared by the integration test
(tests/integration/test_fidelity.py, on ../shared/corpus/libvirt) and the corpus stage
(tests/corpus/run.py, on every such domain of Debian's libvirt source packages).

For one guest defined in an embedded root, check_guest() drives the real binary:
- export -> plan 0;
- empty -> exactly the in-scope devices go, the rest of the definition is byte-identical;
- restore from the export -> plan 0 and the device elements back (apart from what the
  export warned it cannot say, and libvirt's <driver name='vfio'/>);
- managed flipped on every device and back -> each element byte-identical to the
  original apart from the flipped attribute and <driver name='vfio'/>;
- an inventory written from the test file's own fields (what its author named, not what
  libvirt filled in) converges in one apply on the emptied guest, and plans 0 after.

no_kvm_namespace() re-runs a script in a private mount namespace whose /dev has no kvm
node: with /dev/kvm visible, libvirt 9.0 re-probes the x86 QEMU binaries at every open of
an embedded root here (seconds each, see LIBVIRT-NOTES.md).
"""

import os
import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET

import lab
from lab import run_tool

# arch -> QEMU binary the definition needs.
EMULATORS = {'s390x': 'qemu-system-s390x', 'x86_64': 'qemu-system-x86_64',
             'i686': 'qemu-system-i386', 'ppc64': 'qemu-system-ppc64',
             'ppc64le': 'qemu-system-ppc64', 'aarch64': 'qemu-system-aarch64',
             'armv7l': 'qemu-system-arm'}

_NS_SETUP = r'''
set -e
old=$(mktemp -d /tmp/zr-olddev.XXXXXX)
mount --rbind /dev "$old"
mount -t tmpfs -o mode=755 tmpfs /dev
for n in null zero full random urandom tty ptmx; do
    if [ -e "$old/$n" ]; then touch "/dev/$n"; mount --bind "$old/$n" "/dev/$n"; fi
done
for n in pts shm mqueue; do
    if [ -d "$old/$n" ]; then mkdir -p "/dev/$n"; mount --rbind "$old/$n" "/dev/$n"; fi
done
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
exec "$@"
'''


def no_kvm_namespace():
    """Re-executes this script in a mount namespace without /dev/kvm, once; returns in
    the child (or at once when there is no /dev/kvm, or not as root)."""
    if os.environ.get('ZR_NO_KVM_NS') or not os.path.exists('/dev/kvm') or os.geteuid() != 0:
        return
    if not shutil.which('unshare'):
        return
    env = dict(os.environ, ZR_NO_KVM_NS='1')
    argv = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', _NS_SETUP, 'sh',
            sys.executable] + sys.argv
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe('unshare', argv, env)


# ---- definitions -------------------------------------------------------------------------

def in_scope(el):
    """Whether a <devices> child is a device zpci-reconcile manages."""
    if el.tag == 'hostdev':
        return el.get('mode', 'subsystem') == 'subsystem' and el.get('type') == 'pci'
    if el.tag == 'interface' and el.get('type') == 'hostdev':
        addr = el.find('source/address')
        return addr is not None and addr.get('type') == 'pci'
    return False


def has_in_scope(path):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return False
    devices = root.find('devices')
    return root.tag == 'domain' and devices is not None and any(in_scope(e) for e in devices)


def definition(path, name):
    """The test file as a definition for this machine: renamed, no UUID (many files share
    one), type qemu (no KVM here), the installed emulator. (xml, None) or (None, why)."""
    root = ET.parse(path).getroot()
    if root.find('name') is None:
        return None, 'no <name>'
    root.find('name').text = name
    uuid = root.find('uuid')
    if uuid is not None:
        root.remove(uuid)
    root.set('type', 'qemu')
    ostype = root.find('os/type')
    arch = (ostype.get('arch') if ostype is not None else None) or os.uname().machine
    binary = shutil.which(EMULATORS.get(arch, 'qemu-system-' + arch))
    if not binary:
        return None, 'no QEMU for %s installed' % arch
    devices = root.find('devices')
    emulator = devices.find('emulator')
    if emulator is None:
        emulator = ET.Element('emulator')
        devices.insert(0, emulator)
    emulator.text = binary
    return ET.tostring(root, encoding='unicode'), None


def _int(v):
    return int(v, 0) if v is not None else None


def _source(el):
    a = el.find('source/address')
    return '%04x:%02x:%02x.%x' % tuple(int(a.get(k, '0'), 0)
                                       for k in ('domain', 'bus', 'slot', 'function'))


def canon(el):
    """An element as canonical XML (attribute order, whitespace), for comparisons."""
    return ET.canonicalize(ET.tostring(el, encoding='unicode'), strip_text=True)


def device_elements(domain_xml):
    """{(kind, source): element} of a domain's in-scope devices."""
    out = {}
    for el in ET.fromstring(domain_xml).find('devices'):
        if in_scope(el):
            kind = 'hostdev' if el.tag == 'hostdev' else 'interface'
            out[(kind, _source(el))] = el
    return out


def without_in_scope(domain_xml):
    root = ET.fromstring(domain_xml)
    devices = root.find('devices')
    for el in [e for e in devices if in_scope(e)]:
        devices.remove(el)
    return canon(root)


def normalized(el, drop_managed=False, drop=()):
    """A copy without libvirt's <driver name='vfio'/> (it adds one when it attaches) and
    without the children and '@attributes' named in `drop` (what export said it cannot
    write)."""
    el = ET.fromstring(ET.tostring(el))
    for c in list(el):
        if c.tag == 'driver' and c.attrib == {'name': 'vfio'} and len(c) == 0:
            el.remove(c)
        elif c.tag in drop:
            el.remove(c)
        elif c.tag == 'address' and c.get('type') == 'unassigned' and 'unassigned' in drop:
            el.remove(c)
    for a in drop:
        if a.startswith('@'):
            el.attrib.pop(a[1:], None)
    if drop_managed:
        el.attrib.pop('managed', None)
    elif el.get('managed') is None:
        el.set('managed', 'no')
    return canon(el)


def fields_inventory(path, guest):
    """An inventory (YAML text) of the test file's own fields for `guest`: what its author
    wrote, not what libvirt filled in.  None when the file names nothing the format can
    say for some device (it would not validate)."""
    lines = ['version: 1', 'guests:', '  "%s":' % guest]
    kinds = {'hostdev': [], 'interface': []}
    macs = set()
    for el in ET.parse(path).getroot().find('devices'):
        if not in_scope(el):
            continue
        kind = 'hostdev' if el.tag == 'hostdev' else 'interface'
        d = ['      - source: %s' % _source(el),
             '        managed: %s' % ('true' if el.get('managed') == 'yes' else 'false')]
        if kind == 'interface':
            mac = el.find('mac')
            if mac is not None and mac.get('address').lower() not in macs:
                # the inventory gives a MAC once per guest
                macs.add(mac.get('address').lower())
                d.append('        mac: "%s"' % mac.get('address').lower())
            vp = el.find('virtualport')
            params = vp.find('parameters') if vp is not None else None
            tags = el.findall('vlan/tag')
            vlan_ok = (len(tags) == 1 and el.find('vlan').get('trunk') != 'yes'
                       and tags[0].get('nativeMode') is None)
            if vp is not None and vp.get('type') == '802.1Qbh' and params is not None \
                    and params.get('profileid'):
                d.append('        virtualport: {type: 802.1Qbh, profileid: "%s"}'
                         % params.get('profileid'))
            elif vp is not None and vp.get('type') == '802.1Qbg' and params is not None \
                    and all(params.get(k) for k in ('managerid', 'typeid', 'typeidversion')):
                extra = ', instanceid: %s' % params.get('instanceid') \
                    if params.get('instanceid') else ''
                d.append('        virtualport: {type: 802.1Qbg, managerid: %s, typeid: %s, '
                         'typeidversion: %s%s}' % (params.get('managerid'), params.get('typeid'),
                                                   params.get('typeidversion'), extra))
            elif vlan_ok:
                d.append('        vlan: %d' % int(tags[0].get('id')))
        addr = el.find('address')
        if addr is not None and addr.get('type') == 'pci':
            zpci = addr.find('zpci')
            if zpci is not None and (zpci.get('uid') or zpci.get('fid')):
                ids = []
                if zpci.get('uid'):
                    ids.append('uid: %#06x' % _int(zpci.get('uid')))
                if zpci.get('fid'):
                    ids.append('fid: %#010x' % _int(zpci.get('fid')))
                d.append('        zpci: {%s}' % ', '.join(ids))
            ga = [_int(addr.get(k, '0')) for k in ('domain', 'bus', 'slot', 'function')]
            if any(ga[:3]):
                d.append('        guest_address: %04x:%02x:%02x.%x' % tuple(ga))
        boot = el.find('boot')
        if boot is not None and boot.get('order'):
            d.append('        boot_order: %d' % int(boot.get('order')))
        rom = el.find('rom')
        if rom is not None and rom.attrib:
            parts = []
            if rom.get('bar'):
                parts.append('bar: %s' % ('true' if rom.get('bar') == 'on' else 'false'))
            if rom.get('file') is not None:
                parts.append('file: "%s"' % rom.get('file'))
            if rom.get('enabled'):
                parts.append('enabled: %s' % ('true' if rom.get('enabled') == 'yes' else 'false'))
            if parts:
                d.append('        rom: {%s}' % ', '.join(parts))
        kinds[kind].append('\n'.join(d))
    for kind, key in (('hostdev', 'hostdevs'), ('interface', 'interfaces')):
        if kinds[kind]:
            lines.append('    %s:' % key)
            lines.extend(kinds[kind])
    return '\n'.join(lines) + '\n'


# ---- the checks ----------------------------------------------------------------------------

class Failure(AssertionError):
    pass


class Checker:
    """Runs the checks on guests of one embedded root; failures are collected."""

    def __init__(self, elab, workdir):
        self.lab = elab
        self.dir = workdir
        self.failures = []
        self.counts = {}

    def tool(self, *args, stdin=None):
        return run_tool(['-c', self.lab.uri] + list(args), stdin=stdin,
                        env={'LIBVIRT_DEFAULT_URI': None})

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def expect(self, cond, guest, what, detail=''):
        if not cond:
            raise Failure('%s: %s%s' % (guest, what, ('\n' + detail) if detail else ''))

    def plan_is_zero(self, guest, path, when):
        rc, out, err = self.tool('plan', path)
        self.expect(rc == 0, guest, 'plan after %s is not 0 (rc %d)' % (when, rc), out + err)

    def apply(self, guest, path, when):
        rc, out, err = self.tool('apply', path)
        self.expect(rc == 0, guest, 'apply (%s) failed (rc %d)' % (when, rc), out + err)
        self.plan_is_zero(guest, path, when)

    def flip_and_back(self, guest, exported, export_path, when):
        """Flips managed on every device of the guest and back: each is a replacement,
        whose in-place edit must keep everything but managed."""
        before = device_elements(self.lab.dumpxml(guest))
        flipped = re.sub(r'managed: (true|false)',
                         lambda m: 'managed: ' + ('false' if m.group(1) == 'true' else 'true'),
                         exported)
        flip_path = self.write(guest + '.flip.yaml', flipped)
        self.apply(guest, flip_path, 'managed flip (%s)' % when)
        after = device_elements(self.lab.dumpxml(guest))
        for key, el in before.items():
            self.expect(key in after, guest, '%s %s gone after the flip (%s)' % (key + (when,)))
            want = 'no' if el.get('managed') == 'yes' else 'yes'
            self.expect(after[key].get('managed', 'no') == want, guest,
                        '%s %s: managed not flipped (%s)' % (key + (when,)))
            self.expect(normalized(after[key], drop_managed=True) ==
                        normalized(el, drop_managed=True), guest,
                        '%s %s: the flip changed more than managed (%s)' % (key + (when,)),
                        canon(el) + '\n' + canon(after[key]))
        self.apply(guest, export_path, 'managed flip back (%s)' % when)
        back = device_elements(self.lab.dumpxml(guest))
        for key, el in before.items():
            self.expect(normalized(back[key]) == normalized(el), guest,
                        '%s %s: not the same after flipping back (%s)' % (key + (when,)),
                        canon(el) + '\n' + canon(back[key]))

    def check_guest(self, guest, test_file):
        """All checks on one guest; raises Failure on the first that fails."""
        original = self.lab.dumpxml(guest)
        devs = device_elements(original)
        self.expect(devs, guest, 'no in-scope device after define')

        # export -> plan 0
        rc, exported, err = self.tool('export', guest)
        self.expect(rc == 0, guest, 'export failed', err)
        export_path = self.write(guest + '.export.yaml', exported)
        self.plan_is_zero(guest, export_path, 'export')
        # What export said it left out: restore cannot bring these back.
        left_out = set()
        for line in err.splitlines():
            m = re.search(r'(?:hostdev|interface) [0-9a-f:.]+: (.*?) left out', line)
            if not m:
                continue
            what = m.group(1)
            left_out.update(re.findall(r'<(\w+)', what))
            # attributes of the device element (libvirt 11: display='on' ramfb='on')
            left_out.update('@' + a for a in
                            re.findall(r"(?:^|[ ,])(\w+)='", re.sub(r'<[^>]*>', '', what)))
            if 'unassigned address' in what:
                left_out.add('unassigned')
            if what.startswith('vlan'):
                left_out.add('vlan')
            if 'virtualport' in what:
                left_out.add('virtualport')
            if what.startswith('mac '):     # a MAC the guest has twice: written once
                left_out.add('mac')

        # the same on the devices as the test file has them: what the format cannot state
        # (a vlan beside a virtualport, <teaming>, ...) is there to be kept
        self.flip_and_back(guest, exported, export_path, 'as defined')

        # empty: exactly the in-scope devices go
        empty_path = self.write(guest + '.empty.yaml',
                                'version: 1\nguests:\n  "%s": {}\n' % guest)
        self.apply(guest, empty_path, 'empty')
        emptied = self.lab.dumpxml(guest)
        self.expect(not device_elements(emptied), guest, 'in-scope devices left after empty')
        self.expect(without_in_scope(emptied) == without_in_scope(original), guest,
                    'emptying changed something out of scope')

        # restore from the export
        self.apply(guest, export_path, 'restore')
        restored = device_elements(self.lab.dumpxml(guest))
        self.expect(set(restored) == set(devs), guest, 'restore gave other devices back',
                    '%s != %s' % (sorted(restored), sorted(devs)))
        for key, el in devs.items():
            # libvirt gives a device whose unassigned address was left out a slot.
            unassigned = el.find("address[@type='unassigned']") is not None
            got = normalized(restored[key], drop={'address'} if unassigned else ())
            self.expect(got == normalized(el, drop=left_out), guest,
                        'restored %s %s differs' % key,
                        normalized(el, drop=left_out) + '\n' + got)

        # flip managed on every device, then back: in-place edits keep the rest
        self.flip_and_back(guest, exported, export_path, 'restored')

        # the test file's own fields converge in one run on the emptied guest
        self.apply(guest, empty_path, 'empty again')
        fields = fields_inventory(test_file, guest)
        fields_path = self.write(guest + '.fields.yaml', fields)
        rc, out, err = self.tool('validate', fields_path)
        self.expect(rc == 0, guest, 'the inventory of the file\'s own fields does not validate',
                    fields + out + err)
        self.apply(guest, fields_path, 'own fields, one run')
        self.expect(set(device_elements(self.lab.dumpxml(guest))) == set(devs), guest,
                    'own fields: other devices than the file has')

    def run(self, guest, test_file):
        try:
            self.check_guest(guest, test_file)
            self.counts['ok'] = self.counts.get('ok', 0) + 1
            return True
        except Failure as e:
            self.failures.append(str(e))
            return False


def file_sources(path):
    devices = ET.parse(path).getroot().find('devices')
    return {_source(e) for e in devices if in_scope(e)}


def define_grouped(files, prefix):
    """Defines each file into embedded roots (lab.EmbedLab), as prefix + its base name,
    so that no two guests of one root hold the same host function (apply refuses to give
    a function to a guest while another guest's definition holds it, which libvirt would
    allow).  Returns ([(lab, [(guest, path)])], [(path, why)]); close the labs."""
    groups, skipped, seen = [], [], set()
    for path in files:
        base = re.sub(r'[^A-Za-z0-9_.+-]', '_', os.path.basename(path)[:-4])
        name = prefix + base
        while name in seen:
            name += '_'
        xml, why = definition(path, name)
        if xml is None:
            skipped.append((path, why))
            continue
        sources = file_sources(path)
        group = next((g for g in groups if not g['sources'] & sources), None)
        if group is None:
            elab = lab.EmbedLab()
            os.makedirs(os.path.join(elab.root, 'etc'), exist_ok=True)
            # Guests run as root, as tests/start-libvirtd.sh sets for the daemon.
            with open(os.path.join(elab.root, 'etc', 'qemu.conf'), 'w') as f:
                f.write('user = "root"\ngroup = "root"\n')
            group = {'lab': elab, 'sources': set(), 'guests': []}
            groups.append(group)
        try:
            group['lab'].define(xml)
        except lab.VirshError as e:
            lines = e.stderr.strip().splitlines() or ['?']
            skipped.append((path, 'libvirt refuses it: ' + lines[-1]))
            continue
        if not group['lab'].devices(name):
            skipped.append((path, 'no in-scope device once defined'))
            group['lab'].undefine(name)
            continue
        seen.add(name)
        group['sources'] |= sources
        group['guests'].append((name, path))
    return [(g['lab'], g['guests']) for g in groups], skipped


def tempdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


if __name__ == '__main__':
    print(fields_inventory(sys.argv[1], 'g'), end='')
