#!/bin/bash
# How fast is `plan` on a big host?  Defines N s390x guests (default 1000),
# each with one PCI hostdev, in a real libvirtd (qemu:///system, as root),
# then prints, measured in the same run:
#   - a bare loop of libvirt calls on one connection (bench/xmldesc-loop.c:
#     lookup, IsActive, persistent XML) - the baseline a plan cannot beat by
#     much with one connection;
#   - a `virsh dumpxml --inactive` loop over the same guests (one virsh per
#     guest, what a shell script would do);
#   - `zpci-reconcile plan` (one host: its guests are read by READ_THREADS
#     threads, see reconciler/main.c; -j counts hosts, bench/fleet.sh).
# Usage: bench/plan.sh [N] [BUILDDIR]   (guests are named zrbench-NNNN and
# removed at the end; set KEEP=1 to keep them for a second run).
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
for i in $(seq -f %04g 1 "$n"); do names+=("zrbench-$i"); done

if ! virsh -q -c "$uri" domstate "zrbench-$(printf %04d "$n")" >/dev/null 2>&1; then
    echo "defining $n guests ..." >&2
    cmds=""
    for name in "${names[@]}"; do
        dom=$(( (10#${name#zrbench-}) ))
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
        dom=$(( (10#${name#zrbench-}) ))
        printf '  %s:\n    hostdevs:\n      - source: %04x:00:00.0\n        zpci: {uid: %d}\n' \
            "$name" "$dom" "$(( ${SYNC:-0} == 1 ? 1 : 2 ))"
    done
} > "$work/inventory.yaml"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

t0=$(now); "$loop" "$uri" "${names[@]}" >/dev/null 2>&1; t1=$(now)
api=$(elapsed "$t0" "$t1")
t0=$(now)
for name in "${names[@]}"; do virsh -q -c "$uri" dumpxml --inactive "$name" >/dev/null; done
t1=$(now); dumpxml=$(elapsed "$t0" "$t1")
check=(--no-host-check)
[ "${CHECK:-0}" = 1 ] && check=()
t0=$(now); "$zr" plan -q "${check[@]}" -c "$uri" "$work/inventory.yaml" >/dev/null || [ $? -eq 2 ]; t1=$(now)
plan=$(elapsed "$t0" "$t1")

printf '%-42s %8s s\n' "guests" "$n"
printf '%-42s %8.3f s\n' "bare API loop (baseline, in-process)" "$api"
printf '%-42s %8.3f s\n' "virsh dumpxml --inactive loop" "$dumpxml"
printf '%-42s %8.3f s  (%.2fx baseline)\n' "zpci-reconcile plan (whole process)" "$plan" "$(ratio "$plan" "$api")"

if [ "${KEEP:-0}" != 1 ]; then
    cmds=""
    for name in "${names[@]}"; do cmds+="undefine $name;"; done
    virsh -q -c "$uri" "$cmds" >/dev/null
fi
