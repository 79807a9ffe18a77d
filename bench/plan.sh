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
#     reads with, no parsing (issue 27: plan should be at most 1.15x this);
#   - the loop a user writes (bench/python-loop.py, python3-libvirt:
#     lookupByName + XMLDesc; issue 27: plan should be at most 0.45x this);
# each the least and the median wall and CPU time of REPEAT (5) interleaved
# rounds of whole-process runs, then plan's ratios; first, how many other guests the
# host has (the plan and the floor read them too: a warning when there are).
# Usage: bench/plan.sh [N] [BUILDDIR]   (guests are named zrplan-NNNN and
# removed at the end; set KEEP=1 to keep them for a second run; VIRSH=1 adds
# the virsh loop, one virsh per guest).
# SYNC=1: the inventory wants each guest as it is (plan has nothing to do,
# the steady state); CHECK=1: run the host check too (no --no-host-check);
# ZR_BIN=PATH: time another zpci-reconcile binary (an older build);
# ZR_BASE=PATH: time another one beside it in the same rounds (a baseline);
# OTHERS=M: also define M guests without devices that the inventory does
# not name (zrplanx-NNNN; removed with the others).
# PIN=CPU: run every contender on that one CPU (taskset), the daemon where
# the kernel puts it: on a small VM, client threads spread over every CPU
# cost both sides more than their own work does (docs/design.md,
# "Performance (issue 27)", third round).
# Each run's daemon CPU is taken from libvirtd's threads (/proc/PID/task/*/
# schedstat, nanoseconds) before and after it: the last columns, and the
# closing lines that add it to the contender's own CPU.  When client and
# daemon together keep every CPU busy, the wall ratio of two contenders
# follows the ratio of those sums, whatever either does to go faster
# (docs/design.md, "Performance (issue 27)", fifth round).
set -euo pipefail

n=${1:-1000}
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
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
    define_hostdev_guests "$uri" "$work" 00 "${names[@]}"
fi

# OTHERS=M: M more guests the inventory does not name, without devices (a
# host's usual guests): the conflict check must read them, not parse them.
n_others=${OTHERS:-0}
extra=()
for i in $(seq -f %04g 1 "$n_others"); do extra+=("zrplanx-$i"); done
if [ "$n_others" -gt 0 ] && ! virsh -q -c "$uri" domstate "${extra[-1]}" >/dev/null 2>&1; then
    echo "defining $n_others other guests ..." >&2
    for name in "${extra[@]}"; do
        cat > "$work/$name.xml" <<XML
<domain type='qemu'><name>$name</name><memory unit='KiB'>131072</memory><vcpu>1</vcpu>
<os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-s390x</emulator></devices></domain>
XML
        echo "define $work/$name.xml"
    done | virsh_batch "$uri"
fi

# The inventory wants each guest as it is, with another uid, so plan has
# real work: one replacement per guest.
{
    echo "version: 1"
    echo "guests:"
    for name in "${names[@]}"; do
        printf '  %s:\n    hostdevs:\n      - source: %s:00:00.0\n        zpci: {uid: %d}\n' \
            "$name" "$(function_domain "$name")" "$(( ${SYNC:-0} == 1 ? 1 : 2 ))"
    done
} > "$work/inventory.yaml"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# One whole-process run: "WALL CPU" in seconds (CPU: user + system time of
# the process and its children, not the daemon's).  Exit 2 is plan's "changes".
run_once() {
    local TIMEFORMAT='%3R %3U %3S' t
    t=$( { time { "$@" >/dev/null 2>&1 || [ $? -eq 2 ]; }; } 2>&1 )
    awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' <<<"$t"
}
daemon_pid=$(cat /run/libvirtd.pid 2>/dev/null || true)
# The contenders' runs are interleaved (one of each per round, REPEAT
# rounds, default 5), so a burst of other work on the machine hits them
# alike; each figure is the least and the median of its rounds, wall and CPU
# separately.
declare -A samples
pin=()
[ -n "${PIN:-}" ] && pin=(taskset -c "$PIN")
contend() { # KEY COMMAND...
    local key=$1 d0 r d1
    shift
    d0=$(daemon_cpu_ns)
    r=$(run_once "${pin[@]}" "$@")
    d1=$(daemon_cpu_ns)
    samples[$key]+="$r $(awk -v a="$d0" -v b="$d1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"$'\n'
}
# stat KEY COLUMN(1 wall, 2 cpu, 3 daemon cpu) least|median
stat() {
    printf '%s' "${samples[$1]}" | awk -v c="$2" '{ print $c }' | sort -n |
        awk -v m="$3" '{ v[NR] = $1 } END { print (m == "least") ? v[1] : v[int((NR + 1) / 2)] }'
}

