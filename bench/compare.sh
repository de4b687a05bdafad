#!/usr/bin/env bash
# Side-by-side load test: privgate and nginx as equivalent TLS reverse proxies in front of
# the same upstream, driven by the same wrk settings in the same run.
#
#   bench/compare.sh            # defaults below; override with env vars, e.g. DURATION=30s
#
# Equivalent means: TLS 1.3 with the same ECDSA P-256 certificate, HTTP/1.1 keep-alive from
# the client, a keep-alive pool to the upstream, same number of worker threads/processes,
# no access logging on either side (privgate's request log is turned down to warnings).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-2}
PATH_QUERY=${PATH_QUERY:-/customers?limit=3}
UPSTREAM_PORT=${UPSTREAM_PORT:-19080}
PRIVGATE_PORT=${PRIVGATE_PORT:-18443}
ADMIN_PORT=${ADMIN_PORT:-19090}
NGINX_PORT=${NGINX_PORT:-18444}
OUT=bench/out
mkdir -p "$OUT"

need() { command -v "$1" >/dev/null 2>&1 || { echo "installing $2"; apt-get install -y -qq "$2" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }; }
need nginx nginx
need wrk wrk

cargo build --release --locked -q
BIN=target/release/privgate

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

rm -rf "$OUT/certs"
"$BIN" certs dev --out "$OUT/certs" >/dev/null

"$BIN" demo --upstream-only --upstream-port "$UPSTREAM_PORT" >"$OUT/upstream.log" 2>&1 &
pids+=($!)

cat >"$OUT/privgate.toml" <<TOML
[[listener]]
name = "bench"
address = "127.0.0.1:$PRIVGATE_PORT"
cert = "certs/server.pem"
key = "certs/server.key.pem"

[admin]
address = "127.0.0.1:$ADMIN_PORT"

[upstream.core]
url = "http://127.0.0.1:$UPSTREAM_PORT"

[[route]]
name = "customers"
path_prefix = "/customers"
upstream = "core"

[[route]]
name = "customers-buffered"
path_prefix = "/buffered"
upstream = "core"
strip_prefix = true
body = "buffered"
TOML
TOKIO_WORKER_THREADS=$WORKERS RUST_LOG=warn "$BIN" serve --config "$OUT/privgate.toml" >"$OUT/privgate.log" 2>&1 &
pids+=($!)

NGINX_DIR=$(realpath "$OUT")/nginx
mkdir -p "$NGINX_DIR/logs"
cat >"$NGINX_DIR/nginx.conf" <<NGINX
worker_processes $WORKERS;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream core { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT ssl http2;  # Debian 12's nginx 1.22 predates 'http2 on'
    ssl_certificate $(realpath "$OUT")/certs/server.pem;
    ssl_certificate_key $(realpath "$OUT")/certs/server.key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    client_max_body_size 1m;
    location / {
      proxy_pass http://core;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Request-Id \$request_id;
      proxy_connect_timeout 2s;
      proxy_read_timeout 30s;
    }
  }
}
NGINX
nginx -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -g 'daemon off;' &
pids+=($!)

for port in "$UPSTREAM_PORT" "$PRIVGATE_PORT" "$NGINX_PORT"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done
BYTES=$(curl -sS --cacert "$OUT/certs/ca.pem" "https://localhost:$PRIVGATE_PORT$PATH_QUERY" | wc -c)
NGINX_BYTES=$(curl -sS --cacert "$OUT/certs/ca.pem" "https://localhost:$NGINX_PORT$PATH_QUERY" | wc -c)
[ "$BYTES" = "$NGINX_BYTES" ] || { echo "responses differ: $BYTES vs $NGINX_BYTES bytes"; exit 1; }

to_ms() { awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); v=v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v=v*1000 }; printf "%.2f", v }'; }

# run NAME URL: warm up, measure, print "name rps p50 p99"
run() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$2" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2" >"$OUT/$1.wrk"
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/$1.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$OUT/$1.wrk" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' "$OUT/$1.wrk" | to_ms)
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$OUT/$1.wrk")
  [ -z "$errors" ] || { echo "$1: $errors"; exit 1; }
  echo "$1 $rps $p50 $p99"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, GET $PATH_QUERY ($BYTES-byte JSON), keep-alive HTTPS (TLS 1.3)"
nginx_row=$(run nginx "https://localhost:$NGINX_PORT$PATH_QUERY")
privgate_row=$(run privgate "https://localhost:$PRIVGATE_PORT$PATH_QUERY")
buffered_row=$(run privgate-buffered "https://localhost:$PRIVGATE_PORT/buffered$PATH_QUERY")

printf '\n| proxy | requests/s | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |\n'
for row in "$nginx_row" "$privgate_row" "$buffered_row"; do
  read -r name rps p50 p99 <<<"$row"
  printf '| %s | %.0f | %s | %s |\n' "$name" "$rps" "$p50" "$p99"
done
read -r _ n_rps n_p50 n_p99 <<<"$nginx_row"
read -r _ p_rps p_p50 p_p99 <<<"$privgate_row"
awk -v a="$p_rps" -v b="$n_rps" -v c="$p_p50" -v d="$n_p50" -v e="$p_p99" -v f="$n_p99" \
  'BEGIN { printf "\nprivgate/nginx: requests/s %.2f, p50 %.2f, p99 %.2f\n", a/b, c/d, e/f }'
