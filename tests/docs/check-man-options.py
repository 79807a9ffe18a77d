#!/usr/bin/env python3
"""The man page and --help offer the same commands and options.

usage: check-man-options.py ZPCI_RECONCILE MAN_SOURCE.scd [CONTRACT.md]

Compares the scdoc source of zpci-reconcile(1) with `zpci-reconcile --help`:
every command in --help is in SYNOPSIS and COMMANDS and the other way round;
every option line of --help (short name, long name, argument name) is an
option entry under OPTIONS and the other way round.  With CONTRACT.md, it
also lists (without failing) options and commands the contract has and the
binary does not have yet, so the gap stays visible in the test log.
"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import clihelp  # noqa: E402

BOLD = re.compile(r'\*([^*]+)\*')
ITALIC = re.compile(r'(?<![A-Za-z0-9])_([^_]+)_(?![A-Za-z0-9])')


def sections(scd):
    """{'OPTIONS': [lines], ...} from '# NAME' headers; comments dropped."""
    out, name = {}, None
    for line in scd.splitlines():
        if line.startswith('; ') or line == ';':
            continue
        if line.startswith('# '):
            name = line[2:].strip()
            out[name] = []
        elif name:
            out[name].append(line)
    return out


def entries(lines):
    """The header lines of a section's entries: not indented, not prose.

    An entry is a line starting with *bold* that is followed by a tab-indented
    description, the shape scdoc pages use for options and commands.
    """
    found = []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ''
        if line.startswith('*') and nxt.startswith('\t'):
            found.append(line)
    return found


def man_option(line):
    bold = BOLD.findall(line)
    italic = ITALIC.findall(line)
    short = next((b for b in bold if re.fullmatch(r'-[a-zA-Z]', b)), None)
    long = next((b for b in bold if b.startswith('--')), None)
    return short, long, italic[0] if italic else None


def contract_gaps(contract, help_commands, help_names):
    text = open(contract, encoding='utf-8').read()
    # the options table's first column holds every option the contract promises
    table = re.findall(r'^\| `([^|]+)\|', text, re.M)
    promised = set()
    for cell in table:
        promised |= set(re.findall(r'(--?[a-z][-a-z]*)', cell))
    commands = set(re.findall(r'^zpci-reconcile \[OPTIONS\] (\w+)', text, re.M))
    return sorted(commands - set(help_commands)), sorted(promised - help_names)


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    binary, source = sys.argv[1], sys.argv[2]
    help_commands, help_options = clihelp.parse_help(clihelp.help_text(binary))
    secs = sections(open(source, encoding='utf-8').read())
    problems = []

    if not help_commands or not help_options:
        problems.append('found no commands or no options in --help: has its layout changed?')

    synopsis = []
    for line in secs.get('SYNOPSIS', []):
        bold = BOLD.findall(line)
        if len(bold) >= 2 and bold[0] == 'zpci-reconcile':
            synopsis.append(bold[1])
    man_commands = [BOLD.findall(line)[0] for line in entries(secs.get('COMMANDS', []))]
    for where, listed in (('SYNOPSIS', synopsis), ('COMMANDS', man_commands)):
        for c in help_commands:
            if c not in listed:
                problems.append('command %r is in --help but not in the man page %s' % (c, where))
        for c in listed:
            if c not in help_commands:
                problems.append('command %r is in the man page %s but not in --help' % (c, where))

    man_options = [man_option(line) for line in entries(secs.get('OPTIONS', []))]
    for opt in help_options:
        if opt not in man_options:
            problems.append('--help has %s; the man page OPTIONS have no such entry' % (opt,))
    for opt in man_options:
        if opt not in help_options:
            problems.append('the man page OPTIONS have %s; --help has no such line' % (opt,))

    print('commands: %s' % ' '.join(help_commands))
    print('options:  %s' % ' '.join(sorted(clihelp.option_names(help_options))))

    if len(sys.argv) == 4 and os.path.isfile(sys.argv[3]):
        commands, options = contract_gaps(sys.argv[3], help_commands,
                                          clihelp.option_names(help_options))
        if commands or options:
            print('not implemented yet (in CONTRACT.md, not in --help; the man page '
                  'follows --help): %s' % ' '.join(commands + options))

    for p in problems:
        print('FAIL: ' + p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
