#!/bin/bash
# Test wrapper (meson test --wrap) that fails a test on any memory error or leak found in
# the test process *or any process it starts*:
#
#   tests/memcheck.sh valgrind   CMD...   run CMD under memcheck, children traced
#   tests/memcheck.sh sanitizers CMD...   CMD is built with ASan/UBSan; collect reports
#
# Why a wrapper: Criterion runs each test in a child process and judges it by the result
# that child sends back before it exits. A leak is only found at exit, after that result,
# so valgrind's --error-exitcode and LeakSanitizer's exit code 23 in the child are both
# ignored and the run passes (seen with Criterion 2.4.1; it also has no --no-fork any
# more). The same holds for the tool run by integration tests. So every process writes its
# report to a file of its own, and the wrapper fails the test when any file reports one.
#
# Exit status: the test's own, or 1 when it passed but a report was found.

set -uo pipefail

mode=${1-}
shift || true
if [ $# -eq 0 ]; then
  echo "usage: $0 valgrind|sanitizers CMD..." >&2
  exit 1
fi

reports=$(mktemp -d "${TMPDIR:-/tmp}/zr-memcheck.XXXXXX")
trap 'rm -rf "$reports"' EXIT

case "$mode" in
  valgrind)
    # System binaries the tests start (virsh, sh, python) are not ours to check.
    valgrind --trace-children=yes \
      --trace-children-skip='/usr/*,/bin/*,/sbin/*,*/python3*,*/virsh' \
      --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 \
      --log-file="$reports/valgrind.%p" "$@"
    rc=$?
    # every traced process writes a log (not --quiet: that drops the ERROR SUMMARY line
    # grepped for here); only those with errors count
    found=$(grep -l 'ERROR SUMMARY: [1-9]' "$reports"/valgrind.* 2>/dev/null)
    ;;
  sanitizers)
    # Keep meson's defaults (abort on the first error), send reports to files.
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$reports/asan"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$reports/ubsan"
    "$@"
    rc=$?
    # a sanitizer creates its log file only when it has something to report
    found=$(ls "$reports"/asan.* "$reports"/ubsan.* 2>/dev/null)
    ;;
  *)
    echo "$0: unknown mode '$mode'" >&2
    exit 1
    ;;
esac

if [ -n "$found" ]; then
  for f in $found; do
    echo "==== memcheck ($mode): report from $(basename "$f")" >&2
    cat "$f" >&2
  done
  [ "$rc" -eq 0 ] && rc=1
fi
exit "$rc"
