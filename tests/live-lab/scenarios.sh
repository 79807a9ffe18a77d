#!/bin/bash
# The live lab's scenarios, run inside L1 by l1-main.sh:
#
#   scenarios.sh all            every scenario of $MODE (or those named in $SCENARIOS)
#   scenarios.sh one NAME       one scenario (what `all` runs under a timeout)
#
# Each scenario drives the real zpci-reconcile against L2 guests holding vfio-pci functions
# and asserts on libvirt's live and persistent XML (and, for Linux L2 guests, on what the
# guest itself sees on its console). A scenario ends with `pass` or `fail MESSAGE`.

set -uo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
. /xchg/env
X=/xchg
URI=qemu:///system
WORK=/tmp/zr-lab
mkdir -p "$WORK"

V() { timeout 60 virsh -q -c "$URI" "$@"; }

log() { echo "  [$NAME] $*"; }
fail() {
  echo "REASON: $*"
  exit 1
}

# ---- guests -------------------------------------------------------------------------------

# define_x86 NAME [linux] [HOSTDEV_SLOT...]: a q35 guest; without an OS it sits in SeaBIOS
# and never answers a hot-unplug request (the guest-refuses case).
define_x86() {
  local name=$1 os=$2 slot
  shift 2
  local boot="" devs=""
  if [ "$os" = linux ]; then
    boot="<kernel>$L2_KERNEL_AMD64</kernel><initrd>$L2_INITRD_AMD64</initrd>
          <cmdline>console=ttyS0 quiet loglevel=1 panic=-1</cmdline>"
  fi
  for slot in "$@"; do devs="$devs$(hostdev_xml "$slot")"; done
  cat >"$WORK/$name.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>$boot</os>
  <features><acpi/></features>
  <on_crash>preserve</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='pci' model='pcie-root'/>
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
    <serial type='file'><source path='$X/logs/$name.console'/></serial>
    <memballoon model='none'/>
    $devs
  </devices>
</domain>
EOF
  V define "$WORK/$name.xml" >/dev/null || fail "cannot define $name"
}

# define_s390x NAME [linux] [HOSTDEV_SLOT...]: without an OS it is started paused.
define_s390x() {
  local name=$1 os=$2 slot
  shift 2
  local boot="" devs=""
  if [ "$os" = linux ]; then
    boot="<kernel>$L2_KERNEL_S390X</kernel><initrd>$L2_INITRD_S390X</initrd>
          <cmdline>console=ttysclp0 quiet loglevel=1 panic=-1</cmdline>"
  fi
  for slot in "$@"; do devs="$devs$(hostdev_xml "$slot")"; done
  cat >"$WORK/$name.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type>$boot</os>
  <on_crash>preserve</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-s390x</emulator>
    <console type='file'><source path='$X/logs/$name.console'/><target type='sclp'/></console>
    <memballoon model='none'/>
    $devs
  </devices>
</domain>
EOF
  V define "$WORK/$name.xml" >/dev/null || fail "cannot define $name"
}

hostdev_xml() {
  printf "<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/><source><address domain='0x0000' bus='0x00' slot='0x%02x' function='0x0'/></source></hostdev>" "$((16#$1))"
}

start() {
  V start "$@" >/dev/null || fail "cannot start $*"
}

# ---- XML ----------------------------------------------------------------------------------

# xml NAME live|config > the domain XML
xml() {
  if [ "$2" = live ]; then
    V dumpxml "$1"
  else
    V dumpxml --inactive "$1"
  fi
}

# hostdevs NAME live|config: one line per in-scope device, "SLOT kind [uid fid]", sorted.
hostdevs() {
  xml "$1" "$2" | python3 -c '
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
out = []
for tag, kind in (("hostdev", "hostdev"), ("interface", "interface")):
    for d in root.iter(tag):
        if d.get("type") not in ("pci", "hostdev"):
            continue
        a = d.find("source/address")
        if a is None:
            continue
        line = "%02x %s" % (int(a.get("slot"), 16), kind)
        z = d.find("address/zpci")
        if z is not None:
            line += " uid=%s fid=%s" % (z.get("uid"), z.get("fid"))
        out.append(line)
print("\n".join(sorted(out)))
'
}

