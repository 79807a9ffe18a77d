#!/usr/bin/python3
"""Interleaved A/B timing of whole-process runs, for comparing builds (or
variants of one build) of zpci-reconcile against each other and against a
baseline such as bench/xmldesc-loop, on the local libvirtd.

    bench/ab.py ROUNDS -- LABEL [VAR=VALUE ...] COMMAND ARG ... [-- LABEL ...]

Each round runs every command once, in the order given (so a burst of
other work on the machine hits them all), with stdout and stderr thrown
away.  Printed per label: the medians over the rounds of the wall time, the
process's own CPU time (user + system, children included), the CPU time
libvirtd's threads used meanwhile (/proc/PID/task/*/schedstat, as
bench/lib.sh's daemon_cpu_ns) and their sum, the minor page faults, and the
least wall time.  A command that fails is reported and stops the run.  The
guests and the inventory are the caller's: bench/plan.sh with KEEP=1
leaves its guests defined.  Used for docs/design.md, "Performance (issue
27)", sixth round.

Example (two builds and the floor, 61 rounds):

    bench/ab.py 61 -- before /tmp/zr-old plan -q -c qemu:///system inv.yaml \\
        -- after build/reconciler/zpci-reconcile plan -q -c qemu:///system inv.yaml \\
        -- floor build/bench/xmldesc-loop -t 4 qemu:///system
"""
import glob
import os
import statistics
import sys
import time


def daemon_cpu(pid):
    total = 0
    for path in glob.glob('/proc/%s/task/*/schedstat' % pid):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total / 1e9


def parse(argv):
    if len(argv) < 4 or argv[1] != '--':
        sys.exit(__doc__.split('\n\n')[1])
    rounds = int(argv[0])
    groups, cur = [], []
    for a in argv[2:] + ['--']:
        if a != '--':
            cur.append(a)
            continue
        label, rest = cur[0], cur[1:]
        env = dict(os.environ)
        while rest and '=' in rest[0] and not rest[0].startswith(('/', '.')):
            key, value = rest.pop(0).split('=', 1)
            env[key] = value
        if not rest:
            sys.exit('ab.py: no command for %s' % label)
        groups.append((label, env, rest))
        cur = []
    return rounds, groups


def run(env, cmd):
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            os.execvpe(cmd[0], cmd, env)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    return status, usage


def main():
    rounds, groups = parse(sys.argv[1:])
    with open('/run/libvirtd.pid') as f:
        daemon = f.read().strip()
    results = {label: [] for label, _, _ in groups}
    for _ in range(rounds):
        for label, env, cmd in groups:
            d0, t0 = daemon_cpu(daemon), time.monotonic()
            status, usage = run(env, cmd)
            t1, d1 = time.monotonic(), daemon_cpu(daemon)
            code = os.waitstatus_to_exitcode(status)
            if code not in (0, 2):  # 2: plan's "changes"
                sys.exit('ab.py: %s exited with %d: %s' % (label, code, ' '.join(cmd)))
            results[label].append((t1 - t0, usage.ru_utime + usage.ru_stime, d1 - d0,
                                   usage.ru_minflt))
    print('load average %.2f %.2f %.2f; %d CPUs; %d interleaved rounds; medians in ms'
          % (*os.getloadavg(), os.cpu_count(), rounds))
    print('%-12s %8s %8s %8s %8s %8s %10s' % ('', 'wall', 'cpu', 'daemon', 'sum', 'minflt',
                                             'least wall'))
    for label, runs in results.items():
        med = [statistics.median(r[i] for r in runs) for i in range(4)]
        print('%-12s %8.1f %8.1f %8.1f %8.1f %8.0f %10.1f'
              % (label, med[0] * 1e3, med[1] * 1e3, med[2] * 1e3, (med[1] + med[2]) * 1e3,
                 med[3], min(r[0] for r in runs) * 1e3))


if __name__ == '__main__':
    main()
