#!/usr/bin/env bash
# Cost as the body grows: pages of protected customer records of about BODY_SIZES (default
# 1 KB, 16 KB, 256 KB) read through nginx, privgate's stream route (no field rules) and
# privgate's protected route (the demo's field rules: every record its own data subject,
# decided and revealed masked), side by side in ROUNDS alternating rounds; medians, ratios
# to nginx, and each proxy's CPU time and context switches per request.
#
#   bench/body-curve.sh                # BIN, BIN_BEFORE, QUICK=1 as in compare.sh
#
# One upstream serves every proxy: nginx serving the pages as static files (plain HTTP on
# loopback; a page per size, chosen by the query), so the upstream is never the bottleneck.
# The records are real gateway output: customers onboarded through `privgate demo`'s gateway
# (bench/body_pages.py), which stores them in the demo's sample upstream with their PII
# protected, read back from there. A build measured as BIN_BEFORE has its own keyring, so it
# gets its own pages, protected by its own demo.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
  DURATION=${DURATION:-4s}  # a 256 KB page with rules takes seconds under load
  WARMUP=${WARMUP:-1s}
else
  DURATION=${DURATION:-10s}
  WARMUP=${WARMUP:-2s}
fi
# A light load: the curve is about the cost of one request as the body grows (CPU per
# request), not about saturation; with rules, a 256 KB page (hundreds of data subjects)
# could take seconds, so few requests are in flight when a run ends (and those that are
# count in its CPU time but not in its requests). wrk's default 2 s timeout would drop such
# requests as errors instead of measuring them.
CONNECTIONS=${BODY_CONNECTIONS:-4}
WRK_TIMEOUT=${WRK_TIMEOUT:-60s}
BODY_SIZES=${BODY_SIZES:-1k 16k 256k}
STATIC_PORT=${STATIC_PORT:-$(port 19380)}
NGINX_PORT=${NGINX_PORT:-$(port 18744)}
PRIVGATE_PORT=${PRIVGATE_PORT:-$(port 18743)}
ADMIN_PORT=${ADMIN_PORT:-$(port 19390)}
PROTECTED_PORT=${PROTECTED_PORT:-$(port 18746)}
PROTECTED_ADMIN_PORT=${PROTECTED_ADMIN_PORT:-$(port 19392)}
DEMO_PORT=${DEMO_PORT:-$(port 18745)}
DEMO_ADMIN_PORT=${DEMO_ADMIN_PORT:-$(port 19391)}
DEMO_UPSTREAM_PORT=${DEMO_UPSTREAM_PORT:-$(port 19381)}
BEFORE_PROTECTED_PORT=${BEFORE_PROTECTED_PORT:-$(port 18756)}
BEFORE_PROTECTED_ADMIN_PORT=${BEFORE_PROTECTED_ADMIN_PORT:-$(port 19394)}
BEFORE_DEMO_PORT=${BEFORE_DEMO_PORT:-$(port 18755)}
BEFORE_DEMO_ADMIN_PORT=${BEFORE_DEMO_ADMIN_PORT:-$(port 19395)}
BEFORE_DEMO_UPSTREAM_PORT=${BEFORE_DEMO_UPSTREAM_PORT:-$(port 19382)}
ports_free "$STATIC_PORT" "$NGINX_PORT" "$PRIVGATE_PORT" "$ADMIN_PORT" "$PROTECTED_PORT" "$PROTECTED_ADMIN_PORT" "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$DEMO_UPSTREAM_PORT" "$BEFORE_PROTECTED_PORT" "$BEFORE_PROTECTED_ADMIN_PORT" "$BEFORE_DEMO_PORT" "$BEFORE_DEMO_ADMIN_PORT" "$BEFORE_DEMO_UPSTREAM_PORT"

need nginx nginx
need wrk wrk
need curl curl
privgate_binary
out_dir body-curve
dev_certs
STATIC=http://127.0.0.1:$STATIC_PORT

# The upstream: nginx serving $OUT/pages/<set>/<size>.json for GET /customers?set=&size=.
mkdir -p "$OUT/static/logs" "$OUT/pages"
cat >"$OUT/static/nginx.conf" <<NGINX
worker_processes $WORKERS;
pid $OUT/static/nginx.pid;
error_log $OUT/static/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$STATIC_PORT;
    root $OUT/pages;
    default_type application/json;
    location = /customers { try_files /\$arg_set/\$arg_size.json =404; }
  }
}
NGINX
start_nginx static "$OUT/static"
wait_port "$STATIC_PORT"

