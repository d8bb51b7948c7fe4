#!/usr/bin/env bash
# Builds the tests under sanitizers, each stage in a build of its own (tests/sanitizers/
# CMakeLists.txt), and runs them with no report allowed:
#   address  build-asan: AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included);
#            the replay's unit tests, the games' tests and the replay's integration tests, whose
#            rally-replay and rally-control are sanitized too.
#   thread   build-tsan: ThreadSanitizer; the concurrency tests (the dynamic batcher, the bounded
#            queue, tables, the rate limiter, the curriculum's and the replay's streams), with
#            tests/sanitizers/tsan.supp.
#   torch    build-asan-torch: AddressSanitizer + UndefinedBehaviorSanitizer over the whole tree,
#            LibTorch code included (Debian's LibTorch itself is not instrumented): every unit
#            test, and the learner's integration tests with sanitized rally-learner, rally-replay,
#            rally-control and rally-actor processes (tests/sanitizers/lsan.supp names the leaks
#            inside LibTorch).
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

# ctest -R of the integration tests run in the torch stage: the learner's (checkpoints and resume,
# data parallelism) and one text-game job through every process (the language-model path).
torch_integration='^(LearnerResume|DataParallel|Cluster\.ATextGameJobTrainsATransformerThroughEveryProcess|Cluster\.AShortJobFlowsTrajectoriesTrainsAndUpdatesActors)\.?'

# ctest -R of the concurrency tests run under ThreadSanitizer.
tsan_tests='^(DynamicBatcher|BoundedQueue|Table|RateLimiter|ProducerWatermarks|CurriculumConcurrency|CurriculumService|SnapshotPoolPoller|ReplayServiceTest)\.'

# Runs ctest with "$@" and adds its test and failure counts to `tests` and `failed` (`tests`
# becomes empty when ctest printed no summary).
run_ctest() {
  local log line ran bad
  log=$(mktemp)
  ctest "$@" 2>&1 | tee "$log"
  line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -1)
  rm -f "$log"
  ran=$(sed -nE 's/.* out of ([0-9]+)$/\1/p' <<<"$line")
  bad=$(sed -nE 's/.*, ([0-9]+) tests? failed.*/\1/p' <<<"$line")
  if [ -z "$ran" ] || [ -z "$bad" ] || [ -z "$tests" ]; then
    tests=
    return
  fi
  tests=$((tests + ran))
  failed=$((failed + bad))
}

total_tests=0
total_failed=0
status=0
for mode in "${modes[@]}"; do
  case $mode in
    address) build=build-asan ;;
    thread) build=build-tsan ;;
    torch) build=build-asan-torch ;;
    *) echo "tests/sanitizers/run.sh: unknown stage '$mode' (address, thread, torch)" >&2; exit 2 ;;
  esac
  start=$(date +%s)
  if [ ! -f "$build/build.ninja" ]; then
    if [ "$mode" = torch ]; then
      configure=(-DRALLY_SANITIZE=address)
    else
      configure=(-DRALLY_WITH_TORCH=OFF -DRALLY_SANITIZE="$mode")
    fi
    cmake -S . -B "$build" -G Ninja "${configure[@]}" -DCMAKE_BUILD_TYPE=Debug "${launcher[@]}" \
      >/dev/null || exit 2
  fi
  case $mode in
    address) targets=(replay_unit_tests games_tests replay_integration_tests) ;;
    thread) targets=(replay_unit_tests replay_integration_tests) ;;
    torch) targets=(unit_tests integration_tests rally rally-learner rally-actor rally-replay
                    rally-control) ;;
  esac
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
  if [ "$mode" = torch ]; then
    args=(--test-dir "$build/tests" --output-on-failure -j2)
  fi
  if [ "$mode" != thread ]; then
    # Measures the replay's resident memory against a bound; ASan's shadow memory and quarantine
    # (hundreds of MB) are not the replay's.
    args+=(-E '^ReplayServiceTest\.MemoryStaysBoundedWhileItemsStreamThroughABoundedTable$')
    export ASAN_OPTIONS="$common:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
    export UBSAN_OPTIONS="$common:print_stacktrace=1"
    export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0"
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
  # The torch stage runs ctest twice (every unit test, then the learner's integration tests);
  # the counts add up.
  tests=0
  failed=0
  if [ "$mode" = torch ]; then
    run_ctest "${args[@]}" -L unit
    run_ctest "${args[@]}" -L integration -R "$torch_integration"
  else
    run_ctest "${args[@]}"
  fi
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS LSAN_OPTIONS
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
