#!/usr/bin/env bash
# Installs the Kubernetes API schemas of the npm packages kubernetes-models and
# @kubernetes-models/prometheus-operator, and js-yaml (all pinned), into a cache directory once,
# and prints the node_modules directory for validate_schemas.mjs.
# Cache: $RALLY_CACHE_DIR (default $XDG_CACHE_HOME/rally or ~/.cache/rally). Needs npm and network
# access the first time; exits 2 with a message on stderr when it cannot install them.
set -euo pipefail
packages=(kubernetes-models@5.1.0 @kubernetes-models/prometheus-operator@6.0.0 js-yaml@4.1.0)
cache=${RALLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rally}/kubernetes-models-5.1.0
modules=$cache/node_modules

fail() {
  echo "fetch_kubernetes_models.sh: $*" >&2
  exit 2
}

if [ ! -f "$cache/.complete" ]; then
  command -v npm > /dev/null || fail "npm not found"
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && echo '{"private": true}' > package.json &&
    npm install --silent --no-audit --no-fund --ignore-scripts "${packages[@]}" > /dev/null) ||
    fail "npm install ${packages[*]} failed"
  rm -rf "$modules"
  mv "$work/node_modules" "$modules"
  touch "$cache/.complete"
fi
echo "$modules"
