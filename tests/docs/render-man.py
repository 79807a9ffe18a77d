#!/usr/bin/env python3
"""The man pages render without a single warning.

usage: render-man.py SOURCE.scd=PAGE [SOURCE.scd=PAGE...]

PAGE is the roff file meson built from SOURCE with scdoc.  Each page is
rendered the way a reader meets it, `man -l` (man-db, which runs groff with
the page's preprocessors), with every groff warning on (--warnings); any
output on stderr fails the test.  Without man-db, `groff -man -k -ww -z`
does the same check.  The source is also checked for what renders wrongly
without a warning: a text line starting with '.' or "'" (a roff request
once scdoc has passed it on) and a leftover @PLACEHOLDER@.

Exit status: 0 clean, 1 a problem, 77 (skip) when no page was built (no
scdoc) or neither man nor groff is installed.
"""

import os
import re
import shutil
import subprocess
import sys

SECTIONS = ('NAME', 'SYNOPSIS', 'DESCRIPTION', 'SEE ALSO')


def render(page):
    env = dict(os.environ, LC_ALL='C.UTF-8', MANWIDTH='80', MAN_DISABLE_SECCOMP='1')
    env.pop('MANPAGER', None)
    env.pop('PAGER', None)
    if shutil.which('man'):
        argv = ['man', '--warnings', '-l', page]
    else:
        argv = ['groff', '-man', '-k', '-Tutf8', '-ww', page]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)
    return argv, proc


def lint_source(source):
    problems = []
    literal = False
    for n, line in enumerate(open(source, encoding='utf-8'), 1):
        text = line.rstrip('\n')
        if text.strip() == '```':
            literal = not literal
            continue
        if literal or text.startswith('; '):
            continue
        body = text.lstrip('\t')
        if body.startswith(('.', "'")):
            problems.append('%s:%d: a line starting with %r is read as a roff request; '
                            'rewrap it' % (source, n, body[0]))
    if literal:
        problems.append('%s: a ``` block is not closed' % source)
    return problems


def main():
    pairs = [a.split('=', 1) for a in sys.argv[1:]]
    if not pairs:
        print('no man pages were built (scdoc not found)')
        return 77
    if any(len(p) != 2 for p in pairs):
        print(__doc__, file=sys.stderr)
        return 2
    if not shutil.which('man') and not shutil.which('groff'):
        print('neither man nor groff is installed (packages man-db, groff-base)')
        return 77
    problems = []
    for source, page in pairs:
        problems += lint_source(source)
        text = open(page, encoding='utf-8').read()
        for placeholder in sorted(set(re.findall(r'@[A-Z_]+@', text))):
            problems.append('%s: %s was not replaced' % (page, placeholder))
        argv, proc = render(page)
        print('$ %s  (exit %d, %d lines)' % (' '.join(argv), proc.returncode,
                                             len(proc.stdout.splitlines())))
        if proc.returncode != 0:
            problems.append('%s: exit status %d' % (' '.join(argv), proc.returncode))
        if proc.stderr.strip():
            problems.append('%s: warnings:\n%s' % (' '.join(argv), proc.stderr.rstrip()))
        # the rendered page has its sections (a page that renders to nothing has no
        # warnings either)
        for section in SECTIONS:
            if not re.search(r'^%s$' % section, proc.stdout, re.M):
                problems.append('%s: no %s section in the rendered page' % (page, section))
    for p in problems:
        print('FAIL: ' + p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
