"""What a user sees, through the real binary against real libvirt.

- The plan text of a five-guest lab, whole: per-guest order, markers, changed
  fields as old -> new, the summary line.
- Colour through a real terminal: the binary runs under script(1), which gives
  it a pty, and the ANSI escapes must be there on the tty and absent when piped,
  with NO_COLOR, with TERM=dumb and with --color never.
- Error messages as libvirt really words them, with the hint under them:
  permission denied on the qemu:///system socket (run as nobody), no daemon
  behind a socket, an unknown guest with and without a near miss, and a live
  attach on a host without VFIO.
"""

import os
import pwd
import re
import shlex
import shutil
import subprocess
import textwrap
import unittest

import lab
from lab import EmbedLab, hostdev_xml, run_tool, s390x_guest

ANSI = re.compile(r'\x1b\[[0-9;]*m')
GREEN, RED, YELLOW = '\x1b[32m', '\x1b[31m', '\x1b[33m'


def binary():
    path = os.environ.get('ZR_BINARY')
    if not path or not os.access(path, os.X_OK):
        raise lab.Skip('zpci-reconcile is not built')
    return path


def iface_xml(source, mac):
    dom, bus, rest = source.split(':')
    slot, fn = rest.split('.')
    return ("<interface type='hostdev' managed='yes'><mac address='%s'/>"
            "<source><address type='pci' domain='0x%s' bus='0x%s' slot='0x%s' "
            "function='0x%s'/></source></interface>") % (mac, dom, bus, slot, fn)


