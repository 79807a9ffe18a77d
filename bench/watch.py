#!/usr/bin/python3
"""What does `zpci-reconcile watch` cost on a host of many guests, and how soon does it
repair a change another client makes to a persistent definition only (libvirt sends no
event for that)?  Issue 27: within about 1 s, the definitions poll under 2 % of one core.

Defines N inactive s390x guests (default 1000) named zrwatchb-NNNN in the real libvirtd
(qemu:///system, as root), each holding one zPCI hostdev DDDD:d0:00.0 (DDDD: NNNN in hex),
and an inventory that wants each as it is.  Then, for each binary (this build's and, with
ZR_BASE=PATH, an older one, in alternating rounds):

  - start `watch --no-host-check` and wait for READY=1 (systemd's notify protocol);
  - idle: the CPU time the watch process uses over IDLE seconds (default 20), and the
    daemon's over the same time (other clients of the shared daemon count there too: the
    same span with no watch running is printed as its baseline);
  - CHANGES times (default 5): attach a second hostdev to a guest with --config only, as
    another client would, and time until the guest's definition no longer has it (read
    every 20 ms; the watch detaches it: prune).

Usage: bench/watch.py [N] [BUILDDIR]; REPEAT (2) rounds, IDLE, CHANGES; KEEP=1 keeps the
guests.  REMOTE=1: a libvirtd of the bench's own reached over qemu+tcp://127.0.0.1
(tests/tcpdaemon.py), a remote host as watch sees one: it does not follow that daemon's
definitions directory, so only the daemon's events (libvirt 11.3) or the poll show a change.
Needs python3-libvirt."""
import os
import socket
import subprocess
import sys
import tempfile
import time

import libvirt

URI = 'qemu:///system'
PREFIX = 'zrwatchb-'
DAEMON = None  # REMOTE=1: the TcpDaemon


def hostdev(dom, bus):
    return ("<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>"
            "<source><address domain='0x%04x' bus='0x%s' slot='0x00' function='0x0'/></source>"
            "<address type='pci'><zpci uid='0x%04x' fid='0x%08x'/></address></hostdev>"
            % (dom, bus, 1 if bus == 'd0' else 2, 0 if bus == 'd0' else 1))


def guest_xml(name, dom):
    return ("<domain type='qemu'><name>%s</name><memory unit='KiB'>131072</memory>"
            "<vcpu>1</vcpu><os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>"
            "<devices><emulator>/usr/bin/qemu-system-s390x</emulator>%s</devices></domain>"
            % (name, hostdev(dom, 'd0')))


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def daemon_pid():
    if DAEMON:
        return DAEMON.proc.pid
    with open('/run/libvirtd.pid') as f:
        return int(f.read().strip())


