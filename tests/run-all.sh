#!/bin/bash
# zpci-reconcile's test command: `bash tests/run-all.sh`, from any directory.
#
# On a fresh Debian 12 (as root) it installs what the build and the tests need, starts
# libvirtd for the qemu:///system tests, then runs the suites three ways:
#   build/       all suites (unit, integration)
#   build-asan/  the suites that drive the binary again, built with ASan + UBSan
#   build/       the unit and fuzz-replay suites under valgrind memcheck
# Then, each a stage of its own: libvirt's test-suite domains (tests/corpus/run.sh), the
# live lab (tests/live-lab/run.sh, docs/live-lab.md) and the Debian package
# (tests/package/test-deb.sh).
# Both memory checks go through tests/memcheck.sh, which also catches leaks in the child
# processes Criterion runs each test in (a plain --wrap=valgrind does not).
#
# The integration suite runs under ASan too: libvirt's embedded QEMU driver was tried in
# an ASan+UBSan build (open, define, config attach/detach, close) and reported nothing.
#
# The last line printed is "N passed, N failed, N skipped", summed over the three runs
# from meson's testlog JSON; a stage that could not run (packages, build) counts as one
# failure. Exit status 1 when anything failed.

set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$src" || exit 1

# Build and test dependencies, Debian package names. clang and its runtime (libFuzzer)
# build the fuzz targets for a short smoke run; their corpora are replayed by the
# ordinary builds.
packages=(
  gcc libc6-dev pkg-config meson ninja-build clang libclang-rt-14-dev
  libyaml-dev libvirt-dev libxml2-dev libcriterion-dev libsystemd-dev
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-misc
  python3 python3-jsonschema python3-yaml libxml2-utils scdoc valgrind procps
  # what users meet: man -l renders the man pages, script gives the colour tests a
  # terminal, bash-completion.pc says where the completion is installed
  groff-base man-db bsdutils util-linux bash-completion
  # export's corpus test defines x86 and ppc64 guests too; promtool lints the
  # metrics file; systemd-analyze verifies the units in contrib/systemd.
  qemu-system-x86 qemu-system-ppc prometheus systemd
  # the Ansible collection's tests (ansible-playbook, ansible-doc, ansible-test) and the
  # Debian package's (dpkg-buildpackage with debhelper's dh, then apt-get install)
  ansible-core debhelper dpkg-dev build-essential
  # the corpus stage unpacks libvirt's source packages (apt-get source; dpkg-dev above)
  xz-utils
  # the live lab's initramfs images (init, insmod, cpio; the host needs no kmod)
  busybox-static
)

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
  local missing=() p
  for p in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ] && [ "${CI-}" != true ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    stage_failed "packages missing and not root to install them: ${missing[*]}"
    return 1
  fi
  banner "packages: apt-get install ${missing[*]:-(none missing)}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update -q </dev/null ||
    ! apt-get install -y -q --no-install-recommends "${packages[@]}" </dev/null; then
    stage_failed "apt-get install"
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
# on a machine that cannot run it, except with CI=true. ZR_LIVE_LAB=quick runs only the
# scenarios on guests without an OS, ZR_LIVE_LAB=skip leaves the stage out.
if [ "$plain_ok" -eq 1 ] && [ "${ZR_LIVE_LAB-full}" != skip ]; then
  t0=$SECONDS
  banner "live lab: tests/live-lab/run.sh --${ZR_LIVE_LAB:-full}"
  lab_log=$(mktemp "${TMPDIR:-/tmp}/zr-live-lab-log.XXXXXX")
  ZR_LAB_BUILD="$src/build" bash "$src/tests/live-lab/run.sh" "--${ZR_LIVE_LAB:-full}" </dev/null |
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

banner "summary"
for t in "${timings[@]}"; do echo "  $t"; done
echo "  total      $(printf '%4d' $((SECONDS - t_all)))s"
for p in "${problems[@]}"; do echo "  problem: $p"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
