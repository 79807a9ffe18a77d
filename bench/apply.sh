#!/bin/bash
# How fast is `apply` on a big host?  Defines N inactive s390x guests
# (default 1000) named zrapply-NNNN in the real libvirtd (qemu:///system, as
# root), each holding one zPCI hostdev DDDD:e0:00.0 (DDDD: NNNN in hex,
# bench/lib.sh; uid 1, fid 0; bus e0/e1
# so that other benchmarks' guests on the shared daemon hold other
# functions), and times, side by side in this one run, moving every guest to
# DDDD:e1:00.0 with the same zPCI ids: N detaches + N attaches (--config), by
#   - bench/apply-loop.py: the bare sequential python-libvirt loop a user
#     would write (lookupByName + XMLDesc, then detach + attach), the
#     baseline;
#   - the same loop split over as many threads as apply's pool: what the
#     daemon does with that many calls in flight (the floor);
#   - zpci-reconcile apply -q --no-host-check with one worker
#     (ZPCI_RECONCILE_APPLY_THREADS=1: every action in turn);
#   - the same with the default pool (ZR_APPLY_THREADS in reconciler/apply.h);
#   - the same again once in sync (nothing to do).
# Each zpci-reconcile run has the fault shim (tests/fault/zr-fault.c)
# preloaded to count its mutating calls: the table shows them, and the
# script fails unless there is exactly one per action and none in sync.
# Between timed runs the guests are put back (an untimed apply).
# Usage: bench/apply.sh [N] [BUILDDIR]; REPEAT=3 rounds (the fastest of each
# counts); KEEP=1 keeps the guests; ZR_BIN=PATH times another binary as
# "sequential" instead of this one with one worker (an older build).
set -euo pipefail

n=${1:-1000}
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
build=${2:-$top/build}
uri=qemu:///system
zr="$build/reconciler/zpci-reconcile"
seq_zr=${ZR_BIN:-$zr}
shim="$build/tests/libzr-fault.so"
py=/usr/bin/python3
repeat=${REPEAT:-3}
prefix=zrapply
[ -x "$zr" ] && [ -x "$seq_zr" ] || { echo "build first: meson setup build -Dtests=true && meson compile -C build" >&2; exit 1; }
[ -f "$shim" ] || { echo "needs the fault shim: meson setup build -Dtests=true" >&2; exit 1; }
"$py" -c 'import libvirt' 2>/dev/null || { echo "needs python3-libvirt (apt-get install python3-libvirt)" >&2; exit 1; }

