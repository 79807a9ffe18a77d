#!/usr/bin/env python3
"""`meson install` puts exactly the expected files in place.

Installs the build into a temporary DESTDIR (meson install --destdir, no
rebuild), lists every file there and compares the list with the expected one:

  BINDIR/zpci-reconcile
  MANDIR/man1/zpci-reconcile.1, MANDIR/man5/zpci-reconcile-inventory.5   (when scdoc was found)
  COMPLETIONDIR/zpci-reconcile
  DATADIR/zpci-reconcile/schema/inventory.schema.json
  DATADIR/zpci-reconcile/examples/NAME       for every examples/*.yaml in the source
  UNITDIR/NAME                               for every contrib/systemd/*.service|*.timer
                                             (NAME.in installs as NAME)

so an example or a unit added to the source but not to meson.build fails here.
Then it checks that what was installed works: the binary runs, the man pages
name the installed schema, the examples' $schema modeline resolves, the
completion is valid bash.

usage: check-install.py --builddir D --srcdir D --meson MESON --prefix P --bindir D
       --mandir D --datadir D --completiondir D --unitdir D --man yes|no
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

UNIT = re.compile(r'^[^.].*\.(service|timer|socket|path)(\.in)?$')


def under(dest, prefix, path):
    """DESTDIR-relative form of PATH, which is relative to PREFIX unless absolute."""
    return os.path.normpath(os.path.join(prefix, path)).lstrip('/')


def expected_files(a):
    exp = {under(a.destdir, a.prefix, os.path.join(a.bindir, 'zpci-reconcile'))}
    if a.man == 'yes':
        exp.add(under(a.destdir, a.prefix, os.path.join(a.mandir, 'man1', 'zpci-reconcile.1')))
        exp.add(under(a.destdir, a.prefix,
                      os.path.join(a.mandir, 'man5', 'zpci-reconcile-inventory.5')))
    exp.add(under(a.destdir, a.prefix, os.path.join(a.completiondir, 'zpci-reconcile')))
    share = os.path.join(a.datadir, 'zpci-reconcile')
    exp.add(under(a.destdir, a.prefix, os.path.join(share, 'schema', 'inventory.schema.json')))
    for name in sorted(os.listdir(os.path.join(a.srcdir, 'examples'))):
        if name.endswith('.yaml'):
            exp.add(under(a.destdir, a.prefix, os.path.join(share, 'examples', name)))
    units = os.path.join(a.srcdir, 'contrib', 'systemd')
    if os.path.isdir(units):
        for name in sorted(os.listdir(units)):
            if UNIT.match(name):
                exp.add(under(a.destdir, a.prefix, os.path.join(a.unitdir,
                                                                 re.sub(r'\.in$', '', name))))
    return exp


def installed_files(dest):
    found = set()
    for root, dirs, files in os.walk(dest):
        for name in files:
            found.add(os.path.relpath(os.path.join(root, name), dest))
        for name in dirs:   # a symlink to a directory is a file to install, too
            path = os.path.join(root, name)
            if os.path.islink(path):
                found.add(os.path.relpath(path, dest))
    return found


def main():
    p = argparse.ArgumentParser()
    for opt in ('builddir', 'srcdir', 'meson', 'prefix', 'bindir', 'mandir', 'datadir',
                'completiondir', 'unitdir', 'man'):
        p.add_argument('--' + opt, required=True)
    a = p.parse_args()
    problems = []
    with tempfile.TemporaryDirectory(prefix='zr-install-') as dest:
        a.destdir = dest
        proc = subprocess.run([a.meson, 'install', '-C', a.builddir, '--no-rebuild',
                               '--destdir', dest], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr)
            print('FAIL: meson install exited %d' % proc.returncode)
            return 1
        found = installed_files(dest)
        expected = expected_files(a)
        print('installed into DESTDIR:')
        for f in sorted(found):
            print('  /' + f)
        for f in sorted(expected - found):
            problems.append('not installed: /%s' % f)
        for f in sorted(found - expected):
            problems.append('installed but not expected: /%s (add it to this test, or is '
                            'something installed by mistake?)' % f)

        binary = os.path.join(dest, under(dest, a.prefix, os.path.join(a.bindir,
                                                                        'zpci-reconcile')))
        if os.path.exists(binary):
            v = subprocess.run([binary, '--version'], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL)
            if v.returncode != 0 or not v.stdout.startswith('zpci-reconcile '):
                problems.append('installed binary: --version gave exit %d, %r'
                                % (v.returncode, v.stdout + v.stderr))

        share = os.path.join(a.prefix, a.datadir, 'zpci-reconcile')
        schema = os.path.normpath(os.path.join(share, 'schema', 'inventory.schema.json'))
        if a.man == 'yes':
            for page in ('man1/zpci-reconcile.1', 'man5/zpci-reconcile-inventory.5'):
                path = os.path.join(dest, under(dest, a.prefix, os.path.join(a.mandir, page)))
                # scdoc writes '\&' (a zero-width escape) after each '.'
                text = open(path, encoding='utf-8').read().replace('\\&', '') if \
                    os.path.exists(path) else ''
                if schema not in text:
                    problems.append('%s does not name the installed schema %s' % (page, schema))

            # as a user asks for them: `man zpci-reconcile`, `man 5 zpci-reconcile-inventory`
            mandir = os.path.join(dest, under(dest, a.prefix, a.mandir))
            env = dict(os.environ, LC_ALL='C.UTF-8', MANWIDTH='80', MAN_DISABLE_SECCOMP='1')
            for args in (['zpci-reconcile'], ['5', 'zpci-reconcile-inventory']):
                if not shutil.which('man'):
                    break
                m = subprocess.run(['man', '-M', mandir] + args, capture_output=True, text=True,
                                   env=env, stdin=subprocess.DEVNULL)
                if m.returncode != 0 or m.stderr or 'NAME' not in m.stdout:
                    problems.append('man -M DESTDIR/%s %s: exit %d: %s'
                                    % (a.mandir, ' '.join(args), m.returncode, m.stderr.strip()))

        examples = os.path.join(dest, under(dest, a.prefix, os.path.join(share, 'examples')))
        for name in sorted(os.listdir(examples)) if os.path.isdir(examples) else []:
            m = re.search(r'\$schema=(\S+)', open(os.path.join(examples, name)).read())
            if m and not os.path.isfile(os.path.join(examples, m.group(1))):
                problems.append('examples/%s: $schema=%s does not resolve once installed'
                                % (name, m.group(1)))

        completion = os.path.join(dest, under(dest, a.prefix,
                                              os.path.join(a.completiondir, 'zpci-reconcile')))
        if os.path.exists(completion):
            b = subprocess.run(['bash', '-n', completion], capture_output=True, text=True)
            if b.returncode != 0:
                problems.append('installed completion: ' + b.stderr.strip())

    for pr in problems:
        print('FAIL: ' + pr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
