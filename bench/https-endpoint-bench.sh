#!/usr/bin/env bash
# A private HTTPS service through a resource endpoint (Trellis originates TLS) beside nginx
# `proxy_pass https://` to the same service, and the service itself over HTTPS for reference:
# wrk through each, interleaved, with ../shared/bench/proxy-bench.sh (loopback only, every run
# bounded in time).
#
# The service is nginx (1 worker, `return 200 "ok"`) on 127.0.0.1:18443 with a certificate for
# upstream.bench.internal from a CA this script makes (openssl). Both proxies take plain HTTP
# from wrk and speak TLS to the service, verifying it against that CA and name, with a pool of
# kept-alive upstream connections: nginx on 127.0.0.1:18444 (worker_processes auto, `keepalive`
# pool, session reuse), Trellis on its endpoint for the resource configuration of
# bench/https-endpoint-bench.json (reported by `trellis endpoints`).
#
#   bench/https-endpoint-bench.sh [proxy-bench.sh options, e.g. -d 8 -r 3 -c 64]
#
# Environment: TRELLIS_BIN (default $CARGO_TARGET_DIR or target/, then release/trellis);
# TRELLIS_BASELINE=/path/to/another/trellis adds it as target `trellis-baseline` (A/B runs);
# TRELLIS_NOLOG=1 adds a second Trellis with the resource access log off (`trellis-nolog`).
# Needs: nginx (nginx-light has the ssl module), wrk, curl, openssl, a release build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
bin=${TRELLIS_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/trellis}
[ -x "$bin" ] || { echo "build first: cargo build --release (or set TRELLIS_BIN)" >&2; exit 2; }
for p in nginx wrk curl openssl; do
    command -v $p > /dev/null || { echo "$p not found (Debian: apt-get install nginx-light wrk curl openssl)" >&2; exit 2; }
done
for port in 18443 18444; do
    [ -z "$(ss -Hltn "sport = :$port")" ] || { echo "port $port is taken" >&2; exit 2; }
done

run=$(mktemp -d /tmp/https-endpoint-bench.XXXX)
mkdir -p "$run"/{logs,tmp,pki}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$run"' EXIT

# ---- PKI: a CA and the service's certificate (P-256, as a typical service would have) -------
pki=$run/pki
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 \
    -subj "/CN=Trellis bench CA" -keyout "$pki/ca.key" -out "$pki/ca.pem" 2> /dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -subj "/CN=upstream.bench.internal" -keyout "$pki/server.key" -out "$pki/server.csr" 2> /dev/null
printf 'subjectAltName=DNS:upstream.bench.internal\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' > "$pki/ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/ext" -out "$pki/server.pem" 2> /dev/null

common="access_log off;
    client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
    keepalive_requests 10000000; keepalive_timeout 75s;"

# ---- the private HTTPS service ----------------------------------------------------------------
cat > "$run/upstream.conf" <<EOF
worker_processes 1;
pid upstream.pid;
error_log logs/upstream.error.log warn;
events { worker_connections 4096; }
http {
    $common
    server {
        listen 127.0.0.1:18443 ssl backlog=4096;
        server_name upstream.bench.internal;
        ssl_certificate $pki/server.pem;
        ssl_certificate_key $pki/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:up:10m;
        location / { default_type text/plain; return 200 "ok"; }
    }
}
EOF

# ---- nginx: plain HTTP in, TLS to the service, verified, pooled -------------------------------
cat > "$run/nginx-proxy.conf" <<EOF
worker_processes auto;
pid nginx-proxy.pid;
error_log logs/nginx-proxy.error.log warn;
events { worker_connections 8192; }
http {
    $common
    upstream private_https {
        server 127.0.0.1:18443;
        keepalive 128;
        keepalive_requests 10000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:18444 backlog=4096;
        location / {
            proxy_pass https://private_https;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host upstream.bench.internal;
            proxy_ssl_server_name on;
            proxy_ssl_name upstream.bench.internal;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $pki/ca.pem;
            proxy_ssl_session_reuse on;
        }
    }
}
EOF

