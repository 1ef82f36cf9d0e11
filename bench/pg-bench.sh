#!/usr/bin/env bash
# PostgreSQL through a resource endpoint: pgbench -S direct, through Trellis, through HAProxy
# `mode tcp` and nginx `stream`, in one interleaved run of ../shared/bench/proxy-bench.sh
# (loopback only, every run bounded in time). The throwaway PostgreSQL on :15432 comes from
# ../shared/bench/peers/peers.sh (initdb + pgbench -i on first use).
#   bench/pg-bench.sh [extra proxy-bench.sh options, e.g. -d 10 -r 3 -C 8]
# Environment: TRELLIS_BIN (default $CARGO_TARGET_DIR or target/, then release/trellis);
# TRELLIS_BASELINE=/path/to/another/trellis adds it as target `trellis-baseline`, in the same
# interleaved run (A/B of a change).
# Needs: postgresql (initdb, pgbench), haproxy, nginx-light + libnginx-mod-stream (Debian), a
# release build (cargo build --release).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
bin=${TRELLIS_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/trellis}
[ -x "$bin" ] || { echo "build first: cargo build --release (or set TRELLIS_BIN)" >&2; exit 2; }

"$shared/peers/peers.sh" start tcp >&2
run=$(mktemp -d)
pids=()
# The peers stay up for the next run; `../shared/bench/peers/peers.sh stop` stops them.
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$run"' EXIT

# start_trellis NAME BIN -> sets tpid and endpoint
start_trellis() {
    local data=$run/$1
    mkdir -p "$data"
    "$2" serve --config "$here/pg-bench.json" --data-dir "$data" \
        --api 127.0.0.1:0 --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 > "$data/ready" 2> "$data/log" &
    tpid=$!
    pids+=($tpid)
    for _ in $(seq 100); do grep -q ready "$data/ready" 2> /dev/null && break; sleep 0.1; done
    local api
    api=$(sed 's/.*"api":"\([^"]*\)".*/\1/' "$data/ready")
    endpoint=$("$2" endpoints --endpoint "http://$api" | awk -F'\t' '$2 == "bench-pg" {print $3}')
    [ -n "$endpoint" ] || { echo "$1: no endpoint for bench-pg" >&2; cat "$data/log" >&2; exit 1; }
    echo "$1: pid $tpid, endpoint $endpoint, RSS idle $(ps -o rss= -p $tpid) KiB" >&2
}

P=${BENCH_RUN:-/tmp/proxybench/run}/pids
targets=(pg-direct=postgresql://postgres@127.0.0.1:15432/postgres
    haproxy-tcp=postgresql://postgres@127.0.0.1:15433/postgres
    nginx-stream=postgresql://postgres@127.0.0.1:15434/postgres)
cpu=(-P haproxy-tcp="$(cat "$P/haproxy-tcp.pid")" -P nginx-stream="$(cat "$P/nginx-stream.pid")")
start_trellis trellis "$bin"
targets+=(trellis=postgresql://postgres@${endpoint#tcp://}/postgres) cpu+=(-P trellis=$tpid)
if [ -n "${TRELLIS_BASELINE:-}" ]; then
    start_trellis trellis-baseline "$TRELLIS_BASELINE"
    targets+=(trellis-baseline=postgresql://postgres@${endpoint#tcp://}/postgres)
    cpu+=(-P trellis-baseline=$tpid)
fi

"$shared/proxy-bench.sh" "$@" "${cpu[@]}" "${targets[@]}"
for p in "${pids[@]}"; do echo "trellis pid $p RSS after load: $(ps -o rss= -p "$p") KiB" >&2; done