bash "$top/tests/start-libvirtd.sh" >/dev/null
work=$(mktemp -d)
names=()
for i in $(seq -f %04g 1 "$n"); do names+=("$prefix-$i"); done
cleanup() {
    if [ "${KEEP:-0}" != 1 ]; then
        local name
        for name in "${names[@]}"; do echo "undefine $name"; done | virsh_batch "$uri" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# inventory BUS: every guest wants NNNN:BUS:00.0 with uid 1, fid 0.
inventory() {
    echo "version: 1"
    echo "guests:"
    for name in "${names[@]}"; do
        printf '  %s:\n    hostdevs:\n      - source: %s:%s:00.0\n        zpci: {uid: 1, fid: 0}\n' \
            "$name" "$(function_domain "$name")" "$1"
    done
}
inventory e0 >"$work/at0.yaml"
inventory e1 >"$work/at1.yaml"

if ! virsh -q -c "$uri" domstate "${names[-1]}" >/dev/null 2>&1; then
    echo "defining $n guests ..." >&2
    define_hostdev_guests "$uri" "$work" e0 "${names[@]}"
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

# zr BINARY THREADS INVENTORY: runs apply with the shim counting; sets
# $secs and $calls ("ATTACHES DETACHES"); fails unless apply succeeded.
zr() {
    rm -f "$work/counts"
    local t0 t1 rc=0
    t0=$(now)
    env LD_PRELOAD="$shim" ZR_FAULT_COUNTS="$work/counts" ZPCI_RECONCILE_APPLY_THREADS="$2" \
        "$1" apply -q --no-host-check -c "$uri" "$3" >"$work/out" 2>&1 || rc=$?
    t1=$(now)
    secs=$(elapsed "$t0" "$t1")
    if [ "$rc" != 0 ]; then
        echo "apply failed (exit $rc):" >&2
        head -20 "$work/out" >&2
        exit 1
    fi
    calls="$(awk '$1 == "virDomainAttachDeviceFlags" { print $2 }' "$work/counts" || true) $(awk '$1 == "virDomainDetachDeviceFlags" { print $2 }' "$work/counts" || true)"
    calls=$(echo "$calls" | awk '{ printf "%d %d", $1, $2 }')
}

# expect_calls WHAT "A D"
expect_calls() {
    [ "$calls" = "$2" ] || { echo "$1: mutating calls (attach detach) $calls, expected $2" >&2; exit 1; }
}

# The guests may be left at bus e1 by an interrupted run: start from e0.
zr "$zr" "" "$work/at0.yaml"

threads=$(sed -n 's/^#define ZR_APPLY_THREADS \([0-9]*\).*/\1/p' "$top/reconciler/apply.h")
echo "load before: $(uptime)"
loop='' floor='' seq='' par='' sync='' seq_calls='' par_calls='' sync_calls=''
for round in $(seq 1 "$repeat"); do
    t0=$(now); "$py" "$top/bench/apply-loop.py" "$uri" "$prefix" "$n" e0 e1; t1=$(now)
    loop=$(min "$loop" "$(elapsed "$t0" "$t1")")
    zr "$zr" "" "$work/at0.yaml"; expect_calls "reset" "$n $n"

    t0=$(now); "$py" "$top/bench/apply-loop.py" "$uri" "$prefix" "$n" e0 e1 "$threads"; t1=$(now)
    floor=$(min "$floor" "$(elapsed "$t0" "$t1")")
    zr "$zr" "" "$work/at0.yaml"; expect_calls "reset" "$n $n"

    zr "$seq_zr" 1 "$work/at1.yaml"; seq=$(min "$seq" "$secs")
    [ -n "${ZR_BIN:-}" ] || expect_calls "sequential apply" "$n $n"
    seq_calls=$calls
    zr "$zr" "" "$work/at0.yaml"; expect_calls "reset" "$n $n"

    zr "$zr" "" "$work/at1.yaml"; par=$(min "$par" "$secs")
    expect_calls "parallel apply" "$n $n"; par_calls=$calls
    zr "$zr" "" "$work/at1.yaml"; sync=$(min "$sync" "$secs")
    expect_calls "apply in sync" "0 0"; sync_calls=$calls
    zr "$zr" "" "$work/at0.yaml"; expect_calls "reset" "$n $n"
done
echo "load after:  $(uptime)"

workers=$(virt-admin -q srv-threadpool-info libvirtd 2>/dev/null | awk '$1 == "maxWorkers" { print $3 }' || true)
echo "machine: $(nproc) cores, $(uname -r), libvirtd maxWorkers ${workers:-unknown}; best of $repeat rounds"
echo "$n guests, $n detaches + $n attaches (--config, inactive guests)"
echo
printf '| %-52s | %8s | %8s | %-22s |\n' "what" "seconds" "ratio" "calls (attach detach)"
printf '| %-52s | %8s | %8s | %-22s |\n' "---" "---" "---" "---"
printf '| %-52s | %8.3f | %8s | %-22s |\n' "bare python-libvirt loop (baseline)" "$loop" "1.00" "$n $n"
printf '| %-52s | %8.3f | %8s | %-22s |\n' "the same loop on $threads threads (floor)" "$floor" "$(ratio "$floor" "$loop")" "$n $n"
printf '| %-52s | %8.3f | %8s | %-22s |\n' "zpci-reconcile apply, 1 worker${ZR_BIN:+ (ZR_BIN)}" "$seq" "$(ratio "$seq" "$loop")" "$seq_calls"
printf '| %-52s | %8.3f | %8s | %-22s |\n' "zpci-reconcile apply, $threads workers" "$par" "$(ratio "$par" "$loop")" "$par_calls"
printf '| %-52s | %8.3f | %8s | %-22s |\n' "zpci-reconcile apply in sync (nothing to do)" "$sync" "$(ratio "$sync" "$loop")" "$sync_calls"