wait_port() { for _ in $(seq 100); do [ -n "$(ss -Hltn "sport = :$1")" ] && return 0; sleep 0.1; done; return 1; }
nginx -p "$run/" -c "$run/upstream.conf" -g 'daemon off;' > "$run/logs/upstream.out" 2>&1 &
pids+=($!); upstream_pid=$!
nginx -p "$run/" -c "$run/nginx-proxy.conf" -g 'daemon off;' > "$run/logs/nginx-proxy.out" 2>&1 &
pids+=($!); nginx_pid=$!
wait_port 18443 && wait_port 18444 || { cat "$run"/logs/* >&2; exit 1; }

# ---- Trellis: one instance per binary under test ---------------------------------------------
# start_trellis NAME BIN [ENV=VALUE...] -> sets trellis_pid and endpoint
start_trellis() {
    local name=$1 b=$2 data=$run/$1
    shift 2
    mkdir -p "$data/certificates"
    cp "$pki/ca.pem" "$data/certificates/bench-ca.pem"
    env "$@" "$b" serve --config "$here/https-endpoint-bench.json" --data-dir "$data" \
        --api 127.0.0.1:0 --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 > "$data/ready" 2> "$data/log" &
    trellis_pid=$!
    pids+=($trellis_pid)
    for _ in $(seq 100); do grep -q ready "$data/ready" 2> /dev/null && break; sleep 0.1; done
    local api
    api=$(sed 's/.*"api":"\([^"]*\)".*/\1/' "$data/ready")
    endpoint=$("$b" endpoints --endpoint "http://$api" | awk -F'\t' '$2 == "bench-https" {print $3}')
    [ -n "$endpoint" ] || { echo "$name: no endpoint for bench-https" >&2; cat "$data/log" >&2; exit 1; }
    echo "$name: pid $trellis_pid, endpoint $endpoint, RSS idle $(ps -o rss= -p "$trellis_pid") KiB" >&2
}

targets=(direct=https://127.0.0.1:18443/ nginx=http://127.0.0.1:18444/)
cpu=(-P direct=$upstream_pid -P nginx=$nginx_pid)
start_trellis trellis "$bin" TRELLIS_LOG=info
targets+=(trellis="$endpoint/") cpu+=(-P trellis=$trellis_pid)
if [ -n "${TRELLIS_NOLOG:-}" ]; then
    start_trellis trellis-nolog "$bin" TRELLIS_LOG=info,trellis::resource_access=off
    targets+=(trellis-nolog="$endpoint/") cpu+=(-P trellis-nolog=$trellis_pid)
fi
if [ -n "${TRELLIS_BASELINE:-}" ]; then
    start_trellis trellis-baseline "$TRELLIS_BASELINE" TRELLIS_LOG=info
    targets+=(trellis-baseline="$endpoint/") cpu+=(-P trellis-baseline=$trellis_pid)
fi

# The answer through an endpoint must be the service's own.
for t in "${targets[@]}"; do
    body=$(curl -sk --max-time 3 "${t#*=}")
    [ "$body" = ok ] || { echo "${t%%=*} answered '$body', not the service's 'ok'" >&2; exit 1; }
done

"$shared/proxy-bench.sh" "$@" "${cpu[@]}" "${targets[@]}"
# Connections each proxy keeps open to the service after the load: its pool (a proxy that did
# not keep connections alive would have none left, and would have made one per request).
echo "connections kept open to the service, by process:" >&2
ss -Htnp state established '( dport = :18443 )' | grep -o 'users:(("[^"]*",pid=[0-9]*' |
    sed 's/users:(("//; s/",pid=/ pid /' | sort | uniq -c >&2 || true
for p in "${pids[@]}"; do
    [ -d "/proc/$p" ] && echo "pid $p ($(ps -o comm= -p "$p")): RSS $(ps -o rss= -p "$p") KiB" >&2
done
