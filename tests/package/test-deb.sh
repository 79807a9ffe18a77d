#!/bin/bash
# The Debian package: build it from debian/ with dpkg-buildpackage, install it with
# apt as an operator would, check what it put in place, then purge it.
#
#   build      dpkg-buildpackage -us -uc -b in a copy of the source tree (the .deb and
#              the build directory stay out of the checkout)
#   install    apt-get install ./zpci-reconcile_VERSION_ARCH.deb
#   check      zpci-reconcile --version; validate every installed example; the man
#              pages (man -w, and rendered); the completion, schema and units in place;
#              systemd-analyze verify of the installed units (with their man pages);
#              the timer installed but not enabled
#   ansible    the collection it installs: ansible-doc finds the module, and the role
#              writes /etc/zpci-reconcile/inventory.yaml, runs the module with the
#              installed binary, enables the timer
#   purge      apt-get purge, also when a check failed or the script is interrupted;
#              then nothing of the package is left
#
# It installs into /usr and /lib: run it alone (tests/run-all.sh runs it as its own
# stage after the meson suites, which use the build tree's binary by path). A
# zpci-reconcile package installed before it started is not touched: that is an error.
# Needs root and dpkg-dev, debhelper, build-essential, apt; exit 77 when not root.
# Prints timings; exit 0 when every check passed.

set -uo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pkg=zpci-reconcile

if [ "$(id -u)" -ne 0 ]; then
  echo "test-deb: needs root (apt-get install): skipped"
  exit 77
fi
for tool in dpkg-buildpackage dh apt-get systemd-analyze man; do
  if ! command -v "$tool" >/dev/null; then
    echo "test-deb: $tool is not installed"
    exit 1
  fi
