#!/bin/bash
# The README's first command from nothing: a fresh copy of the cached minimal root of
# RELEASE (debootstrap --variant=minbase, no package added), a clean copy of the checkout
# in it (/root/zpci-reconcile: the tracked files, as a clean clone has them), then
# contrib/demo.sh as root in there. It must install what it needs, build and converge its
# lab: exit 0, apply exit 0 and the last plan "no changes" with exit 0.
#
#   tests/debian/fresh.sh RELEASE [--tests]
#
# --tests then runs the README's test command (tests/run-all.sh, the short one) in the
# same root, which must end with "N passed, 0 failed, N skipped".
# A package only this machine happens to have cannot hide a broken first command: the
# root has only what debootstrap's minbase has. apt's downloads are kept between runs
# (tests/debian/root.sh binds a cache on the root's /var/cache/apt/archives). The root is
# removed afterwards (ZR_FRESH_KEEP=1 keeps it; its path is printed).
# Last line: "N passed, N failed" (one for the demo, one for the tests). Needs root;
# exit 77 when not root.

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root_sh="$here/root.sh"
cache=${ZR_ROOT_CACHE:-/var/cache/zpci-reconcile/roots}

release=${1-}
tests=0
[ "${2-}" = --tests ] && tests=1
if [ -z "$release" ] || { [ $# -eq 2 ] && [ "$tests" -eq 0 ]; } || [ $# -gt 2 ]; then
  echo "usage: tests/debian/fresh.sh RELEASE [--tests]" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "fresh: needs root (debootstrap, chroot)"
  exit 77
fi

passed=0 failed=0
fail() {
  echo "fresh-$release: FAILED: $*"
  failed=$((failed + 1))
}

mkdir -p "$cache/$release"
dir=$(mktemp -d "$cache/$release/fresh.XXXXXX") || exit 1
cleanup() {
  if [ "${ZR_FRESH_KEEP-}" = 1 ]; then
    echo "fresh-$release: root kept in $dir"
  else
    rm -rf "$dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
rmdir "$dir"
if ! bash "$root_sh" copy "$release" "$dir" || ! bash "$root_sh" tree "$dir/root/zpci-reconcile"; then
  echo "fresh-$release: could not make the root"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "fresh-$release: root ready in $((SECONDS - t0))s ($dir)"

t0=$SECONDS
log="$dir/root/demo.log"
bash "$root_sh" run "$dir" -- bash -c 'cd /root/zpci-reconcile && contrib/demo.sh' >"$log" 2>&1
rc=$?
cat "$log"
# demo.sh prints "(exit status N)" after plan, apply and plan
mapfile -t status < <(sed -n 's/^(exit status \([0-9]*\))$/\1/p' "$log")
if [ "$rc" -ne 0 ]; then
  fail "contrib/demo.sh exited $rc"
elif [ "${#status[@]}" -ne 3 ] || [ "${status[1]}" != 0 ] || [ "${status[2]}" != 0 ]; then
  fail "contrib/demo.sh did not converge (plan, apply, plan exit status: ${status[*]})"
elif ! grep -q '^Plan: no changes' "$log"; then
  fail "the last plan is not in sync"
else
  passed=$((passed + 1))
fi
echo "fresh-$release: contrib/demo.sh took $((SECONDS - t0))s"

if [ "$tests" -eq 1 ]; then
  t0=$SECONDS
  log="$dir/root/run-all.log"
  bash "$root_sh" run "$dir" -- bash -c 'cd /root/zpci-reconcile && tests/run-all.sh' \
    </dev/null >"$log" 2>&1
  rc=$?
  tail -n 40 "$log"
  last=$(tail -n 1 "$log")
  if [ "$rc" -eq 0 ] && [[ "$last" =~ ^[0-9]+\ passed,\ 0\ failed, ]]; then
    passed=$((passed + 1))
  else
    fail "tests/run-all.sh exited $rc: $last"
  fi
  echo "fresh-$release: tests/run-all.sh took $((SECONDS - t0))s"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
