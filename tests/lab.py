"""Real-libvirt test lab for zpci-reconcile's integration tests (Python 3 stdlib only).

Two kinds of lab with the same device API:

  EmbedLab(root_dir)   qemu:///embed?root=DIR: the QEMU driver runs inside whichever
                       process opens the URI; no daemon, no node devices. Config-level
                       define/attach/detach work; that is what most tests need.
  SystemLab()          qemu:///system through a real libvirtd (root only), started on
                       demand by SystemDaemon. Guests can run here, so live paths run for
                       real (and, without VFIO, fail the way a host without it fails).

The embed-root locking rule
---------------------------
A process that opens qemu:///embed?root=DIR holds DIR for its whole life: no other
process can open the same root until it exits, and it cannot itself open a second root
or qemu:///system. Therefore this module never opens a libvirt connection in the test
process: every operation is a short-lived `virsh -c URI ...` child that takes the lock,
does its work and exits. Prepare guests that way first, then run the tool binary
(run_tool) on the same root; never keep a virsh running across a tool run.

Running as root, libvirt's QEMU driver (embedded too) refuses to start without the
libvirt-qemu account; both labs create it through tests/start-libvirtd.sh, which holds the
host preparation in one place for this module and tests/run-all.sh.

Skipping: raise Skip (unittest.SkipTest) anywhere; main() exits 77, meson's skip code,
when every test of the run was skipped.
"""

import atexit
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
START_LIBVIRTD = os.path.join(TESTS_DIR, 'start-libvirtd.sh')
SYSTEM_URI = 'qemu:///system'
SKIP_EXIT = 77

Skip = unittest.SkipTest

# How this machine (no IOMMU, no vfio-pci) refuses a live attach of a VFIO hostdev, or the
# start of a guest holding one. libvirt 9.0 checks for VFIO first. libvirt 11.3 first raises
# the QEMU process's locked-memory limit, which root cannot do here (this container has no
# CAP_SYS_RESOURCE), and, for a function the host has, looks its VFIO variant driver up in
# the running kernel's modules.alias, which this machine lacks (no /lib/modules). Each is the
# host refusing passthrough (docs/testing.md).
NO_VFIO_RE = (r"(?:unsupported configuration: )?host doesn't support VFIO PCI passthrough"
              r"|cannot limit locked memory of process \d+ to \d+: Operation not permitted"
              r"|Failed to open file '/lib/modules/[^']+/modules\.alias': "
              r"No such file or directory")


class VirshError(RuntimeError):
    """A virsh child failed; .stderr holds libvirt's message."""

    def __init__(self, args, returncode, stderr):
        self.args_ = list(args)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__('virsh %s: exit %d: %s' % (' '.join(args), returncode, stderr.strip()))


def is_root():
    return os.geteuid() == 0


def require_root():
    if not is_root():
        raise Skip('needs root')


