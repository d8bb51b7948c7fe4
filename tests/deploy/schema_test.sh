#!/usr/bin/env bash
# Renders every kustomization of deploy/k8s (both overlays and both monitoring variants) and
# validates each object against the Kubernetes API schemas (tests/deploy/validate_schemas.mjs).
# Skipped (exit 77) where kubectl, node or npm is missing or the npm registry cannot be reached;
# any invalid object fails.
# usage: schema_test.sh SOURCE_DIR
set -uo pipefail
src=$1
for program in kubectl node npm; do
  if ! command -v "$program" > /dev/null; then
    echo "skipped: $program is not installed"
    exit 77
  fi
done
if ! modules=$(bash "$src/tests/deploy/fetch_kubernetes_models.sh"); then
  echo "skipped: could not install kubernetes-models from npm (no route to the npm registry?)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rendered=()
for dir in overlays/cpu overlays/gpu monitoring/operator monitoring/plain; do
  out=$work/${dir//\//-}.yaml
  kubectl kustomize "$src/deploy/k8s/$dir" > "$out" || { echo "FAIL kubectl kustomize $dir"; exit 1; }
  rendered+=("$out")
done
node "$src/tests/deploy/validate_schemas.mjs" "$modules" "${rendered[@]}"
