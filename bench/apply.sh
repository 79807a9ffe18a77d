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
#   - the same loop split over as many threads as apply's pool;
#   - the floor as issue 27 defines it (bench/apply-floor.c): the same
#     calls from as many threads in C, what the daemon does with that many
#     calls in flight and a client that costs next to nothing;
#   - zpci-reconcile apply -q --no-host-check with one worker
#     (ZPCI_RECONCILE_APPLY_THREADS=1: every action in turn);
#   - the same with the default pool (ZR_APPLY_THREADS in reconciler/apply.h);
#   - the same again once in sync (nothing to do).
# Beside each figure, the CPU time libvirtd's threads used in that round
# (bench/lib.sh, daemon_cpu_ns): about 1 ms per mutating call, which on a
# small machine is what bounds every contender (docs/design.md, "Speed of
# apply").
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
cfloor="$build/bench/apply-floor"
seq_zr=${ZR_BIN:-$zr}
shim="$build/tests/libzr-fault.so"
py=/usr/bin/python3
repeat=${REPEAT:-3}
prefix=zrapply
[ -x "$zr" ] && [ -x "$seq_zr" ] && [ -x "$cfloor" ] || { echo "build first: meson setup build -Dtests=true && meson compile -C build" >&2; exit 1; }
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

# apply's conflict check reads every other guest of the host (the loops
# do not): other benchmarks' guests left on the daemon slow its rounds,
# most visibly the in-sync one.
foreign=$(virsh -q -c "$uri" list --all --name | grep -v "^$prefix-" | grep -c . || true)
[ "$foreign" -gt 0 ] &&
    echo "warning: the host has $foreign guests this benchmark did not define; apply's conflict check reads them, the loops do not" >&2

now() { date +%s.%N; }
# dnow: the daemon's CPU so far, in seconds.
dnow() { awk -v n="$(daemon_cpu_ns)" 'BEGIN { printf "%.3f", n / 1e9 }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# best KEY SECONDS DAEMON_SECONDS: keeps the fastest round of KEY and the
# daemon's CPU in it (best_s[KEY], best_d[KEY]).
declare -A best_s best_d
best() {
    if [ -z "${best_s[$1]:-}" ] || awk -v a="$2" -v b="${best_s[$1]}" 'BEGIN { exit !(a < b) }'; then
        best_s[$1]=$2
        best_d[$1]=$3
    fi
}

# zr BINARY THREADS INVENTORY: runs apply with the shim counting; sets
# $secs, $dsecs (the daemon's CPU meanwhile) and $calls ("ATTACHES
# DETACHES"); fails unless apply succeeded.
zr() {
    rm -f "$work/counts"
    local t0 t1 d0 rc=0
    d0=$(dnow)
    t0=$(now)
    env LD_PRELOAD="$shim" ZR_FAULT_COUNTS="$work/counts" ZPCI_RECONCILE_APPLY_THREADS="$2" \
        "$1" apply -q --no-host-check -c "$uri" "$3" >"$work/out" 2>&1 || rc=$?
    t1=$(now)
    secs=$(elapsed "$t0" "$t1")
    dsecs=$(elapsed "$d0" "$(dnow)")
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
seq_calls='' par_calls='' sync_calls=''
# py_loop KEY [THREADS]: one timed run of the python loop.
py_loop() {
    local key=$1 t0 t1 d0
    shift
    d0=$(dnow); t0=$(now)
    "$py" "$top/bench/apply-loop.py" "$uri" "$prefix" "$n" e0 e1 "$@"
    t1=$(now)
    best "$key" "$(elapsed "$t0" "$t1")" "$(elapsed "$d0" "$(dnow)")"
}
for round in $(seq 1 "$repeat"); do
    py_loop loop
    zr "$zr" "" "$work/at0.yaml"; expect_calls "reset" "$n $n"

    py_loop pythreads "$threads"
    zr "$zr" "" "$work/at0.yaml"; expect_calls "reset" "$n $n"

    d0=$(dnow); t0=$(now)
    "$cfloor" "$uri" "$prefix" "$n" e0 e1 "$threads"
    best floor "$(elapsed "$t0" "$(now)")" "$(elapsed "$d0" "$(dnow)")"
    zr "$zr" "" "$work/at0.yaml"; expect_calls "reset" "$n $n"

    zr "$seq_zr" 1 "$work/at1.yaml"; best seq "$secs" "$dsecs"
    [ -n "${ZR_BIN:-}" ] || expect_calls "sequential apply" "$n $n"
    seq_calls=$calls
    zr "$zr" "" "$work/at0.yaml"; expect_calls "reset" "$n $n"

    zr "$zr" "" "$work/at1.yaml"; best par "$secs" "$dsecs"
    expect_calls "parallel apply" "$n $n"; par_calls=$calls
    zr "$zr" "" "$work/at1.yaml"; best sync "$secs" "$dsecs"
    expect_calls "apply in sync" "0 0"; sync_calls=$calls
    zr "$zr" "" "$work/at0.yaml"; expect_calls "reset" "$n $n"
done
loop=${best_s[loop]}
echo "load after:  $(uptime)"

workers=$(virt-admin -q srv-threadpool-info libvirtd 2>/dev/null | awk '$1 == "maxWorkers" { print $3 }' || true)
echo "machine: $(nproc) cores, $(uname -r), libvirtd maxWorkers ${workers:-unknown}; best of $repeat rounds"
echo "$n guests, $n detaches + $n attaches (--config, inactive guests)"
echo
printf '| %-52s | %8s | %8s | %10s | %-22s |\n' "what" "seconds" "ratio" "daemon cpu" "calls (attach detach)"
printf '| %-52s | %8s | %8s | %10s | %-22s |\n' "---" "---" "---" "---" "---"
row() { # LABEL KEY CALLS
    printf '| %-52s | %8.3f | %8s | %8.3f s | %-22s |\n' "$1" "${best_s[$2]}" \
        "$(ratio "${best_s[$2]}" "$loop")" "${best_d[$2]}" "$3"
}
row "bare python-libvirt loop (baseline)" loop "$n $n"
row "the same loop on $threads threads" pythreads "$n $n"
row "the same calls from $threads threads in C (floor)" floor "$n $n"
row "zpci-reconcile apply, 1 worker${ZR_BIN:+ (ZR_BIN)}" seq "$seq_calls"
row "zpci-reconcile apply, $threads workers" par "$par_calls"
row "zpci-reconcile apply in sync (nothing to do)" sync "$sync_calls"
echo
echo "apply, $threads workers / the C floor: $(ratio "${best_s[par]}" "${best_s[floor]}") x (issue 27: at most 1.2); / the python loop: $(ratio "${best_s[par]}" "$loop") x (at most 0.5)"
