#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: deterministic where wall-clock figures
# on a shared machine are not. Runs the release build under valgrind with one data-plane thread
# and bench/proxy-bench.json (upstream nginx on :18080, ../shared/bench/peers/peers.sh start
# http), warms up with wrk, zeroes the counters, drives wrk, and divides the instructions by the
# requests wrk completed.
#   bench/proxy-callgrind.sh [SECONDS]     (default 10)
# Needs: valgrind, wrk, a release build. Leaves the callgrind dump in $OUT (default a temp dir)
# for callgrind_annotate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${BIN:-$here/../target/release/trellis}
secs=${1:-10}
out=${OUT:-$(mktemp -d)}
port=${PORT:-18095}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
curl -sf http://127.0.0.1:18080/ >/dev/null || { echo "no upstream on :18080 (peers.sh start http)" >&2; exit 2; }

valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.%p" \
    "$bin" serve --config "$here/proxy-bench.json" --data-dir "$out/data" --workers 1 \
    --api 127.0.0.1:0 --listen "127.0.0.1:$port" --listen-tls 127.0.0.1:0 >"$out/ready" 2>"$out/log" &
vpid=$!
trap 'kill $vpid 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q ready "$out/ready" 2>/dev/null && break; sleep 0.2; done
url=http://127.0.0.1:$port/
wrk -t1 -c4 -d3s -H 'Host: bench.trellis.internal' "$url" >/dev/null
callgrind_control -z $vpid >/dev/null 2>&1
wrk -t1 -c4 -d"${secs}s" -H 'Host: bench.trellis.internal' "$url" >"$out/wrk.txt"
callgrind_control -d $vpid >/dev/null 2>&1
requests=$(grep -oP '^\s*\K\d+(?= requests in)' "$out/wrk.txt")
ir=$(grep -m1 '^summary:' "$out/callgrind.$vpid.1" | grep -oP '\d+')
grep -q 'Non-2xx' "$out/wrk.txt" && echo "warning: non-2xx answers" >&2
echo "requests $requests, instructions $ir, per request $((ir / requests)) (dump $out/callgrind.$vpid.1)"
