#!/bin/bash
# Readiness and liveness of a gRPC server under mutual TLS, where the kubelet's `grpc:` probe
# cannot help: it speaks plain text, and the server refuses every client without a certificate
# of the cluster's CA. Healthy while
#   - something accepts connections on 127.0.0.1:GRPC_PORT (the gRPC server listens), and
#   - each GAUGE given is 0 on the Prometheus endpoint 127.0.0.1:METRICS_PORT/metrics (for the
#     replay: rally_replay_wal_failing, 1 while its write-ahead log cannot write, the condition
#     under which its gRPC health service answers NOT_SERVING).
# A gauge missing from the endpoint counts as unhealthy.
# usage: server-healthy.sh GRPC_PORT METRICS_PORT [GAUGE...]
# Needs bash (its /dev/tcp) and grep only: the image has no HTTP or gRPC client.
set -u
grpc_port=$1 metrics_port=$2
shift 2
if ! exec 3<> "/dev/tcp/127.0.0.1/$grpc_port"; then
  echo "nothing listens on gRPC port $grpc_port"
  exit 1
fi
exec 3<&-
[ $# -gt 0 ] || exit 0
exec 3<> "/dev/tcp/127.0.0.1/$metrics_port" || exit 1
printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
metrics=$(cat <&3)
exec 3<&-
for gauge in "$@"; do
  value=$(grep -m1 "^$gauge " <<< "$metrics")
  value=${value#"$gauge "}
  if [ -z "$value" ]; then
    echo "no $gauge on :$metrics_port/metrics"
    exit 1
  fi
  if [ "$value" != 0 ]; then
    echo "$gauge is $value"
    exit 1
  fi
done
