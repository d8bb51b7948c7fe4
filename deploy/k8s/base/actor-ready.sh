#!/bin/bash
# The actors' readiness probe: ready while the actor is playing, that is while COUNTER on its
# Prometheus endpoint (127.0.0.1:PORT/metrics) has risen within the last WINDOW seconds. An actor
# that serves /metrics but finishes no episodes (no job, no weights, a stuck replay) is not ready.
# STATE (on a writable volume) keeps the counter's last value and when it last changed; the first
# reading only sets the baseline.
# usage: actor-ready.sh PORT COUNTER WINDOW STATE
# Needs bash (its /dev/tcp), grep and date only: the image has no HTTP client.
set -u
port=$1 counter=$2 window=$3 state=$4
exec 3<> "/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
value=$(grep -m1 "^$counter " <&3)
exec 3<&-
value=${value#"$counter "}
[ -n "$value" ] || { echo "no $counter on :$port/metrics"; exit 1; }
now=$(date +%s)
last="" changed=0
[ -f "$state" ] && read -r last changed < "$state"
if [ -z "$last" ]; then
  echo "$value 0" > "$state"
elif [ "$value" != "$last" ]; then
  echo "$value $now" > "$state"
  changed=$now
fi
if [ $((now - changed)) -gt "$window" ]; then
  echo "not playing: $counter is $value, unchanged for more than ${window}s"
  exit 1
fi