def _prepare_host():
    """Accounts, dirs and qemu.conf that libvirt needs when run as root (idempotent)."""
    if not is_root():
        return
    try:
        pwd.getpwnam('libvirt-qemu')
        return
    except KeyError:
        pass
    subprocess.run(['bash', START_LIBVIRTD, '--prepare-only'], check=True,
                   stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------
# Domain and device XML


def s390x_guest(name, devices_xml='', running_safe=True):
    """Domain XML for a minimal s390x guest; devices_xml goes inside <devices>.

    It has no boot device, so a started guest stops at once; with running_safe
    (<on_crash>preserve</on_crash>) it stays active in state "crashed" instead of
    vanishing, which is enough for live attach/detach calls to be made against it.
    """
    on_crash = '  <on_crash>preserve</on_crash>\n' if running_safe else ''
    return ("<domain type='qemu'>\n"
            '  <name>%s</name>\n'
            "  <memory unit='KiB'>262144</memory>\n"
            '  <vcpu>1</vcpu>\n'
            "  <os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>\n"
            '%s'
            '  <devices>\n'
            '    <emulator>/usr/bin/qemu-system-s390x</emulator>\n'
            '%s'
            '  </devices>\n'
            '</domain>\n') % (escape(name), on_crash, devices_xml)


def _pci(addr_el):
    """<address domain= bus= slot= function=> -> 'DDDD:BB:SS.F' (None if not PCI)."""
    if addr_el is None:
        return None
    if addr_el.get('type', 'pci') != 'pci':
        return None
    try:
        d, b, s, f = (int(addr_el.get(k, '0'), 0)
                      for k in ('domain', 'bus', 'slot', 'function'))
    except ValueError:
        return None
    return '%04x:%02x:%02x.%x' % (d, b, s, f)


def _yes(value):
    return value == 'yes'


def _device(el, kind, source_addr):
    guest_addr = el.find('address')
    zpci = guest_addr.find('zpci') if guest_addr is not None else None
    alias = el.find('alias')
    driver = el.find('driver')
    return {
        'kind': kind,
        'source': _pci(source_addr),
        # libvirt writes managed='no' when it is absent; absent means no
        'managed': _yes(el.get('managed')),
        'zpci_uid': int(zpci.get('uid'), 0) if zpci is not None and zpci.get('uid') else None,
        'zpci_fid': int(zpci.get('fid'), 0) if zpci is not None and zpci.get('fid') else None,
        'guest_address': _pci(guest_addr) if guest_addr is not None and
        guest_addr.get('type') == 'pci' else None,
        'alias': alias.get('name') if alias is not None else None,
        'driver': driver.get('name') if driver is not None else None,
        'xml': ET.tostring(el, encoding='unicode').strip(),
    }


def parse_devices(domain_xml):
    """The in-scope devices of a domain XML string, in document order.

    <hostdev mode='subsystem' type='pci'>   -> kind 'hostdev'
    <interface type='hostdev'>              -> kind 'interface', plus mac, vlan, virtualport
    Keys: kind, source, managed, zpci_uid, zpci_fid, guest_address, alias, driver, xml and,
    for interfaces, mac, vlan (list of tags), virtualport ({'type': ..., param: value}).
    Absent values are None.
    """
    out = []
    devices = ET.fromstring(domain_xml).find('devices')
    if devices is None:
        return out
    for el in devices:
        if el.tag == 'hostdev' and el.get('mode') == 'subsystem' and el.get('type') == 'pci':
            out.append(_device(el, 'hostdev', el.find('source/address')))
        elif el.tag == 'interface' and el.get('type') == 'hostdev':
            dev = _device(el, 'interface', el.find('source/address'))
            mac = el.find('mac')
            dev['mac'] = mac.get('address').lower() if mac is not None else None
            dev['vlan'] = [int(t.get('id')) for t in el.findall('vlan/tag')]
            vp = el.find('virtualport')
            if vp is not None:
                dev['virtualport'] = {'type': vp.get('type')}
                params = vp.find('parameters')
                if params is not None:
                    dev['virtualport'].update(params.attrib)
            else:
                dev['virtualport'] = None
            out.append(dev)
    return out


def hostdev_xml(source, managed=True, zpci_uid=None, zpci_fid=None, driver='vfio'):
    """<hostdev mode='subsystem' type='pci'> for a 'DDDD:BB:SS.F' source."""
    dom, bus, rest = source.split(':')
    slot, fn = rest.split('.')
    zpci = ''
    if zpci_uid is not None or zpci_fid is not None:
        attrs = ''
        if zpci_uid is not None:
            attrs += " uid='0x%04x'" % zpci_uid
        if zpci_fid is not None:
            attrs += " fid='0x%08x'" % zpci_fid
        zpci = "<address type='pci'><zpci%s/></address>" % attrs
    return ("<hostdev mode='subsystem' type='pci' managed='%s'>%s"
            "<source><address domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/>"
            "</source>%s</hostdev>") % (
                'yes' if managed else 'no',
                "<driver name=%s/>" % quoteattr(driver) if driver else '',
                dom, bus, slot, fn, zpci)


# ---------------------------------------------------------------------------------------
# Labs


class _Lab:
    """What both labs share: every call is one virsh child process (see module doc)."""

    def __init__(self, uri):
        self.uri = uri

    def virsh(self, *args, input=None, timeout=120):
        """Run `virsh -c URI ARGS...`; return stdout, raise VirshError on failure."""
        argv = ['virsh', '-q', '-c', self.uri] + [str(a) for a in args]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True,
                              timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if proc.returncode != 0:
            raise VirshError(argv[3:], proc.returncode, proc.stderr)
        return proc.stdout

    def _with_file(self, text, *args):
        with tempfile.NamedTemporaryFile('w', suffix='.xml', prefix='zrlab-') as f:
            f.write(text)
            f.flush()
            return self.virsh(*[f.name if a is None else a for a in args])

    def define(self, xml_str):
        return self._with_file(xml_str, 'define', None)

    def define_many(self, xml_strs):
        """Define several guests with one virsh child (one connection, one embed-root open)."""
        with tempfile.TemporaryDirectory(prefix='zrlab-') as d:
            cmds = []
            for i, text in enumerate(xml_strs):
                path = os.path.join(d, '%d.xml' % i)
                with open(path, 'w') as f:
                    f.write(text)
                cmds.append('define %s' % path)
            return self.virsh(' ; '.join(cmds)) if cmds else ''

    def dumpxml(self, name, inactive=True):
        return self.virsh('dumpxml', *(['--inactive'] if inactive else []), name)

    def devices(self, name, inactive=True):
        return parse_devices(self.dumpxml(name, inactive=inactive))

    def attach(self, name, device_xml, config=True, live=False):
        flags = (['--config'] if config else []) + (['--live'] if live else [])
        return self._with_file(device_xml, 'attach-device', name, None, *flags)

    def detach(self, name, device_xml, config=True, live=False):
        flags = (['--config'] if config else []) + (['--live'] if live else [])
        return self._with_file(device_xml, 'detach-device', name, None, *flags)

    def list_names(self, all=True):
        """Domain names; all=False gives only the active (running, paused, crashed) ones."""
        out = self.virsh('list', '--name', *(['--all'] if all else []))
        return [n for n in out.split() if n]

    def start(self, name):
        return self.virsh('start', name)

    def destroy(self, name):
        return self.virsh('destroy', name)

    def undefine(self, name):
        return self.virsh('undefine', name)

    def state(self, name):
        """`virsh domstate --reason`, e.g. 'crashed (panicked)'."""
        return self.virsh('domstate', '--reason', name).strip()

    def is_active(self, name):
        return name in self.list_names(all=False)

    def cleanup(self, prefix):
        """Destroy and undefine every domain whose name starts with prefix."""
        if not prefix:
            raise ValueError('cleanup needs a non-empty prefix')
        for name in self.list_names():
            if not name.startswith(prefix):
                continue
            if self.is_active(name):
                self.destroy(name)
            if name in self.list_names():   # a transient guest is gone once destroyed
                self.undefine(name)


_open_labs = set()


@atexit.register
def _close_open_labs():
    # also reached on SIGTERM (a meson timeout) through main()'s handler
    for lab in list(_open_labs):
        try:
            lab.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class EmbedLab(_Lab):
    """A qemu:///embed root. root_dir=None makes a temporary one, removed by close().

    Use as a context manager, or call close() (left open, it is closed at exit): it
    destroys guests still running in the root (they outlive the processes that started
    them) before removing a temporary root.
    """

    def __init__(self, root_dir=None):
        _prepare_host()
        self._owned = root_dir is None
        self.root = os.path.abspath(root_dir or tempfile.mkdtemp(prefix='zrlab-embed-'))
        os.makedirs(self.root, exist_ok=True)
        super().__init__('qemu:///embed?root=' + self.root)
        _open_labs.add(self)

    def close(self):
        _open_labs.discard(self)
        if not os.path.isdir(self.root):
            return
        try:
            for name in self.list_names(all=False):
                self.destroy(name)
        finally:
            if self._owned:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SystemDaemon:
    """virtlogd + libvirtd serving qemu:///system, via tests/start-libvirtd.sh.

    start() is idempotent and skips (Skip, exit 77) when not root. stop() ends only the
    daemons this object started; one found running is left alone.
    """

    def __init__(self):
        self.started = {}   # name -> pid, for daemons this object started
        self.pids = {}      # name -> pid, whoever started them

    def start(self):
        require_root()
        proc = subprocess.run(['bash', START_LIBVIRTD], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if proc.returncode == SKIP_EXIT:
            raise Skip(proc.stderr.strip())
        if proc.returncode != 0:
            raise RuntimeError('start-libvirtd.sh failed: ' + proc.stderr.strip())
        for line in proc.stdout.splitlines():
            name, pid, how = line.split()
            self.pids[name] = int(pid)
            if how == 'started':
                self.started[name] = int(pid)
        return self

    def stop(self, timeout=30):
        # libvirtd first: it holds connections to virtlogd.
        for name in ('libvirtd', 'virtlogd'):
            pid = self.started.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and os.path.exists('/proc/%d' % pid):
                time.sleep(0.1)

    @staticmethod
    def pci_node_devices():
        """Host PCI functions libvirtd knows, as 'DDDD:BB:SS.F' (pci_0000_00_01_0 -> ...)."""
        out = _Lab(SYSTEM_URI).virsh('nodedev-list', '--cap', 'pci')
        return [node_name_to_pci(n) for n in out.split() if n.startswith('pci_')]


def node_name_to_pci(name):
    """'pci_0000_00_01_0' -> '0000:00:01.0'."""
    _, dom, bus, slot, fn = name.split('_')
    return '%s:%s:%s.%s' % (dom, bus, slot, fn)


def own_system_uri(prefix):
    """A qemu:///system URI of the caller's own (a socket symlink in a new temp dir):
    the tool's apply lock is per URI, so other tests' applies on the shared daemon never
    hold it. Returns (uri, the dir to remove)."""
    sockdir = tempfile.mkdtemp(prefix=prefix)
    os.symlink('/run/libvirt/libvirt-sock', os.path.join(sockdir, 'sock'))
    return 'qemu:///system?socket=%s/sock' % sockdir, sockdir


class OwnSystemURICase(unittest.TestCase):
    """Tests on the shared qemu:///system: guests named PREFIX* (removed before and after
    the class) and a URI of the class's own (own_system_uri, its socket dir named
    SOCK_PREFIX*), so that no other test's apply holds the lock these tests' runs take."""
    PREFIX = None
    SOCK_PREFIX = None

    @classmethod
    def setUpClass(cls):
        cls.lab = SystemLab()
        cls.lab.cleanup(cls.PREFIX)
        cls.uri, cls.sockdir = own_system_uri(cls.SOCK_PREFIX)

    @classmethod
    def tearDownClass(cls):
        cls.lab.cleanup(cls.PREFIX)
        shutil.rmtree(cls.sockdir, True)


class SystemLab(_Lab):
    """qemu:///system; the constructor makes sure the daemon runs (Skip unless root)."""

    def __init__(self, daemon=None):
        self.daemon = daemon or SystemDaemon().start()
        super().__init__(SYSTEM_URI)


def _libvirtd_major():
    """libvirtd's major version ("libvirtd (libvirt) 11.3.0"), 0 when it cannot tell."""
    try:
        out = subprocess.run(['libvirtd', '--version'], capture_output=True, text=True,
                             timeout=60).stdout
        return int(out.split()[-1].split('.')[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return 0


class PrivateDaemon:
    """A libvirtd of the test's own, serving the QEMU driver in system mode (root only).

    libvirtd is shared with whoever else tests on this machine, so a test that must kill,
    stop or restart a daemon gets one of its own. A second system-mode libvirtd cannot
    share the first one's directories (the QEMU driver holds /run/libvirt/qemu/driver.pid,
    and definitions live in /etc/libvirt/qemu), so this one runs in a private mount
    namespace (unshare -m) where /etc/libvirt, /run/libvirt, /var/lib/libvirt,
    /var/cache/libvirt and /var/log/libvirt are bind mounts of directories under
    self.dir; its socket is self.dir/sock/libvirt-sock, outside the namespace, reached
    with self.uri (qemu:///system?socket=...). It starts with no guests and no virtlogd
    (stdio_handler = "file"), sees only the s390x and host-arch QEMU, and gets a copy of
    the host's QEMU capability cache, so it is ready in about a second. Nothing it does is
    visible to the shared daemon, and nothing of it outlives close().

    start(), kill(sig) and start() again restart it on the same directories: the guests
    it had defined come back, as after a real daemon restart.
    """

    DIRS = {'etc': '/etc/libvirt', 'run': '/run/libvirt', 'lib': '/var/lib/libvirt',
            'cache': '/var/cache/libvirt', 'log': '/var/log/libvirt'}

    def __init__(self, prefix='zrapply-daemon-'):
        require_root()
        _prepare_host()
        if not shutil.which('unshare'):
            raise Skip('unshare (util-linux) is not installed')
        self.dir = tempfile.mkdtemp(prefix=prefix)
        for sub in list(self.DIRS) + ['sock']:
            os.makedirs(os.path.join(self.dir, sub))
        etc = os.path.join(self.dir, 'etc')
        qemu_conf = ''
        if os.path.exists('/etc/libvirt/qemu.conf'):
            with open('/etc/libvirt/qemu.conf') as f:
                qemu_conf = f.read()
        with open(os.path.join(etc, 'qemu.conf'), 'w') as f:
            f.write(qemu_conf + '\nstdio_handler = "file"\n')
        if os.path.isdir('/var/cache/libvirt/qemu'):
            shutil.copytree('/var/cache/libvirt/qemu', os.path.join(self.dir, 'cache', 'qemu'))
        self.conf = os.path.join(self.dir, 'libvirtd.conf')
        with open(self.conf, 'w') as f:
            f.write('unix_sock_dir = "%s"\n' % os.path.join(self.dir, 'sock'))
        self.socket = os.path.join(self.dir, 'sock', 'libvirt-sock')
        self.uri = 'qemu:///system?socket=' + self.socket
        self.proc = None
        self.lab = _Lab(self.uri)
        _open_labs.add(self)

    def definition_path(self, name):
        """Where the daemon keeps a guest's persistent definition (read it, never write it)."""
        return os.path.join(self.dir, 'etc', 'qemu', name + '.xml')

    def start(self, timeout=300):
        if self.proc and self.proc.poll() is None:
            return self
        mounts = ['mount --bind %s %s' % (os.path.join(self.dir, k), v)
                  for k, v in self.DIRS.items()]
        # libvirt 9.0's QEMU driver probes every qemu-system-* it finds at its first
        # connection, and those it could not cache again at every start (seconds each
        # under load); the tests need s390x (and libvirt the host's own arch, for its
        # version), so the others are hidden behind /dev/null, which libvirt skips as not
        # executable. libvirt 11.3 reuses the copied cache for all of them (no probe), and
        # with some hidden it lists no guest capabilities for the host's arch at all
        # (every call then fails: "could not find capabilities for arch=x86_64"): there
        # nothing is hidden.
        if _libvirtd_major() < 11:
            keep = {'/usr/bin/qemu-system-s390x', '/usr/bin/qemu-system-' + os.uname().machine}
            mounts += ['mount --bind /dev/null %s' % b
                       for b in sorted(glob.glob('/usr/bin/qemu-system-*')) if b not in keep]
        mounts = ' && '.join(mounts)
        script = '%s && exec libvirtd -f %s -p %s' % (
            mounts, self.conf, os.path.join(self.dir, 'libvirtd.pid'))
        self.log = open(os.path.join(self.dir, 'libvirtd.out'), 'ab')
        self.proc = subprocess.Popen(['unshare', '--mount', '--propagation', 'private',
                                      'sh', '-c', script],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError('private libvirtd exited with %d; see %s' % (
                    self.proc.returncode, os.path.join(self.dir, 'libvirtd.out')))
            if os.path.exists(self.socket):
                try:
                    self.lab.virsh('version', timeout=timeout)
                    return self
                except (VirshError, subprocess.TimeoutExpired):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError('private libvirtd not ready after %ds' % timeout)
            time.sleep(0.1)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def kill(self, sig=signal.SIGKILL):
        """Ends the daemon with sig and waits for it; guests' QEMU processes are not touched."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        if os.path.exists(self.socket):    # a killed daemon leaves its socket behind
            os.unlink(self.socket)

    def close(self):
        _open_labs.discard(self)
        try:
            if self.proc and self.proc.poll() is None:
                for name in self.lab.list_names(all=False):
                    self.lab.destroy(name)
        finally:
            # Its state is thrown away with self.dir: no need for the graceful (and, in
            # libvirtd 9.0, seconds long) SIGTERM shutdown.
            if self.proc and self.proc.poll() is None:
                self.kill(signal.SIGKILL)
            # QEMU processes outlive a killed daemon; the pid files say which are ours.
            qemu_run = os.path.join(self.dir, 'run', 'qemu')
            for f in os.listdir(qemu_run) if os.path.isdir(qemu_run) else []:
                if f.endswith('.pid'):
                    try:
                        with open(os.path.join(qemu_run, f)) as pf:
                            os.kill(int(pf.read().strip()), signal.SIGKILL)
                    except (ValueError, OSError):
                        pass
            if getattr(self, 'log', None):
                self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------
# The tool under test


def runnable_by(user, path, test):
    """path, or a copy of it that user can run: a checkout under /root (mode 0700), where a
    clone made as root often is, is out of other users' reach. The copy goes with test."""
    if subprocess.run(['runuser', '-u', user, '--', 'test', '-x', path]).returncode == 0:
        return path
    d = tempfile.mkdtemp(prefix='zr-bin-')
    test.addCleanup(shutil.rmtree, d, True)
    os.chmod(d, 0o755)
    copy = os.path.join(d, os.path.basename(path))
    shutil.copy2(path, copy)
    os.chmod(copy, 0o755)
    return copy


def run_tool(args, stdin=None, env=None, binary=None, timeout=120):
    """Run zpci-reconcile (path from $ZR_BINARY, set by tests/meson.build).

    args: list of arguments; stdin: text fed to it (else /dev/null); env: variables added
    to (or, with value None, removed from) this process's environment.
    Returns (returncode, stdout, stderr). Skips when the binary has not been built.
    """
    argv, child_env = _tool_command(args, env, binary)
    proc = subprocess.run(argv, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, env=child_env, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def _tool_command(args, env, binary):
    """argv and environment for the tool; see run_tool."""
    binary = binary or os.environ.get('ZR_BINARY')
    if not binary:
        raise RuntimeError('ZR_BINARY is not set (run through meson test)')
    if not os.access(binary, os.X_OK):
        raise Skip('%s is not built' % binary)
    child_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = str(value)
    return [binary] + [str(a) for a in args], child_env


def fault_env(fault=None, counts=None, apply_threads=1):
    """Environment for run_tool/start_tool that preloads the fault shim (tests/fault/).

    fault: ZR_FAULT, e.g. 'virDomainAttachDeviceFlags:2' (see zr-fault.c); counts: a path
    where the shim writes how often each wrapped libvirt function was called.
    apply_threads: ZPCI_RECONCILE_APPLY_THREADS.  One by default: "the n-th attach" names
    one action only when apply runs a host's actions in turn; None keeps the tool's
    default pool (test_parallel.py drives faults through it).
    """
    lib = os.environ.get('ZR_FAULT_LIB')
    if not lib or not os.path.exists(lib):
        raise Skip('the fault shim is not built (ZR_FAULT_LIB)')
    asan = os.environ.get('ASAN_OPTIONS', '')
    return {
        'LD_PRELOAD': lib,
        'ZR_FAULT': fault or '',
        'ZR_FAULT_COUNTS': counts or '',
        'ZPCI_RECONCILE_APPLY_THREADS': apply_threads,
        # an ASan build wants its runtime first; the shim is preloaded before it
        'ASAN_OPTIONS': (asan + ':' if asan else '') + 'verify_asan_link_order=0',
    }


def read_counts(path):
    """The shim's ZR_FAULT_COUNTS file as {function: calls}."""
    with open(path) as f:
        return {fn: int(n) for fn, n in (line.split() for line in f if line.strip())}


def injected(fn, n):
    """The error the fault shim makes the n-th call of libvirt's fn fail with."""
    return 'zr-fault: %s call %s failed' % (fn, n)


class EmbedToolCase(unittest.TestCase):
    """A fresh qemu:///embed root per test, an inventory file in it, and the tool run on
    it with -j 1, through the fault shim where a test injects (test_faults.py,
    test_reports.py).

    shim_always: preload the shim (and so run apply's actions one at a time, see
    fault_env) on every run, not only on those that inject a fault or count calls.
    """
    shim_always = False

    def setUp(self):
        self.lab = EmbedLab()
        self.addCleanup(self.lab.close)
        self.inv = os.path.join(self.lab.root, 'inventory.yaml')

    def define(self, name, *devices):
        self.lab.define(s390x_guest(name, ''.join(devices)))

    def inventory(self, text):
        with open(self.inv, 'w') as f:
            f.write(textwrap.dedent(text).lstrip())

    def tool(self, *args, fault=None, counts=None, env=None):
        e = fault_env(fault, counts) if fault or counts or self.shim_always else {}
        e['LIBVIRT_DEFAULT_URI'] = None
        e.update(env or {})
        return run_tool(['-j', '1'] + list(args) + ['-c', self.lab.uri], env=e)

    def tool_json(self, *args, fault=None, counts=None):
        rc, out, err = self.tool('-o', 'json', *args, fault=fault, counts=counts)
        try:
            return rc, json.loads(out), err
        except ValueError:
            self.fail('not JSON (rc %d): %s\n%s' % (rc, out, err))


def start_tool(args, env=None, binary=None):
    """Start zpci-reconcile without waiting: a Popen with stdout and stderr as text pipes."""
    argv, child_env = _tool_command(args, env, binary)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env)


def wait_stopped(proc, timeout=120):
    """Wait until proc is stopped (the shim's 'stop' action raised SIGSTOP).

    Raises RuntimeError when it exits first or never stops: a safety net, not a timing
    assertion.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open('/proc/%d/stat' % proc.pid) as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except FileNotFoundError:
            state = 'gone'
        if state == 'T':
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise RuntimeError('tool exited (%d) before stopping: %s%s' % (
                proc.returncode, out, err))
        if time.monotonic() > deadline:
            raise RuntimeError('tool did not stop within %ds' % timeout)
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------
# Running a test file


def main(argv=None):
    """unittest runner with meson's exit codes: 0 pass, 1 fail, 77 all skipped.

    Arguments select TestCase classes or Class.method names from __main__.
    """
    argv = sys.argv[1:] if argv is None else argv

    # meson ends a test that times out with SIGTERM. Stop as on ^C (the one exception
    # unittest lets through) so that atexit still closes the labs.
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt('SIGTERM')

    signal.signal(signal.SIGTERM, on_sigterm)
    loader = unittest.TestLoader()
    module = sys.modules['__main__']
    suite = (loader.loadTestsFromNames(argv, module) if argv
             else loader.loadTestsFromModule(module))
    try:
        result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    except KeyboardInterrupt as e:
        print('interrupted: %s' % (e or 'SIGINT'), file=sys.stderr)
        sys.exit(1)
    if not result.wasSuccessful():
        sys.exit(1)
    if result.testsRun == 0 or len(result.skipped) == result.testsRun:
        sys.exit(SKIP_EXIT)
    sys.exit(0)
