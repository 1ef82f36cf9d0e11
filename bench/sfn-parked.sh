#!/usr/bin/env bash
# Memory of STANDARD executions parked in a Wait state: starts N executions (default 100,000)
# of a machine that waits an hour, through the API (wrk, loopback), waits until each has
# reached its Wait, and reports the trellis process's RSS (target: 100,000 within 1 GB).
# Then restarts trellis on the same data dir and reports the RSS once they are all resumed.
#   bench/sfn-parked.sh [-n executions] [-c connections]
# TRELLIS_BIN overrides the binary (default target/release/trellis).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=100000 conns=64
while getopts n:c: o; do case $o in
    n) n=$OPTARG ;; c) conns=$OPTARG ;;
    *) sed -n 2,7p "$0"; exit 2 ;; esac; done
bin=${TRELLIS_BIN:-$here/../target/release/trellis}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

start_trellis() {
    rm -f "$work/ready"
    "$bin" serve --data-dir "$work/data" --api 127.0.0.1:0 --listen 127.0.0.1:0 \
        --listen-tls 127.0.0.1:0 > "$work/ready" 2>> "$work/trellis.log" &
    pid=$!
    for _ in $(seq 3000); do grep -q ready "$work/ready" 2>/dev/null && break; sleep 0.1; done
    api=http://$(sed 's/.*"api":"\([^"]*\)".*/\1/' "$work/ready")
}
call() {
    curl -sf -X POST "$api/" -H "X-Amz-Target: AWSStepFunctions.$1" \
        -H "Content-Type: application/x-amz-json-1.0" -d "$2"
}
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status"; }
# How many executions have entered their Wait state (the last event of a parked one).
parked() {
    python3 - "$api" "$sm" <<'PY'
import json, sys, urllib.request
api, sm = sys.argv[1:]
def call(op, body):
    req = urllib.request.Request(api + "/", json.dumps(body).encode(), {
        "X-Amz-Target": "AWSStepFunctions." + op, "Content-Type": "application/x-amz-json-1.0"})
    return json.load(urllib.request.urlopen(req))
running, token = [], None
while True:
    body = {"stateMachineArn": sm, "statusFilter": "RUNNING", "maxResults": 1000}
    if token: body["nextToken"] = token
    page = call("ListExecutions", body)
    running += [e["executionArn"] for e in page["executions"]]
    token = page.get("nextToken")
    if not token: break
# Sample the histories (checking all would take as long as the run).
sample = running[:: max(1, len(running) // 200)]
waiting = sum(call("GetExecutionHistory", {"executionArn": a, "reverseOrder": True, "maxResults": 1})
              ["events"][0]["type"] == "WaitStateEntered" for a in sample)
print(len(running), waiting, len(sample))
PY
}

start_trellis
idle=$(rss_mb)
sm=$(call CreateStateMachine '{"name":"parked","roleArn":"arn:aws:iam::000000000000:role/bench","definition":"{\"StartAt\":\"A\",\"States\":{\"A\":{\"Type\":\"Pass\",\"Next\":\"W\"},\"W\":{\"Type\":\"Wait\",\"Seconds\":3600,\"End\":true}}}"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["stateMachineArn"])')
t0=$(date +%s)
# wrk runs for its whole duration even when its threads stop early, so it runs in 2-second
# rounds, each thread stopping once its share of what is left is answered.
started=0
while [ "$started" -lt "$n" ]; do
    SFN_OP=StartExecution SFN_ARN=$sm SFN_LIMIT=$(( (n - started + 1) / 2 )) \
        timeout 60 wrk -t2 -c"$conns" -d2s -s "$here/sfn.lua" "$api/" > "$work/wrk.log" 2>&1 || true
    round=$(sed -n 's/^SFN answered=\([0-9]*\).*/\1/p' "$work/wrk.log")
    grep -q 'failed=0' "$work/wrk.log" || { cat "$work/wrk.log" >&2; exit 1; }
    started=$(( started + round ))
done
t1=$(date +%s)
sleep 5
# RSS before the check below, whose listing pages make the process allocate.
rss=$(rss_mb)
read -r running waiting sampled < <(parked)
echo "started $running executions in $(( t1 - t0 )) s; $waiting of $sampled sampled are in their Wait"
echo "RSS: idle $idle MB, with $running parked $rss MB ($(( (rss - idle) * 1048576 / running )) bytes each)"
echo "store: $(du -sm "$work/data" | cut -f1) MB on disk"
kill $pid; wait $pid 2>/dev/null || true
start_trellis
sleep 5
echo "after a restart (all $running resumed and parked again): RSS $(rss_mb) MB"
