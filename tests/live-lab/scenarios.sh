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
# and never answers a hot-unplug request (the guest-refuses case). $X86_EXTRA: more devices.
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
    ${X86_EXTRA-}
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

# hostdev_xml SLOT | BUS:SLOT (hex, function 0)
hostdev_xml() {
  local bus=00 slot=$1
  case $1 in *:*) bus=${1%%:*} slot=${1#*:} ;; esac
  printf "<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/><source><address domain='0x0000' bus='0x%02x' slot='0x%02x' function='0x0'/></source></hostdev>" "$((16#$bus))" "$((16#$slot))"
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

# hostdevs NAME live|config: one line per in-scope device, "SLOT kind [uid fid]" ("BUS:SLOT"
# off bus 0), sorted.
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
        bus, slot, fn = int(a.get("bus"), 16), int(a.get("slot"), 16), int(a.get("function") or "0", 16)
        line = ("%02x:%02x" % (bus, slot)) if bus else ("%02x" % slot)
        line += (".%x" % fn if fn else "") + " " + kind
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
  local out=$1 t0 ms
  shift
  t0=$(date +%s%N)
  timeout -k 5 300 "$ZR" -c "$URI" --color never "$@" >"$WORK/$out.out" 2>"$WORK/$out.err"
  RC=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  ZR_SECS=$((ms / 1000)).$(printf '%03d' $((ms % 1000)))
  cp "$WORK/$out.out" "$X/logs/$NAME.$out.out" 2>/dev/null
  cp "$WORK/$out.err" "$X/logs/$NAME.$out.err" 2>/dev/null
  log "zpci-reconcile $* -> exit $RC in ${ZR_SECS}s"
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
  zr again -o json --timeout 3 apply "$WORK/empty.yaml"
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
  zr move -o json --timeout 3 apply "$WORK/move.yaml"
  expect_rc 1 move
  grep -Eq 'still holds|in use' "$WORK/move.out" ||
    fail "moving a held function: no clear message: $(cat "$WORK/move.out")"
  expect_devs t-other live ""
  expect_devs t-hold live "04 hostdev"

  # Only the attach: t-hold still holds it live (whatever its definition says), so the
  # conflict check refuses it, naming t-hold, with or without the host check (before the
  # conflict check read running guests' live definitions, the --no-host-check run went on
  # to libvirt, which refused: "in use by driver QEMU, domain t-hold").
  inventory take <<'EOF'
version: 1
guests:
  t-other:
    hostdevs:
      - source: 0000:00:04.0
EOF
  zr take apply "$WORK/take.yaml"
  expect_rc 1 take
  grep -q 't-hold' "$WORK/take.out" "$WORK/take.err" ||
    fail "attaching the held function: the error does not name t-hold: $(cat "$WORK/take.out" "$WORK/take.err")"
  zr take2 --no-host-check apply "$WORK/take.yaml"
  expect_rc 1 take2
  grep -q "held by guest 't-hold', which the inventory does not name" "$WORK/take2.out" ||
    fail "attaching the held function: the conflict check does not name t-hold: $(cat "$WORK/take2.out" "$WORK/take2.err")"
  expect_devs t-other live ""
  expect_devs t-other config ""
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
  zr plan-live plan "$WORK/co.yaml"
  expect_rc 2 plan-live
  pass
}

# A running guest the inventory does not name holds 00:04.0 only live (hot-plugged without
# --config): the conflict check refuses that function to another guest, and a pool passes it
# over (CONTRACT.md: a function is free when no guest holds it, persistent or live).
scenario_held_live() {
  define_x86 t-live none
  start t-live
  hostdev_xml 04 >"$WORK/h04.xml"
  V attach-device t-live "$WORK/h04.xml" --live >/dev/null || fail "cannot hot-plug 00:04.0"
  expect_devs t-live live "04 hostdev"
  expect_devs t-live config ""
  define_x86 t-want none
  inventory named <<'EOF'
version: 1
guests:
  t-want:
    hostdevs:
      - source: 0000:00:04.0
EOF
  zr apply -o json apply "$WORK/named.yaml"
  expect_rc 1 apply
  grep -q "held by guest 't-live', which the inventory does not name" "$WORK/apply.out" ||
    fail "the live holder is not named: $(cat "$WORK/apply.out")"
  expect_devs t-want config ""
  expect_devs t-live live "04 hostdev"
  inventory pool <<'EOF'
version: 1
pools:
  lab: {members: [0000:00:04.0, 0000:00:05.0]}
guests:
  t-want:
    hostdevs:
      - pool: lab
EOF
  zr pool-apply -o json apply "$WORK/pool.yaml"
  expect_rc 0 pool-apply
  expect_devs t-want config "05 hostdev"
  zr pool-plan plan "$WORK/pool.yaml"
  expect_rc 0 pool-plan
  # Named now, with nothing wanted: its plan detaches 00:04.0 live, so another guest may
  # have it; with --config-only the running definition keeps it, so that guest may not.
  inventory both <<'EOF'
version: 1
guests:
  t-live:
    hostdevs: []
  t-want:
    hostdevs:
      - source: 0000:00:04.0
EOF
  zr both-plan plan -o json "$WORK/both.yaml"
  expect_rc 2 both-plan
  [ "$(json both-plan 'sorted((a["guest"], a["op"], a["live"], a["config"]) for a in j["actions"])')" = \
    '[["t-live", "detach", true, false], ["t-want", "attach", false, true], ["t-want", "detach", false, true]]' ] ||
    fail "expected the live detach from t-live and the move on t-want: $(cat "$WORK/both-plan.out")"
  zr both-co plan --config-only "$WORK/both.yaml"
  expect_rc 2 both-co
  grep -q "held by guest 't-live', whose running definition keeps it" "$WORK/both-co.out" ||
    fail "--config-only: the running holder is not named: $(cat "$WORK/both-co.out")"
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
  [ "$(json apply '[(a["source"],a["result"]) for a in j["actions"]]')" = '[["0000:00:05.0", "failed"]]' ] ||
    fail "expected the attach of 0000:00:05.0 to fail: $(cat "$WORK/apply.out")"
  log "error: $(json apply '[a.get("error") for a in j["actions"]]')"
  json apply 'j["actions"][0]["error"]' | grep -q 'SR-IOV' || fail "the error does not say why"
  expect_devs t-if live ""
  expect_devs t-if config ""
  # For a person: the line that gives the reason names the function.
  zr text apply "$WORK/iface.yaml"
  expect_rc 1 text
  cat "$WORK/text.out" "$WORK/text.err" | grep 'SR-IOV' | grep -q '0000:00:05.0' ||
    fail "no line names 0000:00:05.0 with the reason: $(cat "$WORK/text.out" "$WORK/text.err")"
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
  zr export2 export t-ex
  grep -q "0000:00:05.0" "$WORK/export2.out" && fail "persistent export still has 0000:00:05.0"
  zr export3 export --live t-ex
  grep -q "0000:00:05.0" "$WORK/export3.out" || fail "export --live lost 0000:00:05.0"
  pass
}

