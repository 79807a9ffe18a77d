#!/bin/sh
# Runs one test program under valgrind and fails if any of its processes
# had a memory error or a leak.  Criterion runs every test in a re-executed
# worker and ignores the worker's exit status, so plain
# `valgrind --error-exitcode=1` only checks the runner and passes whatever
# the tests do; this follows the workers and reads their reports instead.
set -u

logs=$(mktemp -d "${TMPDIR:-/tmp}/zr-valgrind.XXXXXX")
trap 'rm -rf "$logs"' EXIT INT TERM

valgrind --quiet --trace-children=yes --leak-check=full \
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
    --log-file="$logs/%p.log" "$@"
rc=$?

# --quiet leaves a process's log empty unless it has something to report.
dirty=0
for log in "$logs"/*.log; do
    if [ -s "$log" ]; then
        cat "$log" >&2
        dirty=1
    fi
done
if [ "$dirty" -ne 0 ]; then
    echo "valgrind: errors or leaks reported (see above)" >&2
    exit 1
fi
exit "$rc"
