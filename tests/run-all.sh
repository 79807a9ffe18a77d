#!/bin/bash
# zpci-reconcile's test command: `bash tests/run-all.sh [--full]`, from any directory.
#
# On a fresh Debian 12 or 13 (as root) it installs what is missing (contrib/packages.sh),
# starts libvirtd for the qemu:///system tests, builds build/ and runs all its suites
# (unit, integration, docs, ...): a few minutes. Then it says how to run the rest.
#
# --full (what CI runs, .ci/run) adds, each a stage of its own:
#   asan       build-asan/: the suites that drive the binary again, with ASan + UBSan
#   valgrind   build/: the unit and fuzz-replay suites under valgrind memcheck
#   fuzz       build-fuzz/: each libFuzzer target for $ZR_FUZZ_SECONDS (default 30)
#   corpus     libvirt's test-suite domains (tests/corpus/run.sh)
#   live-lab   the live lab (tests/live-lab/run.sh --$ZR_LIVE_LAB, default quick, full
#              adds the Linux guests; docs/live-lab.md; ZR_LIVE_LAB=skip leaves it out)
#   lab-sriov  the live lab's SR-IOV scenarios (run.sh --sriov; ZR_LIVE_LAB_SRIOV=skip)
#   lab-deb13  the live lab with L1 on Debian 13, libvirt 11.3 (run.sh --root debian13
#              --$ZR_LIVE_LAB_DEB13, default quick; skip leaves it out)
#   trixie     the unit and integration suites in a cached Debian 13 root against its own
#              libvirtd 11.3 (tests/debian/suites.sh; docs/testing.md)
#   fresh-*    the README's first command (contrib/demo.sh) in a fresh minimal Debian 12
#              and 13 root with a clean copy of the checkout (tests/debian/fresh.sh)
#   package    the Debian package (tests/package/test-deb.sh)
# The Debian roots (debootstrap, apt downloads: I/O bound) are prepared in the background
# while the CPU-bound stages run. Stage times: docs/testing.md.
# Both memory checks go through tests/memcheck.sh, which also catches leaks in the child
# processes Criterion runs each test in (a plain --wrap=valgrind does not).
#
# The integration suite runs under ASan too: libvirt's embedded QEMU driver was tried in
# an ASan+UBSan build (open, define, config attach/detach, close) and reported nothing.
#
# The last line printed is "N passed, N failed, N skipped", summed over the stages (meson's
# testlog JSON for the suites); a stage that could not run (packages, build) counts as one
# failure. Each stage's time is printed in the summary. Exit status 1 when anything failed.

set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$src" || exit 1

full=0
case "${1-}" in
  --full) full=1 ;;
  '') ;;
  -h | --help)
    sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: tests/run-all.sh [--full]" >&2
    exit 2
    ;;
esac

# Package names, shared with contrib/demo.sh and chosen by what the release has.
. "$src/contrib/packages.sh"

passed=0 failed=0 skipped=0
timings=()
problems=()
t_all=$SECONDS

banner() { printf '\n=== %s\n' "$*"; }

stage_failed() {
  echo "run-all: FAILED: $*"
  problems+=("$*")
  failed=$((failed + 1))
}

install_packages() {
  local set=test
  [ "$full" -eq 1 ] && set=full
  if ! zr_install "$set"; then
    stage_failed "packages: installing the '$set' set of contrib/packages.sh"
    return 1
  fi
}

# meson setup, or reconfigure a build dir that already exists, then compile.
build() {
  local dir=$1
  shift
  banner "build $dir: meson setup $*"
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    meson setup --reconfigure "$dir" "$@" || meson setup --wipe "$dir" "$@"
  else
    rm -rf "$dir"
    meson setup "$dir" "$@"
  fi && meson compile -C "$dir"
}

# N_PASSED N_FAILED N_SKIPPED from one meson testlog JSON (one object per line).
tally() {
  python3 -c '
import json, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    result = json.loads(line).get("result")
    if result in ("OK", "EXPECTEDFAIL"):
        counts["passed"] += 1
    elif result == "SKIP":
        counts["skipped"] += 1
    else:  # FAIL, UNEXPECTEDPASS, TIMEOUT, ERROR, anything new
        counts["failed"] += 1
print(counts["passed"], counts["failed"], counts["skipped"])
' "$1"
}