# The two e1000 behind L1's PCIe-to-PCI bridge share one IOMMU group (with the bridge).
G1=0000:01:01.0
G2=0000:01:02.0

# rebind FUNCTION DRIVER: hand a function of L1 to another driver (vfio-pci or e1000).
rebind() {
  local d=/sys/bus/pci/devices/$1
  [ -e "$d/driver" ] && echo "$1" >"$d/driver/unbind"
  if [ "$2" = vfio-pci ]; then
    echo vfio-pci >"$d/driver_override"
  else
    echo >"$d/driver_override"
    busybox modprobe "$2" 2>/dev/null
  fi
  [ -e "$d/driver" ] || echo "$1" >"/sys/bus/pci/drivers/$2/bind" 2>/dev/null
  [ "$(basename "$(readlink "$d/driver")")" = "$2" ] || fail "cannot bind $1 to $2"
}

# no_group_warning OUT: neither output of OUT mentions an IOMMU group.
no_group_warning() {
  ! grep -q 'IOMMU group' "$WORK/$1.out" "$WORK/$1.err" ||
    fail "$1: unexpected IOMMU group warning: $(grep -h 'IOMMU group' "$WORK/$1.out" "$WORK/$1.err")"
}

# An IOMMU group holding two endpoint functions (issue 16): assigning one of them is
# refused while the other stays with the host or another guest; assigning both converges.
scenario_iommu_group() {
  local grp g2grp n msg
  grp=$(basename "$(readlink "/sys/bus/pci/devices/$G1/iommu_group")")
  g2grp=$(basename "$(readlink "/sys/bus/pci/devices/$G2/iommu_group")")
  [ -n "$grp" ] && [ "$grp" = "$g2grp" ] ||
    fail "$G1 (group $grp) and $G2 (group $g2grp) share no IOMMU group"
  log "IOMMU group $grp: $(ls "/sys/kernel/iommu_groups/$grp/devices" | tr '\n' ' ')"
  # libvirt's node device XML shows the group and both members (and the bridge).
  for n in pci_0000_01_01_0 pci_0000_01_02_0 pci_0000_00_07_0; do
    V nodedev-dumpxml "$n" >"$X/logs/nodedev-$n.xml" || fail "virsh nodedev-dumpxml $n"
  done
  python3 -c '
import sys, xml.etree.ElementTree as ET
g = ET.parse(sys.argv[1]).find("capability[@type=\"pci\"]/iommuGroup")
m = {(int(a.get("bus"), 16), int(a.get("slot"), 16), int(a.get("function"), 16)) for a in g.findall("address")}
sys.exit(0 if g.get("number") == sys.argv[2] and {(1, 1, 0), (1, 2, 0)} <= m else 1)
' "$X/logs/nodedev-pci_0000_01_01_0.xml" "$grp" ||
    fail "node device XML of $G1 lacks group $grp with both: $(cat "$X/logs/nodedev-pci_0000_01_01_0.xml")"

  # The two are conventional PCI: libvirt hot-plugs them only into a conventional slot
  # (a pcie-to-pci-bridge), never into a PCIe root port.
  X86_EXTRA="<controller type='pci' model='pcie-to-pci-bridge'/>" define_x86 t-one none
  start t-one
  define_x86 t-ok none

  # (a) t-one gets one of the two while the other is bound to its host driver.
  rebind "$G2" e1000
  inventory one <<EOF
version: 1
guests:
  t-one:
    hostdevs:
      - source: $G1
  t-ok:
    hostdevs:
      - source: 0000:00:04.0
EOF
  zr plan -o json plan "$WORK/one.yaml"
  expect_rc 2 plan
  msg=$(json plan '[w["message"] for w in j.get("warnings", []) if w["guest"] == "t-one"]')
  log "plan warns: $msg"
  grep -q "IOMMU group $grp of $G1 also holds $G2 (driver e1000)" <<<"$msg" ||
    fail "plan: no warning naming group $grp, $G2 and its driver: $(cat "$WORK/plan.out")"
  grep -q "bind them to vfio-pci" <<<"$msg" || fail "plan: the warning does not say what to do: $msg"
  grep -q "apply will leave this guest alone" <<<"$msg" ||
    fail "plan: the warning does not say apply refuses: $msg"
  [ "$(json plan 'sorted({w["guest"] for w in j.get("warnings", [])})')" = '["t-one"]' ] ||
    fail "plan: warnings for other guests: $(cat "$WORK/plan.out")"

  zr apply apply "$WORK/one.yaml"
  expect_rc 1 apply
  grep -q "$G1: IOMMU group $grp of $G1 also holds $G2 (driver e1000).*nothing changed on this guest" \
    "$WORK/apply.out" "$WORK/apply.err" ||
    fail "apply: no refusal naming the group: $(cat "$WORK/apply.out" "$WORK/apply.err")"
  expect_devs t-one live ""
  expect_devs t-one config ""
  expect_devs t-ok config "04 hostdev"
  [ "$(basename "$(readlink "/sys/bus/pci/devices/$G2/driver")")" = e1000 ] ||
    fail "apply moved $G2 off its host driver"

  # The same, but the other function is on vfio-pci and a guest outside the inventory
  # keeps it: that guest is named.
  rebind "$G2" vfio-pci
  define_x86 t-keep none 01:02
  zr plan2 -o json plan "$WORK/one.yaml"
  expect_rc 2 plan2
  msg=$(json plan2 '[w["message"] for w in j.get("warnings", []) if w["guest"] == "t-one"]')
  log "plan warns: $msg"
  grep -q "also holds $G2 (driver vfio-pci, guest 't-keep', which the inventory does not name)" <<<"$msg" ||
    fail "plan: the warning does not name t-keep: $(cat "$WORK/plan2.out")"
  V undefine t-keep >/dev/null || fail "cannot undefine t-keep"

  # (b) Both to one guest: no group warning, apply converges. First the inactive t-ok
  # (config attach), then the running t-one (live attach), taking them from t-ok.
  inventory both <<EOF
version: 1
guests:
  t-one:
    hostdevs: []
  t-ok:
    hostdevs:
      - source: 0000:00:04.0
      - source: $G1
      - source: $G2
EOF
  zr plan3 plan "$WORK/both.yaml"
  expect_rc 2 plan3
  no_group_warning plan3
  zr apply2 -o json apply "$WORK/both.yaml"
  expect_rc 0 apply2
  no_group_warning apply2
  expect_devs t-ok config "01:01 hostdev
01:02 hostdev
04 hostdev"
  expect_devs t-one live ""
  zr plan4 plan "$WORK/both.yaml"
  expect_rc 0 plan4
  no_group_warning plan4

  # A running guest with free PCIe root ports but no PCI bridge: libvirt has no slot for a
  # conventional function; plan says so first.
  define_x86 t-nobr none
  start t-nobr
  inventory nobr <<EOF
version: 1
guests:
  t-nobr:
    hostdevs:
      - source: $G1
      - source: $G2
  t-ok:
    hostdevs:
      - source: 0000:00:04.0
EOF
  zr plan-nobr -o json plan "$WORK/nobr.yaml"
  expect_rc 2 plan-nobr
  msg=$(json plan-nobr '[w["message"] for w in j.get("warnings", []) if w["guest"] == "t-nobr"]')
  log "plan warns: $msg"
  grep -q '2 live attaches of conventional PCI functions.*0 free slots on hotpluggable PCI bridges.*add a pcie-to-pci-bridge' <<<"$msg" ||
    fail "plan: no warning that t-nobr has no slot for them: $(cat "$WORK/plan-nobr.out")"
  no_group_warning plan-nobr
  zr apply-nobr apply "$WORK/nobr.yaml"
  expect_rc 1 apply-nobr
  grep -q 'No more available PCI slots' "$WORK/apply-nobr.out" "$WORK/apply-nobr.err" ||
    fail "apply to t-nobr: not libvirt's 'No more available PCI slots': $(cat "$WORK/apply-nobr.out")"
  expect_devs t-nobr live ""

  inventory live <<EOF
version: 1
guests:
  t-nobr:
    hostdevs: []
  t-one:
    hostdevs:
      - source: $G1
      - source: $G2
  t-ok:
    hostdevs:
      - source: 0000:00:04.0
EOF
  zr plan5 -o json plan "$WORK/live.yaml"
  expect_rc 2 plan5
  [ "$(json plan5 'j.get("warnings", [])')" = '[]' ] || fail "plan: warnings: $(cat "$WORK/plan5.out")"
  zr apply3 -o json apply "$WORK/live.yaml"
  expect_rc 0 apply3
  log "actions: $(json apply3 '[(a["guest"],a["op"],a["source"],a["live"],a["config"],a["result"]) for a in j["actions"]]')"
  no_group_warning apply3
  expect_devs t-one live "01:01 hostdev
01:02 hostdev"
  expect_devs t-one config "01:01 hostdev
01:02 hostdev"
  expect_devs t-ok config "04 hostdev"
  zr plan6 plan "$WORK/live.yaml"
  expect_rc 0 plan6
  no_group_warning plan6
  pass
}