done
if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" != "" ] &&
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" != "un " ]; then
  echo "test-deb: $pkg is already installed here ($(dpkg-query -W -f='${Version}' "$pkg")):" \
    "not touching it; purge it first"
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/zr-deb.XXXXXX")
installed=0
failures=0
cleanup() {
  if [ "$installed" -eq 1 ]; then
    echo "--- purge"
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "$pkg" </dev/null >"$work/purge.log" 2>&1 ||
      cat "$work/purge.log"
  fi
  # the role's inventory: this test made the directory (it refuses to run otherwise)
  [ "${made_etc-0}" -eq 1 ] && rm -rf /etc/zpci-reconcile
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# ---- build
t0=$SECONDS
mkdir "$work/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  # tracked and new files, as the working tree has them; never build*/ or other output
  (cd "$src" && git ls-files -z -co --exclude-standard |
    xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf -) | tar -C "$work/src" -xf - || exit 1
else
  tar -C "$src" --exclude='./build*' --exclude='./obj-*' -cf - . | tar -C "$work/src" -xf - ||
    exit 1
fi
version=$(cd "$work/src" && dpkg-parsechangelog -S Version)
meson_version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -n 1)
echo "--- dpkg-buildpackage -us -uc -b ($pkg $version)"
if ! (cd "$work/src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
  tail -n 60 "$work/build.log"
  echo "FAIL: dpkg-buildpackage (log above)"
  exit 1
fi
t_build=$((SECONDS - t0))
[ "$version" = "$meson_version" ] ||
  fail "debian/changelog says $version, meson.build $meson_version"
deb=$(ls "$work/${pkg}_${version}_"*.deb)
echo "built $(basename "$deb") in ${t_build}s"

# ---- install
t0=$SECONDS
installed=1
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" \
  </dev/null >"$work/install.log" 2>&1; then
  cat "$work/install.log"
  echo "FAIL: apt-get install $deb"
  exit 1
fi
echo "installed in $((SECONDS - t0))s"

# ---- check
t0=$SECONDS
# where debian/rules puts the units: /usr/lib on Debian 13 (debhelper with dh_movetousr)
if command -v dh_movetousr >/dev/null; then
  unitdir=/usr/lib/systemd/system
else
  unitdir=/lib/systemd/system
fi
expected=(
  /usr/bin/zpci-reconcile
  /usr/share/man/man1/zpci-reconcile.1.gz
  /usr/share/man/man5/zpci-reconcile-inventory.5.gz
  /usr/share/bash-completion/completions/zpci-reconcile
  /usr/share/zpci-reconcile/schema/inventory.schema.json
  "$unitdir/zpci-reconcile.service"
  "$unitdir/zpci-reconcile.timer"
  "$unitdir/zpci-reconcile-watch.service"
  /usr/share/ansible/collections/ansible_collections/zpci/reconcile/galaxy.yml
  /usr/share/ansible/collections/ansible_collections/zpci/reconcile/plugins/modules/zpci_reconcile.py
  /usr/share/ansible/collections/ansible_collections/zpci/reconcile/roles/zpci_reconcile/tasks/main.yml
)
for f in "${expected[@]}"; do
  dpkg -L "$pkg" | grep -qxF "$f" || fail "$f is not in the package"
  [ -e "$f" ] || fail "$f is not installed"
done
for f in "$src"/examples/*.yaml; do
  [ -f "/usr/share/zpci-reconcile/examples/$(basename "$f")" ] ||
    fail "example $(basename "$f") is not installed"
done
ls /usr/share/doc/$pkg/operations.md* >/dev/null 2>&1 || fail "docs/operations.md is not installed"
if dpkg -L "$pkg" | grep -q '^/usr/lib/debug\|/obj-\|/build/\|__pycache__'; then
  fail "the package holds build output: $(dpkg -L "$pkg" | grep '/obj-\|/build/')"
fi

out=$(/usr/bin/zpci-reconcile --version 2>&1)
[ "$out" = "zpci-reconcile $version" ] || fail "--version printed '$out'"
# found on PATH as a user's shell finds it
out=$(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  sh -c 'command -v zpci-reconcile')
[ "$out" = /usr/bin/zpci-reconcile ] || fail "zpci-reconcile on PATH is '$out'"
if ldd /usr/bin/zpci-reconcile | grep -q 'not found'; then
  fail "missing libraries: $(ldd /usr/bin/zpci-reconcile | grep 'not found')"
fi

for f in /usr/share/zpci-reconcile/examples/*.yaml; do
  if ! out=$(/usr/bin/zpci-reconcile validate "$f" 2>&1); then
    fail "validate $f: $out"
  else
    echo "$out"
  fi
done
# and an invalid one is refused with its position (the installed binary works, not
# just starts)
printf 'version: 1\nguests:\n  g:\n    hostdevs:\n      - source: 0001:00:00.0\n        zpci: {uid: 0}\n' \
  >"$work/bad.yaml"
out=$(/usr/bin/zpci-reconcile validate "$work/bad.yaml" 2>&1)
rc=$?
[ "$rc" -eq 1 ] && [[ "$out" == "$work/bad.yaml:6:21: error: "* ]] ||
  fail "validate of an invalid inventory: exit $rc: $out"

out=$(man -w zpci-reconcile 2>&1)
[ "$out" = /usr/share/man/man1/zpci-reconcile.1.gz ] || fail "man -w zpci-reconcile: $out"
out=$(man -w 5 zpci-reconcile-inventory 2>&1)
[ "$out" = /usr/share/man/man5/zpci-reconcile-inventory.5.gz ] ||
  fail "man -w 5 zpci-reconcile-inventory: $out"
# man's seccomp sandbox fails in some containers; the page is what is checked here
out=$(MAN_DISABLE_SECCOMP=1 MANWIDTH=80 LC_ALL=C.UTF-8 man -P cat zpci-reconcile 2>&1)
[[ "$out" == *NAME*zpci-reconcile* ]] || fail "man zpci-reconcile: $out"

# verify: the units load, ExecStart's binary exists, Documentation= man pages exist
out=$(systemd-analyze verify "$unitdir/zpci-reconcile.service" "$unitdir/zpci-reconcile.timer" \
  "$unitdir/zpci-reconcile-watch.service" 2>&1)
rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
  fail "systemd-analyze verify (exit $rc): $out"
fi
grep -qxF 'ExecStart=/usr/bin/zpci-reconcile apply /etc/zpci-reconcile/inventory.yaml' \
  "$unitdir/zpci-reconcile.service" || fail "the service does not run /usr/bin/zpci-reconcile"
# installed, not enabled: applying an inventory is the administrator's decision
out=$(systemctl is-enabled zpci-reconcile.timer 2>&1)
[ "$out" = disabled ] || fail "zpci-reconcile.timer is '$out' after install, not disabled"

bash -c 'source /usr/share/bash-completion/completions/zpci-reconcile &&
  complete -p zpci-reconcile' >/dev/null 2>&1 || fail "the bash completion does not load"
echo "checked in $((SECONDS - t0))s"

# ---- the Ansible collection the package installs, found where ansible-core looks by
# default; its role run as docs/operations.md uses it: the inventory written to
# /etc/zpci-reconcile, the module run with the zpci-reconcile on PATH (on an embedded
# root of this test's), the packaged timer enabled; twice, the second time without a
# change. Purge must then drop the timer's enablement.
t0=$SECONDS
unset ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS
if ! command -v ansible-playbook >/dev/null; then
  echo "role: ansible-playbook is not installed (ansible-core): not checked"
elif [ -e /etc/zpci-reconcile ]; then
  echo "role: /etc/zpci-reconcile exists (not this test's): not checked"
else
  made_etc=1
  mkdir -p "$work/root"
  out=$(ANSIBLE_NOCOLOR=1 ansible-doc zpci.reconcile.zpci_reconcile 2>&1)
  [[ "$out" == *"/usr/share/ansible/collections/ansible_collections/zpci/reconcile/"* ]] ||
    fail "ansible-doc zpci.reconcile.zpci_reconcile: $out"
  start=false
  [ -d /run/systemd/system ] && start=true    # booted with systemd: start it too
  cat >"$work/vars.json" <<VARS
{"zpci_reconcile_inventory": {"version": 1, "uri": "qemu:///embed?root=$work/root",
                              "guests": {}},
 "zpci_reconcile_host_check": false,
 "zpci_reconcile_service": "timer", "zpci_reconcile_service_start": $start}
VARS
  cat >"$work/site.yml" <<'PLAY'
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - zpci.reconcile.zpci_reconcile
  post_tasks:
    - ansible.builtin.assert:
        that:
          - zpci_reconcile_result.cmd[0] == '/usr/bin/zpci-reconcile'
          - zpci_reconcile_result.rc == 0
PLAY
  for run in 1 2; do
    out=$(ANSIBLE_LOCAL_TEMP="$work/tmp" \
      ANSIBLE_NOCOLOR=1 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 \
      ansible-playbook -i localhost, -e "@$work/vars.json" "$work/site.yml" </dev/null 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ]; then
      fail "role run $run: ansible-playbook exit $rc: $out"
      break
    fi
    recap=$(echo "$out" | grep -E '^localhost +:')
    if [ "$run" -eq 2 ] && ! [[ "$recap" =~ changed=0[[:space:]] ]]; then
      fail "role run 2 changed something: $recap"
    fi
  done
  [ -f /etc/zpci-reconcile/inventory.yaml ] || fail "the role wrote no /etc/zpci-reconcile/inventory.yaml"
  out=$(systemctl is-enabled zpci-reconcile.timer 2>&1)
  [ "$out" = enabled ] || fail "zpci-reconcile.timer is '$out' after the role, not enabled"
  # zpci_reconcile_service: watch enables the watch unit and disables the timer
  sed -i 's/"zpci_reconcile_service": "timer"/"zpci_reconcile_service": "watch"/' "$work/vars.json"
  out=$(ANSIBLE_LOCAL_TEMP="$work/tmp" \
    ANSIBLE_NOCOLOR=1 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 \
    ansible-playbook -i localhost, -e "@$work/vars.json" "$work/site.yml" </dev/null 2>&1) ||
    fail "role run with watch: $out"
  out=$(systemctl is-enabled zpci-reconcile-watch.service 2>&1)
  [ "$out" = enabled ] || fail "zpci-reconcile-watch.service is '$out' after the role, not enabled"
  out=$(systemctl is-enabled zpci-reconcile.timer 2>&1)
  [ "$out" = disabled ] || fail "zpci-reconcile.timer is '$out' after the watch role, not disabled"
  echo "role checked in $((SECONDS - t0))s"
fi

# ---- purge
t0=$SECONDS
installed=0
if ! DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "$pkg" </dev/null >"$work/purge.log" 2>&1; then
  cat "$work/purge.log"
  fail "apt-get purge"
fi
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" = "" ] ||
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" = "un " ] ||
  fail "$pkg still known to dpkg after purge"
for f in "${expected[@]}"; do
  [ ! -e "$f" ] || fail "$f left after purge"
done
[ ! -e /etc/systemd/system/timers.target.wants/zpci-reconcile.timer ] ||
  fail "the timer is still enabled after purge"
[ ! -e /etc/systemd/system/multi-user.target.wants/zpci-reconcile-watch.service ] ||
  fail "the watch unit is still enabled after purge"
echo "purged in $((SECONDS - t0))s"

if [ "$failures" -ne 0 ]; then
  echo "test-deb: $failures check(s) failed"
  exit 1
fi
echo "test-deb: ok"
