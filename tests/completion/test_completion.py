#!/usr/bin/env python3
"""The bash completion, run by bash: source contrib/completion/zpci-reconcile.bash,
set COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT as bash does for a command
line, call _zpci_reconcile and read COMPREPLY.

bash splits COMP_WORDS at ':' and '=' (COMP_WORDBREAKS): `-c qemu:///sys` arrives
as `-c` `qemu` `:` `///sys`, and bash then replaces only `///sys`.  split_like_bash()
does the same; its output was compared with what bash 5.2 passes to a completion
function when Tab is pressed in a terminal.

Also checks that the completion offers exactly the commands and options of
`zpci-reconcile --help`.

usage: test_completion.py   (ZR_SRCDIR and ZR_BINARY from meson)
"""

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import clihelp  # noqa: E402
import lab  # noqa: E402

SRCDIR = os.environ.get('ZR_SRCDIR', os.path.join(os.path.dirname(__file__), '..', '..'))
COMPLETION = os.path.join(SRCDIR, 'contrib', 'completion', 'zpci-reconcile.bash')
BINARY = os.environ.get('ZR_BINARY')


def split_like_bash(line):
    """COMP_WORDS for `line` with the cursor at its end (unquoted words split at
    runs of ':' and '=' too; a quoted word stays whole)."""
    words = []
    for token in re.findall(r"'[^']*'|\"[^\"]*\"|\S+", line):
        if token[0] in '\'"':
            words.append(token)
        else:
            words += [w for w in re.split(r'([:=]+)', token) if w]
    if line.endswith(' '):
        words.append('')
    return words


