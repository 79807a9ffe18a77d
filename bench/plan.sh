#!/bin/bash
# How fast is `plan` on a big host?  Defines N s390x guests (default 1000),
# each with one PCI hostdev, in a real libvirtd (qemu:///system, as root),
# then prints, measured in the same run:
#   - a bare loop of libvirt calls on one connection (bench/xmldesc-loop.c:
#     lookup, IsActive, persistent XML) - the baseline a plan cannot beat by
#     much with one connection;
#   - (VIRSH=1) a `virsh dumpxml --inactive` loop over the same guests (one
#     virsh per guest, what a shell script would do);
#   - `zpci-reconcile plan` (one host: its guests are read by ZR_READ_THREADS
#     threads, reconciler/host.h; -j counts hosts, bench/fleet.sh);
#   - the floor (bench/xmldesc-loop.c -t): one domain listing and one
#     persistent XMLDesc per listed guest from as many threads as the tool
#     reads with, no parsing (issue 17: plan should be at most 1.3x this);
#   - the loop a user writes (bench/python-loop.py, python3-libvirt:
#     lookupByName + XMLDesc; plan should be at most 0.5x this);
# each the fastest of REPEAT (3) whole-process runs, then plan's ratios.
# Usage: bench/plan.sh [N] [BUILDDIR]   (guests are named zrplan-NNNN and
# removed at the end; set KEEP=1 to keep them for a second run; VIRSH=1 adds
# the virsh loop, one virsh per guest).
# SYNC=1: the inventory wants each guest as it is (plan has nothing to do,
# the steady state); CHECK=1: run the host check too (no --no-host-check);
# ZR_BIN=PATH: time another zpci-reconcile binary (an older build).
set -euo pipefail

n=${1:-1000}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$top/build}
uri=qemu:///system
zr=${ZR_BIN:-$build/reconciler/zpci-reconcile}
loop="$build/bench/xmldesc-loop"
[ -x "$zr" ] && [ -x "$loop" ] || { echo "build first: meson setup build && ninja -C build" >&2; exit 1; }

bash "$top/tests/start-libvirtd.sh" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

names=()
for i in $(seq -f %04g 1 "$n"); do names+=("zrplan-$i"); done

if ! virsh -q -c "$uri" domstate "zrplan-$(printf %04d "$n")" >/dev/null 2>&1; then
    echo "defining $n guests ..." >&2
    cmds=""
    for name in "${names[@]}"; do
        dom=$(( (10#${name#zrplan-}) ))
        cat > "$work/$name.xml" <<XML
<domain type='qemu'><name>$name</name><memory unit='KiB'>131072</memory><vcpu>1</vcpu>
<os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-s390x</emulator>
<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>
<source><address domain='$(printf 0x%04x "$dom")' bus='0x00' slot='0x00' function='0x0'/></source>
<address type='pci'><zpci uid='0x0001' fid='0x00000000'/></address></hostdev>
</devices></domain>
XML
        cmds+="define $work/$name.xml;"
    done
    virsh -q -c "$uri" "$cmds" >/dev/null
fi

# The inventory wants each guest as it is, with another uid, so plan has
# real work: one replacement per guest.
{
    echo "version: 1"
    echo "guests:"
    for name in "${names[@]}"; do
        dom=$(( (10#${name#zrplan-}) ))
        printf '  %s:\n    hostdevs:\n      - source: %04x:00:00.0\n        zpci: {uid: %d}\n' \
            "$name" "$dom" "$(( ${SYNC:-0} == 1 ? 1 : 2 ))"
    done
} > "$work/inventory.yaml"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# wall time of the fastest of REPEAT runs (default 3) of a whole process
timed() {
    local best="" t0 t1 e
    for _ in $(seq 1 "${REPEAT:-3}"); do
        t0=$(now); "$@" >/dev/null 2>&1 || [ $? -eq 2 ]; t1=$(now)
        e=$(elapsed "$t0" "$t1")
        if [ -z "$best" ] || awk -v a="$e" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$e; fi
    done
    echo "$best"
}

# The tool reads a host's guests on ZR_READ_THREADS threads (reconciler/host.h);
# the floor uses as many.
threads=$(awk '/#define ZR_READ_THREADS/ { print $3 }' "$top/reconciler/host.h")
check=(--no-host-check)
[ "${CHECK:-0}" = 1 ] && check=()

api=$(timed "$loop" "$uri" "${names[@]}")
floor=$(timed "$loop" -t "$threads" "$uri")
py=""
if /usr/bin/python3 -c 'import libvirt' 2>/dev/null; then
    py=$(timed /usr/bin/python3 "$top/bench/python-loop.py" "$uri" "${names[@]}")
fi
dumpxml=""
if [ "${VIRSH:-0}" = 1 ]; then
    t0=$(now)
    for name in "${names[@]}"; do virsh -q -c "$uri" dumpxml --inactive "$name" >/dev/null; done
    t1=$(now); dumpxml=$(elapsed "$t0" "$t1")
fi
plan=$(timed "$zr" plan -q "${check[@]}" -c "$uri" "$work/inventory.yaml")
others=$(virsh -q -c "$uri" list --all --name | grep -vc '^zrplan-' || true)

printf '%-52s %8s\n' "guests (plan: $([ "${SYNC:-0}" = 1 ] && echo in sync || echo one replacement each))" "$n"
printf '%-52s %8s\n' "other guests on the host (read by the conflict check)" "$others"
printf '%-52s %8.3f s\n' "C loop: lookup + IsActive + XMLDesc, one connection" "$api"
printf '%-52s %8.3f s\n' "C floor: 1 listing + XMLDesc per guest, $threads threads" "$floor"
[ -n "$py" ] && printf '%-52s %8.3f s\n' "python-libvirt loop: lookupByName + XMLDesc" "$py"
[ -n "$dumpxml" ] && printf '%-52s %8.3f s\n' "virsh dumpxml --inactive loop" "$dumpxml"
printf '%-52s %8.3f s\n' "zpci-reconcile plan ${check[*]}" "$plan"
printf '%-52s %8s x  (target <= 1.3)\n' "  plan / C floor" "$(ratio "$plan" "$floor")"
if [ -n "$py" ]; then
    printf '%-52s %8s x  (target <= 0.5)\n' "  plan / python-libvirt loop" "$(ratio "$plan" "$py")"
else
    echo "  (no python3-libvirt for /usr/bin/python3: apt-get install python3-libvirt)"
fi

if [ "${KEEP:-0}" != 1 ]; then
    cmds=""
    for name in "${names[@]}"; do cmds+="undefine $name;"; done
    virsh -q -c "$uri" "$cmds" >/dev/null
fi
