#!/bin/bash
# The unit and integration suites on another Debian release's libvirt: in the cached root
# RELEASE/ci (tests/debian/root.sh, with contrib/packages.sh's "test" set), a clean copy of
# the checkout is built and `meson test --suite unit --suite integration` runs against that
# root's own libvirtd (Debian 13: libvirt 11.3, QEMU 10.0).
#
#   tests/debian/suites.sh RELEASE [MESON TEST ARGS...]     (as root; default trixie)
#
# The daemon is started inside the root by tests/start-libvirtd.sh, in the private mount
# namespace of tests/debian/root.sh run: its /run (sockets, pid files), /etc/libvirt and
# /var/lib/libvirt are the root's, so the machine's own libvirtd on /run/libvirt is neither
# seen nor touched, and it ends with the stage. The libvirt corpus beside the checkout
# (../shared), if any, is bound beside the copy for the fidelity tests. The meson logs stay in
# ZR_ROOT_CACHE/RELEASE/ci/root/zpci-reconcile/build/meson-logs until the next run.
# Last line: "N passed, N failed, N skipped" from meson's testlog; exit 0 when none failed,
# 77 when not root.

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root_sh="$here/root.sh"
release=${1:-trixie}
shift || true

if [ "$(id -u)" -ne 0 ]; then
  echo "suites: needs root (chroot, libvirtd)"
  exit 77
fi

t0=$SECONDS
if ! root=$(bash "$root_sh" with "$release" ci --set test); then
  echo "suites-$release: could not prepare the root"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
tree="$root/root/zpci-reconcile"
rm -rf "$tree"
bash "$root_sh" tree "$tree" || exit 1
echo "suites-$release: root ready in $((SECONDS - t0))s ($root)"

# The libvirt XML corpus beside the checkout (../shared, as tests/meson.build's ZR_SHARED
# expects it), when there is one, at the same place beside the copy.
binds=()
shared="$here/../../../shared"
[ -d "$shared" ] && binds=(--bind "$(cd "$shared" && pwd):/root/shared")

bash "$root_sh" run "$root" "${binds[@]}" -- bash -s -- "$@" <<'INSIDE'
cd /root/zpci-reconcile || exit 1
t0=$SECONDS
if ! bash tests/start-libvirtd.sh >/dev/null; then
  echo "suites: libvirtd did not start in the root"
  tail -n 20 /var/log/libvirt/libvirtd.out
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
versions="libvirtd $(libvirtd --version | sed 's/.* //'), $(virsh -c qemu:///system version |
  sed -n 's/^Running hypervisor: *//p')"
echo "suites: $versions, $(gcc --version | head -n 1) (daemon ready in $((SECONDS - t0))s)"
t0=$SECONDS
if ! { meson setup build -Dtests=true >build-setup.log 2>&1 && meson compile -C build >build.log 2>&1; }; then
  cat build-setup.log build.log | tail -n 60
  echo "suites: build failed"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
echo "suites: built in $((SECONDS - t0))s"
t0=$SECONDS
meson test -C build --suite unit --suite integration --print-errorlogs "$@" </dev/null
rc=$?
echo "suites: meson test took $((SECONDS - t0))s (exit $rc)"
python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
c = {"passed": 0, "failed": 0, "skipped": 0}
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line).get("result")
        c["passed" if r in ("OK", "EXPECTEDFAIL") else "skipped" if r == "SKIP" else "failed"] += 1
print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % c)
sys.exit(1 if c["failed"] else 0)
PY
[ $? -eq 0 ] && [ "$rc" -eq 0 ]
INSIDE