def complete(line, cwd=None, path=None):
    """COMPREPLY for `line`, as a list."""
    script = ('source "$1"; COMP_LINE=$2; COMP_POINT=${#2}; shift 2; '
              'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
              '_zpci_reconcile; printf "%s\\0" "${COMPREPLY[@]}"')
    env = dict(os.environ)
    if path is not None:
        env['PATH'] = path
    proc = subprocess.run(['bash', '--norc', '--noprofile', '-c', script, 'bash', COMPLETION,
                           line] + split_like_bash(line),
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=60,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or proc.stderr:
        raise AssertionError('bash exit %d: %s' % (proc.returncode, proc.stderr))
    return [w for w in proc.stdout.split('\0') if w]


class SplitTest(unittest.TestCase):
    def test_split_like_bash(self):
        # what bash 5.2 passed for these lines, read with a completion function
        # that printed COMP_WORDS
        self.assertEqual(split_like_bash('zr -c qemu:///sys'),
                         ['zr', '-c', 'qemu', ':', '///sys'])
        self.assertEqual(split_like_bash('zr -c qemu:'), ['zr', '-c', 'qemu', ':'])
        self.assertEqual(split_like_bash('zr --output='), ['zr', '--output', '='])
        self.assertEqual(split_like_bash("zr -c 'qemu:///embed?root=/x' export li"),
                         ['zr', '-c', "'qemu:///embed?root=/x'", 'export', 'li'])
        self.assertEqual(split_like_bash('zr -c qemu:///embed?root=/x export '),
                         ['zr', '-c', 'qemu', ':', '///embed?root', '=', '/x', 'export', ''])


class CompletionTest(unittest.TestCase):
    def test_commands(self):
        self.assertEqual(complete('zpci-reconcile '),
                         ['validate', 'plan', 'apply', 'export', 'watch'])
        self.assertEqual(complete('zpci-reconcile pl'), ['plan'])
        self.assertEqual(complete('zpci-reconcile -q a'), ['apply'])
        # an option's argument is not the command
        self.assertEqual(complete('zpci-reconcile -o json v'), ['validate'])

    def test_options(self):
        self.assertEqual(complete('zpci-reconcile --con'), ['--connect', '--config-only'])
        self.assertEqual(complete('zpci-reconcile plan --dr'), ['--dry-run'])
        self.assertIn('-c', complete('zpci-reconcile apply -'))

    def test_option_values(self):
        self.assertEqual(complete('zpci-reconcile -o '), ['text', 'json'])
        self.assertEqual(complete('zpci-reconcile plan --output j'), ['json'])
        self.assertEqual(complete('zpci-reconcile plan --output=j'), ['json'])
        self.assertEqual(complete('zpci-reconcile plan --output='), ['text', 'json'])
        self.assertEqual(complete('zpci-reconcile --color '), ['auto', 'always', 'never'])
        self.assertEqual(complete('zpci-reconcile --color a'), ['auto', 'always'])
        self.assertEqual(complete('zpci-reconcile --color=n'), ['never'])
        self.assertEqual(complete('zpci-reconcile --timeout '), [])
        self.assertEqual(complete('zpci-reconcile -j '), [])

    def test_uri_values(self):
        self.assertIn('qemu:///system', complete('zpci-reconcile -c '))
        # bash replaces only what follows the last ':'
        self.assertEqual(complete('zpci-reconcile -c qemu:///sy'), ['///system'])
        self.assertEqual(complete('zpci-reconcile -c qemu:'),
                         ['///system', '///session', '///embed?root='])

    def test_inventory_files(self):
        with tempfile.TemporaryDirectory(prefix='zr-completion-') as d:
            for name in ('inventory.yaml', 'other.yaml'):
                open(os.path.join(d, name), 'w').close()
            os.mkdir(os.path.join(d, 'inventories'))
            self.assertEqual(sorted(complete('zpci-reconcile plan ', cwd=d)),
                             ['inventories', 'inventory.yaml', 'other.yaml'])
            self.assertEqual(sorted(complete('zpci-reconcile -c qemu:///system apply inv',
                                             cwd=d)),
                             ['inventories', 'inventory.yaml'])
            self.assertEqual(complete('zpci-reconcile validate o', cwd=d), ['other.yaml'])
            # one INVENTORY only
            self.assertEqual(complete('zpci-reconcile plan other.yaml ', cwd=d), [])
            # after --, a word starting with - is a file name, not an option
            open(os.path.join(d, '-odd.yaml'), 'w').close()
            self.assertEqual(complete('zpci-reconcile plan -- -', cwd=d), ['-odd.yaml'])

    def test_no_guests_without_connect(self):
        # libvirt's default URI is never asked: it may be a slow remote host
        with tempfile.TemporaryDirectory(prefix='zr-completion-') as d:
            fake = self._fake_virsh(d, 'echo should-not-appear')
            self.assertEqual(complete('zpci-reconcile export ', path=fake), [])

    def test_guest_listing_is_bounded(self):
        with tempfile.TemporaryDirectory(prefix='zr-completion-') as d:
            fake = self._fake_virsh(d, 'exec sleep 600')
            self.assertEqual(complete('zpci-reconcile -c test:///default export ', path=fake),
                             [])

    def test_guest_listing_asks_virsh_for_the_uri(self):
        with tempfile.TemporaryDirectory(prefix='zr-completion-') as d:
            fake = self._fake_virsh(d, 'echo "$*" >> %s/args; printf "alpha\\nbeta\\n"' % d)
            self.assertEqual(complete("zpci-reconcile -c 'qemu:///embed?root=/x y' export ",
                                      path=fake), ['alpha', 'beta'])
            self.assertEqual(complete('zpci-reconcile export --connect=qemu:///system b',
                                      path=fake), ['beta'])
            args = open(os.path.join(d, 'args')).read().splitlines()
            self.assertEqual(args, ['-q -c qemu:///embed?root=/x y list --all --name',
                                    '-q -c qemu:///system list --all --name'])

    @staticmethod
    def _fake_virsh(d, body):
        """A PATH whose virsh runs `body`; the rest of PATH stays usable."""
        bindir = os.path.join(d, 'bin')
        os.mkdir(bindir)
        virsh = os.path.join(bindir, 'virsh')
        with open(virsh, 'w') as f:
            f.write('#!/bin/sh\n%s\n' % body)
        os.chmod(virsh, stat.S_IRWXU)
        return bindir + os.pathsep + os.environ.get('PATH', '')


class RealVirshTest(unittest.TestCase):
    def test_guest_names_from_an_embedded_root(self):
        if not shutil.which('virsh'):
            raise lab.Skip('virsh is not installed')
        with lab.EmbedLab() as embed:
            embed.define(lab.s390x_guest('linux1'))
            embed.define(lab.s390x_guest('linux2'))
            embed.define(lab.s390x_guest('db1'))
            line = "zpci-reconcile -c '%s' export " % embed.uri
            self.assertEqual(sorted(complete(line)), ['db1', 'linux1', 'linux2'])
            self.assertEqual(sorted(complete(line + 'lin')), ['linux1', 'linux2'])
            # unquoted, as bash splits it
            self.assertEqual(complete('zpci-reconcile export -c %s d' % embed.uri), ['db1'])


class AgreesWithHelpTest(unittest.TestCase):
    def test_same_commands_and_options_as_help(self):
        if not BINARY or not os.access(BINARY, os.X_OK):
            raise lab.Skip('zpci-reconcile is not built')
        commands, options = clihelp.parse_help(clihelp.help_text(BINARY))
        self.assertTrue(commands and options, '--help parsed to nothing')
        self.assertEqual(sorted(complete('zpci-reconcile ')), sorted(commands))
        self.assertEqual(sorted(complete('zpci-reconcile -')),
                         sorted(clihelp.option_names(options)))
        # options that take a value complete no command or file after them
        for short, long, metavar in options:
            for name in (short, long):
                if name and metavar:
                    replies = complete('zpci-reconcile %s ' % name)
                    self.assertFalse(set(replies) & set(commands), name)


if __name__ == '__main__':
    lab.main()