# expect_devs NAME live|config "WANTED" (lines as hostdevs prints; "" for none)
expect_devs() {
  local got
  got=$(hostdevs "$1" "$2")
  [ "$got" = "$3" ] || fail "$1 $2 XML: expected [${3//$'\n'/; }], found [${got//$'\n'/; }]"
}

# ---- the tool ------------------------------------------------------------------------------

# zr OUT ARGS...: run zpci-reconcile; stdout in $OUT.out, stderr in $OUT.err, exit in $RC,
# wall time in $ZR_SECS. A crash (signal) fails the scenario at once.
zr() {
  local out=$1 t0
  shift
  t0=$(date +%s.%N)
  timeout -k 5 300 "$ZR" -c "$URI" --color never "$@" >"$WORK/$out.out" 2>"$WORK/$out.err"
  RC=$?
  ZR_SECS=$(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || python3 -c "print($(date +%s.%N) - $t0)")
  cp "$WORK/$out.out" "$WORK/$out.err" "$X/logs/" 2>/dev/null
  log "zpci-reconcile $* -> exit $RC in ${ZR_SECS%????}s"
  sed 's/^/      /' "$WORK/$out.err" | head -n 20
  if [ "$RC" -ge 124 ]; then
    fail "zpci-reconcile $* exited $RC (timeout or signal); stderr: $(tail -n 3 "$WORK/$out.err")"
  fi
}

expect_rc() {
  [ "$RC" = "$1" ] || fail "expected exit $1, got $RC; stderr: $(tail -n 5 "$WORK/$2.err" | tr '\n' ' ')"
}

# json OUT PYTHON-EXPR: evaluate EXPR with `j` bound to the JSON in $OUT.out
json() {
  python3 -c "
import json, sys
j = json.load(open('$WORK/$1.out'))
r = $2
print(r if not isinstance(r, (list, dict)) else json.dumps(r))
"
}

inventory() { cat >"$WORK/$1.yaml"; }

# wait_console NAME PATTERN SECONDS: until the guest's console log shows PATTERN (ERE).
wait_console() {
  local f=$X/logs/$1.console i
  for ((i = 0; i < $3; i++)); do
    grep -Eq "$2" "$f" 2>/dev/null && return 0
    sleep 1
  done
  return 1
}

# ---- scenarios: guests without an OS ---------------------------------------------------------

# s390x, paused (no OS): one live+config attach carrying the zPCI ids; plan is then in sync.
scenario_s390x_attach() {
  define_s390x t-s390 none
  start --paused t-s390
  inventory s390 <<'EOF'
version: 1
guests:
  t-s390:
    hostdevs:
      - source: 0000:00:04.0
        zpci: {uid: 0x0010, fid: 0x00000020}
EOF
  zr apply -o json apply "$WORK/s390.yaml"
  expect_rc 0 apply
  [ "$(json apply 'len(j["actions"])')" = 1 ] || fail "expected one action: $(cat "$WORK/apply.out")"
  [ "$(json apply '[j["actions"][0][k] for k in ("op","live","config","result")]')" = \
    '["attach", true, true, "done"]' ] || fail "expected one live+config attach: $(cat "$WORK/apply.out")"
  expect_devs t-s390 live "04 hostdev uid=0x0010 fid=0x00000020"
  expect_devs t-s390 config "04 hostdev uid=0x0010 fid=0x00000020"
  zr plan plan "$WORK/s390.yaml"
  expect_rc 0 plan
  pass
}

# x86 q35 running SeaBIOS: live+config attach, then plan in sync.
scenario_x86_attach() {
  define_x86 t-x86 none
  start t-x86
  inventory x86 <<'EOF'
version: 1
guests:
  t-x86:
    hostdevs:
      - source: 0000:00:04.0
EOF
  zr apply -o json apply "$WORK/x86.yaml"
  expect_rc 0 apply
  [ "$(json apply '[(a["op"],a["live"],a["config"],a["result"]) for a in j["actions"]]')" = \
    '[["attach", true, true, "done"]]' ] || fail "expected one live+config attach: $(cat "$WORK/apply.out")"
  expect_devs t-x86 live "04 hostdev"
  expect_devs t-x86 config "04 hostdev"
  zr plan plan "$WORK/x86.yaml"
  expect_rc 0 plan
  pass
}