# ---- scenarios: Linux L2 guests --------------------------------------------------------------

# The Linux guests boot once, at the start of a full run, while the other scenarios run:
# under nested TCG they need minutes to reach userspace.
# start_linux_guests "SCENARIO...": only the guests those scenarios use.
start_linux_guests() {
  local x86=0 s390=0 n
  for n in $1; do
    case $n in
      x86_linux | move | sriov_interface_* | sriov_move | sriov_pool) x86=1 ;;
      s390x_linux) s390=1 ;;
    esac
  done
  [ "$x86$s390" = 00 ] && return 0
  (
    if [ "$x86" = 1 ]; then
      define_x86 lx-x86 linux
      V start lx-x86 >/dev/null || fail "cannot start lx-x86"
    fi
    if [ "$s390" = 1 ]; then
      define_s390x lx-s390 linux
      V start lx-s390 >/dev/null || fail "cannot start lx-s390"
    fi
  )
  echo "live-lab: Linux L2 guests started at $(date +%T)"
}

# wait_linux NAME: the guest's init reports on its console; give it until the deadline.
wait_linux() {
  local t0=$SECONDS
  wait_console "$1" 'ZR-L2 ready' "${LINUX_BOOT_TIMEOUT:-1500}" ||
    fail "$1 did not reach userspace (console: $(tail -c 300 "$X/logs/$1.console" 2>/dev/null))"
  log "$1 is up at $(date +%T) (waited $((SECONDS - t0))s here)"
}

