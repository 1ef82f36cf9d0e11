#!/usr/bin/env bash
# Warm synchronous invokes of the same `lambda_runtime` echo function
# (functions/tests/fixtures/echo-fn, release build) through Trellis's Lambda API and through
# `cargo lambda watch`, interleaved: p50/p99 latency with one client, then throughput and CPU
# per invoke with several (the whole process tree, and the server process alone: the rest is
# the function's own work). Loopback only, every run bounded in time.
#   bench/invoke-bench.sh [-d seconds] [-c clients] [-r rounds]
# Needs: a release build (TRELLIS_BIN, default $CARGO_TARGET_DIR or target/, then
# release/trellis), cargo-lambda (pip install cargo-lambda), wrk, curl, zip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
secs=10 clients=8 rounds=3
while getopts d:c:r: o; do case $o in
    d) secs=$OPTARG ;; c) clients=$OPTARG ;; r) rounds=$OPTARG ;;
    *) sed -n 2,8p "$0"; exit 2 ;; esac; done
bin=${TRELLIS_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/trellis}
[ -x "$bin" ] || { echo "build first: cargo build --release (or set TRELLIS_BIN)" >&2; exit 2; }
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

fixture=$root/functions/tests/fixtures/echo-fn
. "$here/echo-trellis.sh"
# Reserved concurrency as many as the clients, so both sides can run that many workers.
start_echo_trellis "$clients"
pids+=("$trellis_pid")

echo "== starting cargo lambda watch (release)" >&2
(cd "$fixture" && CARGO_TARGET_DIR="$root/target/echo-fn-watch" exec cargo-lambda lambda watch \
    --release --ignore-changes --quiet --invoke-address 127.0.0.1 --invoke-port 19100 \
    --concurrency "$clients") > "$work/watch.log" 2>&1 &
pids+=($!); watch_pid=$!
for _ in $(seq 600); do
    kill -0 "$watch_pid" 2>/dev/null || { echo "cargo lambda watch exited:" >&2; cat "$work/watch.log" >&2; exit 1; }
    curl -sf -X POST http://127.0.0.1:19100/2015-03-31/functions/bootstrap/invocations -d '{}' \
        > /dev/null 2>&1 && break
    sleep 1
done

declare -A url=(
    [trellis]="http://$api/2015-03-31/functions/echo/invocations"
    [watch]="http://127.0.0.1:19100/2015-03-31/functions/bootstrap/invocations"
)
declare -A pid=([trellis]=$trellis_pid [watch]=$watch_pid)

# CPU (user+system ticks) of a process and all its descendants.
tree_ticks() {
    local total=0 p
    for p in $(pstree -p -T "$1" | grep -o '([0-9]*)' | tr -d '()'); do
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) ))
    done
    echo $total
}
# CPU ticks of the process alone.
own_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

printf '| target | clients | invokes/s | p50 | p99 | CPU µs/invoke | of which the server |\n|---|---|---|---|---|---|---|\n'
for round in $(seq "$rounds"); do
    for name in trellis watch; do
        for c in 1 "$clients"; do
            wrk -t1 -c"$c" -d2s -s "$here/invoke.lua" "${url[$name]}" > /dev/null  # warm-up
            before=$(tree_ticks "${pid[$name]}") own_before=$(own_ticks "${pid[$name]}")
            out=$(timeout $(( secs + 30 )) wrk -t1 -c"$c" -d"${secs}s" --latency -s "$here/invoke.lua" "${url[$name]}")
            after=$(tree_ticks "${pid[$name]}") own_after=$(own_ticks "${pid[$name]}")
            rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
            total=$(awk '/requests in/ {print $1}' <<< "$out")
            p50=$(awk '$1=="50%" {print $2}' <<< "$out")
            p99=$(awk '$1=="99%" {print $2}' <<< "$out")
            errors=$(awk '/Non-2xx|Socket errors/ {print}' <<< "$out")
            per() { awk -v t="$1" -v hz="$hz" -v n="$total" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'; }
            cpu=$(per $(( after - before ))) own=$(per $(( own_after - own_before )))
            printf '| %s | %s | %s | %s | %s | %s | %s |%s\n' "$name" "$c" "$rps" "$p50" "$p99" "$cpu" "$own" \
                "${errors:+ $errors}"
        done
    done
done
