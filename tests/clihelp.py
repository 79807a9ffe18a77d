"""What `zpci-reconcile --help` offers, parsed, so the man page and the bash
completion can be checked against the binary (tests/docs, tests/completion).

--help is the reference because it is what the binary implements; the tests
fail when either side has an option or command the other lacks.
"""

import re
import subprocess

OPTION_WORD = re.compile(r'^(--?[a-zA-Z][-a-zA-Z]*),?$')
METAVAR = re.compile(r'^[A-Z][A-Z_]*$')


def help_text(binary):
    proc = subprocess.run([binary, '--help'], capture_output=True, text=True, check=True,
                          stdin=subprocess.DEVNULL)
    return proc.stdout


def parse_help(text):
    """Returns (commands, options).

    commands: command names in order, from the "Commands:" block.
    options:  (short or None, long or None, metavar or None) per option line of the
              "Options:" block, e.g. ('-c', '--connect', 'URI').
    """
    commands, options = [], []
    section = None
    for line in text.splitlines():
        if not line.strip():
            section = None
            continue
        if not line.startswith(' '):
            section = line.rstrip(':').strip().lower()
            continue
        words = line.split()
        if section == 'commands':
            commands.append(words[0])
        elif section == 'options' and words[0].startswith('-'):
            options.append(_option(words))
    return commands, options


def _option(words):
    short = long = metavar = None
    for i, w in enumerate(words):
        m = OPTION_WORD.match(w)
        if m:
            if m.group(1).startswith('--'):
                long = m.group(1)
            else:
                short = m.group(1)
            continue
        # one metavar may follow the option names, then the description starts
        if METAVAR.match(w) and i > 0 and OPTION_WORD.match(words[i - 1]):
            metavar = w
        break
    return short, long, metavar


def option_names(options):
    """Every -x and --long of parse_help's options, as a set."""
    return {name for opt in options for name in opt[:2] if name}
