"""A private libvirtd reached over qemu+tcp://127.0.0.1:PORT/system (Python 3 stdlib only).

The fleet tests need a hypervisor behind a real remote transport. The machine's shared
libvirtd (qemu:///system, tests/start-libvirtd.sh) is used by other test runs at the same
time and must keep its settings, so this starts a second libvirtd of its own:

- in a private mount namespace (`unshare -m`), where /etc/libvirt, /run/libvirt and
  /var/lib/libvirt are this daemon's own (the QEMU driver keeps its lock, state and
  definitions there, and would otherwise fight the shared daemon for them), and
  /var/cache/libvirt a copy, so QEMU's capabilities are not probed again;
- listening on 127.0.0.1 only, with auth_tcp = "none" and its own pid file and sockets.

Everything it holds lives in tmpfs and bind mounts of that namespace: stopping the
daemon (stop(), or the end of the test process) leaves nothing behind. Guests defined
there cannot start (no virtlogd in the namespace); plan and apply work on definitions.

Needs root and unshare(1); otherwise start() raises lab.Skip.
"""

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time

import lab

_running = set()


@atexit.register
def _stop_all():
    for d in list(_running):
        d.stop()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class TcpDaemon:
    def __init__(self):
        self.proc = None
        self.dir = None
        self.port = None
        self.uri = None

    def start(self, ready_timeout=300):
        lab.require_root()
        for tool in ('unshare', 'mount'):
            if not shutil.which(tool):
                raise lab.Skip('%s not installed' % tool)
        libvirtd = shutil.which('libvirtd') or '/usr/sbin/libvirtd'
        if not os.access(libvirtd, os.X_OK):
            raise lab.Skip('libvirtd not installed')
        lab._prepare_host()

        self.dir = tempfile.mkdtemp(prefix='zrfleet-tcpd-')
        etc = os.path.join(self.dir, 'etc')
        os.makedirs(etc)
        os.makedirs(os.path.join(self.dir, 'sock'))
        if os.path.exists('/etc/libvirt/qemu.conf'):
            shutil.copy('/etc/libvirt/qemu.conf', etc)
        cache = os.path.join(self.dir, 'cache')
        if os.path.isdir('/var/cache/libvirt'):
            shutil.copytree('/var/cache/libvirt', cache, symlinks=True)
        else:
            os.makedirs(cache)
        self.port = _free_port()
        with open(os.path.join(etc, 'libvirtd.conf'), 'w') as f:
            f.write('listen_tls = 0\nlisten_tcp = 1\ntcp_port = "%d"\n'
                    'listen_addr = "127.0.0.1"\nauth_tcp = "none"\nunix_sock_dir = "%s"\n'
                    % (self.port, os.path.join(self.dir, 'sock')))
        script = ('set -e\n'
                  'mount --bind "$1/etc" /etc/libvirt\n'
                  'mount -t tmpfs tmpfs /run/libvirt\n'
                  'mount -t tmpfs tmpfs /var/lib/libvirt\n'
                  'mount --bind "$1/cache" /var/cache/libvirt\n'
                  'exec "$2" --listen --config "$1/etc/libvirtd.conf" --pid-file "$1/libvirtd.pid"\n')
        for d in ('/etc/libvirt', '/run/libvirt', '/var/lib/libvirt', '/var/cache/libvirt'):
            os.makedirs(d, exist_ok=True)
        self.log = open(os.path.join(self.dir, 'libvirtd.log'), 'w')
        # unshare and sh exec: the pid is libvirtd's own, so stop() signals only it.
        self.proc = subprocess.Popen(
            ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh',
             self.dir, libvirtd],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        _running.add(self)
        self.uri = 'qemu+tcp://127.0.0.1:%d/system' % self.port

        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError('private libvirtd exited with %s: %s'
                                   % (self.proc.returncode, self.log_text()))
            probe = subprocess.run(['virsh', '-q', '-c', self.uri, 'version'],
                                   capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if probe.returncode == 0:
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('private libvirtd not ready: %s' % probe.stderr)
            time.sleep(0.2)

    def log_text(self):
        try:
            with open(os.path.join(self.dir, 'libvirtd.log')) as f:
                return f.read()[-2000:]
        except OSError:
            return ''

    def stop(self, timeout=60):
        _running.discard(self)
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, 'log', None):
            self.log.close()
            self.log = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def lab(self):
        """A lab._Lab talking to this daemon through its TCP URI (virsh children)."""
        return lab._Lab(self.uri)
