#!/usr/bin/env python3
"""Writes each tests/data/plan/<case>/ as one fuzz-plan input (see fuzz-plan.c):

    OPTIONS \\0 INVENTORY \\0 CONFIG_1 \\0 LIVE_1 \\0 CONFIG_2 \\0 LIVE_2 ...

guests in inventory order, an absent file as an empty part.

    plan-seeds.py SRCDIR OUTDIR          write OUTDIR/plan-<case>
    plan-seeds.py --check SRCDIR OUTDIR  exit 1 when a seed is missing or stale
"""

import os
import sys

import yaml


def guest_names(inventory_text):
    """Guest names in the order the inventory loader plans them (hosts in order)."""
    root = yaml.compose(inventory_text)

    def get(node, key):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    return v
        return None

    def names(guests):
        if not isinstance(guests, yaml.MappingNode):
            return []
        return [k.value for k, _ in guests.value]

    hosts = get(root, 'hosts')
    if isinstance(hosts, yaml.MappingNode):
        return [n for _, h in hosts.value for n in names(get(h, 'guests'))]
    return names(get(root, 'guests'))


def read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        return b''


def seed(case_dir):
    inventory = read(os.path.join(case_dir, 'inventory.yaml'))
    parts = [read(os.path.join(case_dir, 'options')), inventory]
    for name in guest_names(inventory.decode('utf-8')):
        parts.append(read(os.path.join(case_dir, name + '.xml')))
        parts.append(read(os.path.join(case_dir, name + '.live.xml')))
    return b'\0'.join(parts)


def main(argv):
    check = argv[:1] == ['--check']
    if check:
        argv = argv[1:]
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, out = argv
    cases = os.path.join(src, 'tests', 'data', 'plan')
    stale = []
    for case in sorted(os.listdir(cases)):
        path = os.path.join(out, 'plan-' + case)
        data = seed(os.path.join(cases, case))
        if check:
            if read(path) != data:
                stale.append(path)
        else:
            with open(path, 'wb') as f:
                f.write(data)
    for path in stale:
        print('stale or missing: %s' % path, file=sys.stderr)
    if stale:
        print('run: python3 tests/fuzz/plan-seeds.py . tests/fuzz/corpus/plan', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
