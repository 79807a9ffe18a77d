#!/usr/bin/env python3
"""The corpus stage: every domain of libvirt's own test suite that has an in-scope device
(<hostdev type='pci'> or <interface type='hostdev'> with a PCI source), from the source
trees given, defined in embedded roots and put through tests/fidelity.py's checks:
export -> plan 0, managed flipped and back on the devices as defined, empty, restore ->
plan 0 and the elements back, managed flipped and back again, and the file's own fields
converging in one apply.

Usage: run.py LIBVIRT_SOURCE_DIR...   ($ZR_BINARY names the tool)
Exit 0 all checked guests pass, 1 a check failed, 77 nothing to check.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import fidelity  # noqa: E402

# Test directories of libvirt's source tree whose files are whole domains.
DIRS = ('qemuxml2argvdata', 'qemuxml2xmloutdata', 'qemuxmlconfdata',
        'qemuhotplugtestdomains', 'qemuhotplugtestdevices')


def candidates(tree):
    out = []
    for d in DIRS:
        path = os.path.join(tree, 'tests', d)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            f = os.path.join(path, name)
            if name.endswith('.xml') and fidelity.has_in_scope(f):
                out.append(f)
    return out


def release(tree):
    base = os.path.basename(os.path.normpath(tree))
    return base.replace('libvirt-', 'v').replace('.', '_')


def main(trees):
    fidelity.no_kvm_namespace()
    t0 = time.monotonic()
    work = fidelity.tempdir('zrcorpus-')
    total_checked, failures, skipped_all = 0, [], []
    for tree in trees:
        files = candidates(tree)
        # One test name can have a file in several directories: define_grouped makes
        # the guest names unique.
        groups, skipped = fidelity.define_grouped(files, 'zrc-%s-' % release(tree))
        defined = sum(len(g) for _, g in groups)
        print('%s: %d files with in-scope devices, %d defined in %d roots, %d not definable'
              % (tree, len(files), defined, len(groups), len(skipped)), flush=True)
        checked = 0
        for elab, guests in groups:
            checker = fidelity.Checker(elab, work)
            for guest, path in guests:
                ok = checker.run(guest, path)
                checked += ok
                print('  %-4s %s' % ('ok' if ok else 'FAIL',
                                     os.path.relpath(path, os.path.join(tree, 'tests'))),
                      flush=True)
            failures += checker.failures
            elab.close()
        total_checked += checked
        skipped_all += skipped
    print('\nnot definable here (libvirt refuses the file, or no QEMU for its arch):')
    for path, why in skipped_all:
        print('  %s: %s' % (os.path.basename(path), why))
    for f in failures:
        print('\nFAILED: ' + f)
    print('\ncorpus: %d guests passed every check, %d failed, %d files not definable; %.0fs'
          % (total_checked, len(failures), len(skipped_all), time.monotonic() - t0))
    if failures:
        return 1
    return 0 if total_checked else 77


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
