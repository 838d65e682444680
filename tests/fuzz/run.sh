#!/usr/bin/env bash
# Runs or replays the fuzz targets built by the `fuzz` preset.
#   tests/fuzz/run.sh fuzz SECONDS [TARGET...]   fuzz each target for SECONDS; new inputs go
#                                                to build/fuzz/work/corpus/<target>, crashes
#                                                to build/fuzz/work/crashes/
#   tests/fuzz/run.sh replay [TARGET...]         run every committed corpus and regression
#                                                input once (what CI does)
# A crash found by fuzzing is fixed, then its input is added to tests/fuzz/regressions/<target>/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=$root/build/fuzz/tests/fuzz
work=$root/build/fuzz/work
mode=${1:?usage: run.sh fuzz SECONDS [TARGET...] | run.sh replay [TARGET...]}
shift
seconds=0
if [ "$mode" = fuzz ]; then seconds=${1:?seconds}; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(cifar idx safetensors png)
# Limits: an input may not make a reader hold more than 256 MB at once (header-driven
# allocations), nor the process grow past 1 GB.
# The llvm-19 symbolizer by path (scripts/bootstrap.sh installs llvm-19): another version on
# PATH cannot symbolize clang 19's reports.
sym=external_symbolizer_path=/usr/lib/llvm-19/bin/llvm-symbolizer
[ -x /usr/lib/llvm-19/bin/llvm-symbolizer ] || {
  echo "fuzz: /usr/lib/llvm-19/bin/llvm-symbolizer is missing (install llvm-19; scripts/bootstrap.sh does)" >&2; exit 2; }
export UBSAN_OPTIONS="print_stacktrace=1:$sym"
limits=(-rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=20)
status=0
mkdir -p "$work"
for t in "${targets[@]}"; do
  exe=$bin/fuzz_$t
  [ -x "$exe" ] || { echo "fuzz: $exe is not built (make fuzz builds it)" >&2; exit 2; }
  dirs=("$root/tests/fuzz/corpus/$t")
  [ -d "$root/tests/fuzz/regressions/$t" ] && dirs+=("$root/tests/fuzz/regressions/$t")
  if [ "$mode" = replay ]; then
    if ASAN_OPTIONS="detect_leaks=1:$sym" "$exe" "${limits[@]}" -runs=0 "${dirs[@]}" > "$work/replay-$t.log" 2>&1; then
      echo "fuzz replay $t: $(find "${dirs[@]}" -type f | wc -l) inputs, no findings"
    else
      echo "fuzz replay $t: FAILED"; tail -40 "$work/replay-$t.log"; status=1
    fi
  else
    mkdir -p "$work/corpus/$t" "$work/crashes"
    echo "fuzz $t for ${seconds}s ..."
    set +e
    ASAN_OPTIONS="detect_leaks=1:$sym" "$exe" "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="$work/crashes/$t-" "$work/corpus/$t" "${dirs[@]}" > "$work/$t.log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' || echo "?")
    crashes=$(find "$work/crashes" -name "$t-*" -type f | wc -l)
    echo "fuzz $t: exit $rc, $runs executions in ${seconds}s, $crashes crash/leak/timeout inputs in $work/crashes"
    [ "$rc" -eq 0 ] || status=1
  fi
done
exit $status