# A guest that never releases the function: the detach times out after --timeout, the
# message says the guest still holds it, the definition is as the report says, a second
# apply while the detach is pending fails cleanly.
scenario_refuses() {
  define_x86 t-hold none 04
  start t-hold
  define_x86 t-other none
  start t-other
  inventory empty <<'EOF'
version: 1
guests:
  t-hold:
    hostdevs: []
EOF
  zr apply -o json --timeout 5 apply "$WORK/empty.yaml"
  expect_rc 1 apply
  local secs=${ZR_SECS%.*}
  [ "$secs" -ge 5 ] || fail "apply returned after ${ZR_SECS}s, before the 5 s --timeout"
  local err
  err=$(json apply 'j["actions"][0].get("error","")')
  [ "$(json apply 'j["actions"][0]["result"]')" = failed ] || fail "detach not reported failed"
  grep -q "still holds" <<<"$err" || fail "error does not say the guest still holds it: $err"
  grep -q "after 5 s" <<<"$err" || fail "error does not name the timeout: $err"
  expect_devs t-hold live "04 hostdev"
  # The report says the definition no longer has it; so must libvirt.
  if grep -q "persistent definition no longer has it" <<<"$err"; then
    expect_devs t-hold config ""
  else
    expect_devs t-hold config "04 hostdev"
  fi

  # Again, while that detach is still pending.
  zr apply -o json --timeout 3 again "$WORK/empty.yaml"
  expect_rc 1 again
  grep -q '"error"' "$WORK/again.out" || fail "second apply: no error reported: $(cat "$WORK/again.out")"

  # Moving the held function to another guest: libvirt's "in use" message, no crash.
  inventory move <<'EOF'
version: 1
guests:
  t-hold:
    hostdevs: []
  t-other:
    hostdevs:
      - source: 0000:00:04.0
EOF
  zr apply -o json --timeout 3 move "$WORK/move.yaml"
  expect_rc 1 move
  grep -Eq 'still holds|in use' "$WORK/move.out" ||
    fail "moving a held function: no clear message: $(cat "$WORK/move.out")"
  expect_devs t-other live ""
  expect_devs t-hold live "04 hostdev"
  pass
}

# --atomic: a run whose live detach times out undoes what it did before.
scenario_atomic() {
  define_x86 t-off none 06
  define_x86 t-hold none 04
  start t-hold
  inventory atomic <<'EOF'
version: 1
guests:
  t-off:
    hostdevs: []
  t-hold:
    hostdevs: []
EOF
  zr apply -o json --atomic --timeout 5 apply "$WORK/atomic.yaml"
  expect_rc 1 apply
  log "results: $(json apply '[(a["guest"],a["op"],a["source"],a["result"]) for a in j["actions"]]')"
  [ "$(json apply '[a["result"] for a in j["actions"] if a["guest"]=="t-off"]')" = '["rolled back"]' ] ||
    fail "the config detach from t-off was not rolled back: $(cat "$WORK/apply.out")"
  expect_devs t-off config "06 hostdev"
  expect_devs t-hold live "04 hostdev"
  expect_devs t-hold config "04 hostdev"
  pass
}

# --config-only on a running guest: the definition changes, live drift is a warning.
scenario_config_only() {
  define_x86 t-run none
  start t-run
  inventory co <<'EOF'
version: 1
guests:
  t-run:
    hostdevs:
      - source: 0000:00:05.0
EOF
  zr apply -o json --config-only apply "$WORK/co.yaml"
  expect_rc 0 apply
  [ "$(json apply '[(a["live"],a["config"]) for a in j["actions"]]')" = '[[false, true]]' ] ||
    fail "expected one config-only action: $(cat "$WORK/apply.out")"
  expect_devs t-run config "05 hostdev"
  expect_devs t-run live ""
  zr plan -o json --config-only plan "$WORK/co.yaml"
  expect_rc 0 plan
  [ "$(json plan 'len(j.get("warnings", []))')" -ge 1 ] ||
    fail "plan --config-only: live drift not warned: $(cat "$WORK/plan.out")"
  zr plan plan-live "$WORK/co.yaml"
  expect_rc 2 plan-live
  pass
}

