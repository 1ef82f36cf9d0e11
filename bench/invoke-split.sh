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
fixture=$root/functions/tests/fixtures/echo-fn
cargo build --quiet --release --manifest-path "$fixture/Cargo.toml" --target-dir "$root/target/echo-fn"
(cd "$work" && cp "$root/target/echo-fn/release/bootstrap" . && zip -q echo.zip bootstrap)
"$bin" serve --data-dir "$work/data" --api 127.0.0.1:0 --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 \
    > "$work/ready" 2> "$work/trellis.log" &
tp=$!
trap 'kill $tp 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q ready "$work/ready" 2>/dev/null && break; sleep 0.1; done
api=$(sed 's/.*"api":"\([^"]*\)".*/\1/' "$work/ready")
printf '{"FunctionName":"echo","Runtime":"provided.al2023","Handler":"bootstrap","Role":"arn:aws:iam::000000000000:role/bench","MemorySize":256,"Code":{"ZipFile":"%s"}}' \
    "$(base64 -w0 "$work/echo.zip")" > "$work/create.json"
curl -sf -X POST "http://$api/2015-03-31/functions" -H 'Content-Type: application/json' \
    --data-binary @"$work/create.json" > /dev/null
curl -sf -X PUT "http://$api/2017-10-31/functions/echo/concurrency" -H 'Content-Type: application/json' \
    -d '{"ReservedConcurrentExecutions":8}' > /dev/null
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