def wait_ready(sock, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit('watch ended: %s' % proc.stderr.read())
        try:
            if b'READY=1' in sock.recv(4096):
                return
        except socket.timeout:
            pass
    raise SystemExit('watch not ready within %d s' % timeout)


def idle(seconds, pid=None):
    """CPU seconds per second of process pid (None: none) and of the daemon."""
    d = daemon_pid()
    p0, d0 = cpu_seconds(pid) if pid else 0.0, cpu_seconds(d)
    time.sleep(seconds)
    p1, d1 = cpu_seconds(pid) if pid else 0.0, cpu_seconds(d)
    return (p1 - p0) / seconds, (d1 - d0) / seconds


def change_latency(conn, names, k):
    """Attaches a second hostdev --config to a guest; seconds until it is gone again."""
    name = names[(k * 7919) % len(names)]
    dom = conn.lookupByName(name)
    extra = hostdev(int(name[len(PREFIX):]), 'd1')
    dom.attachDeviceFlags(extra, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    t0 = time.monotonic()
    needle = "bus='0xd1'"
    while needle in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE):
        if time.monotonic() - t0 > 60:
            return float('inf')
        time.sleep(0.02)
    return time.monotonic() - t0


def run_watch(binary, inv, work, conn, names, idle_s, changes):
    path = os.path.join(work, 'notify-%d' % time.monotonic_ns())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.5)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    env.pop('LIBVIRT_DEFAULT_URI', None)
    t0 = time.monotonic()
    proc = subprocess.Popen([binary, 'watch', '-q', '--no-host-check', '-c', URI, inv],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(sock, proc)
        ready = time.monotonic() - t0
        time.sleep(1)  # the first poll rounds after the pass
        cpu, daemon = idle(idle_s, proc.pid)
        lat = sorted(change_latency(conn, names, k) for k in range(changes))
    finally:
        proc.terminate()
        proc.wait()
        sock.close()
    return {'ready': ready, 'cpu': cpu, 'daemon': daemon, 'lat': lat}


def define(conn, names):
    have = set(conn.listDefinedDomains())
    for name in names:
        if name not in have:
            conn.defineXML(guest_xml(name, int(name[len(PREFIX):])))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = sys.argv[2] if len(sys.argv) > 2 else os.path.join(top, 'build')
    binaries = [('this build', os.path.join(build, 'reconciler', 'zpci-reconcile'))]
    if os.environ.get('ZR_BASE'):
        binaries.append(('baseline (ZR_BASE)', os.environ['ZR_BASE']))
    repeat = int(os.environ.get('REPEAT', 2))
    idle_s = float(os.environ.get('IDLE', 20))
    changes = int(os.environ.get('CHANGES', 5))
    global URI, DAEMON
    if os.environ.get('REMOTE') == '1':
        sys.path.insert(0, os.path.join(top, 'tests'))
        from tcpdaemon import TcpDaemon
        DAEMON = TcpDaemon().start()
        URI = DAEMON.uri
    else:
        subprocess.run(['bash', os.path.join(top, 'tests', 'start-libvirtd.sh')],
                       stdout=subprocess.DEVNULL, check=True)
    conn = libvirt.open(URI)
    names = ['%s%04d' % (PREFIX, i) for i in range(1, n + 1)]
    define(conn, names)
    work = tempfile.mkdtemp(prefix='zrwatchb-')
    inv = os.path.join(work, 'inventory.yaml')
    with open(inv, 'w') as f:
        f.write('version: 1\nguests:\n')
        for name in names:
            f.write('  %s:\n    hostdevs:\n      - source: %04x:d0:00.0\n'
                    '        zpci: {uid: 1, fid: 0}\n' % (name, int(name[len(PREFIX):])))
    load0 = open('/proc/loadavg').read().split()[:3]
    results = {label: [] for label, _ in binaries}
    quiet = []
    for r in range(repeat):
        quiet.append(idle(idle_s)[1])
        order = binaries if r % 2 == 0 else binaries[::-1]
        for label, binary in order:
            results[label].append(run_watch(binary, inv, work, conn, names, idle_s, changes))
    load1 = open('/proc/loadavg').read().split()[:3]
    print('load average %s (start), %s (end); %d CPUs; %d rounds, %g s idle each, %d changes'
          % (' '.join(load0), ' '.join(load1), os.cpu_count(), repeat, idle_s, changes))
    print('%d inactive guests in the inventory, all in sync; libvirtd %s on %s'
          % (n, '.'.join(str(conn.getLibVersion() // 1000 ** k % 1000) for k in (2, 1, 0)),
             'qemu+tcp:// (REMOTE=1)' if DAEMON else URI))
    print('daemon, no watch running: %5.2f %% of one core (median of rounds)'
          % (100 * sorted(quiet)[len(quiet) // 2]))
    print('%-20s %9s %12s %14s %13s %13s' % ('', 'ready s', 'watch cpu %', 'daemon cpu %',
                                             'change med s', 'change max s'))
    for label, rs in results.items():
        med = lambda k: sorted(x[k] for x in rs)[len(rs) // 2]
        lat = sorted(v for x in rs for v in x['lat'])
        print('%-20s %9.2f %12.2f %14.2f %13.2f %13.2f'
              % (label, med('ready'), 100 * med('cpu'), 100 * med('daemon'),
                 lat[len(lat) // 2], lat[-1]))
    if os.environ.get('KEEP') != '1' and not DAEMON:  # a private daemon leaves nothing
        for name in names:
            conn.lookupByName(name).undefine()
    conn.close()
    if DAEMON:
        DAEMON.stop()
    subprocess.run(['rm', '-rf', work])


if __name__ == '__main__':
    main()
