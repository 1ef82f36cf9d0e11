#!/usr/bin/env bash
# Trellis beside nginx and HAProxy in front of the same upstream, in one interleaved run of
# ../shared/bench/proxy-bench.sh (loopback only, every run bounded in time).
#   bench/proxy-bench.sh [extra proxy-bench.sh options, e.g. -d 10 -r 3]
# Needs: nginx-light haproxy wrk (Debian), a release build (cargo build --release).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
bin=$here/../target/release/trellis
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }

"$shared/peers/peers.sh" start http >&2 || true  # non-zero when an optional peer (caddy) is missing
data=$(mktemp -d)
"$bin" serve --config "$here/proxy-bench.json" --data-dir "$data" \
    --api 127.0.0.1:0 --listen 127.0.0.1:18090 --listen-tls 127.0.0.1:0 > "$data/ready" 2>"$data/log" &
tpid=$!
# The peers stay up (other benchmarks may be using them); `../shared/bench/peers/peers.sh stop`.
trap 'kill $tpid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do grep -q ready "$data/ready" 2>/dev/null && break; sleep 0.1; done
echo "trellis: $(cat "$data/ready") pid $tpid, RSS idle $(ps -o rss= -p $tpid) KiB" >&2

P=${BENCH_RUN:-/tmp/proxybench/run}/pids
"$shared/proxy-bench.sh" "$@" \
  -P direct="$(cat "$P/upstream-nginx.pid")" -P nginx="$(cat "$P/nginx-proxy.pid")" \
  -P haproxy="$(cat "$P/haproxy.pid")" -P trellis=$tpid \
  -H trellis=bench.trellis.internal \
  direct=http://127.0.0.1:18080/ nginx=http://127.0.0.1:18081/ \
  haproxy=http://127.0.0.1:18082/ trellis=http://127.0.0.1:18090/
echo "trellis RSS after load: $(ps -o rss= -p $tpid) KiB" >&2
