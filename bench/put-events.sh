#!/usr/bin/env bash
# PutEvents throughput on the embedded store: wrk posts 10-entry PutEvents to a release build
# (loopback only, bounded in time). Prints requests/s (entries/s is ten times that), then the
# delivery rate to the no-op target read off /metrics.
#   bench/put-events.sh [seconds] [connections]
# Environment: TRELLIS_BIN (default $CARGO_TARGET_DIR or target/, then release/trellis).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${TRELLIS_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/trellis}
[ -x "$bin" ] || { echo "build first: cargo build --release (or set TRELLIS_BIN)" >&2; exit 2; }
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
metric() { curl -sf "http://$api/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
now_ms() { date +%s%3N; }
start=$(now_ms)
timeout $(( ${1:-10} + 30 )) wrk -t2 -c"${2:-32}" -d"${1:-10}s" -s "$here/put-events.lua" "http://$api/"
# Delivery to the no-op target (a bus with no rules) runs during the load; after it, wait until
# no delivery is pending. Delivered/s counts from the first request to the last delivery.
put_end=$(now_ms)
backlog=$(metric trellis_events_pending_deliveries)
for _ in $(seq 600); do
    [ "$(metric trellis_events_pending_deliveries)" = 0 ] && break
    sleep 0.1
done
end=$(now_ms)
accepted=$(metric trellis_events_put_entries_total)
delivered=$(metric trellis_events_delivered_total)
failed=$(metric trellis_events_failed_invocations_total)
echo "entries accepted: $accepted in $(( put_end - start )) ms = $(( accepted * 1000 / (put_end - start) ))/s"
echo "backlog when the load stopped: $backlog deliveries; drained $(( end - put_end )) ms later"
echo "delivered: $delivered (failed $failed) in $(( end - start )) ms = $(( delivered * 1000 / (end - start) ))/s"
