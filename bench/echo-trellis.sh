# Sourced by the function benchmarks (invoke-bench.sh, invoke-split.sh, cold-start.sh): builds
# the `lambda_runtime` echo function (functions/tests/fixtures/echo-fn, release), starts the
# release Trellis `$bin` on loopback with its data in `$work`, and deploys the function as
# `echo`. Sets `trellis_pid` and `api` (host:port of the Lambda API).
#   start_echo_trellis [reserved-concurrency]
start_echo_trellis() {
    local fixture=$root/functions/tests/fixtures/echo-fn
    echo "== building the echo function (release)" >&2
    cargo build --quiet --release --manifest-path "$fixture/Cargo.toml" --target-dir "$root/target/echo-fn"
    (cd "$work" && cp "$root/target/echo-fn/release/bootstrap" . && zip -q echo.zip bootstrap)
    echo "== starting trellis" >&2
    "$bin" serve --data-dir "$work/data" --api 127.0.0.1:0 --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 \
        > "$work/ready" 2> "$work/trellis.log" &
    trellis_pid=$!
    for _ in $(seq 100); do grep -q ready "$work/ready" 2>/dev/null && break; sleep 0.1; done
    api=$(sed 's/.*"api":"\([^"]*\)".*/\1/' "$work/ready")
    printf '{"FunctionName":"echo","Runtime":"provided.al2023","Handler":"bootstrap","Role":"arn:aws:iam::000000000000:role/bench","MemorySize":256,"Code":{"ZipFile":"%s"}}' \
        "$(base64 -w0 "$work/echo.zip")" > "$work/create.json"
    curl -sf -X POST "http://$api/2015-03-31/functions" -H 'Content-Type: application/json' \
        --data-binary @"$work/create.json" > /dev/null
    if [ -n "${1:-}" ]; then
        curl -sf -X PUT "http://$api/2017-10-31/functions/echo/concurrency" \
            -H 'Content-Type: application/json' -d "{\"ReservedConcurrentExecutions\":$1}" > /dev/null
    fi
}
