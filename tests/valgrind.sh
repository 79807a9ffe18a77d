#!/bin/sh
# Runs a test binary under valgrind and fails on any memory error or leak in
# any of its processes.  Criterion runs every test in a re-executed worker
# and ignores a worker's exit status once the test has reported, so
# valgrind's --error-exitcode alone would judge only the runner: each
# process gets its own log instead, and any non-empty log is a failure.
set -u
logs=$(mktemp -d "${TMPDIR:-/tmp}/zr-valgrind.XXXXXX") || exit 1
valgrind --quiet --trace-children=yes --leak-check=full --error-exitcode=1 \
    --log-file="$logs/%p.log" "$@"
rc=$?
status=0
for log in "$logs"/*.log; do
    if [ -s "$log" ]; then
        cat "$log" >&2
        status=1
    fi
done
rm -rf "$logs"
[ "$rc" -ne 0 ] && exit "$rc"
exit "$status"