# last_state NAME: the guest's latest report of the PCI functions it sees.
last_state() { grep 'ZR-L2 STATE' "$X/logs/$1.console" 2>/dev/null | tail -n 1 | tr -d '\r'; }

# wait_sees NAME ERE SECONDS / wait_not_sees: on the guest's latest report.
wait_sees() {
  local i
  for ((i = 0; i < $3 * 2; i++)); do
    last_state "$1" | grep -Eq "$2" && return 0
    sleep 0.5
  done
  fail "$1 does not see $2 within $3 s; it reports: $(last_state "$1")"
}
wait_not_sees() {
  local i
  for ((i = 0; i < $3 * 2; i++)); do
    last_state "$1" | grep -Eq "$2" || return 0
    sleep 0.5
  done
  fail "$1 still sees $2 after $3 s; it reports: $(last_state "$1")"
}

E1000E='8086:10d3'

# x86 Linux: attach (the guest sees it), then a detach that returns only once the guest let
# go, woken by the device-removed event.
scenario_x86_linux() {
  wait_linux lx-x86
  inventory att <<'EOF'
version: 1
guests:
  lx-x86:
    hostdevs:
      - source: 0000:00:04.0
EOF
  zr apply -o json apply "$WORK/att.yaml"
  expect_rc 0 apply
  [ "$(json apply '[(a["op"],a["live"],a["config"],a["result"]) for a in j["actions"]]')" = \
    '[["attach", true, true, "done"]]' ] || fail "expected one live+config attach: $(cat "$WORK/apply.out")"
  expect_devs lx-x86 live "04 hostdev"
  expect_devs lx-x86 config "04 hostdev"
  wait_sees lx-x86 "$E1000E" 60
  log "guest sees it: $(last_state lx-x86)"
  zr plan plan "$WORK/att.yaml"
  expect_rc 0 plan

  inventory det <<'EOF'
version: 1
guests:
  lx-x86:
    hostdevs: []
EOF
  zr detach -v -o json --timeout 120 apply "$WORK/det.yaml"
  expect_rc 0 detach
  # apply returned: the function must already be gone from the running guest.
  expect_devs lx-x86 live ""
  expect_devs lx-x86 config ""
  # libvirt waits a few seconds inside the call; a guest slower than that is waited for
  # by apply, woken by the device-removed event (s390x_linux shows that case).
  grep -Eq "left the running guest after .* \((device-removed event|the guest let go during libvirt's call)\)" \
    "$WORK/detach.err" || fail "the detach was not confirmed by libvirt: $(cat "$WORK/detach.err")"
  note "$(grep -o 'left the running guest.*' "$WORK/detach.err")"
  wait_not_sees lx-x86 "$E1000E" 30
  zr plan2 plan "$WORK/det.yaml"
  expect_rc 0 plan2
  pass
}

# A function moves from one running guest (Linux, releases it) to another in one run.
scenario_move() {
  wait_linux lx-x86
  define_x86 t-dst none
  start t-dst
  inventory src <<'EOF'
version: 1
guests:
  lx-x86:
    hostdevs:
      - source: 0000:00:05.0
EOF
  zr setup apply "$WORK/src.yaml"
  expect_rc 0 setup
  wait_sees lx-x86 "$E1000E" 60
  inventory mv <<'EOF'
version: 1
guests:
  lx-x86:
    hostdevs: []
  t-dst:
    hostdevs:
      - source: 0000:00:05.0
EOF
  zr apply -v -o json --timeout 120 apply "$WORK/mv.yaml"
  expect_rc 0 apply
  [ "$(json apply '[(a["guest"],a["op"],a["live"],a["config"],a["result"]) for a in j["actions"]]')" = \
    '[["lx-x86", "detach", true, true, "done"], ["t-dst", "attach", true, true, "done"]]' ] ||
    fail "expected detach from lx-x86 then attach to t-dst: $(cat "$WORK/apply.out")"
  expect_devs lx-x86 live ""
  expect_devs lx-x86 config ""
  expect_devs t-dst live "05 hostdev"
  expect_devs t-dst config "05 hostdev"
  wait_not_sees lx-x86 "$E1000E" 30
  zr plan plan "$WORK/mv.yaml"
  expect_rc 0 plan
  pass
}

