#!/usr/bin/env bash
# Makes the Secrets that the manifests of deploy/k8s/base mount, from the files of
# `rally certs init CERTS_DIR --hosts ...` and a tokens file:
#   rally-tls-COMPONENT    tls.crt, tls.key (CERTS_DIR/COMPONENT.crt, .key) and ca.crt, for
#                          COMPONENT in control, replay, learner, actor, evaluator;
#   rally-control-tokens   tokens (TOKENS_FILE: one `ROLE TOKEN` per line, ROLE read or admin).
# The CA's key (CERTS_DIR/ca.key) and the client certificate stay where they are: no pod needs them.
# Prints the Secrets as YAML; with --apply, applies them instead (kubectl's current context).
# usage: make-secrets.sh CERTS_DIR TOKENS_FILE [--namespace NS] [--apply]
set -euo pipefail

usage() {
  echo "usage: $0 CERTS_DIR TOKENS_FILE [--namespace NS] [--apply]" >&2
  exit 2
}

[ $# -ge 2 ] || usage
certs=$1 tokens=$2
shift 2
namespace=rally apply=false
while [ $# -gt 0 ]; do
  case $1 in
    --namespace) [ $# -ge 2 ] || usage; namespace=$2; shift 2 ;;
    --apply) apply=true; shift ;;
    *) usage ;;
  esac
done

components=(control replay learner actor evaluator)
missing=()
for file in ca.crt "${components[@]/%/.crt}" "${components[@]/%/.key}"; do
  [ -r "$certs/$file" ] || missing+=("$certs/$file")
done
[ -r "$tokens" ] || missing+=("$tokens")
if [ ${#missing[@]} -gt 0 ]; then
  echo "$0: cannot read ${missing[*]} (make them with: rally certs init $certs --hosts ...)" >&2
  exit 1
fi

secrets() {
  for component in "${components[@]}"; do
    echo "---"
    kubectl create secret generic "rally-tls-$component" --namespace "$namespace" \
      --from-file=tls.crt="$certs/$component.crt" --from-file=tls.key="$certs/$component.key" \
      --from-file=ca.crt="$certs/ca.crt" --dry-run=client --output yaml
  done
  echo "---"
  kubectl create secret generic rally-control-tokens --namespace "$namespace" \
    --from-file=tokens="$tokens" --dry-run=client --output yaml
}

if $apply; then
  secrets | kubectl apply -f -
else
  secrets
fi
