#!/usr/bin/env bash
# PostgreSQL through a resource endpoint: pgbench -S direct, through Trellis, through HAProxy
# `mode tcp` and nginx `stream`, in one interleaved run of ../shared/bench/proxy-bench.sh
# (loopback only, every run bounded in time). The throwaway PostgreSQL on :15432 comes from
# ../shared/bench/peers/peers.sh (initdb + pgbench -i on first use).
#   bench/pg-bench.sh [extra proxy-bench.sh options, e.g. -d 10 -r 3 -C 8]
# Needs: postgresql (initdb, pgbench), haproxy, nginx-light + libnginx-mod-stream (Debian), a
# release build (cargo build --release).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
bin=$here/../target/release/trellis
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }

"$shared/peers/peers.sh" start tcp >&2
data=$(mktemp -d)
"$bin" serve --config "$here/pg-bench.json" --data-dir "$data" \
    --api 127.0.0.1:0 --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 > "$data/ready" 2>"$data/log" &
tpid=$!
# The peers stay up for the next run; `../shared/bench/peers/peers.sh stop` stops them.
trap 'kill $tpid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do grep -q ready "$data/ready" 2>/dev/null && break; sleep 0.1; done
api=$(sed 's/.*"api":"\([^"]*\)".*/\1/' "$data/ready")
endpoint=$("$bin" endpoints --endpoint "http://$api" | awk -F'\t' '$2 == "bench-pg" {print $3}')
[ -n "$endpoint" ] || { echo "no endpoint for bench-pg" >&2; cat "$data/log" >&2; exit 1; }
echo "trellis: pid $tpid, endpoint $endpoint, RSS idle $(ps -o rss= -p $tpid) KiB" >&2

P=${BENCH_RUN:-/tmp/proxybench/run}/pids
"$shared/proxy-bench.sh" "$@" \
  -P haproxy-tcp="$(cat "$P/haproxy-tcp.pid")" \
  -P nginx-stream="$(cat "$P/nginx-stream.pid")" -P trellis=$tpid \
  pg-direct=postgresql://postgres@127.0.0.1:15432/postgres \
  haproxy-tcp=postgresql://postgres@127.0.0.1:15433/postgres \
  nginx-stream=postgresql://postgres@127.0.0.1:15434/postgres \
  trellis=postgresql://postgres@${endpoint#tcp://}/postgres
echo "trellis RSS after load: $(ps -o rss= -p $tpid) KiB" >&2
