#!/usr/bin/env bash
# PutEvents throughput on the embedded store: wrk posts 10-entry PutEvents to a release build
# (loopback only, bounded in time). Prints requests/s; entries/s is ten times that.
#   bench/put-events.sh [seconds] [connections]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$here/../target/release/trellis
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
data=$(mktemp -d)
"$bin" serve --data-dir "$data" --api 127.0.0.1:0 --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 \
    > "$data/ready" 2>"$data/log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do grep -q ready "$data/ready" 2>/dev/null && break; sleep 0.1; done
api=$(sed 's/.*"api":"\([^"]*\)".*/\1/' "$data/ready")
# One rule matching every event, with a target, so each accepted entry is a durable delivery
# record (entries no rule matches are dropped, as AWS does, and would measure nothing).
call() { curl -sf -X POST "http://$api/" -H "X-Amz-Target: AWSEvents.$1" \
    -H "Content-Type: application/x-amz-json-1.1" -d "$2" >/dev/null; }
call CreateEventBus '{"Name":"sink"}'
call PutRule '{"Name":"all-orders","EventPattern":"{\"source\":[\"bench.orders\"]}"}'
call PutTargets '{"Rule":"all-orders","Targets":[{"Id":"sink","Arn":"arn:aws:events:us-east-1:000000000000:event-bus/sink"}]}'
timeout $(( ${1:-10} + 30 )) wrk -t2 -c"${2:-32}" -d"${1:-10}s" -s "$here/put-events.lua" "http://$api/"
