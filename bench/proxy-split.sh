#!/usr/bin/env bash
# User and system CPU per proxied request of nginx, HAProxy and Trellis (and of the upstream
# alone, `direct`), each driven by `wrk -t2 -c64` in turn, rounds alternating: how much of a
# proxy's cost is its own code and how much the kernel's loopback TCP work.
#   bench/proxy-split.sh [-d seconds] [-r rounds]
# Needs what bench/proxy-bench.sh needs; starts the shared peers and a release Trellis
# (TRELLIS_BIN, default $CARGO_TARGET_DIR or target/, then release/trellis) on :18090.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
bin=${TRELLIS_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/trellis}
secs=6 rounds=3
while getopts d:r: o; do case $o in
    d) secs=$OPTARG ;; r) rounds=$OPTARG ;; *) sed -n 2,7p "$0"; exit 2 ;; esac; done
[ -x "$bin" ] || { echo "build first: cargo build --release (or set TRELLIS_BIN)" >&2; exit 2; }
"$shared/peers/peers.sh" start http >&2 || true
data=$(mktemp -d)
"$bin" serve --config "$here/proxy-bench.json" --data-dir "$data" --api 127.0.0.1:0 \
    --listen 127.0.0.1:18090 --listen-tls 127.0.0.1:0 > "$data/ready" 2> "$data/log" &
tpid=$!
trap 'kill $tpid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do grep -q ready "$data/ready" 2>/dev/null && break; sleep 0.1; done
P=${BENCH_RUN:-/tmp/proxybench/run}/pids
declare -A pid=([direct]=$(cat "$P/upstream-nginx.pid") [nginx]=$(cat "$P/nginx-proxy.pid")
                [haproxy]=$(cat "$P/haproxy.pid") [trellis]=$tpid)
declare -A url=([direct]=http://127.0.0.1:18080/ [nginx]=http://127.0.0.1:18081/
                [haproxy]=http://127.0.0.1:18082/ [trellis]=http://127.0.0.1:18090/)
hz=$(getconf CLK_TCK)
# User and system ticks of a process tree (nginx and HAProxy may run workers).
ticks() {
    local u=0 s=0 a b p
    for p in $(pstree -p -T "$1" | grep -o '([0-9]*)' | tr -d '()'); do
        read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat")
        u=$((u + a)) s=$((s + b))
    done
    echo "$u $s"
}
per() { awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }'; }
printf '| round | target | req/s | user µs/req | system µs/req |\n|---:|---|---:|---:|---:|\n'
for r in $(seq "$rounds"); do
    for n in direct nginx haproxy trellis; do
        host=(); [ "$n" = trellis ] && host=(-H "Host: bench.trellis.internal")
        read -r u0 s0 < <(ticks "${pid[$n]}")
        out=$(timeout $((secs + 30)) wrk -t2 -c64 -d"${secs}s" "${host[@]}" "${url[$n]}")
        read -r u1 s1 < <(ticks "${pid[$n]}")
        reqs=$(awk '/requests in/ {print $1}' <<< "$out")
        rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
        printf '| %s | %s | %s | %s | %s |\n' "$r" "$n" "$rps" "$(per $((u1 - u0)) "$reqs")" \
            "$(per $((s1 - s0)) "$reqs")"
    done
done
