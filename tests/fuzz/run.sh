#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz: clang, ASan, UBSan, no LibTorch) and runs each for
# FUZZ_SECONDS (default 30) on a copy of its seed corpus (tests/fuzz/corpus/<target>/).
# Prints per target its executions, coverage gained over the seeds and crashes, then
# "N passed, M failed"; exits non-zero when any target crashed. A crash's input is kept in
# FUZZ_OUT (default build-fuzz/findings)/<target>/ for a regression test.
#   FUZZ_SECONDS=60 tests/fuzz/run.sh [target ...]
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-30}
build=${FUZZ_BUILD_DIR:-build-fuzz}
out=${FUZZ_OUT:-$build/findings}
targets=(insert_parse_fuzz wal_segment_fuzz snapshot_fuzz zstd_fuzz job_config_fuzz
         policy_json_fuzz safetensors_fuzz checkpoint_manifest_fuzz hf_config_fuzz tokenizer_fuzz)
[ $# -gt 0 ] && targets=("$@")

cxx=${FUZZ_CXX:-$(command -v clang++ || command -v clang++-14)}
cc=${FUZZ_CC:-$(command -v clang || command -v clang-14)}
if [ -z "$cxx" ] || [ -z "$cc" ]; then
  echo "tests/fuzz/run.sh: clang not found (deploy/local/install-deps.sh installs it)" >&2
  exit 2
fi
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
lock=()
command -v flock >/dev/null && lock=(flock "${RALLY_BUILD_LOCK:-/tmp/rally-build.lock}")
start=$(date +%s)
if [ ! -f "$build/build.ninja" ]; then
  CC=$cc CXX=$cxx cmake -S . -B "$build" -G Ninja -DRALLY_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null || exit 2
fi
# The build alone is timed (not the wait for the lock another build holds).
"${lock[@]}" bash -c 'begin=$(date +%s); cmake --build "$@" || exit 2
  echo "build: $(( $(date +%s) - begin )) s"' build "$build" --target "${targets[@]}" || exit 2

passed=0
failed=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  mkdir -p "$work/corpus" "$out/$t"
  cp -r tests/fuzz/corpus/"$t"/. "$work/corpus/" 2>/dev/null
  log="$work/log"
  before=$(find "$out/$t" -type f | wc -l)
  # One core each, one at a time; a hang (-timeout) or 2 GB of memory is a failure too.
  "$build/bin/$t" "$work/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -print_pcs=0 -print_funcs=0 \
    -artifact_prefix="$out/$t/" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  seeds=$(grep -m1 -o 'INITED cov: [0-9]*' "$log" | grep -o '[0-9]*$')
  final=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  crashes=$(( $(find "$out/$t" -type f | wc -l) - before ))
  if [ $rc -eq 0 ] && [ "$crashes" -eq 0 ]; then
    passed=$((passed + 1))
    verdict=ok
  else
    failed=$((failed + 1))
    verdict=FAILED
    grep -E 'ERROR:|runtime error|invariant failed|SUMMARY|Test unit written' "$log" | head -20
  fi
  printf '%-26s %s  executions %s  coverage %s -> %s (+%s)  crashes %s\n' "$t" "$verdict" \
    "${execs:-0}" "${seeds:-?}" "${final:-?}" "$(( ${final:-0} - ${seeds:-0} ))" "$crashes"
  rm -rf "$work"
done
echo "fuzzing: $(( $(date +%s) - start )) s in all"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
