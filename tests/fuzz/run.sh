#!/bin/bash
# Runs one libFuzzer target from a -Dfuzz=true build (see docs/fuzzing.md):
#
#   tests/fuzz/run.sh TARGET [SECONDS [LIBFUZZER-OPTION...]]
#
# TARGET is inventory, domain, plan or plan-gen; SECONDS defaults to 600.  The build is
# $ZR_FUZZ_BUILD (default build-fuzz, made with
# `CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false`).  New inputs go
# to $ZR_FUZZ_WORK/TARGET (default build-fuzz/fuzz-work), crashes to
# $ZR_FUZZ_WORK/artifacts/TARGET/; the seeds in the source tree are only read.
# Exit status: libFuzzer's (0 when nothing was found).

set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target=${1:?usage: $0 inventory|domain|plan|plan-gen [SECONDS [LIBFUZZER-OPTION...]]}
seconds=${2:-600}
shift $(($# < 2 ? $# : 2))
build=${ZR_FUZZ_BUILD:-$src/build-fuzz}
work=${ZR_FUZZ_WORK:-$build/fuzz-work}

case $target in
  inventory)
    dict=inventory
    seeds=("$src/tests/fuzz/corpus/inventory" "$src/tests/data/inventory" "$src/examples")
    ;;
  domain)
    dict=domain
    seeds=("$src/tests/fuzz/corpus/domain" "$src/tests/data/domain")
    # the libvirt XML corpus beside the checkout, when present
    if [ -d "$src/../shared/corpus/libvirt" ]; then
      seeds+=("$src/../shared/corpus/libvirt")
    fi
    ;;
  plan)
    dict=plan
    seeds=("$src/tests/fuzz/corpus/plan")
    ;;
  plan-gen)
    # bytes are choices, not text: no dictionary
    dict=
    seeds=("$src/tests/fuzz/corpus/plan-gen")
    ;;
  *)
    echo "$0: unknown target '$target' (inventory, domain, plan or plan-gen)" >&2
    exit 2
    ;;
esac

exe=$build/tests/fuzz/fuzz-$target
if [ ! -x "$exe" ]; then
  echo "$0: $exe not built; run: CC=clang meson setup $build -Dfuzz=true -Dtests=false && ninja -C $build" >&2
  exit 2
fi
mkdir -p "$work/$target" "$work/artifacts/$target"

# -timeout: an input taking over 5 s is a bug here (every stage is near linear).
exec "$exe" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
  ${dict:+-dict="$src/tests/fuzz/$dict.dict"} -artifact_prefix="$work/artifacts/$target/" \
  "$@" "$work/$target" "${seeds[@]}"