# s390x Linux: attach with zPCI ids, change the uid live (a replacement), swap the uids of
# two functions in one run; the guest sees each uid in /sys/bus/pci/devices/*/uid.
scenario_s390x_linux() {
  wait_linux lx-s390
  inventory a <<'EOF'
version: 1
guests:
  lx-s390:
    hostdevs:
      - source: 0000:00:04.0
        zpci: {uid: 0x0010, fid: 0x00000010}
EOF
  zr attach -o json apply "$WORK/a.yaml"
  expect_rc 0 attach
  expect_devs lx-s390 live "04 hostdev uid=0x0010 fid=0x00000010"
  wait_sees lx-s390 "$E1000E uid=0x10 fid=0x00000010\]" 90
  log "guest sees it: $(last_state lx-s390)"

  inventory b <<'EOF'
version: 1
guests:
  lx-s390:
    hostdevs:
      - source: 0000:00:04.0
        zpci: {uid: 0x0020, fid: 0x00000010}
EOF
  zr change -v -o json --timeout 120 apply "$WORK/b.yaml"
  expect_rc 0 change
  [ "$(json change '[(a["op"],a["live"],a["config"],a["result"]) for a in j["actions"]]')" = \
    '[["detach", true, true, "done"], ["attach", true, true, "done"]]' ] ||
    fail "expected a live+config replacement: $(cat "$WORK/change.out")"
  expect_devs lx-s390 live "04 hostdev uid=0x0020 fid=0x00000010"
  expect_devs lx-s390 config "04 hostdev uid=0x0020 fid=0x00000010"
  wait_sees lx-s390 "^[^]]*\[[0-9a-f:.]* $E1000E uid=0x20 fid=0x00000010\] *$" 90
  # The guest had to let go of the old uid before it got the new one: apply waited past
  # libvirt's own wait, woken by the event.
  grep -q 'left the running guest after .* (device-removed event)' "$WORK/change.err" &&
    note "uid change: $(grep -o 'left the running guest.*' "$WORK/change.err")"

  inventory c <<'EOF'
version: 1
guests:
  lx-s390:
    hostdevs:
      - source: 0000:00:04.0
        zpci: {uid: 0x0020, fid: 0x00000010}
      - source: 0000:00:05.0
        zpci: {uid: 0x0030, fid: 0x00000011}
EOF
  zr add -o json apply "$WORK/c.yaml"
  expect_rc 0 add
  inventory d <<'EOF'
version: 1
guests:
  lx-s390:
    hostdevs:
      - source: 0000:00:04.0
        zpci: {uid: 0x0030, fid: 0x00000010}
      - source: 0000:00:05.0
        zpci: {uid: 0x0020, fid: 0x00000011}
EOF
  zr swap -v -o json --timeout 120 apply "$WORK/d.yaml"
  expect_rc 0 swap
  expect_devs lx-s390 live "04 hostdev uid=0x0030 fid=0x00000010
05 hostdev uid=0x0020 fid=0x00000011"
  expect_devs lx-s390 config "04 hostdev uid=0x0030 fid=0x00000010
05 hostdev uid=0x0020 fid=0x00000011"
  wait_sees lx-s390 "$E1000E uid=0x20 fid=0x00000011\].*$E1000E uid=0x30 fid=0x00000010\]" 120
  log "guest sees: $(last_state lx-s390)"
  zr plan plan "$WORK/d.yaml"
  expect_rc 0 plan
  pass
}

# ---- scenarios: SR-IOV (run.sh --sriov: an igb PF in L1, its VFs) -----------------------------

# l1-main.sh made 3 VFs on the igb PF $SRIOV_PF (netdev $SRIOV_PFDEV), left without a driver.
read -r VF0 VF1 VF2 <<<"${SRIOV_VFS-}"
MAC1=52:54:00:aa:bb:01
MAC2=52:54:00:aa:bb:02
IGBVF='8086:10ca'

need_sriov() {
  [ -n "${SRIOV_PF-}" ] && [ -n "${VF2-}" ] || fail "no SR-IOV PF in L1 (run.sh --sriov)"
}

