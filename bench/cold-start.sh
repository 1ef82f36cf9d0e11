#!/usr/bin/env bash
# Cold starts of the `lambda_runtime` echo function (functions/tests/fixtures/echo-fn, release
# build): each round changes the function's environment (UpdateFunctionConfiguration), so the
# next Invoke runs on a freshly spawned worker, and reads the REPORT line's `Init Duration`
# (spawn to the worker's first `/next`) from the invoke's tail log, with the client-side time of
# that cold invoke. Prints p50, p90 and max of both. Loopback only, bounded in time.
#   bench/cold-start.sh [rounds]            (default 50)
# Environment: TRELLIS_BIN (default $CARGO_TARGET_DIR or target/, then release/trellis).
# Needs: a release build, curl, zip, base64.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
rounds=${1:-50}
bin=${TRELLIS_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/trellis}
[ -x "$bin" ] || { echo "build first: cargo build --release (or set TRELLIS_BIN)" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill ${trellis_pid:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$here/echo-trellis.sh"
start_echo_trellis
fn=http://$api/2015-03-31/functions

: > "$work/init" ; : > "$work/client"
for i in $(seq "$rounds"); do
    curl -sf -X PUT "$fn/echo/configuration" -H 'Content-Type: application/json' \
        -d "{\"Environment\":{\"Variables\":{\"ROUND\":\"$i\"}}}" > /dev/null
    start=$(date +%s%N)
    log=$(curl -sf -D - -o /dev/null -X POST "$fn/echo/invocations" -H 'X-Amz-Log-Type: Tail' -d '{"n":1}' \
        | tr -d '\r' | awk -F': ' 'tolower($1)=="x-amz-log-result" {print $2}')
    end=$(date +%s%N)
    init=$(base64 -d <<< "$log" | grep -o 'Init Duration: [0-9.]*' | awk '{print $3}')
    [ -n "$init" ] || { echo "round $i: no Init Duration (not a cold start?)" >&2; exit 1; }
    echo "$init" >> "$work/init"
    echo "scale=3; ($end - $start) / 1000000" | bc >> "$work/client"
done
stats() { sort -n "$1" | awk '{v[NR]=$1} END {printf "p50 %.2f ms, p90 %.2f ms, max %.2f ms (%d cold starts)\n", v[int((NR+1)/2)], v[int(NR*0.9+0.5)], v[NR], NR}'; }
echo "Init Duration (spawn to first /next): $(stats "$work/init")"
echo "cold invoke, client side (curl):       $(stats "$work/client")"
