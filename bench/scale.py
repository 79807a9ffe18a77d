#!/usr/bin/env python3
"""Does zpci-reconcile scale linearly?  Issue 17's growth cases, each at several sizes,
measured in one run on qemu:///embed roots (no daemon; s390x guests only, see
LIBVIRT-NOTES.md), printing wall time and peak RSS per size and the ratio per doubling:
about 2 is linear, about 4 quadratic, about 8 cubic.

  plan       N guests with one hostdev each, the inventory wants another zPCI uid
             (one replacement per guest): plan's time and memory
  validate   N guests with 4 devices each (no libvirt)
  hostcheck  N guests x 20 functions, each an SR-IOV virtual function with an IOMMU
             group mate, all attached: the host check and the conflict check alone,
             on a host made in memory (bench/preflight-scale.c; no libvirt: embedded
             roots have no node devices)
  cascade    a chain of N guests, each wanting the function the next one holds, the
             last one's wanted function held by a guest the inventory does not name:
             apply refuses the whole chain, one guest after the other
  nearmiss   N names the host does not have (each close to one it has) against a host
             of G guests (4/5 N unless --guests): each one gets a "did you mean" hint

With --baseline BUILDDIR (an older build, e.g. of the commit before issue 17's
changes), each command also runs with that binary, up to --baseline-max (a size)
so that a quadratic or cubic baseline stays affordable.

Usage: bench/scale.py [CASE ...] [--build DIR] [--sizes N,N,N] [--guests G]
                      [--baseline DIR] [--baseline-max N]
Run as root (libvirt's QEMU driver wants it).  Everything lives in a temporary
directory, removed at the end (KEEP=1 keeps it).  Prints figures; asserts nothing.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'tests'))
import lab  # noqa: E402  (tests/lab.py: guest XML, embed roots through virsh)

DEFAULT_SIZES = {
    'plan': [2500, 5000, 10000],
    'validate': [2500, 5000, 10000],
    'hostcheck': [500, 1000, 2000, 4000],
    'cascade': [100, 200, 400, 800],
    'nearmiss': [1250, 2500, 5000],
}


def run_rss(argv, ok=(0,)):
    """Runs argv; returns (wall seconds, peak RSS in MiB, CPU seconds) from wait4()."""
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_RDWR)
        for i in (0, 1, 2):
            os.dup2(fd, i)
        os.execv(argv[0], argv)
    _, status, usage = os.wait4(pid, 0)
    t1 = time.monotonic()
    rc = os.waitstatus_to_exitcode(status)
    if rc not in ok:
        sys.exit('%s: exit %d' % (' '.join(argv), rc))
    return t1 - t0, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


class Bench:
    def __init__(self, build, work, repeat, baseline=None, baseline_max=0):
        self.zr = os.path.join(build, 'reconciler', 'zpci-reconcile')
        self.base_build = baseline
        self.base = baseline and os.path.join(baseline, 'reconciler', 'zpci-reconcile')
        self.base_max = baseline_max
        self.opened = None
        self.work = work
        self.repeat = repeat
        self.rows = []

    def root(self, name):
        path = os.path.join(self.work, name)
        os.makedirs(os.path.join(path, 'etc'), exist_ok=True)
        with open(os.path.join(path, 'etc', 'qemu.conf'), 'w') as f:
            f.write('user = "root"\ngroup = "root"\n')
        return lab.EmbedLab(path)

    @staticmethod
    def define(root, xmls):
        # one virsh per 1000 guests: a single argument must stay under 128 KiB
        for i in range(0, len(xmls), 1000):
            root.define_many(xmls[i:i + 1000])

    def inventory(self, name, lines):
        path = os.path.join(self.work, name + '.yaml')
        with open(path, 'w') as f:
            f.write('\n'.join(['version: 1', 'guests:'] + lines) + '\n')
        return path

    def best(self, argv, ok=(0, 2)):
        """The fastest of `repeat` runs: (seconds, RSS MiB, CPU seconds)."""
        runs = [run_rss(argv, ok) for _ in range(self.repeat)]
        return min(runs)[0], max(r[1] for r in runs), min(r[2] for r in runs)

    def open_cost(self, case, size, root, name):
        """What opening an embedded root costs (libvirt loads every definition
        in it): a plan of one guest, which the tool's figures are then also
        given without."""
        inv = self.inventory('%s-%d-one' % (case, size), ['  %s: {}' % name])
        self.opened = self.best([self.zr, 'plan', '-q', '-c', root.uri, inv], ok=(0, 1, 2))
        self.row(case, size, 'open the root: plan of 1 guest', *self.opened)

    def measure(self, case, size, what, args, ok=(0, 2)):
        """Times `zpci-reconcile ARGS` (and the baseline's, when it is given and
        `size` is within --baseline-max); after open_cost(), also without the
        root's opening."""
        runs = [(what, self.zr)]
        if self.base and size <= self.base_max:
            runs.append((what + ' [baseline]', self.base))
        for label, exe in runs:
            secs, rss, cpu = self.best([exe] + args, ok)
            self.row(case, size, label, secs, rss, cpu)
            if self.opened:
                self.row(case, size, '  minus opening: ' + label, secs - self.opened[0], rss,
                         cpu - self.opened[2])

    def row(self, case, size, what, secs, rss, cpu):
        self.rows.append((case, size, what, secs, rss, cpu))
        print('%-10s %6d  %-46s %8.3f s %8.3f s %8.1f MiB' % (case, size, what, secs, cpu, rss),
              flush=True)


