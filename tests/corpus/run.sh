#!/bin/sh
# The corpus stage (tests/run-all.sh runs it): fetches Debian's libvirt source packages
# (tests/corpus/fetch.sh, a private apt configuration) and runs tests/corpus/run.py on
# every domain of their test suite that has an in-scope device.
#
#   run.sh BINARY [CACHE_DIR]
#
# CACHE_DIR (default $ZR_CORPUS_CACHE, else ~/.cache/zpci-reconcile/libvirt-src) keeps
# the sources between runs.  Exit 0 pass, 1 fail, 77 skipped (no source could be
# fetched: no network, or the mirror has no deb-src), with the reason printed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
binary=${1:?usage: run.sh BINARY [CACHE_DIR]}
cache=${2:-${ZR_CORPUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zpci-reconcile/libvirt-src}}
start=$(date +%s)

sh "$here/fetch.sh" "$cache"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "corpus: SKIPPED: could not fetch any libvirt source package (apt-get source;" \
         "logs in $cache/apt); nothing checked"
    exit 77
fi
set --
for tree in "$cache"/src/*/libvirt-*/; do
    [ -d "$tree/tests" ] && set -- "$@" "${tree%/}"
done
ZR_BINARY=$binary PYTHONDONTWRITEBYTECODE=1 python3 "$here/run.py" "$@"
rc=$?
echo "corpus: stage took $(( $(date +%s) - start ))s"
exit $rc
