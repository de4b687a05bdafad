#!/usr/bin/env bash
# Side-by-side load test: privgate and nginx as equivalent TLS reverse proxies in front of
# the same upstream, driven by the same wrk settings in the same run.
#
#   bench/compare.sh            # defaults below; override with env vars, e.g. DURATION=30s
#
# Two tables: the plain proxy path (a list of customers, no field rules), and a protected
# route: one customer record read through the full pipeline of `privgate demo` (bearer
# token, Cedar decision with per-class views, 10 protected fields decrypted and masked, audit
# record), beside nginx and privgate forwarding the same record unrevealed.
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
PROTECTED_PATH=/customers/c-100
UPSTREAM_PORT=${UPSTREAM_PORT:-19080}
DEMO_PORT=${DEMO_PORT:-18445}
DEMO_ADMIN_PORT=${DEMO_ADMIN_PORT:-19091}
PRIVGATE_PORT=${PRIVGATE_PORT:-18443}
ADMIN_PORT=${ADMIN_PORT:-19090}
NGINX_PORT=${NGINX_PORT:-18444}
OUT=bench/out
mkdir -p "$OUT"

need() { command -v "$1" >/dev/null 2>&1 || { echo "installing $2"; apt-get install -y -qq "$2" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }; }
need nginx nginx
need wrk wrk

# The FHE feature is not on the proxy path; leaving it out keeps the release build short.
cargo build --release --locked -q --no-default-features
BIN=target/release/privgate

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

rm -rf "$OUT/certs"
"$BIN" certs dev --out "$OUT/certs" >/dev/null

# The demo: its sample upstream serves every proxy here; its gateway is the protected one.
rm -rf "$OUT/demo"
TOKIO_WORKER_THREADS=$WORKERS RUST_LOG=warn "$BIN" demo --dir "$OUT/demo" --port "$DEMO_PORT" \
  --admin-port "$DEMO_ADMIN_PORT" --upstream-port "$UPSTREAM_PORT" >"$OUT/demo.log" 2>&1 &
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

for port in "$UPSTREAM_PORT" "$DEMO_PORT" "$PRIVGATE_PORT" "$NGINX_PORT"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done
BYTES=$(curl -sS --cacert "$OUT/certs/ca.pem" "https://localhost:$PRIVGATE_PORT$PATH_QUERY" | wc -c)
NGINX_BYTES=$(curl -sS --cacert "$OUT/certs/ca.pem" "https://localhost:$NGINX_PORT$PATH_QUERY" | wc -c)
[ "$BYTES" = "$NGINX_BYTES" ] || { echo "responses differ: $BYTES vs $NGINX_BYTES bytes"; exit 1; }

to_ms() { awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); v=v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v=v*1000 }; printf "%.2f", v }'; }

# run NAME URL [wrk args]: warm up, measure, print "name rps p50 p99"
run() {
  local name=$1 url=$2
  shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$@" "$url" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$OUT/$name.wrk"
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/$name.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$OUT/$name.wrk" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' "$OUT/$name.wrk" | to_ms)
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$OUT/$name.wrk")
  [ -z "$errors" ] || { echo "$name: $errors"; exit 1; }
  echo "$name $rps $p50 $p99"
}

# table ROW...: a markdown table and the ratios of the second and third rows to the first
table() {
  printf '\n| proxy | requests/s | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |\n'
  for row in "$@"; do
    read -r name rps p50 p99 <<<"$row"
    printf '| %s | %.0f | %s | %s |\n' "$name" "$rps" "$p50" "$p99"
  done
  read -r _ n_rps n_p50 n_p99 <<<"$1"
  for row in "${@:2}"; do
    read -r name p_rps p_p50 p_p99 <<<"$row"
    awk -v n="$name" -v a="$p_rps" -v b="$n_rps" -v c="$p_p50" -v d="$n_p50" -v e="$p_p99" -v f="$n_p99" \
      'BEGIN { printf "%s/nginx: requests/s %.2f, p50 %.2f, p99 %.2f\n", n, a/b, c/d, e/f }'
  done
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, GET $PATH_QUERY ($BYTES-byte JSON), keep-alive HTTPS (TLS 1.3)"
nginx_row=$(run nginx "https://localhost:$NGINX_PORT$PATH_QUERY")
privgate_row=$(run privgate "https://localhost:$PRIVGATE_PORT$PATH_QUERY")
buffered_row=$(run privgate-buffered "https://localhost:$PRIVGATE_PORT/buffered$PATH_QUERY")
table "$nginx_row" "$privgate_row" "$buffered_row"

# The protected route: a customer onboarded through the demo gateway (its PII protected
# before the sample core bank stores it), then read back by a fraud analyst's password-only
# token (Cedar: customers:read; masked views, so every protected field is decrypted and
# masked). nginx and privgate's stream route forward the stored record unrevealed.
DEMO_CERTS="$OUT/demo/certs"
status=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$DEMO_CERTS/ca.pem" \
  --cert "$DEMO_CERTS/client-b.pem" --key "$DEMO_CERTS/client-b.key.pem" \
  -X POST "https://localhost:$DEMO_PORT/customers" -H 'content-type: application/json' \
  -d '{"id":"c-100","name":"Jane Example","email":"jane@example.com","phone":"+44 20 7946 0000","national_id":"900-12-3456","date_of_birth":"1987-06-05","address":{"street":"1 High Street","city":"Leeds","postcode":"LS1 1AA","country":"GB"},"iban":"GB82WEST12345698765432","card_number":"4000001234567899"}')
[ "$status" = 201 ] || [ "$status" = 200 ] || { echo "onboarding c-100 through the demo answered $status"; exit 1; }
TOKEN=$(cat "$OUT/demo/tokens/password-only.jwt")
REVEALED=$(curl -sS --cacert "$DEMO_CERTS/ca.pem" -H "authorization: Bearer $TOKEN" "https://localhost:$DEMO_PORT$PROTECTED_PATH")
STORED=$(curl -sS "http://127.0.0.1:$UPSTREAM_PORT$PROTECTED_PATH")
grep -q 'pgv1\.' <<<"$STORED" || { echo "the upstream's record is not protected: $STORED"; exit 1; }
! grep -q 'pgv1\.' <<<"$REVEALED" && grep -q '\*' <<<"$REVEALED" ||
  { echo "the protected route did not answer a masked view: $REVEALED"; exit 1; }

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, GET $PROTECTED_PATH: stored ${#STORED} bytes (protected), revealed ${#REVEALED} bytes (masked)"
p_nginx_row=$(run nginx-stored "https://localhost:$NGINX_PORT$PROTECTED_PATH")
p_stream_row=$(run privgate-stream-stored "https://localhost:$PRIVGATE_PORT$PROTECTED_PATH")
p_revealed_row=$(run privgate-protected-route "https://localhost:$DEMO_PORT$PROTECTED_PATH" -H "authorization: Bearer $TOKEN")
table "$p_nginx_row" "$p_stream_row" "$p_revealed_row"
