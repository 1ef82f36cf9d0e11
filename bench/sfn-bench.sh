#!/usr/bin/env bash
# Step Functions through the API, loopback only, every run bounded in time:
#  - EXPRESS: StartSyncExecution/s of a 5-state Pass chain (wrk, SFN_OP=StartSyncExecution);
#  - STANDARD: durable state transitions/s on the embedded store: wrk starts executions of the
#    same chain for the run's duration, then the script waits until none is RUNNING;
#    transitions/s = executions started x 5 states / (time until the last one ended).
# Trellis (release build), and LocalStack 4.9.2 beside it when its Python imports `localstack`
# (bench/localstack-venv.sh installs it; run without Docker on GATEWAY_LISTEN=127.0.0.1:4599).
#   bench/sfn-bench.sh [-d seconds] [-c connections] [-t trellis|localstack|both]
# TRELLIS_BIN overrides the binary (default target/release/trellis); LOCALSTACK_PYTHON the Python
# that runs LocalStack (default /tmp/localstack-venv/bin/python if present, else python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=10 conns=32 which=both
while getopts d:c:t: o; do case $o in
    d) secs=$OPTARG ;; c) conns=$OPTARG ;; t) which=$OPTARG ;;
    *) sed -n 2,10p "$0"; exit 2 ;; esac; done
bin=${TRELLIS_BIN:-$here/../target/release/trellis}
lspy=${LOCALSTACK_PYTHON:-python3}
[ -z "${LOCALSTACK_PYTHON:-}" ] && [ -x /tmp/localstack-venv/bin/python ] && lspy=/tmp/localstack-venv/bin/python
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# call ENDPOINT OPERATION JSON: one Step Functions call; prints the answer.
call() {
    curl -sf -X POST "$1/" -H "X-Amz-Target: AWSStepFunctions.$2" \
        -H "Content-Type: application/x-amz-json-1.0" -d "$3"
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

chain='{"StartAt":"S1","States":{"S1":{"Type":"Pass","Next":"S2"},"S2":{"Type":"Pass","Result":{"step":2},"ResultPath":"$.two","Next":"S3"},"S3":{"Type":"Pass","Parameters":{"order.$":"$.order","n.$":"$.two.step"},"Next":"S4"},"S4":{"Type":"Pass","Next":"S5"},"S5":{"Type":"Pass","End":true}}}'
create() { # ENDPOINT NAME TYPE -> state machine ARN
    local def
    def=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$chain")
    call "$1" CreateStateMachine "{\"name\":\"$2\",\"type\":\"$3\",\"roleArn\":\"arn:aws:iam::000000000000:role/bench\",\"definition\":$def}" \
        | field '["stateMachineArn"]'
}

# run_wrk ENDPOINT OP ARN SECONDS -> "answered failed req/s"
run_wrk() {
    local out
    out=$(SFN_OP=$2 SFN_ARN=$3 timeout $(( $4 + 60 )) wrk -t2 -c"$conns" -d"$4s" --latency \
        -s "$here/sfn.lua" "$1/" 2>"$work/wrk.err")
    echo "$out" >> "$work/wrk.log"
    local answered failed rps
    answered=$(sed -n 's/^SFN answered=\([0-9]*\).*/\1/p' <<<"$out")
    failed=$(sed -n 's/^SFN .*failed=\([0-9]*\)/\1/p' <<<"$out")
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' <<<"$out")
    [ "$failed" = 0 ] || { echo "$failed failed answers; $(head -c 300 "$work/wrk.err")" >&2; }
    echo "$answered $failed $rps"
}

# measure ENDPOINT LABEL PID: both figures for one server; prints one table row.
measure() {
    local ep=$1 label=$2 pid=$3
    local express standard
    express=$(create "$ep" bench-express EXPRESS)
    standard=$(create "$ep" bench-standard STANDARD)
    run_wrk "$ep" StartSyncExecution "$express" 2 >/dev/null   # warm-up
    read -r _ _ sync_rps < <(run_wrk "$ep" StartSyncExecution "$express" "$secs")
    local t0 t1 left
    t0=$(date +%s.%N)
    read -r started start_failed start_rps < <(run_wrk "$ep" StartExecution "$standard" "$secs")
    # Wait (bounded) until no execution is RUNNING.
    for _ in $(seq 1200); do
        left=$(call "$ep" ListExecutions "{\"stateMachineArn\":\"$standard\",\"statusFilter\":\"RUNNING\",\"maxResults\":1}" \
            | field '["executions"].__len__()')
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    t1=$(date +%s.%N)
    local rss
    rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status" 2>/dev/null || echo "?")
    python3 - "$label" "$sync_rps" "$started" "$start_failed" "$t0" "$t1" "$left" "$start_rps" "$rss" <<'PY'
import sys
label, sync_rps, started, failed, t0, t1, left, start_rps, rss = sys.argv[1:]
ok = int(started) - int(failed)
secs = float(t1) - float(t0)
note = "" if left == "0" else f" ({left}+ still running at the bound)"
print(f"| {label} | {float(sync_rps):,.0f} | {ok * 5 / secs:,.0f} | {ok:,} in {secs:.1f} s ({float(start_rps):,.0f} starts/s){note} | {rss} |")
PY
}

echo "| target | EXPRESS StartSyncExecution/s | STANDARD state transitions/s | STANDARD executions | RSS MB after |"
echo "|---|---:|---:|---|---:|"

if [ "$which" != localstack ]; then
    [ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
    "$bin" serve --data-dir "$work/trellis" --api 127.0.0.1:0 --listen 127.0.0.1:0 \
        --listen-tls 127.0.0.1:0 > "$work/ready" 2> "$work/trellis.log" &
    pids+=($!); tpid=$!
    for _ in $(seq 100); do grep -q ready "$work/ready" 2>/dev/null && break; sleep 0.1; done
    api=$(sed 's/.*"api":"\([^"]*\)".*/\1/' "$work/ready")
    measure "http://$api" trellis "$tpid"
    kill "$tpid"
fi

if [ "$which" != trellis ]; then
    if "$lspy" -c 'import localstack' 2>/dev/null; then
        GATEWAY_LISTEN=127.0.0.1:4599 SERVICES=stepfunctions LOCALSTACK_VOLUME_DIR="$work/ls" \
            "$lspy" -m localstack.runtime.main > "$work/localstack.log" 2>&1 &
        pids+=($!); lpid=$!
        for _ in $(seq 600); do
            curl -sf http://127.0.0.1:4599/_localstack/health >/dev/null 2>&1 && break; sleep 0.2
        done
        curl -sf http://127.0.0.1:4599/_localstack/health >/dev/null 2>&1 || {
            echo "LocalStack did not start (bench/localstack-venv.sh installs it):" >&2
            tail -3 "$work/localstack.log" >&2; exit 1; }
        measure http://127.0.0.1:4599 "localstack $("$lspy" -c 'import localstack.version as v; print(v.__version__)' 2>/dev/null)" "$lpid"
        kill "$lpid"
    else
        echo "(LocalStack not installed: bench/localstack-venv.sh)" >&2
    fi
fi