# run_tests LABEL BUILDDIR LOGBASE [meson test options...]
run_tests() {
  local label=$1 dir=$2 logbase=$3
  shift 3
  local logs=() log counts t0=$SECONDS rc p=0 f=0 s=0
  banner "$label: meson test -C $dir $*"
  # meson appends "-WRAPPER" to the log's name when --wrap is given
  rm -f "$dir/meson-logs/$logbase".json "$dir/meson-logs/$logbase"-*.json
  meson test -C "$dir" --logbase "$logbase" --print-errorlogs "$@" </dev/null
  rc=$?
  for log in "$dir/meson-logs/$logbase".json "$dir/meson-logs/$logbase"-*.json; do
    [ -f "$log" ] && logs+=("$log")
  done
  log=${logs[0]-"$dir/meson-logs/$logbase.json"}
  if [ ${#logs[@]} -eq 1 ] && counts=$(tally "$log"); then
    read -r p f s <<<"$counts"
  fi
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  timings+=("$(printf '%-10s %4ds  %d passed, %d failed, %d skipped' \
    "$label" $((SECONDS - t0)) "$p" "$f" "$s")")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    stage_failed "$label: meson test exited $rc with no failed test in $log"
  elif [ $((p + f + s)) -eq 0 ]; then
    stage_failed "$label: no test ran"
  elif [ "$f" -ne 0 ]; then
    problems+=("$label: $f failed (see $log)")
  fi
}

t0=$SECONDS
install_packages
timings+=("$(printf '%-10s %4ds' packages $((SECONDS - t0)))")

# --full: the Debian roots of the last stages (debootstrap, apt downloads and unpacking)
# are made or brought up to date in the background, while the CPU-bound stages run.
roots_log=$(mktemp "${TMPDIR:-/tmp}/zr-roots-log.XXXXXX")
roots_pid=
if [ "$full" -eq 1 ]; then
  (
    t=$SECONDS
    bash "$src/tests/debian/root.sh" base bookworm &&
      bash "$src/tests/debian/root.sh" with trixie ci --set test
    rc=$?
    echo "roots prepared in $((SECONDS - t))s (exit $rc)"
    exit "$rc"
  ) >"$roots_log" 2>&1 </dev/null &
  roots_pid=$!
fi

# libvirtd for the qemu:///system tests; when not root those tests skip themselves.
t0=$SECONDS
banner "libvirtd"
bash "$src/tests/start-libvirtd.sh"
case $? in
  0 | 77) ;;
  *) stage_failed "tests/start-libvirtd.sh" ;;
esac
timings+=("$(printf '%-10s %4ds' libvirtd $((SECONDS - t0)))")

t0=$SECONDS
plain_ok=0
if build build -Dtests=true; then
  plain_ok=1
  timings+=("$(printf '%-10s %4ds' build $((SECONDS - t0)))")
  run_tests plain build zr-plain
else
  stage_failed "build in build/"
fi

summary() {
  banner "summary"
  for t in "${timings[@]}"; do echo "  $t"; done
  echo "  total      $(printf '%4d' $((SECONDS - t_all)))s"
  for p in "${problems[@]}"; do echo "  problem: $p"; done
  if [ "$full" -eq 0 ]; then
    echo "  That was the plain build's suites. Every stage (ASan, valgrind, fuzzing, libvirt's"
    echo "  corpus, the live lab, libvirt 11.3 in a Debian 13 root, the README's first command"
    echo "  in fresh Debian 12 and 13 roots, the package): tests/run-all.sh --full (docs/testing.md)"
  fi
  rm -f "$roots_log"
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
}

if [ "$full" -eq 0 ]; then
  summary
  exit
fi

t0=$SECONDS
if build build-asan -Dtests=true -Db_sanitize=address,undefined -Db_lundef=false; then
  timings+=("$(printf '%-10s %4ds' build-asan $((SECONDS - t0)))")
  # Every suite that drives the binary (unit, fuzz replays, integration); not the ones
  # that check text and files around it (docs, schema, completion, install) or Ansible's
  # playbooks, whose calls into the binary the integration suites already make.
  run_tests asan build-asan zr-asan --timeout-multiplier 2 \
    --no-suite docs --no-suite schema --no-suite completion --no-suite install \
    --no-suite ansible --wrap "$src/tests/memcheck.sh sanitizers"
else
  stage_failed "build in build-asan/"
fi

if [ "$plain_ok" -eq 1 ]; then
  run_tests valgrind build zr-valgrind --suite unit --suite fuzz --timeout-multiplier 4 \
    --wrap "$src/tests/memcheck.sh valgrind"