# The tool reads a host's guests on ZR_READ_THREADS threads (reconciler/host.h);
# the floor uses as many.
threads=$(awk '/#define ZR_READ_THREADS/ { print $3 }' "$top/reconciler/host.h")
check=(--no-host-check)
[ "${CHECK:-0}" = 1 ] && check=()
py=0
/usr/bin/python3 -c 'import libvirt' 2>/dev/null && py=1

# Every guest of the host is read by the conflict check (and by the floor),
# the named ones only by the loops: other guests skew the ratios.
others=$(virsh -q -c "$uri" list --all --name | grep -v '^zrplan-' | grep -c . || true)
foreign=$(( others - n_others ))
[ "$foreign" -gt 0 ] &&
    echo "warning: the host has $foreign guests this benchmark did not define; the plan and the floor read them, the loops do not" >&2
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for _ in $(seq 1 "${REPEAT:-5}"); do
    contend api "$loop" "$uri" "${names[@]}"
    contend floor "$loop" -t "$threads" "$uri"
    [ "$py" = 1 ] && contend py /usr/bin/python3 "$top/bench/python-loop.py" "$uri" "${names[@]}"
    contend plan "$zr" plan -q "${check[@]}" -c "$uri" "$work/inventory.yaml"
    [ -n "${ZR_BASE:-}" ] && contend base "$ZR_BASE" plan -q "${check[@]}" -c "$uri" "$work/inventory.yaml"
done
dumpxml=""
if [ "${VIRSH:-0}" = 1 ]; then
    read -r dumpxml _ < <(run_once bash -c 'for n in "${@:2}"; do virsh -q -c "$1" dumpxml --inactive "$n"; done' _ "$uri" "${names[@]}")
fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)

line() {
    printf '%-52s %8.3f s %8.3f s %8.3f s %8.3f s %8.3f s\n' "$1" "$(stat "$2" 1 least)" \
        "$(stat "$2" 2 least)" "$(stat "$2" 1 median)" "$(stat "$2" 2 median)" "$(stat "$2" 3 median)"
}
# The median of each round's own CPU plus the daemon's, in seconds.
both() {
    printf '%s' "${samples[$1]}" | awk '{ print $2 + $3 }' | sort -n |
        awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] }'
}
ratios() { # LABEL KEY TARGET
    local m r=()
    for m in least median; do
        r+=("$(ratio "$(stat plan 1 $m)" "$(stat "$2" 1 $m)")" "$(ratio "$(stat plan 2 $m)" "$(stat "$2" 2 $m)")")
    done
    printf '%-52s %8s x %8s x %8s x %8s x  (target <= %s, wall)\n' "$1" "${r[@]}" "$3"
}
echo "load average $load0 (start), $load1 (end); $(nproc) CPUs; ${REPEAT:-5} interleaved rounds${PIN:+; every contender on CPU $PIN}"
printf '%-52s %10s %10s %10s %10s %10s\n' "" "least wall" "cpu" "median wall" "cpu" "daemon cpu"
printf '%-52s %8s\n' "guests (plan: $([ "${SYNC:-0}" = 1 ] && echo in sync || echo one replacement each))" "$n"
printf '%-52s %8s\n' "other guests on the host (read by the conflict check)" "$others"
printf '%-52s %8s\n' "  of which defined by this run, without devices" "$n_others"
line "C loop: lookup + IsActive + XMLDesc, one connection" api
line "C floor: 1 listing + XMLDesc per guest, $threads threads" floor
[ "$py" = 1 ] && line "python-libvirt loop: lookupByName + XMLDesc" py
[ -n "$dumpxml" ] && printf '%-52s %8.3f s\n' "virsh dumpxml --inactive loop" "$dumpxml"
line "zpci-reconcile plan ${check[*]}" plan
[ -n "${ZR_BASE:-}" ] && line "  the same, baseline build (ZR_BASE)" base
ratios "  plan / C floor" floor 1.15
if [ "$py" = 1 ]; then
    ratios "  plan / python-libvirt loop" py 0.45
else
    echo "  (no python3-libvirt for /usr/bin/python3: apt-get install python3-libvirt)"
fi
cpus=$(nproc)
if [ -n "$daemon_pid" ]; then
    printf '%-52s %8.3f s %8.3f s  (medians; / %d CPUs: %.3f s, %.3f s)\n' \
        "CPU of a run, own + daemon's: floor, plan" "$(both floor)" "$(both plan)" "$cpus" \
        "$(awk -v a="$(both floor)" -v n="$cpus" 'BEGIN { print a / n }')" \
        "$(awk -v a="$(both plan)" -v n="$cpus" 'BEGIN { print a / n }')"
    printf '%-52s %8s x\n' "  plan / C floor, CPU with the daemon's" "$(ratio "$(both plan)" "$(both floor)")"
else
    echo "  (no /run/libvirtd.pid: the daemon's CPU is not counted)"
fi

if [ "${KEEP:-0}" != 1 ]; then
    for name in "${names[@]}" "${extra[@]}"; do echo "undefine $name"; done | virsh_batch "$uri"
fi