class FiveGuestLab(unittest.TestCase):
    """The issue's example: 3 to attach, 1 to detach, 1 to replace on 2 of 5 guests."""

    INVENTORY = """
        version: 1
        guests:
          web1:
            hostdevs:
              - source: 0001:00:00.0
                zpci: {uid: 0x0002}
              - source: 0002:00:00.0
            interfaces:
              - source: 0003:00:00.0
                mac: "02:00:00:00:00:03"
          web2:
            hostdevs:
              - source: 0005:00:00.0
          db1:
            hostdevs:
              - source: 0006:00:00.0
          db2: {}
          batch1:
            hostdevs:
              - source: 0007:00:00.0
                managed: false
        """

    # The whole text, as a reviewer reads it.  Guest addresses and zPCI ids
    # that the inventory leaves out are libvirt's.
    EXPECTED = """\
        web1:
          ~ replace hostdev 0001:00:00.0 zpci uid=0x0002 fid=0x00000000 guest_address=0000:00:01.0 [config]
              zpci.uid 0x0001 → 0x0002
          + attach hostdev 0002:00:00.0 [config]
          + attach interface 0003:00:00.0 mac=02:00:00:00:00:03 [config]
        web2:
          - detach hostdev 0004:00:00.0 zpci uid=0x0001 fid=0x00000000 guest_address=0000:00:01.0 [config] (not in inventory)
          + attach hostdev 0005:00:00.0 [config]
        db1: in sync
        db2: in sync
        batch1: in sync

        Plan: 3 to attach, 1 to detach, 1 to replace on 2 of 5 guests.
        """

    @classmethod
    def setUpClass(cls):
        cls.binary = binary()
        cls.lab = EmbedLab()
        cls.addClassCleanup(cls.lab.close)
        cls.lab.define(s390x_guest('web1', hostdev_xml('0001:00:00.0', zpci_uid=1, zpci_fid=0)))
        cls.lab.define(s390x_guest('web2', hostdev_xml('0004:00:00.0', zpci_uid=1, zpci_fid=0)))
        cls.lab.define(s390x_guest('db1', hostdev_xml('0006:00:00.0')))
        cls.lab.define(s390x_guest('db2'))
        cls.lab.define(s390x_guest('batch1', hostdev_xml('0007:00:00.0', managed=False)))
        cls.inventory = os.path.join(cls.lab.root, 'inventory.yaml')
        with open(cls.inventory, 'w') as f:
            f.write(textwrap.dedent(cls.INVENTORY).lstrip())

    def args(self, *extra):
        return ['plan', '--no-host-check', '-c', self.lab.uri, self.inventory] + list(extra)

    def piped(self, *extra, env=None):
        rc, out, err = run_tool(self.args(*extra), env=env)
        self.assertEqual(rc, 2, out + err)
        return out

    def on_tty(self, *extra, env=None):
        """Runs the binary with stdout (and stderr) on a pty from script(1)."""
        if not shutil.which('script'):
            raise lab.Skip('script (util-linux) is not installed')
        child_env = dict(os.environ, TERM='xterm-256color')
        child_env.pop('NO_COLOR', None)
        for key, value in (env or {}).items():
            if value is None:
                child_env.pop(key, None)
            else:
                child_env[key] = value
        cmd = shlex.join([self.binary] + self.args(*extra))
        proc = subprocess.run(['script', '-q', '-e', '-c', cmd, '/dev/null'],
                              capture_output=True, text=True, env=child_env,
                              stdin=subprocess.DEVNULL, timeout=120)
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        return proc.stdout.replace('\r\n', '\n')

    def test_plan_text(self):
        self.assertEqual(self.piped(), textwrap.dedent(self.EXPECTED))

    def test_script_gives_a_terminal(self):
        # the colour tests below mean something only if script's child has a tty
        proc = subprocess.run(['script', '-q', '-e', '-c', 'test -t 1', '/dev/null'],
                              capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
        self.assertEqual(proc.returncode, 0)

    def test_colour_on_a_terminal(self):
        out = self.on_tty()
        self.assertIn(YELLOW + '~ replace hostdev 0001:00:00.0', out)
        self.assertIn(GREEN + '+ attach hostdev 0002:00:00.0', out)
        self.assertIn(RED + '- detach hostdev 0004:00:00.0', out)
        # the colours change nothing else
        self.assertEqual(ANSI.sub('', out), textwrap.dedent(self.EXPECTED))

    def test_no_colour_when_asked_or_not_a_terminal(self):
        cases = {
            'piped': lambda: self.piped(),
            'NO_COLOR=1': lambda: self.on_tty(env={'NO_COLOR': '1'}),
            'TERM=dumb': lambda: self.on_tty(env={'TERM': 'dumb'}),
            'TERM unset': lambda: self.on_tty(env={'TERM': None}),
            '--color never': lambda: self.on_tty('--color', 'never'),
        }
        for name, run in cases.items():
            with self.subTest(name):
                out = run()
                self.assertNotIn('\x1b', out)
                self.assertEqual(out, textwrap.dedent(self.EXPECTED))

    def test_empty_no_color_does_not_turn_colour_off(self):
        # no-color.org: only a non-empty value counts
        self.assertIn('\x1b', self.on_tty(env={'NO_COLOR': ''}))

    def test_colour_always_when_piped(self):
        out = self.piped('--color', 'always')
        self.assertIn(GREEN + '+ attach', out)
        self.assertEqual(ANSI.sub('', out), textwrap.dedent(self.EXPECTED))

    def test_json_never_coloured(self):
        self.assertNotIn('\x1b', self.on_tty('-o', 'json', '--color', 'always'))

    def test_quiet_prints_the_summary_only(self):
        summary = 'Plan: 3 to attach, 1 to detach, 1 to replace on 2 of 5 guests.\n'
        self.assertEqual(self.piped('-q'), summary)
        self.assertEqual(ANSI.sub('', self.on_tty('-q')), summary)


class MessagesTest(unittest.TestCase):
    """Messages libvirt really gives, and the hint printed under them."""

    def setUp(self):
        binary()

    def plan(self, inventory, *args, user=None):
        argv = ['plan', '--no-host-check'] + list(args) + ['-']
        text = textwrap.dedent(inventory).lstrip()
        if user is None:
            return run_tool(argv, stdin=text, env={'LIBVIRT_DEFAULT_URI': None})
        proc = subprocess.run(['runuser', '-u', user, '--', lab.runnable_by(user, binary(), self)]
                              + argv, input=text,
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, HOME='/'))
        return proc.returncode, proc.stdout, proc.stderr

    def test_no_daemon_behind_the_socket(self):
        rc, out, err = self.plan("""
            version: 1
            guests: {linux1: {}}
            """, '-c', 'qemu+unix:///system?socket=/nonexistent/zr-test-sock')
        self.assertEqual(rc, 1, out + err)
        self.assertIn("Failed to connect socket to '/nonexistent/zr-test-sock': "
                      'No such file or directory', out)
        self.assertIn('\n  hint: is libvirt\'s daemon running?', out)

    def test_unknown_guest(self):
        with EmbedLab() as embed:
            embed.define(s390x_guest('linux1'))
            rc, out, err = self.plan("""
                version: 1
                guests:
                  linux01: {}
                  ghost: {}
                """, '-c', embed.uri)
        self.assertEqual(rc, 1, out + err)
        lines = out.splitlines()
        # a near miss is named in the message; no hint needed
        self.assertEqual(lines[0],
                         "linux01: error: guest 'linux01' not found (did you mean 'linux1'?)")
        self.assertEqual(lines[1], "ghost: error: guest 'ghost' not found")
        self.assertTrue(lines[2].startswith('  hint: guests are named as libvirt names them '
                                            '(virsh list --all)'), out)

    def test_permission_denied_on_the_system_socket(self):
        lab.require_root()
        if not shutil.which('runuser'):
            raise lab.Skip('runuser is not installed')
        try:
            pwd.getpwnam('nobody')
        except KeyError:
            raise lab.Skip('no user nobody')
        lab.SystemDaemon().start()
        inventory = """
            version: 1
            guests:
              linux1: {}
              linux2: {}
            """
        rc, out, err = self.plan(inventory, '-c', 'qemu:///system', user='nobody')
        self.assertEqual(rc, 1, out + err)
        lines = out.splitlines()
        # The socket's mode, polkit, or (polkit without a system D-Bus) the bus
        # itself says no: all three are a permission problem, with one hint.
        self.assertRegex(lines[0], r"^linux1: error: cannot connect to qemu:///system: "
                         r"(Failed to connect socket to '.*': Permission denied|"
                         r"authentication unavailable: no polkit agent|"
                         r"internal error: Unable to get system bus connection)")
        self.assertEqual(lines[1], "  hint: run as root, or add your user to the 'libvirt' "
                         "group (usermod -aG libvirt USER, then log in again); qemu:///session "
                         "reaches your own guests without privileges")
        # the same hint is not repeated under the next guest
        self.assertTrue(lines[2].startswith('linux2: error: cannot connect'), out)
        self.assertNotIn('hint', '\n'.join(lines[3:]))