# <interface type='hostdev'> on a function that is no SR-IOV VF: refused, naming it.
scenario_iface_not_vf() {
  define_x86 t-if none
  start t-if
  inventory iface <<'EOF'
version: 1
guests:
  t-if:
    interfaces:
      - source: 0000:00:05.0
        mac: "02:00:00:00:00:05"
EOF
  zr apply -o json --no-host-check apply "$WORK/iface.yaml"
  expect_rc 1 apply
  grep -q '0000:00:05.0' "$WORK/apply.out" "$WORK/apply.err" || fail "the error does not name 0000:00:05.0"
  log "error: $(json apply '[a.get("error") for a in j["actions"]]')"
  expect_devs t-if live ""
  expect_devs t-if config ""
  # With the host check the plan says so before anything is tried.
  zr plan -o json plan "$WORK/iface.yaml"
  log "plan warnings: $(json plan 'j.get("warnings")')"
  pass
}

# export --live of running guests round-trips: plan of the export is in sync.
scenario_export_live() {
  define_s390x t-ex none
  start --paused t-ex
  inventory ex <<'EOF'
version: 1
guests:
  t-ex:
    hostdevs:
      - source: 0000:00:04.0
        zpci: {uid: 0x0011, fid: 0x00000011}
      - source: 0000:00:05.0
EOF
  zr apply apply "$WORK/ex.yaml"
  expect_rc 0 apply
  zr export export --live t-ex
  expect_rc 0 export
  cp "$WORK/export.out" "$WORK/exported.yaml"
  grep -q "0000:00:05.0" "$WORK/exported.yaml" || fail "export --live lacks 0000:00:05.0"
  grep -qi "uid: 0x0011" "$WORK/exported.yaml" || fail "export --live lacks uid 0x0011"
  zr plan plan "$WORK/exported.yaml"
  expect_rc 0 plan
  # A live-only change shows in export --live, not in the persistent export.
  V detach-device t-ex --config --file <(hostdev_xml 05) >/dev/null || fail "virsh detach --config"
  zr export export2 t-ex
  grep -q "0000:00:05.0" "$WORK/export2.out" && fail "persistent export still has 0000:00:05.0"
  zr export export3 --live t-ex
  grep -q "0000:00:05.0" "$WORK/export3.out" || fail "export --live lost 0000:00:05.0"
  pass
}

pass() { exit 0; }

# ---- running ---------------------------------------------------------------------------------

QUICK_SCENARIOS="s390x_attach x86_attach refuses atomic config_only iface_not_vf export_live"
FULL_SCENARIOS="$QUICK_SCENARIOS"

# Destroy and undefine every per-scenario guest (t-*).
cleanup_guests() {
  local d
  for d in $(V list --all --name | grep '^t-'); do
    V destroy "$d" >/dev/null 2>&1
    V undefine "$d" >/dev/null 2>&1
  done
}

run_all() {
  local list name t0 rc reason
  if [ -n "${SCENARIOS-}" ]; then
    list=$SCENARIOS
  elif [ "$MODE" = quick ]; then
    list=$QUICK_SCENARIOS
  else
    list=$FULL_SCENARIOS
  fi
  for name in $list; do
    name=${name//-/_}
    if ! declare -F "scenario_$name" >/dev/null; then
      echo "FAIL $name 0 no such scenario" >>"$X/results"
      continue
    fi
    echo "live-lab: scenario $name"
    t0=$SECONDS
    timeout -k 10 "${SCENARIO_TIMEOUT:-420}" bash "$0" one "$name" >"$X/logs/$name.log" 2>&1
    rc=$?
    sed -n '1,200p' "$X/logs/$name.log"
    if [ "$rc" = 0 ]; then
      echo "PASS $name $((SECONDS - t0))" >>"$X/results"
    else
      reason=$(sed -n 's/^REASON: //p' "$X/logs/$name.log" | tail -n 1)
      [ "$rc" -ge 124 ] && reason="timeout or signal (exit $rc) ${reason}"
      echo "FAIL $name $((SECONDS - t0)) ${reason:-exit $rc}" >>"$X/results"
    fi
    cleanup_guests
  done
}

case ${1-} in
  all) run_all ;;
  one)
    NAME=$2
    "scenario_$2"
    fail "scenario_$2 ended without pass"
    ;;
  *)
    echo "usage: scenarios.sh all | one NAME" >&2
    exit 2
    ;;
esac