fi

# The libFuzzer targets: build with clang, run each for $ZR_FUZZ_SECONDS (default 30),
# so the -Dfuzz=true build cannot rot; each target that runs clean counts as one test.
# Longer runs: docs/fuzzing.md.
t0=$SECONDS
if CC=clang build build-fuzz -Dfuzz=true -Dtests=false; then
  for target in inventory domain plan plan-gen; do
    banner "fuzz $target: ${ZR_FUZZ_SECONDS:-30}s"
    work=$(mktemp -d "${TMPDIR:-/tmp}/zr-fuzz.XXXXXX")
    if ZR_FUZZ_WORK=$work bash "$src/tests/fuzz/run.sh" "$target" "${ZR_FUZZ_SECONDS:-30}" \
      >"$work/log" 2>&1; then
      passed=$((passed + 1))
      grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" || true
    else
      tail -n 40 "$work/log"
      ls "$work/artifacts/$target" 2>/dev/null
      stage_failed "fuzz $target found a crash (inputs kept in $work)"
      continue
    fi
    rm -rf "$work"
  done
  timings+=("$(printf '%-10s %4ds' fuzz $((SECONDS - t0)))")
else
  stage_failed "build in build-fuzz/ (clang, -Dfuzz=true)"
fi

# libvirt's own test-suite domains (Debian's libvirt source packages, fetched with a
# private apt configuration): every one with an in-scope device is defined in embedded
# roots and put through the fidelity checks (tests/corpus/run.sh).  Skipped, and counted
# as such, when no source package can be fetched.
if [ "$plain_ok" -eq 1 ]; then
  t0=$SECONDS
  banner "corpus: libvirt's test-suite domains"
  bash -c 'sh "$1/tests/corpus/run.sh" "$1/build/reconciler/zpci-reconcile"' _ "$src" \
    2> >(grep -vE ': (info|warning) : ' >&2)
  case $? in
    0) passed=$((passed + 1)) ;;
    77) skipped=$((skipped + 1)) ;;
    *) stage_failed "corpus: a fidelity check failed on libvirt's test-suite domains" ;;
  esac
  timings+=("$(printf '%-10s %4ds' corpus $((SECONDS - t0)))")
fi

# The live lab (docs/live-lab.md): zpci-reconcile against running guests holding VFIO
# functions, in a nested TCG VM. Its own stage; it counts its scenarios. It skips (exit 77)
# on a machine that cannot run it, except with CI=true. By default only the scenarios on
# guests without an OS (--quick): with lab-sriov and lab-deb13 below, --full keeps CI under
# its 45 minutes (docs/live-lab.md, "In CI"); ZR_LIVE_LAB=full adds the Linux guests,
# ZR_LIVE_LAB=skip leaves the stage out.
if [ "$plain_ok" -eq 1 ] && [ "${ZR_LIVE_LAB-quick}" != skip ]; then
  t0=$SECONDS
  banner "live lab: tests/live-lab/run.sh --${ZR_LIVE_LAB:-quick}"
  lab_log=$(mktemp "${TMPDIR:-/tmp}/zr-live-lab-log.XXXXXX")
  ZR_LAB_BUILD="$src/build" bash "$src/tests/live-lab/run.sh" "--${ZR_LIVE_LAB:-quick}" </dev/null |
    tee "$lab_log"
  rc=${PIPESTATUS[0]}
  lab_p=0 lab_f=0 lab_s=0
  counts=$(tail -n 1 "$lab_log" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p')
  read -r lab_p lab_f <<<"${counts:-0 0}"
  [ "$rc" -eq 77 ] && lab_s=1
  passed=$((passed + lab_p)) failed=$((failed + lab_f)) skipped=$((skipped + lab_s))
  timings+=("$(printf '%-10s %4ds  %d passed, %d failed, %d skipped' \
    live-lab $((SECONDS - t0)) "$lab_p" "$lab_f" "$lab_s")")
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ "$lab_f" -eq 0 ]; then
    stage_failed "live lab: run.sh exited $rc with no failed scenario"
  elif [ "$lab_f" -ne 0 ]; then
    problems+=("live-lab: $lab_f failed")
  fi
  rm -f "$lab_log"
fi

