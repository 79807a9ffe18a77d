#!/bin/sh
# systemd-analyze checks contrib/systemd/zpci-reconcile.{service,timer} and
# zpci-reconcile-watch.service:
#   verify    the units load, every directive is known, ExecStart's binary exists;
#   security  the hardening keeps the exposure at or below 3.0 ("OK").
# They run in a scratch root holding systemd's own units and the built binary as
# /usr/bin/zpci-reconcile, so nothing needs installing and no running systemd is
# needed (this machine has none as PID 1).  verify exits 0 after some warnings (an
# unknown key, say), so any message it prints fails the test.  Man pages are not
# checked (--man=no): they are installed with the package, not here.
# Usage: verify-units.sh SOURCE_ROOT BINARY.  Exit 77 (skipped) without systemd-analyze.
set -u
src=$1 bin=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd-analyze not installed (Debian package systemd): skipped"
    exit 77
fi
units=/usr/lib/systemd/system
[ -d "$units" ] || units=/lib/systemd/system

d=$(mktemp -d "${TMPDIR:-/tmp}/zr-units.XXXXXX")
trap 'rm -rf "$d"' EXIT INT TERM
mkdir -p "$d/usr/bin" "$d/etc/systemd/system" "$d/usr/lib/systemd"
cp -r "$units" "$d/usr/lib/systemd/system"
cp "$bin" "$d/usr/bin/zpci-reconcile"
# the watch unit's ExecReload= (procps)
mkdir -p "$d/bin"
[ -x /bin/kill ] && cp /bin/kill "$d/bin/kill"
cp "$src/contrib/systemd/zpci-reconcile.service" "$src/contrib/systemd/zpci-reconcile.timer" \
    "$src/contrib/systemd/zpci-reconcile-watch.service" "$d/etc/systemd/system/"

fail=0
out=$(systemd-analyze verify --man=no --root="$d" \
    /etc/systemd/system/zpci-reconcile.service /etc/systemd/system/zpci-reconcile.timer \
    /etc/systemd/system/zpci-reconcile-watch.service 2>&1)
rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    echo "systemd-analyze verify (exit $rc):"
    echo "$out"
    fail=1
fi
for unit in zpci-reconcile.service zpci-reconcile-watch.service; do
    out=$(systemd-analyze security --offline=yes --root="$d" --threshold=30 "$unit" 2>&1)
    rc=$?
    echo "$unit: $(echo "$out" | tail -n 1)"
    if [ "$rc" -ne 0 ]; then
        echo "systemd-analyze security $unit: exposure above 3.0 (exit $rc):"
        echo "$out"
        fail=1
    fi
done
# watch tells systemd when it is ready and takes reloads as SIGHUP
grep -qx 'Type=notify' "$src/contrib/systemd/zpci-reconcile-watch.service" || {
    echo "zpci-reconcile-watch.service is not Type=notify"; fail=1; }
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$src/contrib/systemd/zpci-reconcile-watch.service" || {
    echo "zpci-reconcile-watch.service does not reload with SIGHUP"; fail=1; }
exit $fail