def hostdev(dom, bus=0, slot=0, uid=None, fid=None):
    return lab.hostdev_xml('%04x:%02x:%02x.0' % (dom, bus, slot), zpci_uid=uid, zpci_fid=fid)


def case_plan(b, n):
    r = b.root('plan-%d' % n)
    b.define(r, [lab.s390x_guest('g%05d' % i, hostdev(i + 1, uid=1, fid=0))
                   for i in range(n)])
    lines = []
    for i in range(n):
        lines += ['  g%05d:' % i, '    hostdevs:',
                  '      - source: %04x:00:00.0' % (i + 1), '        zpci: {uid: 2}']
    inv = b.inventory('plan-%d' % n, lines)
    b.open_cost('plan', n, r, 'g00000')
    b.measure('plan', n, 'plan (one replacement per guest)', ['plan', '-q', '-c', r.uri, inv])


def case_validate(b, n):
    lines = []
    for i in range(n):
        lines += ['  g%05d:' % i, '    hostdevs:']
        for d in range(4):
            lines += ['      - source: %04x:%02x:00.0' % (i + 1, d),
                      '        zpci: {uid: %d, fid: %d}' % (d + 1, d)]
    inv = b.inventory('validate-%d' % n, lines)
    b.measure('validate', n, 'validate (%d devices)' % (4 * n), ['validate', inv], ok=(0,))


