#!/usr/bin/env bash
# Builds the torch-free tests under sanitizers, each in a build of its own (tests/sanitizers/
# CMakeLists.txt), and runs them with no report allowed:
#   address  build-asan: AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included);
#            the replay's unit tests, the games' tests and the replay's integration tests, whose
#            rally-replay and rally-control are sanitized too.
#   thread   build-tsan: ThreadSanitizer; the concurrency tests (the dynamic batcher, the bounded
#            queue, tables, the rate limiter, the curriculum's and the replay's streams), with
#            tests/sanitizers/tsan.supp.
# Every process (tests and the binaries they start) writes its reports to REPORTS
# (default build-<mode>/reports); a report fails the stage even if the test passed. Prints per
# stage its wall time and "N% tests passed, F tests failed out of T", then the same over all.
#   tests/sanitizers/run.sh [address] [thread]
set -uo pipefail
cd "$(dirname "$0")/../.."
modes=(address thread)
[ $# -gt 0 ] && modes=("$@")

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
lock=()
command -v flock >/dev/null && lock=(flock "${RALLY_BUILD_LOCK:-/tmp/rally-build.lock}")
supp=$PWD/tests/sanitizers/tsan.supp

# ctest -R of the concurrency tests run under ThreadSanitizer.
tsan_tests='^(DynamicBatcher|BoundedQueue|Table|RateLimiter|ProducerWatermarks|CurriculumConcurrency|CurriculumService|SnapshotPoolPoller|ReplayServiceTest)\.'

total_tests=0
total_failed=0
status=0
for mode in "${modes[@]}"; do
  case $mode in
    address) build=build-asan ;;
    thread) build=build-tsan ;;
    *) echo "tests/sanitizers/run.sh: unknown stage '$mode' (address, thread)" >&2; exit 2 ;;
  esac
  start=$(date +%s)
  if [ ! -f "$build/build.ninja" ]; then
    cmake -S . -B "$build" -G Ninja -DRALLY_WITH_TORCH=OFF -DRALLY_SANITIZE="$mode" \
      -DCMAKE_BUILD_TYPE=Debug "${launcher[@]}" >/dev/null || exit 2
  fi
  targets=(replay_unit_tests games_tests replay_integration_tests)
  [ "$mode" = thread ] && targets=(replay_unit_tests replay_integration_tests)
  # The build alone is timed, not the wait for the lock that another build holds.
  "${lock[@]}" bash -c 'begin=$(date +%s); cmake --build "$@" || exit 2
    echo $(( $(date +%s) - begin )) >"$0"' "$build/build-seconds" "$build" \
    --target "${targets[@]}" || exit 2
  built=$(date +%s)

  reports=${REPORTS:-$PWD/$build/reports}
  rm -rf "$reports"
  mkdir -p "$reports"
  common="halt_on_error=1:log_path=$reports/report:log_exe_name=1"
  args=(--test-dir "$build/tests/sanitizers" --output-on-failure -j2)
  if [ "$mode" = address ]; then
    # Measures the replay's resident memory against a bound; ASan's shadow memory and quarantine
    # (hundreds of MB) are not the replay's.
    args+=(-E '^ReplayServiceTest\.MemoryStaysBoundedWhileItemsStreamThroughABoundedTable$')
    export ASAN_OPTIONS="$common:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
    export UBSAN_OPTIONS="$common:print_stacktrace=1"
  else
    # Debian's gRPC, protobuf and Abseil are not built with TSan: accesses they make (seen only
    # through TSan's interceptors: memcpy, free, epoll) are ignored, as their synchronisation is
    # invisible. RALLY_TSAN_STRICT=1 sees them too, for hunting a race between rally and gRPC;
    # tsan.supp then names the known reports inside the libraries.
    ignore=:ignore_noninstrumented_modules=1
    [ "${RALLY_TSAN_STRICT:-0}" = 1 ] && ignore=
    export TSAN_OPTIONS="$common:suppressions=$supp:second_deadlock_stack=1$ignore"
    args+=(-R "$tsan_tests")
  fi
  log=$(mktemp)
  ctest "${args[@]}" 2>&1 | tee "$log"
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
  line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -1)
  tests=$(sed -nE 's/.* out of ([0-9]+)$/\1/p' <<<"$line")
  failed=$(sed -nE 's/.*, ([0-9]+) tests? failed.*/\1/p' <<<"$line")
  rm -f "$log"
  n_reports=$(find "$reports" -type f | wc -l)
  if [ "$n_reports" -gt 0 ]; then
    echo "== $mode: $n_reports sanitizer report(s) in $reports:"
    for f in "$reports"/*; do
      echo "-- $f"
      head -60 "$f"
    done
  fi
  if [ -z "$tests" ] || [ "${failed:-1}" -ne 0 ] || [ "$n_reports" -gt 0 ]; then status=1; fi
  total_tests=$((total_tests + ${tests:-0}))
  total_failed=$((total_failed + ${failed:-0}))
  echo "$mode: build $(cat "$build/build-seconds") s (with configure and the lock $((built - start)) s), tests $(( $(date +%s) - built )) s;" \
    "${tests:-0} tests, ${failed:-?} failed, $n_reports sanitizer reports"
done

passed=$((total_tests - total_failed))
pct=0
[ $total_tests -gt 0 ] && pct=$(((200 * passed + total_tests) / (2 * total_tests)))
[ $status -ne 0 ] && [ $pct -eq 100 ] && pct=99
echo "sanitizers: $pct% tests passed, $total_failed tests failed out of $total_tests"
exit $status