# run_counted LABEL CMD...: a stage whose last line is "N passed, N failed[, N skipped]";
# exit 77 with nothing counted is one skip, any other failure with nothing counted one failure.
run_counted() {
  local label=$1 out rc counts p=0 f=0 s=0 t0=$SECONDS
  shift
  out=$(mktemp "${TMPDIR:-/tmp}/zr-stage-log.XXXXXX")
  "$@" </dev/null 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  counts=$(tail -n 1 "$out" |
    sed -n 's/^\([0-9]\+\) passed, \([0-9]\+\) failed\(, \([0-9]\+\) skipped\)\{0,1\}$/\1 \2 \4/p')
  read -r p f s <<<"${counts:-0 0 0}"
  s=${s:-0}
  if [ "$rc" -eq 77 ] && [ $((p + f + s)) -eq 0 ]; then
    s=1
  fi
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  timings+=("$(printf '%-10s %4ds  %d passed, %d failed, %d skipped' \
    "$label" $((SECONDS - t0)) "$p" "$f" "$s")")
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ "$f" -eq 0 ]; then
    stage_failed "$label: exited $rc with nothing counted as failed"
  elif [ "$f" -ne 0 ]; then
    problems+=("$label: $f failed")
  fi
  rm -f "$out"
}

# The Debian roots made in the background: wait for them, show how it went.
if [ -n "$roots_pid" ]; then
  t0=$SECONDS
  banner "Debian roots (prepared in the background)"
  wait "$roots_pid"
  roots_rc=$?
  tail -n 20 "$roots_log"
  timings+=("$(printf '%-10s %4ds  (waited; made while the stages above ran)' roots $((SECONDS - t0)))")
  [ "$roots_rc" -eq 0 ] || stage_failed "preparing the Debian roots (tests/debian/root.sh)"
fi

# libvirt 11.3: the unit and integration suites in the cached Debian 13 root, built there
# and run against that root's own libvirtd (tests/debian/suites.sh).
banner "trixie: unit and integration suites against libvirt 11.3 (tests/debian/suites.sh)"
run_counted trixie bash "$src/tests/debian/suites.sh" trixie

# The live lab's other generations (docs/live-lab.md), stages of their own after the roots:
# lab-sriov   the sriov_* scenarios: an igb's virtual functions in L1, L0 the QEMU 10 of a
#             cached Debian 13 root (run.sh --sriov); ZR_LIVE_LAB_SRIOV=skip leaves it out
# lab-deb13   L1 on the Debian 13 root (libvirt 11.3, QEMU 10, the tool built there):
#             run.sh --root debian13 --$ZR_LIVE_LAB_DEB13 (default quick; full or skip)
# ZR_LIVE_LAB=skip leaves these out too.
if [ "$plain_ok" -eq 1 ] && [ "${ZR_LIVE_LAB-}" != skip ]; then
  if [ "${ZR_LIVE_LAB_SRIOV-run}" != skip ]; then
    banner "lab-sriov: tests/live-lab/run.sh --sriov"
    run_counted lab-sriov env ZR_LAB_BUILD="$src/build" bash "$src/tests/live-lab/run.sh" --sriov
  fi
  if [ "${ZR_LIVE_LAB_DEB13-quick}" != skip ]; then
    banner "lab-deb13: tests/live-lab/run.sh --root debian13 --${ZR_LIVE_LAB_DEB13:-quick}"
    run_counted lab-deb13 bash "$src/tests/live-lab/run.sh" --root debian13 "--${ZR_LIVE_LAB_DEB13:-quick}"
  fi
fi

# The README's first command from nothing: a fresh minimal root of each release, a clean
# copy of the checkout, contrib/demo.sh as root (tests/debian/fresh.sh).
for release in bookworm trixie; do
  banner "fresh-$release: contrib/demo.sh in a fresh minimal root (tests/debian/fresh.sh)"
  run_counted "fresh-$release" bash "$src/tests/debian/fresh.sh" "$release"
done

# The Debian package (debian/): build it, install it into /usr, check it, purge it.
# Last and alone: it installs into /usr and /lib, and every suite above runs the
# build tree's binary by its path.
t0=$SECONDS
banner "package: tests/package/test-deb.sh"
bash "$src/tests/package/test-deb.sh" </dev/null
case $? in
  0) passed=$((passed + 1)) ;;
  77) skipped=$((skipped + 1)) ;;
  *) stage_failed "tests/package/test-deb.sh (build, install, check, purge the .deb)" ;;
esac
timings+=("$(printf '%-10s %4ds' package $((SECONDS - t0)))")

summary