def build_base_preflight(b):
    """bench/preflight-scale.c built against the baseline's reconciler/ (its
    source tree is the parent of its build directory), or None."""
    src = os.path.dirname(os.path.abspath(b.base_build))
    lib = os.path.join(b.base_build, 'reconciler', 'libzr-core.a')
    if not os.path.exists(os.path.join(src, 'reconciler', 'preflight.h')) or \
            not os.path.exists(lib):
        return None
    exe = os.path.join(b.work, 'preflight-scale-baseline')
    pkg = subprocess.run(['pkg-config', '--cflags', '--libs', 'libvirt', 'libxml-2.0',
                          'yaml-0.1'], capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(['cc', '-O2', '-std=c17', '-D_GNU_SOURCE', '-I', os.path.join(src, 'reconciler'),
                    '-I', b.base_build, os.path.join(TOP, 'bench', 'preflight-scale.c'), lib,
                    '-o', exe, '-pthread'] + pkg, check=True)
    return exe


def case_hostcheck(b, n, per=20):
    # The host check reads node devices, which qemu:///embed does not have and
    # no test host has 40,000 of: bench/preflight-scale.c times the check itself
    # on a host made in memory (no libvirt).
    exe = os.path.join(os.path.dirname(os.path.dirname(b.zr)), 'bench', 'preflight-scale')
    b.row('hostcheck', n, 'host + conflict check (x%d functions)' % per,
          *b.best([exe, str(n), str(per)], ok=(0,)))
    if b.base and n <= b.base_max:
        if not hasattr(b, 'base_preflight'):
            b.base_preflight = build_base_preflight(b)
        if b.base_preflight:
            b.row('hostcheck', n, 'host + conflict check (x%d functions) [baseline]' % per,
                  *b.best([b.base_preflight, str(n), str(per)], ok=(0,)))


def case_cascade(b, n):
    # c_i holds function i and wants function i + 1; 'outsider' (not in the
    # inventory) holds function n: c_{n-1} is refused, so it keeps function n-1,
    # which refuses c_{n-2}, and so on down the chain.
    r = b.root('cascade-%d' % n)
    guests = [lab.s390x_guest('c%05d' % i, hostdev(i + 1)) for i in range(n)]
    guests.append(lab.s390x_guest('outsider', hostdev(n + 1)))
    b.define(r, guests)
    lines = []
    for i in range(n):
        lines += ['  c%05d:' % i, '    hostdevs:', '      - source: %04x:00:00.0' % (i + 2)]
    inv = b.inventory('cascade-%d' % n, lines)
    b.open_cost('cascade', n, r, 'outsider')
    b.measure('cascade', n, 'plan (whole chain refused)', ['plan', '-q', '-c', r.uri, inv])
    b.measure('cascade', n, 'apply (whole chain refused)',
              ['apply', '-q', '--no-host-check', '-c', r.uri, inv], ok=(1,))


def case_nearmiss(b, n, guests):
    r = b.root('nearmiss-%d' % n)
    b.define(r, [lab.s390x_guest('vm-%05d' % i) for i in range(guests)])
    # one typo each ('vm_' for 'vm-'): every name gets a hint
    lines = ['  vm_%05d: {}' % (i % guests) if i < guests else '  vm_%05dx: {}' % i
             for i in range(n)]
    inv = b.inventory('nearmiss-%d' % n, lines)
    b.open_cost('nearmiss', n, r, 'vm-00000')
    b.measure('nearmiss', n, 'plan, N unknown vs %d%% N guests' % (100 * guests // n),
              ['plan', '-q', '-c', r.uri, inv], ok=(1,))


def print_ratios(rows):
    print('\nratio per doubling (about 2: linear, 4: quadratic, 8: cubic)')
    series = {}
    for case, size, what, secs, rss, cpu in rows:
        series.setdefault((case, what), []).append((size, secs, rss, cpu))

    def r(a, b):
        return b / a if a else float('nan')

    for (case, what), pts in series.items():
        pts.sort()
        for (n0, s0, m0, c0), (n1, s1, m1, c1) in zip(pts, pts[1:]):
            if n1 != 2 * n0:
                continue
            if min(s0, s1, c0, c1) <= 0:
                print('%-10s %-46s %6d -> %-6d (below the noise of opening the root)' %
                      (case, what, n0, n1))
                continue
            print('%-10s %-46s %6d -> %-6d wall %5.2fx  cpu %5.2fx  rss %5.2fx' %
                  (case, what, n0, n1, r(s0, s1), r(c0, c1), r(m0, m1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('cases', nargs='*', default=list(DEFAULT_SIZES))
    ap.add_argument('--build', default=os.path.join(TOP, 'build'))
    ap.add_argument('--sizes', help='comma-separated sizes for every case given')
    ap.add_argument('--guests', type=int, default=0,
                    help='host size for nearmiss (default: 4/5 of the size, so both double)')
    ap.add_argument('--repeat', type=int, default=int(os.environ.get('REPEAT', '1')))
    ap.add_argument('--baseline', help='an older build directory to compare with')
    ap.add_argument('--baseline-max', type=int, default=1000,
                    help='largest size the baseline runs at')
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix='zrscale-bench.')
    b = Bench(a.build, work, a.repeat, a.baseline, a.baseline_max)
    print('%-10s %6s  %-46s %10s %10s %12s' % ('case', 'size', 'what', 'wall', 'cpu',
                                               'peak RSS'))
    try:
        for case in a.cases:
            sizes = [int(x) for x in a.sizes.split(',')] if a.sizes else DEFAULT_SIZES[case]
            for n in sizes:
                if case == 'nearmiss':
                    case_nearmiss(b, n, a.guests or n * 4 // 5)
                else:
                    globals()['case_' + case](b, n)
        print_ratios(b.rows)
    finally:
        if os.environ.get('KEEP') != '1':
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
