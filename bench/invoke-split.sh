#!/usr/bin/env bash
# Where a warm invoke's CPU goes: user and system time per invoke of the Trellis server, of the
# function's worker processes and of wrk itself, with 8 clients on the echo function
# (functions/tests/fixtures/echo-fn, release), three rounds of 8 s.
#   bench/invoke-split.sh
# Needs: a release build (TRELLIS_BIN, default $CARGO_TARGET_DIR or target/, then
# release/trellis), wrk, curl, zip, GNU time (/usr/bin/time).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
bin=${TRELLIS_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/trellis}
[ -x "$bin" ] || { echo "build first: cargo build --release (or set TRELLIS_BIN)" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill ${trellis_pid:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$here/echo-trellis.sh"
start_echo_trellis 8
tp=$trellis_pid
url=http://$api/2015-03-31/functions/echo/invocations
wrk -t1 -c8 -d2s -s "$here/invoke.lua" "$url" > /dev/null  # warm-up: starts the 8 workers
hz=$(getconf CLK_TCK)
# User and system ticks of the server, and summed over its children (the workers).
own() { awk '{print $14, $15}' "/proc/$tp/stat"; }
kids() { for k in $(pgrep -P "$tp"); do awk '{print $14, $15}' "/proc/$k/stat"; done | awk '{u += $1; s += $2} END {print u + 0, s + 0}'; }
printf '| round | invokes/s | server user | server system | function user | function system | wrk user | wrk system |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for r in 1 2 3; do
    o0=$(own) k0=$(kids)
    out=$( { /usr/bin/time -f "WRKTIME %U %S" wrk -t1 -c8 -d8s -s "$here/invoke.lua" "$url"; } 2>&1 )
    o1=$(own) k1=$(kids)
    n=$(awk '/requests in/ {print $1}' <<< "$out"); rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    read -r wu ws < <(awk '/WRKTIME/ {print $2, $3}' <<< "$out")
    awk -v o0="$o0" -v o1="$o1" -v k0="$k0" -v k1="$k1" -v n="$n" -v hz="$hz" -v wu="$wu" -v ws="$ws" \
        -v rps="$rps" -v r="$r" 'BEGIN {
        split(o0, a, " "); split(o1, b, " "); split(k0, c, " "); split(k1, d, " "); f = 1e6 / hz / n
        printf "| %d | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", r, rps, (b[1] - a[1]) * f,
            (b[2] - a[2]) * f, (d[1] - c[1]) * f, (d[2] - c[2]) * f, wu * 1e6 / n, ws * 1e6 / n }'
done