class VfioTest(unittest.TestCase):
    """A live attach on a host without VFIO: libvirt's message, the device and
    guest named, and the hint to load vfio-pci or use --config-only."""

    PREFIX = 'zrtest-users-'

    def test_live_attach_without_vfio(self):
        binary()
        system = lab.SystemLab()
        name = self.PREFIX + 'vfio'
        system.cleanup(self.PREFIX)
        self.addCleanup(system.cleanup, self.PREFIX)
        system.define(s390x_guest(name))
        system.start(name)
        # no such host function, unmanaged: nothing on this host is ever unbound
        inventory = textwrap.dedent("""
            version: 1
            guests:
              %s:
                hostdevs:
                  - source: 00fe:00:00.0
                    managed: false
            """ % name).lstrip()
        rc, out, err = run_tool(['apply', '--no-host-check', '-c', lab.SYSTEM_URI, '-'],
                                stdin=inventory)
        if rc == 0 or "doesn't support VFIO" not in out:
            raise lab.Skip('this host has VFIO (or failed otherwise): %s' % (out + err))
        lines = out.splitlines()
        self.assertEqual(lines[0], name + ':')
        self.assertEqual(lines[1], "  + attach hostdev 00fe:00:00.0 managed=no [live+config] failed: "
                         "unsupported configuration: host doesn't support VFIO PCI passthrough")
        self.assertEqual(lines[2], '      hint: load the vfio-pci module and enable the '
                         "host's IOMMU (x86: intel_iommu=on or amd_iommu=on), or use "
                         '--config-only to change only the persistent definitions')
        # its only action failed: the guest is failed, not changed
        self.assertIn('1 failed on 0 of 1 guests (1 with errors)', out)
        self.assertEqual(rc, 1)
        # what the hint offers works
        rc, out, err = run_tool(['apply', '--no-host-check', '--config-only', '-c',
                                 lab.SYSTEM_URI, '-'], stdin=inventory)
        self.assertEqual(rc, 0, out + err)
        self.assertIn('+ attach hostdev 00fe:00:00.0 managed=no [config] done', out)


if __name__ == '__main__':
    lab.main()
