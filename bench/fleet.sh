#!/bin/bash
# Does a fleet plan scale linearly?  Builds two fleets of s390x guests in
# embedded roots (qemu:///embed, no daemon), N and 2N guests spread over
# HOSTS roots, each guest with one PCI hostdev the inventory wants with
# another zPCI uid (one replacement each, so plan has real work), and prints
# for each size the wall time and max RSS of
#   - validate (no libvirt) on the inventory of N and 2N guests,
#   - plan (text and -o json) of the whole fleet, hosts in parallel (-j),
# and the 2N/N ratios: about 2 is linear, about 4 quadratic.
# Usage: bench/fleet.sh [N] [HOSTS] [BUILDDIR]   (defaults 2500, 4, build);
# REPEAT=3 runs of each command, the fastest counts.
# Run as root (libvirt's QEMU driver wants it); everything lives in a
# temporary directory removed at the end (KEEP=1 keeps it).
set -euo pipefail

n=${1:-2500}
hosts=${2:-4}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${3:-$top/build}
zr="$build/reconciler/zpci-reconcile"
[ -x "$zr" ] || { echo "build first: meson setup build && ninja -C build" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time (Debian package time)" >&2; exit 1; }
bash "$top/tests/start-libvirtd.sh" --prepare-only

work=$(mktemp -d /tmp/zrfleet-bench.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

# fleet SIZE: HOSTS roots under $work/SIZE, guests zrfleet-HOST-NNNNN, and
# the inventory $work/SIZE.yaml.
fleet() {
    local size=$1 per=$(( $1 / hosts )) h i dom
    mkdir -p "$work/$size"
    {
        echo "version: 1"
        echo "hosts:"
    } >"$work/$size.yaml"
    for h in $(seq 1 "$hosts"); do
        local root="$work/$size/root$h" cmds=""
        mkdir -p "$root/etc" "$work/$size/xml$h"
        printf 'user = "root"\ngroup = "root"\n' >"$root/etc/qemu.conf"
        printf '  host%d:\n    uri: qemu:///embed?root=%s\n    guests:\n' "$h" "$root" >>"$work/$size.yaml"
        for i in $(seq 1 "$per"); do
            dom=$(printf '0x%04x' "$i")
            cat >"$work/$size/xml$h/$i.xml" <<XML
<domain type='qemu'><name>zrfleet-$h-$i</name><memory unit='KiB'>131072</memory><vcpu>1</vcpu>
<os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-s390x</emulator>
<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>
<source><address domain='$dom' bus='0x00' slot='0x00' function='0x0'/></source>
<address type='pci'><zpci uid='0x0001' fid='0x00000000'/></address></hostdev>
</devices></domain>
XML
            cmds+="define $work/$size/xml$h/$i.xml;"
            printf '      zrfleet-%d-%d:\n        hostdevs:\n          - source: %s:00:00.0\n            zpci: {uid: 2}\n' \
                "$h" "$i" "${dom#0x}" >>"$work/$size.yaml"
        done
        virsh -q -c "qemu:///embed?root=$root" "$cmds" >/dev/null
    done
}

# measure CMD...: runs CMD $repeat times, prints "seconds cpu_seconds
# max_rss_kib": the fastest wall time and the least CPU time (user + system,
# children included; steadier than wall time when the machine is busy with
# other work), and the largest RSS.  plan exits 2 (changes pending), which
# is what is measured.
repeat=${REPEAT:-3}
measure() {
    local i best="" cpu="" rss=0 t u s m
    for i in $(seq 1 "$repeat"); do
        /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >/dev/null 2>&1 || true
        read -r t u s m <<<"$(tail -n 1 "$work/time")"
        best=$(awk -v a="$best" -v b="$t" 'BEGIN { print (a == "" || b < a) ? b : a }')
        cpu=$(awk -v a="$cpu" -v b="$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')" \
            'BEGIN { print (a == "" || b < a) ? b : a }')
        [ "$m" -gt "$rss" ] && rss=$m
    done
    echo "$best $cpu $rss"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

echo "defining $n and $((2 * n)) guests over $hosts embedded roots ..." >&2
fleet "$n"
fleet "$((2 * n))"

printf '%-30s %8s %8s %8s %8s %8s %8s %6s %6s %6s\n' "" "N s" "N cpu" "N MiB" "2N s" "2N cpu" \
    "2N MiB" "wall" "cpu" "mem"
line() {
    printf '%-30s %8s %8s %8s %8s %8s %8s %6s %6s %6s\n' "$1" "$2" "$3" "$(mib "$4")" "$5" "$6" \
        "$(mib "$7")" "$(ratio "$5" "$2")" "$(ratio "$6" "$3")" "$(ratio "$7" "$4")"
}
row() {
    local label=$1
    shift
    read -r t1 c1 m1 <<<"$(measure "$@" "$work/$n.yaml")"
    read -r t2 c2 m2 <<<"$(measure "$@" "$work/$((2 * n)).yaml")"
    line "$label" "$t1" "$c1" "$m1" "$t2" "$c2" "$m2"
}
echo "guests: N=$n, 2N=$((2 * n)); ratios 2N/N (2 = linear, 4 = quadratic)"
row "validate" "$zr" validate
row "plan -q (text summary)" "$zr" plan -q
row "plan (text)" "$zr" plan
row "plan -o json" "$zr" plan -o json
row "plan -j 1 (hosts one by one)" "$zr" plan -q -j 1

# validate alone on bigger inventories: no libvirt, so any size is cheap.
big() {
    local size=$1 i
    {
        echo "version: 1"
        echo "guests:"
        for i in $(seq 1 "$size"); do
            printf '  g%d:\n    hostdevs:\n      - {source: %04x:%02x:00.0, zpci: {uid: 1, fid: 0}}\n' \
                "$i" $(( i / 256 )) $(( i % 256 ))
            printf '    interfaces:\n      - {source: %04x:%02x:01.0, mac: "02:00:00:%02x:%02x:01"}\n' \
                $(( i / 256 )) $(( i % 256 )) $(( i / 256 )) $(( i % 256 ))
        done
    } >"$work/big$size.yaml"
}
big 5000
big 10000
read -r t1 c1 m1 <<<"$(measure "$zr" validate "$work/big5000.yaml")"
read -r t2 c2 m2 <<<"$(measure "$zr" validate "$work/big10000.yaml")"
line "validate 5000 vs 10000 guests" "$t1" "$c1" "$m1" "$t2" "$c2" "$m2"