# short ADDR: a function as hostdevs prints it ("10" on bus 0, "02:10", "02:10.2").
short() {
  local b=${1#*:} s f
  s=${b#*:}
  f=${s#*.}
  s=${s%.*}
  b=${b%%:*}
  local out=$s
  [ "$b" = 00 ] || out=$b:$s
  [ "$f" = 0 ] || out=$out.$f
  echo "$out"
}

# vf_line VF: the PF's `ip link` line for that VF ("vf N link/ether MAC ..., vlan N, ...").
vf_line() {
  local l i=
  for l in /sys/bus/pci/devices/"$SRIOV_PF"/virtfn*; do
    [ "$(basename "$(readlink "$l")")" = "$1" ] && i=${l##*virtfn}
  done
  [ -n "$i" ] || fail "$1 is no VF of $SRIOV_PF"
  ip link show "${2:-$SRIOV_PFDEV}" | tr -s ' ' | grep -E "^ ?vf $i " | sed 's/^ //'
}
# vf_cfg LINE: "MAC" or "MAC vlan N" from a vf_line.
vf_cfg() {
  sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/' <<<"$1" | tr -d '\n'
  grep -oE ', vlan [0-9]+' <<<"$1" | sed 's/^, / /'
}

# expect_pf VF MAC VLAN: the PF says the VF has that MAC and VLAN.
expect_pf() {
  local line
  line=$(vf_line "$1")
  [ "$(vf_cfg "$line")" = "$2 vlan $3" ] || fail "PF $SRIOV_PFDEV: expected $1 to have $2 vlan $3: $line"
}

# ifaces NAME live|config: "ADDR MAC VLAN" for each <interface type='hostdev'>.
ifaces() {
  xml "$1" "$2" | python3 -c '
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
for d in root.iter("interface"):
    if d.get("type") != "hostdev":
        continue
    a = d.find("source/address")
    mac = d.find("mac")
    tag = d.find("vlan/tag")
    print("%04x:%02x:%02x.%x %s %s" % (int(a.get("domain"), 16), int(a.get("bus"), 16),
          int(a.get("slot"), 16), int(a.get("function"), 16),
          mac.get("address") if mac is not None else "-", tag.get("id") if tag is not None else "-"))
'
}
expect_iface() {
  local got
  got=$(ifaces "$1" "$2")
  [ "$got" = "$3" ] || fail "$1 $2 XML: expected interface [$3], found [$got]"
}

# iface_inventory FILE GUEST MAC VLAN: GUEST has VF0 as an interface; lx-x86 too
# when it is not GUEST (with nothing).
iface_inventory() {
  {
    printf 'version: 1\nguests:\n'
    [ "$2" = lx-x86 ] || printf '  lx-x86:\n    interfaces: []\n'
    printf '  %s:\n    interfaces:\n      - source: %s\n        mac: "%s"\n        vlan: %s\n' \
      "$2" "$VF0" "$3" "$4"
  } >"$WORK/$1.yaml"
}

# The running Linux guest gets VF0 as an interface with MAC1, VLAN 42 (the start of the
# other interface scenarios too, so each runs alone).
iface_setup() {
  wait_linux lx-x86
  iface_inventory ifa lx-x86 "$MAC1" 42
  zr setup -o json apply "$WORK/ifa.yaml"
  expect_rc 0 setup
  wait_sees lx-x86 "$IGBVF mac=$MAC1\]" 120
}

scenario_sriov_interface_live() {
  need_sriov
  wait_linux lx-x86
  log "PF before: $(vf_line "$VF0")"
  iface_inventory ifa lx-x86 "$MAC1" 42
  zr apply -o json apply "$WORK/ifa.yaml"
  expect_rc 0 apply
  [ "$(json apply '[(a["op"],a["live"],a["config"],a["result"]) for a in j["actions"]]')" = \
    '[["attach", true, true, "done"]]' ] || fail "expected one live+config attach: $(cat "$WORK/apply.out")"
  note "attach ${ZR_SECS}s"
  expect_devs lx-x86 live "$(short "$VF0") interface"
  expect_iface lx-x86 live "$VF0 $MAC1 42"
  expect_iface lx-x86 config "$VF0 $MAC1 42"
  expect_pf "$VF0" "$MAC1" 42
  log "PF: $(vf_line "$VF0")"
  # The guest's igbvf asks the PF for its MAC: the guest sees the one libvirt set.
  wait_sees lx-x86 "$IGBVF mac=$MAC1\]" 120
  log "guest sees: $(last_state lx-x86)"
  zr plan plan "$WORK/ifa.yaml"
  expect_rc 0 plan
  pass
}

scenario_sriov_interface_change() {
  need_sriov
  iface_setup
  iface_inventory ifb lx-x86 "$MAC2" 43
  zr change -v -o json --timeout 120 apply "$WORK/ifb.yaml"
  expect_rc 0 change
  [ "$(json change '[(a["op"],a["live"],a["config"],a["result"]) for a in j["actions"]]')" = \
    '[["detach", true, true, "done"], ["attach", true, true, "done"]]' ] ||
    fail "expected a live+config replacement: $(cat "$WORK/change.out")"
  note "replacement ${ZR_SECS}s; $(grep -o 'left the running guest.*' "$WORK/change.err" | head -n 1)"
  expect_iface lx-x86 live "$VF0 $MAC2 43"
  expect_iface lx-x86 config "$VF0 $MAC2 43"
  expect_pf "$VF0" "$MAC2" 43
  wait_sees lx-x86 "$IGBVF mac=$MAC2\]" 120
  last_state lx-x86 | grep -q "$MAC1" && fail "the guest still sees $MAC1: $(last_state lx-x86)"
  log "guest sees: $(last_state lx-x86)"
  zr plan plan "$WORK/ifb.yaml"
  expect_rc 0 plan
  pass
}

scenario_sriov_interface_detach() {
  need_sriov
  iface_setup
  local before after
  # What the VF had before libvirt first set it (l1-main.sh's record): what it restores.
  before=$(tr -s ' ' <"$X/logs/pf-before.txt" | grep -E "^ ?vf $(vf_line "$VF0" | cut -d' ' -f2) " | sed 's/^ //')
  inventory none <<'EOF'
version: 1
guests:
  lx-x86:
    interfaces: []
EOF
  zr detach -v -o json --timeout 120 apply "$WORK/none.yaml"
  expect_rc 0 detach
  expect_devs lx-x86 live ""
  expect_devs lx-x86 config ""
  grep -Eq "left the running guest after .* \((device-removed event|the guest let go during libvirt's call)\)" \
    "$WORK/detach.err" || fail "the detach was not confirmed: $(cat "$WORK/detach.err")"
  note "detach ${ZR_SECS}s; $(grep -o 'left the running guest.*' "$WORK/detach.err" | head -n 1)"
  wait_not_sees lx-x86 "$IGBVF" 30
  after=$(vf_line "$VF0")
  log "PF before libvirt: $before"
  log "PF after the detach: $after"
  [ "$(vf_cfg "$after")" = "$(vf_cfg "$before")" ] ||
    fail "libvirt did not restore $VF0: before [$before], after [$after]"
  note "VF restored to [$(vf_cfg "$after")]"
  zr plan plan "$WORK/none.yaml"
  expect_rc 0 plan
  pass
}

# VF0 moves, with its MAC and VLAN, from the Linux guest (which lets go) to another running
# guest, in one run.
scenario_sriov_move() {
  need_sriov
  define_x86 t-dst none
  start t-dst
  iface_setup
  iface_inventory mv t-dst "$MAC1" 42
  zr apply -v -o json --timeout 120 apply "$WORK/mv.yaml"
  expect_rc 0 apply
  [ "$(json apply '[(a["guest"],a["op"],a["live"],a["config"],a["result"]) for a in j["actions"]]')" = \
    '[["lx-x86", "detach", true, true, "done"], ["t-dst", "attach", true, true, "done"]]' ] ||
    fail "expected detach from lx-x86 then attach to t-dst: $(cat "$WORK/apply.out")"
  note "move ${ZR_SECS}s"
  expect_iface lx-x86 live ""
  expect_iface lx-x86 config ""
  expect_iface t-dst live "$VF0 $MAC1 42"
  expect_iface t-dst config "$VF0 $MAC1 42"
  expect_pf "$VF0" "$MAC1" 42
  wait_not_sees lx-x86 "$IGBVF" 30
  zr plan plan "$WORK/mv.yaml"
  expect_rc 0 plan
  pass
}

# A VF as a plain hostdev (no MAC, no VLAN) into a running guest.
scenario_sriov_hostdev_vf() {
  need_sriov
  define_x86 t-vf none
  start t-vf
  inventory hv <<EOF
version: 1
guests:
  t-vf:
    hostdevs:
      - source: $VF1
EOF
  zr apply -o json apply "$WORK/hv.yaml"
  expect_rc 0 apply
  [ "$(json apply '[(a["op"],a["live"],a["config"],a["result"]) for a in j["actions"]]')" = \
    '[["attach", true, true, "done"]]' ] || fail "expected one live+config attach: $(cat "$WORK/apply.out")"
  note "attach ${ZR_SECS}s"
  expect_devs t-vf live "$(short "$VF1") hostdev"
  expect_devs t-vf config "$(short "$VF1") hostdev"
  [ "$(basename "$(readlink "/sys/bus/pci/devices/$VF1/driver")")" = vfio-pci ] ||
    fail "libvirt's managed attach left $VF1 off vfio-pci"
  zr plan plan "$WORK/hv.yaml"
  expect_rc 0 plan
  pass
}

# An interface with zPCI ids on a VF, to an s390x guest (paused, no OS): converges, or
# libvirt's refusal is reported as libvirt gave it and nothing changes.
scenario_sriov_s390x_interface() {
  need_sriov
  define_s390x t-s390 none
  start --paused t-s390
  inventory sz <<EOF
version: 1
guests:
  t-s390:
    interfaces:
      - source: $VF1
        mac: "$MAC2"
        vlan: 44
        zpci: {uid: 0x0031, fid: 0x00000031}
EOF
  zr apply -o json apply "$WORK/sz.yaml"
  local secs=$ZR_SECS
  if [ "$RC" = 0 ]; then
    expect_devs t-s390 live "$(short "$VF1") interface uid=0x0031 fid=0x00000031"
    expect_devs t-s390 config "$(short "$VF1") interface uid=0x0031 fid=0x00000031"
    expect_pf "$VF1" "$MAC2" 44
    zr plan plan "$WORK/sz.yaml"
    expect_rc 0 plan
    note "converged: attach ${secs}s; live and config carry uid 0x0031 fid 0x00000031"
  else
    expect_rc 1 apply
    local err
    err=$(json apply '[a.get("error") for a in j["actions"] if a.get("error")]')
    [ -n "$err" ] && [ "$err" != '[]' ] || fail "apply failed without an error: $(cat "$WORK/apply.out" "$WORK/apply.err")"
    expect_devs t-s390 live ""
    expect_devs t-s390 config ""
    note "libvirt refused: $err"
  fi
  pass
}

# The host check refuses an interface on the PF and managed: false on a VF no driver holds
# (not vfio-pci), naming the function; with --no-host-check libvirt's own refusal is reported.
# Last of the SR-IOV scenarios: libvirt may take the PF from igb, which ends its VFs.
scenario_sriov_refusals() {
  need_sriov
  define_x86 t-r none
  start t-r
  inventory pf <<EOF
version: 1
guests:
  t-r:
    interfaces:
      - source: $SRIOV_PF
        mac: "$MAC2"
EOF
  inventory unm <<EOF
version: 1
guests:
  t-r:
    hostdevs:
      - source: $VF2
        managed: false
EOF
  zr pf apply "$WORK/pf.yaml"
  expect_rc 1 pf
  cat "$WORK/pf.out" "$WORK/pf.err" | grep 'SR-IOV physical function' | grep -q "$SRIOV_PF" ||
    fail "interface on the PF: no line names $SRIOV_PF as a physical function: $(cat "$WORK/pf.out" "$WORK/pf.err")"
  zr unm apply "$WORK/unm.yaml"
  expect_rc 1 unm
  cat "$WORK/unm.out" "$WORK/unm.err" | grep 'managed: false' | grep -q "$VF2" ||
    fail "managed: false on an unbound VF: no line names $VF2: $(cat "$WORK/unm.out" "$WORK/unm.err")"
  expect_devs t-r live ""
  expect_devs t-r config ""

  zr unm2 -o json --no-host-check apply "$WORK/unm.yaml"
  expect_rc 1 unm2
  local err
  err=$(json unm2 '" ".join(a.get("error", "") for a in j["actions"])')
  [ -n "$err" ] || fail "--no-host-check, managed: false: no error: $(cat "$WORK/unm2.out")"
  note "libvirt, managed=no on an unbound VF: $err"
  expect_devs t-r live ""
  expect_devs t-r config ""
  zr pf2 -o json --no-host-check apply "$WORK/pf.yaml"
  expect_rc 1 pf2
  err=$(json pf2 '" ".join(a.get("error", "") for a in j["actions"])')
  [ -n "$err" ] || fail "--no-host-check, interface on the PF: no error: $(cat "$WORK/pf2.out")"
  note "libvirt, interface on the PF: $err"
  expect_devs t-r live ""
  expect_devs t-r config ""
  note "PF afterwards: driver $(basename "$(readlink "/sys/bus/pci/devices/$SRIOV_PF/driver")"), $(cat "/sys/bus/pci/devices/$SRIOV_PF/sriov_numvfs" 2>/dev/null) VFs"
  pass
}

# Pools (issue 26): a physical_function: pool of the igb's VFs for two running guests with
# MACs (the Linux guest, which lets go of a VF, and one without an OS). The plan shows each
# pick, apply makes it (live+config), the next plan is in sync; the Linux guest's entry goes,
# which frees its VF for the next run (held until this run detached it).
pool_inventory() {
  {
    printf 'version: 1\npools:\n  vfs: {physical_function: %s}\nguests:\n' "$SRIOV_PF"
    printf '  lx-x86:\n    interfaces: %s\n' "$2"
    printf '  t-p2:\n    interfaces: [{pool: vfs, mac: "%s"}]\n' "$MAC2"
    [ -z "${3-}" ] || printf '  t-p3:\n    interfaces: %s\n' "$3"
  } >"$WORK/$1.yaml"
}

# The VFs of the PF no domain's XML holds, in address order.
free_vfs() {
  local held d
  held=$(for d in $(V list --all --name); do xml "$d" config; V dumpxml "$d" 2>/dev/null; done |
    grep -oE "<address type='pci' domain='0x0000' bus='0x[0-9a-f]+' slot='0x[0-9a-f]+' function='0x[0-7]'" |
    sed -E "s/.*bus='0x([0-9a-f]+)' slot='0x([0-9a-f]+)' function='0x([0-7])'/0000:\1:\2.\3/")
  printf '%s\n' $SRIOV_VFS | sort | while read -r d; do
    grep -qx "$d" <<<"$held" || echo "$d"
  done
}

scenario_sriov_pool() {
  need_sriov
  local p
  for p in t-p2 t-p3; do
    define_x86 "$p" none
    start "$p"
  done
  wait_linux lx-x86
  local free a b
  free=$(free_vfs | tr '\n' ' ')
  read -r a b _ <<<"$free"
  [ -n "$b" ] || fail "fewer than 2 free VFs of $SRIOV_PF: [$free]"
  log "free VFs: $free"
  pool_inventory pa "[{pool: vfs, mac: \"$MAC1\"}]"
  zr plan -o json plan "$WORK/pa.yaml"
  expect_rc 2 plan
  [ "$(json plan '[(a["guest"],a["op"],a["source"],a.get("pool")) for a in j["actions"]]')" = \
    "[[\"lx-x86\", \"attach\", \"$a\", \"vfs\"], [\"t-p2\", \"attach\", \"$b\", \"vfs\"]]" ] ||
    fail "expected lx-x86 to get $a and t-p2 $b from pool vfs: $(cat "$WORK/plan.out")"
  zr apply --timeout 120 apply "$WORK/pa.yaml"
  expect_rc 0 apply
  grep -q "attach interface $a (pool vfs) mac=$MAC1 \[live+config\] done" "$WORK/apply.out" ||
    fail "the apply line does not name the pool: $(cat "$WORK/apply.out")"
  note "two attaches ${ZR_SECS}s"
  expect_iface lx-x86 live "$a $MAC1 -"
  expect_iface lx-x86 config "$a $MAC1 -"
  expect_iface t-p2 live "$b $MAC2 -"
  expect_iface t-p2 config "$b $MAC2 -"
  vf_line "$a" | grep -q "link/ether $MAC1" || fail "PF: $a does not carry $MAC1: $(vf_line "$a")"
  wait_sees lx-x86 "$IGBVF mac=$MAC1\]" 120
  zr again plan "$WORK/pa.yaml"
  expect_rc 0 again

  # lx-x86's entry goes and t-p3 wants every VF left: lx-x86's is held until this run
  # detaches it, so t-p3 waits (an error naming the pool) while the others converge.
  local want=$(( $(free_vfs | wc -l) + 1 ))
  pool_inventory pb "[]" "[{pool: vfs, count: $want}]"
  zr freeing -o json --timeout 120 apply "$WORK/pb.yaml"
  expect_rc 1 freeing
  json freeing '[e["message"] for e in j["errors"]]' | grep -q "pool 'vfs' has $((want - 1)) free function.*guest 't-p3' wants $want more" ||
    fail "expected t-p3 refused for want of VFs: $(cat "$WORK/freeing.out")"
  expect_iface lx-x86 live ""
  expect_iface lx-x86 config ""
  expect_iface t-p3 config ""
  wait_not_sees lx-x86 "$IGBVF" 30
  # The next run: lx-x86's VF is free, and t-p3 gets it (the lowest free) with the rest.
  zr next -o json apply "$WORK/pb.yaml"
  expect_rc 0 next
  ifaces t-p3 live | grep -q "^$a " || fail "t-p3 did not get $a: $(ifaces t-p3 live)"
  [ "$(ifaces t-p3 config | wc -l)" = "$want" ] || fail "t-p3 has not $want VFs: $(ifaces t-p3 config)"
  expect_iface t-p2 live "$b $MAC2 -"
  note "lx-x86's VF $a went to t-p3 on the next run"
  zr last plan "$WORK/pb.yaml"
  expect_rc 0 last
  pass
}

pass() { exit 0; }
# A line for the results summary (how a detach was confirmed, ...).
note() { echo "NOTE: $*"; }

# ---- running ---------------------------------------------------------------------------------

QUICK_SCENARIOS="s390x_attach x86_attach refuses atomic config_only held_live iface_not_vf export_live iommu_group"
SRIOV_SCENARIOS="sriov_hostdev_vf sriov_s390x_interface sriov_interface_live sriov_interface_change sriov_interface_detach sriov_move sriov_pool sriov_refusals"
LINUX_SCENARIOS="x86_linux move s390x_linux sriov_interface_live sriov_interface_change sriov_interface_detach sriov_move sriov_pool"
FULL_SCENARIOS="$QUICK_SCENARIOS x86_linux move s390x_linux"

# Destroy and undefine every per-scenario guest (t-*).
cleanup_guests() {
  local d
  for d in $(V list --all --name | grep '^t-'); do
    V destroy "$d" >/dev/null 2>&1
    V undefine "$d" >/dev/null 2>&1
  done
}

run_all() {
  local list name t0 rc reason limit
  if [ -n "${SCENARIOS-}" ]; then
    list=$SCENARIOS
  elif [ "$MODE" = quick ]; then
    list=$QUICK_SCENARIOS
  elif [ "$MODE" = sriov ]; then
    list=$SRIOV_SCENARIOS
  else
    list=$FULL_SCENARIOS
  fi
  start_linux_guests "${list//-/_}"
  for name in $list; do
    name=${name//-/_}
    if ! declare -F "scenario_$name" >/dev/null; then
      echo "FAIL $name 0 no such scenario" >>"$X/results"
      continue
    fi
    echo "live-lab: scenario $name"
    t0=$SECONDS
    limit=${SCENARIO_TIMEOUT:-420}
    case " $LINUX_SCENARIOS " in *" $name "*) limit=$((limit + ${LINUX_BOOT_TIMEOUT:-1500})) ;; esac
    timeout -k 10 "$limit" bash "$0" one "$name" >"$X/logs/$name.log" 2>&1
    rc=$?
    sed -n '1,200p' "$X/logs/$name.log"
    if [ "$rc" = 0 ]; then
      echo "PASS $name $((SECONDS - t0)) $(sed -n 's/^NOTE: //p' "$X/logs/$name.log" | tr '\n' ' ')" >>"$X/results"
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
