#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zpci-reconcile contributors
# GNU General Public License v2.0 or later (see COPYING or https://www.gnu.org/licenses/gpl-2.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: zpci_reconcile
short_description: Converge libvirt guests' PCI passthrough devices to a zpci-reconcile inventory
version_added: "0.1.0"
description:
  - Runs the C(zpci-reconcile) binary installed on the target (for example from the
    C(zpci-reconcile) Debian package) with C(-o json), against the inventory at C(inventory)
    or given inline as C(content).
  - With C(state=present) it runs C(zpci-reconcile apply); in check mode, and with
    C(state=planned), it runs C(zpci-reconcile plan), which changes nothing and takes no lock.
  - The task reports C(changed) when the plan had actions (apply, when any action was done).
    A second run after a successful apply plans nothing and reports C(changed=false).
  - With C(--diff) the task shows, per guest, the lines of the plan as C(zpci-reconcile plan)
    prints them (C(+) attach, C(-) detach, C(~) replace). This runs C(plan) once more, in text
    form, before the JSON run.
  - The task fails when the binary exits with status 1 (an invalid inventory, a host or guest
    that cannot be read, a libvirt call that failed); C(msg) then carries libvirt's message, or
    the inventory error with its C(FILE:LINE:COLUMN) position (C(<stdin>) for C(content)), or
    C(FILE) alone for a file that cannot be read.
    Actions that succeeded before a failure stay done unless C(atomic) is set.
  - Each warning of the run (host check findings, conflicts, live drift with C(config_only))
    is passed on as an Ansible warning (guest, source and message); they are also in
    C(document.warnings) (C(warnings) itself is Ansible's own return key).
author:
  - zpci-reconcile contributors
requirements:
  - zpci-reconcile on the target (the binary named by C(binary))
  - libvirt reachable from the target at C(uri) or the inventory's C(uri)
options:
  inventory:
    description:
      - Path of the inventory (YAML, format version 1) on the target.
      - Exactly one of C(inventory) and C(content) is required.
    type: path
  content:
    description:
      - The inventory itself, for example from C(lookup('template', ...)) or C(to_nice_yaml).
        It is passed to the binary on standard input, so error positions name C(<stdin>).
      - Exactly one of C(inventory) and C(content) is required.
    type: str
  uri:
    description:
      - libvirt URI (C(-c)). It wins over the inventory's C(uri), which wins over
        C(LIBVIRT_DEFAULT_URI) and libvirt's default.
    type: str
  state:
    description:
      - C(present) applies the inventory (C(zpci-reconcile apply)).
      - C(planned) only plans (C(zpci-reconcile plan)); C(changed) then says whether changes
        are pending. Check mode always plans.
    type: str
    choices: [present, planned]
    default: present
  atomic:
    description:
      - Per host, undo the actions already done there when one fails (C(--atomic)).
        Only used by apply.
    type: bool
    default: false
  config_only:
    description:
      - Touch only the persistent definitions (C(--config-only)); live drift is reported as a
        warning, not fixed.
    type: bool
    default: false
  timeout:
    description:
      - Seconds apply waits for an asynchronous live detach to complete (C(--timeout)),
        0 to 86400. The binary's default (30) when not given.
    type: int
  host_check:
    description:
      - Look each source up as a host node device before planning. C(false) passes
        C(--no-host-check), for connections without node devices such as C(qemu:///embed).
    type: bool
    default: true
  binary:
    description:
      - The zpci-reconcile executable, a name looked up on the target's C(PATH) or a path.
    type: str
    default: zpci-reconcile
notes:
  - Supports check mode (plans) and diff mode (plan lines per guest).
  - Several hosts in one inventory (C(hosts:)) are handled by the binary itself; with
    Ansible, give each managed host its own inventory instead and let Ansible's forks and
    C(serial) do the fanning out.
  - The command, its options, exit status and JSON document are described in
    C(man zpci-reconcile) and docs/output.md.
'''

EXAMPLES = r'''
- name: Converge this hypervisor to its inventory
  zpci.reconcile.zpci_reconcile:
    inventory: /etc/zpci-reconcile/inventory.yaml

- name: Inventory from a template, applied atomically, persistent definitions only
  zpci.reconcile.zpci_reconcile:
    content: "{{ lookup('template', 'inventory.yaml.j2') }}"
    atomic: true
    config_only: true

- name: What would change (never changes anything)
  zpci.reconcile.zpci_reconcile:
    inventory: /etc/zpci-reconcile/inventory.yaml
    state: planned
  register: plan

- name: Show the pending actions
  ansible.builtin.debug:
    msg: "{{ item.op }} {{ item.kind }} {{ item.source }} on {{ item.guest }} ({{ item.reason }})"
  loop: "{{ plan.actions }}"

- name: An embedded root, which has no node devices to check
  zpci.reconcile.zpci_reconcile:
    inventory: /srv/lab/inventory.yaml
    uri: qemu:///embed?root=/srv/lab/root
    host_check: false
'''

RETURN = r'''
command:
  description: The zpci-reconcile command that ran, C(plan) or C(apply).
  returned: always
  type: str
  sample: apply
cmd:
  description: The command line that ran (the inventory is C(-) with C(content)).
  returned: when the binary ran
  type: list
  elements: str
  sample: [/usr/bin/zpci-reconcile, -o, json, apply, /etc/zpci-reconcile/inventory.yaml]
rc:
  description: The binary's exit status (plan, 0 in sync, 2 changes pending; apply, 0 converged; 1 an error).
  returned: when the binary ran
  type: int
  sample: 0
document:
  description:
    - The JSON document the binary printed (see docs/output.md), or null when it printed none
      (for example an invalid inventory, whose errors are then in C(stderr)).
  returned: when the binary ran
  type: dict
  sample: {"version": 1, "actions": [], "warnings": [], "errors": [], "hosts": [], "summary": {}}
actions:
  description:
    - The document's C(actions), in execution order. In a plan every C(result) is
      C(planned); after apply it is C(done), C(failed) (with C(error), libvirt's message),
      C(skipped) (with C(skip_reason)) or C(rolled back).
  returned: when the binary printed a document
  type: list
  elements: dict
  sample: [{"host": "default", "uri": "qemu:///system", "guest": "linux1", "op": "attach", "kind": "hostdev", "source": "0002:00:00.0", "live": false, "config": true, "reason": "missing", "xml": "<hostdev ...>", "result": "done"}]
errors:
  description: The document's C(errors), guests (or, for an invalid inventory, positions) that could not be planned.
  returned: when the binary printed a document
  type: list
  elements: dict
hosts:
  description: The document's C(hosts), one per inventory host, with C(uri), C(reached) and C(error).
  returned: when the binary printed a document
  type: list
  elements: dict
summary:
  description: The document's C(summary), counts of actions by operation and result and of guests.
  returned: when the binary printed a document
  type: dict
  sample: {"attach": 1, "detach": 0, "replace": 0, "failed": 0, "skipped": 0, "rolled_back": 0, "guests_changed": 1, "guests_in_sync": 2, "guests_failed": 0, "hosts_failed": 0}
stderr:
  description: What the binary printed on standard error.
  returned: when the binary ran
  type: str
msg:
  description: On failure, why; libvirt's messages or the inventory errors with their positions.
  returned: failure
  type: str
  sample: "zpci-reconcile apply failed: linux1: attach hostdev 0002:00:00.0: unsupported configuration: host doesn't support VFIO PCI passthrough"
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule

# The plan text's markers of an action line: attach, detach, replace.
ACTION_MARKERS = ('+ ', '- ', '~ ')
TIMEOUT_MAX = 86400


def build_argv(module, binary, command, output_json):
    p = module.params
    argv = [binary]
    if output_json:
        argv += ['-o', 'json']
    else:
        argv += ['--color', 'never']
    if p['uri']:
        argv += ['-c', p['uri']]
    if p['config_only']:
        argv.append('--config-only')
    if p['timeout'] is not None:
        argv += ['--timeout', str(p['timeout'])]
    if not p['host_check']:
        argv.append('--no-host-check')
    if p['atomic'] and command == 'apply':
        argv.append('--atomic')
    argv += [command, p['inventory'] if p['inventory'] is not None else '-']
    return argv


def run(module, argv):
    content = module.params['content']
    # NO_COLOR as well as --color never: the text must be plain for the diff.
    return module.run_command(argv, data=content, binary_data=True,
                              environ_update={'NO_COLOR': '1'})


def parse_document(stdout):
    """The JSON document on stdout, or None (an invalid inventory once printed nothing)."""
    if not stdout.strip():
        return None
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def plan_diffs(text):
    """Per guest with actions, its block of `plan`'s text output, for Ansible's diff."""
    blocks = []
    host = None
    block = None
    for line in text.splitlines():
        if line.startswith('== host '):
            host, block = line, None
        elif not line.strip():
            block = None
        elif line[0] in ' \t':
            if block is not None:
                block['lines'].append(line)
        elif line.endswith(':'):
            # "GUEST:" opens a guest's block; "Warnings:" too, but it has no action lines.
            block = {'host': host, 'guest': line[:-1], 'lines': [line]}
            blocks.append(block)
        else:
            block = None   # "GUEST: in sync", "GUEST: error: ...", "Plan: ..."
    diffs = []
    for b in blocks:
        if not any(l.lstrip().startswith(ACTION_MARKERS) for l in b['lines'][1:]):
            continue
        text = '\n'.join(b['lines']) + '\n'
        if b['host']:
            text = b['host'] + '\n' + text
        diffs.append({'prepared': text})
    return diffs


def where(item):
    """'GUEST' or 'HOST/GUEST' ('default' is the host of an inventory without hosts:)."""
    host = item.get('host')
    guest = item.get('guest')
    if guest is None:
        return 'host %s' % host if host not in (None, 'default') else None
    if host in (None, 'default'):
        return guest
    return '%s/%s' % (host, guest)


def describe_error(err):
    """One entry of the document's errors as text.

    An inventory error (file, line, column, message) reads as the binary's own text
    output puts it on stderr, FILE:LINE:COLUMN: error: MESSAGE, so msg is the same
    whichever of the two the binary gave; an error about the file as a whole (it cannot
    be opened) has no line and reads FILE: error: MESSAGE.
    """
    if not isinstance(err, dict):
        return str(err)
    message = err.get('message') or ''
    if err.get('file') is not None:
        pos = str(err['file'])
        if err.get('line') is not None:
            pos += ':%s' % err['line']
            if err.get('column') is not None:
                pos += ':%s' % err['column']
        return '%s: error: %s' % (pos, message)
    w = where(err)
    return '%s: %s' % (w, message) if w else message


def failure_parts(doc, stderr):
    parts = []
    if doc is not None:
        for err in doc.get('errors') or []:
            parts.append(describe_error(err))
        for host in doc.get('hosts') or []:
            if isinstance(host, dict) and host.get('error'):
                parts.append('host %s: %s' % (host.get('host'), host['error']))
        for a in doc.get('actions') or []:
            if not isinstance(a, dict):
                continue
            why = None
            if a.get('result') == 'failed':
                why = a.get('error') or 'failed'
            elif a.get('result') == 'skipped':
                why = 'skipped: %s' % (a.get('skip_reason') or '')
            elif a.get('error'):
                why = a['error']
            if why:
                parts.append('%s: %s %s %s: %s' % (where(a), a.get('op'), a.get('kind'),
                                                   a.get('source'), why))
    if not parts:
        # Text on stderr: keep the messages, not the excerpt of the inventory line under
        # an error nor the indented hints (all of stderr is in the result anyway).
        parts = [l for l in stderr.splitlines() if l.strip() and l[0] not in ' \t']
    return parts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            inventory=dict(type='path'),
            content=dict(type='str'),
            uri=dict(type='str'),
            state=dict(type='str', default='present', choices=['present', 'planned']),
            atomic=dict(type='bool', default=False),
            config_only=dict(type='bool', default=False),
            timeout=dict(type='int'),
            host_check=dict(type='bool', default=True),
            binary=dict(type='str', default='zpci-reconcile'),
        ),
        mutually_exclusive=[('inventory', 'content')],
        required_one_of=[('inventory', 'content')],
        supports_check_mode=True,
    )
    p = module.params
    command = 'plan' if module.check_mode or p['state'] == 'planned' else 'apply'
    result = dict(changed=False, command=command)

    # run_command feeds no standard input for an empty string, and the binary would wait
    # on the module's own for its '-'
    if p['content'] is not None and not p['content'].strip():
        module.fail_json(msg='content is empty', **result)
    if p['timeout'] is not None and not 0 <= p['timeout'] <= TIMEOUT_MAX:
        module.fail_json(msg='timeout must be from 0 to %d seconds, got %d' % (
            TIMEOUT_MAX, p['timeout']), **result)
    if os.sep in p['binary']:
        binary = p['binary']
        if not os.access(binary, os.X_OK):
            module.fail_json(msg='binary %s is not an executable file' % binary, **result)
    else:
        binary = module.get_bin_path(p['binary'], required=True)

    diffs = None
    if module._diff:
        # The plan as people read it, taken before apply changes anything. A failing plan
        # (exit 1) is reported by the JSON run below.
        rc, out, err = run(module, build_argv(module, binary, 'plan', False))
        if rc in (0, 2):
            diffs = plan_diffs(out)

    argv = build_argv(module, binary, command, True)
    rc, out, err = run(module, argv)
    doc = parse_document(out)
    result.update(cmd=argv, rc=rc, stderr=err, document=doc)
    if doc is not None:
        # not 'warnings': Ansible's own key, filled by module.warn() below
        for key in ('actions', 'errors', 'hosts', 'summary'):
            result[key] = doc.get(key, {} if key == 'summary' else [])
        for w in doc.get('warnings') or []:
            if isinstance(w, dict):
                wh = where(w)
                text = w.get('message') or ''
                if w.get('source'):
                    text = '%s: %s' % (w['source'], text)
                module.warn('%s: %s' % (wh, text) if wh else text)
    actions = (doc or {}).get('actions') or []
    if command == 'plan':
        # exit 2 is "changes pending"; a plan that failed (1) changed nothing
        result['changed'] = rc == 2 or (rc == 0 and bool(actions))
    else:
        result['changed'] = any(isinstance(a, dict) and a.get('result') == 'done'
                                for a in actions)
    if diffs is not None and result['changed']:
        result['diff'] = diffs

    if rc == 0 or (rc == 2 and command == 'plan'):
        # failed=False said out loud: Ansible fails a result whose rc is not 0 unless told.
        module.exit_json(failed=False, **result)
    parts = failure_parts(doc, err)
    if rc == 2:
        parts.insert(0, 'unexpected exit status 2')
    msg = 'zpci-reconcile %s failed' % command
    if parts:
        msg += ': ' + '; '.join(parts)
    else:
        msg += ' with exit status %d' % rc
    module.fail_json(msg=msg, **result)


if __name__ == '__main__':
    main()