# protected LABEL BINARY PORT ADMIN DEMO_PORT DEMO_ADMIN DEMO_UPSTREAM: one build's pages
# (protected by its own demo) and its protected gateway in front of the static upstream;
# sets PROTECTED_PID, TOKEN, PROTECTED_URL.
protected() {
  local label=$1 bin=$2 port=$3 admin=$4 demo_dir=$OUT/demo-$1 demo
  start_demo "demo-$label" "$bin" "$demo_dir" "$5" "$6" "$7"
  demo=$PID
  mkdir -p "$OUT/pages/$label"
  echo "$label pages (name, records, bytes):" >&2
  # shellcheck disable=SC2086 # one argument per size
  python3 bench/body_pages.py --gateway "https://localhost:$5" --certs "$demo_dir/certs" \
    --upstream "http://127.0.0.1:$7" --out "$OUT/pages/$label" $BODY_SIZES >&2
  stop "$demo"
  protected_config "$demo_dir" "$demo_dir/bench.toml" "$port" "$admin" "$STATIC" bench
  privgate_serve "protected-$label" "$bin" "$demo_dir/bench.toml"
  PROTECTED_PID=$PID
  wait_port "$port" 60
  PROTECTED_URL=https://localhost:$port
  TOKEN=$(cat "$demo_dir/tokens/password-only.jwt")
  local first revealed
  first=$(echo "$BODY_SIZES" | awk '{ print $1 }')
  revealed=$(curl -sS --cacert "$demo_dir/certs/ca.pem" -H "authorization: Bearer $TOKEN" \
    "$PROTECTED_URL/customers?set=$label&size=$first")
  if grep -q 'pgv1\.' <<<"$revealed" || ! grep -q '\*' <<<"$revealed"; then
    echo "$label: the protected route did not answer masked views: $revealed" >&2
    exit 1
  fi
}

protected after "$BIN" "$PROTECTED_PORT" "$PROTECTED_ADMIN_PORT" "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$DEMO_UPSTREAM_PORT"
PROTECTED=$PROTECTED_PID AFTER_TOKEN=$TOKEN AFTER_URL=$PROTECTED_URL
if [ -n "${BIN_BEFORE:-}" ]; then
  protected before "$BIN_BEFORE" "$BEFORE_PROTECTED_PORT" "$BEFORE_PROTECTED_ADMIN_PORT" \
    "$BEFORE_DEMO_PORT" "$BEFORE_DEMO_ADMIN_PORT" "$BEFORE_DEMO_UPSTREAM_PORT"
  BEFORE_PROTECTED=$PROTECTED_PID BEFORE_TOKEN=$TOKEN BEFORE_URL=$PROTECTED_URL
fi
stream_config "$OUT/privgate.toml" "$PRIVGATE_PORT" "$ADMIN_PORT" "$STATIC"
privgate_serve privgate "$BIN" "$OUT/privgate.toml"
STREAM=$PID
nginx_config "$OUT/nginx" "$NGINX_PORT" "127.0.0.1:$STATIC_PORT"
start_nginx nginx "$OUT/nginx"
NGINX=$PID
wait_port "$PRIVGATE_PORT"
wait_port "$NGINX_PORT"

results "$OUT/results.tsv" "requests/s" "p50 ms" "p99 ms" "CPU µs/req" "switches/req"
echo "## bench/body-curve.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(machine)."
echo "Settings: ROUNDS=$ROUNDS alternating rounds of $(seconds "$DURATION") s each after a $(seconds "$WARMUP") s warm-up; wrk -t$THREADS -c$CONNECTIONS; $WORKERS nginx workers, $WORKERS privgate runtime threads; keep-alive HTTPS, TLS 1.3; upstream: nginx serving static pages of protected customer records.${BIN_BEFORE:+ Before: $BIN_BEFORE.}"
for size in $BODY_SIZES; do
  query="/customers?set=after&size=$size"
  stored=$(curl -sS "$STATIC$query" | wc -c)
  records=$(curl -sS "$STATIC$query" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["customers"]))')
  revealed=$(curl -sS --cacert "$OUT/demo-after/certs/ca.pem" -H "authorization: Bearer $AFTER_TOKEN" "$AFTER_URL$query" | wc -c)
  table="body $size: $records records, $stored bytes stored, $revealed bytes answered masked"
  for round in $(seq "$ROUNDS"); do
    measure_wrk "$table" nginx "$round" "$NGINX" "https://localhost:$NGINX_PORT$query"
    measure_wrk "$table" "privgate, stream route (no rules)" "$round" "$STREAM" "https://localhost:$PRIVGATE_PORT$query"
    measure_wrk "$table" "privgate, field rules (masked views)" "$round" "$PROTECTED" "$AFTER_URL$query" -H "authorization: Bearer $AFTER_TOKEN"
    if [ -n "${BIN_BEFORE:-}" ]; then
      measure_wrk "$table" "before: privgate, field rules" "$round" "$BEFORE_PROTECTED" "$BEFORE_URL/customers?set=before&size=$size" -H "authorization: Bearer $BEFORE_TOKEN"
    fi
  done
  python3 bench/summarise.py "$RESULTS" --table "$table" --ratio requests/s --ratio "CPU µs/req"
done
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Raw outputs: $OUT."
