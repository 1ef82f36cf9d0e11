#!/usr/bin/env bash
# Trellis beside nginx and HAProxy in front of the same upstream, in one interleaved run of
# ../shared/bench/proxy-bench.sh (loopback only, every run bounded in time).
#   bench/proxy-bench.sh [extra proxy-bench.sh options, e.g. -d 10 -r 3]
# Needs: nginx-light haproxy wrk (Debian), a release build (cargo build --release).
# Environment: TRELLIS_BIN (default $CARGO_TARGET_DIR or target/, then release/trellis);
# TRELLIS_BASELINE=/path/to/another/trellis adds it as target `trellis-baseline` (on :18091) in
# the same interleaved run, to compare two builds under the same load. TRELLIS_LAMBDA=1 adds
# `trellis-lambda` (on :18092): a LAMBDA target group (event V2) on the `lambda_runtime` echo
# function (functions/tests/fixtures/echo-fn, built here in release; reserved concurrency 8),
# from bench/proxy-bench-lambda.json. Its answer is the echoed event (about 1 KB), not `ok`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
bin=${TRELLIS_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/trellis}
[ -x "$bin" ] || { echo "build first: cargo build --release (or set TRELLIS_BIN)" >&2; exit 2; }

"$shared/peers/peers.sh" start http >&2 || true  # non-zero when an optional peer (caddy) is missing
data=$(mktemp -d)
pids=()
# The peers stay up (other benchmarks may be using them); `../shared/bench/peers/peers.sh stop`.
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$data"' EXIT
start_trellis() { # name binary port [config]
    mkdir -p "$data/$1"
    "$2" serve --config "${4:-$here/proxy-bench.json}" --data-dir "$data/$1" \
        --api 127.0.0.1:0 --listen "127.0.0.1:$3" --listen-tls 127.0.0.1:0 > "$data/$1/ready" 2>"$data/$1/log" &
    pids+=($!)
    for _ in $(seq 50); do grep -q ready "$data/$1/ready" 2>/dev/null && break; sleep 0.1; done
    echo "$1: $(cat "$data/$1/ready") pid $!, RSS idle $(ps -o rss= -p $!) KiB" >&2
}
start_trellis trellis "$bin" 18090
tpid=${pids[0]}
extra_p=() extra_h=() extra_t=()
if [ -n "${TRELLIS_BASELINE:-}" ]; then
    start_trellis trellis-baseline "$TRELLIS_BASELINE" 18091
    extra_p=(-P trellis-baseline="${pids[1]}") extra_h=(-H trellis-baseline=bench.trellis.internal)
    extra_t=(trellis-baseline=http://127.0.0.1:18091/)
fi
if [ -n "${TRELLIS_LAMBDA:-}" ]; then
    cargo build --quiet --release --manifest-path "$here/../functions/tests/fixtures/echo-fn/Cargo.toml" \
        --target-dir "$here/../target/echo-fn"
    start_trellis trellis-lambda "$bin" 18092 "$here/proxy-bench-lambda.json"
    curl -sf -H 'Host: bench-lambda.trellis.internal' http://127.0.0.1:18092/ > /dev/null \
        || { echo "the LAMBDA target does not answer" >&2; cat "$data/trellis-lambda/log" >&2; exit 1; }
    extra_p+=(-P trellis-lambda="${pids[-1]}") extra_h+=(-H trellis-lambda=bench-lambda.trellis.internal)
    extra_t+=(trellis-lambda=http://127.0.0.1:18092/)
fi

P=${BENCH_RUN:-/tmp/proxybench/run}/pids
"$shared/proxy-bench.sh" "$@" \
  -P direct="$(cat "$P/upstream-nginx.pid")" -P nginx="$(cat "$P/nginx-proxy.pid")" \
  -P haproxy="$(cat "$P/haproxy.pid")" -P trellis=$tpid \
  -H trellis=bench.trellis.internal "${extra_p[@]}" "${extra_h[@]}" \
  direct=http://127.0.0.1:18080/ nginx=http://127.0.0.1:18081/ \
  haproxy=http://127.0.0.1:18082/ trellis=http://127.0.0.1:18090/ "${extra_t[@]}"
echo "trellis RSS after load: $(ps -o rss= -p $tpid) KiB" >&2
