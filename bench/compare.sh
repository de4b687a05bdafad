#!/usr/bin/env bash
# Side-by-side load test: privgate and nginx as equivalent TLS reverse proxies in front of
# the same upstream, driven by the same load generator in the same run, in ROUNDS
# alternating rounds (nginx, privgate, ..., nginx, privgate, ...); each table shows the
# median of every row over the rounds and its ratio to nginx.
#
#   bench/compare.sh                      # builds privgate (release, no FHE), ~15 minutes
#   BIN=path/to/privgate bench/compare.sh # a build as it is
#   BIN_BEFORE=path/to/old/privgate ...   # an earlier build measured in the same run
#   QUICK=1 bench/compare.sh              # short runs: a smoke test of the script
#
# Tables:
# - plain forwarding over HTTP/1.1 (wrk, each of CONNECTIONS keep-alive connections):
#   `GET /customers?limit=3`, a JSON list, no field rules; privgate's stream route and its
#   buffered route (body read whole and checked as JSON);
# - plain forwarding over HTTP/2 (h2load, H2_STREAMS concurrent streams on each of
#   H2_CONNECTIONS connections), the same request;
# - a protected route (wrk, each of CONNECTIONS): `GET /customers/c-100` read by the demo's
#   fraud analyst (bearer JWT, Cedar decision of the route and 9 field-class views, consent
#   lookup, 10 protected members decrypted and masked, a hash-chained audit record), beside
#   nginx and privgate's stream route forwarding the same stored record unrevealed.
# Every row also gives the proxy's CPU time and context switches per request, read from
# /proc over the measured run (nginx: its worker processes; privgate: the process).
#
# Equivalent means: TLS 1.3 with the same ECDSA P-256 certificate, keep-alive from the
# client, a keep-alive pool to the upstream, WORKERS worker threads/processes each, no
# access logging on either side (privgate's request log is turned down to warnings), the
# same forwarded headers. The upstream is `privgate demo`'s sample core bank (its own
# process); the protected route is the demo's configuration served by its own `privgate
# serve` process, so that each measured process does only its proxy's work.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
  DURATION=${DURATION:-2s}
  WARMUP=${WARMUP:-1s}
else
  DURATION=${DURATION:-10s}
  WARMUP=${WARMUP:-2s}
fi
CONNECTION_COUNTS=${CONNECTIONS:-32 64}
H2_CONNECTIONS=${H2_CONNECTIONS:-4}
H2_STREAMS=${H2_STREAMS:-100}
PATH_QUERY=${PATH_QUERY:-/customers?limit=3}
PROTECTED_PATH=/customers/c-100
# Ports (loopback): the sample upstream, the demo's own gateway (set-up only), then per
# build a stream gateway and a protected gateway with their admin ports.
UPSTREAM_PORT=${UPSTREAM_PORT:-$(port 19080)}
DEMO_PORT=${DEMO_PORT:-$(port 18445)}
DEMO_ADMIN_PORT=${DEMO_ADMIN_PORT:-$(port 19091)}
NGINX_PORT=${NGINX_PORT:-$(port 18444)}
PRIVGATE_PORT=${PRIVGATE_PORT:-$(port 18443)}
ADMIN_PORT=${ADMIN_PORT:-$(port 19090)}
PROTECTED_PORT=${PROTECTED_PORT:-$(port 18446)}
PROTECTED_ADMIN_PORT=${PROTECTED_ADMIN_PORT:-$(port 19092)}
BEFORE_PORT=${BEFORE_PORT:-$(port 18453)}
BEFORE_ADMIN_PORT=${BEFORE_ADMIN_PORT:-$(port 19093)}
BEFORE_PROTECTED_PORT=${BEFORE_PROTECTED_PORT:-$(port 18456)}
BEFORE_PROTECTED_ADMIN_PORT=${BEFORE_PROTECTED_ADMIN_PORT:-$(port 19094)}
BEFORE_DEMO_PORT=${BEFORE_DEMO_PORT:-$(port 18455)}
BEFORE_DEMO_ADMIN_PORT=${BEFORE_DEMO_ADMIN_PORT:-$(port 19095)}
BEFORE_DEMO_UPSTREAM_PORT=${BEFORE_DEMO_UPSTREAM_PORT:-$(port 19081)}
ports_free "$UPSTREAM_PORT" "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$NGINX_PORT" "$PRIVGATE_PORT" "$ADMIN_PORT" "$PROTECTED_PORT" "$PROTECTED_ADMIN_PORT" "$BEFORE_PORT" "$BEFORE_ADMIN_PORT" "$BEFORE_PROTECTED_PORT" "$BEFORE_PROTECTED_ADMIN_PORT" "$BEFORE_DEMO_PORT" "$BEFORE_DEMO_ADMIN_PORT" "$BEFORE_DEMO_UPSTREAM_PORT"

need nginx nginx
need wrk wrk
need h2load nghttp2-client
need curl curl
privgate_binary
out_dir compare
dev_certs
UPSTREAM=http://127.0.0.1:$UPSTREAM_PORT

# gateways LABEL BINARY PORT ADMIN PROTECTED_PORT PROTECTED_ADMIN DEMO_PORT DEMO_ADMIN
#   DEMO_UPSTREAM CUSTOMER: one build's stream gateway and protected gateway in front of the
# shared upstream, and a customer onboarded through the protected one; sets STREAM_PID,
# PROTECTED_PID, TOKEN and PROTECTED_URL.
gateways() {
  local label=$1 bin=$2 port=$3 admin=$4 p_port=$5 p_admin=$6 d_port=$7 d_admin=$8 d_up=$9
  local customer=${10} demo_dir=$OUT/demo-$1
  stream_config "$OUT/privgate-$label.toml" "$port" "$admin" "$UPSTREAM"
  privgate_serve "privgate-$label" "$bin" "$OUT/privgate-$label.toml"
  STREAM_PID=$PID
  # The demo sets up the directory (keyring, tokens, policies); for its upstream every
  # build uses the shared one, so the demo process of a build other than BIN can go.
  start_demo "demo-$label" "$bin" "$demo_dir" "$d_port" "$d_admin" "$d_up"
  [ "$label" = after ] || stop "$PID"
  protected_config "$demo_dir" "$demo_dir/bench.toml" "$p_port" "$p_admin" "$UPSTREAM" "bench"
  privgate_serve "protected-$label" "$bin" "$demo_dir/bench.toml"
  PROTECTED_PID=$PID
  wait_port "$port"
  wait_port "$p_port" 60
  PROTECTED_URL=https://localhost:$p_port
  onboard "$PROTECTED_URL" "$demo_dir/certs" "$customer"
  TOKEN=$(cat "$demo_dir/tokens/password-only.jwt")
  # The upstream holds the record protected; the protected route answers a masked view.
  local stored revealed
  stored=$(curl -sS "$UPSTREAM/customers/$customer")
  revealed=$(curl -sS --cacert "$demo_dir/certs/ca.pem" -H "authorization: Bearer $TOKEN" \
    "$PROTECTED_URL/customers/$customer")
  grep -q 'pgv1\.' <<<"$stored" || { echo "$label: the upstream's record is not protected: $stored" >&2; exit 1; }
  if grep -q 'pgv1\.' <<<"$revealed" || ! grep -q '\*' <<<"$revealed"; then
    echo "$label: the protected route did not answer a masked view: $revealed" >&2
    exit 1
  fi
  echo "$label: stored record ${#stored} bytes (protected), answer ${#revealed} bytes (masked)" >&2
}

# The upstream comes with the first demo; the builds' gateways, then nginx.
gateways after "$BIN" "$PRIVGATE_PORT" "$ADMIN_PORT" "$PROTECTED_PORT" "$PROTECTED_ADMIN_PORT" \
  "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$UPSTREAM_PORT" c-100
STREAM=$STREAM_PID PROTECTED=$PROTECTED_PID AFTER_TOKEN=$TOKEN AFTER_URL=$PROTECTED_URL
if [ -n "${BIN_BEFORE:-}" ]; then
  # The same stored record under another id: the before build has its own keyring.
  gateways before "$BIN_BEFORE" "$BEFORE_PORT" "$BEFORE_ADMIN_PORT" "$BEFORE_PROTECTED_PORT" \
    "$BEFORE_PROTECTED_ADMIN_PORT" "$BEFORE_DEMO_PORT" "$BEFORE_DEMO_ADMIN_PORT" \
    "$BEFORE_DEMO_UPSTREAM_PORT" c-200
  BEFORE_STREAM=$STREAM_PID BEFORE_PROTECTED=$PROTECTED_PID BEFORE_TOKEN=$TOKEN BEFORE_URL=$PROTECTED_URL
fi
nginx_config "$OUT/nginx" "$NGINX_PORT" "127.0.0.1:$UPSTREAM_PORT"
start_nginx nginx "$OUT/nginx"
NGINX=$PID
wait_port "$NGINX_PORT"

# Every proxy answers the same bytes on the plain path.
BYTES=$(curl -sS --cacert "$CA" "https://localhost:$NGINX_PORT$PATH_QUERY" | wc -c)
for port in "$PRIVGATE_PORT" ${BIN_BEFORE:+"$BEFORE_PORT"}; do
  bytes=$(curl -sS --cacert "$CA" "https://localhost:$port$PATH_QUERY" | wc -c)
  [ "$bytes" = "$BYTES" ] || { echo "responses differ: nginx $BYTES, port $port $bytes bytes" >&2; exit 1; }
done
STORED_BYTES=$(curl -sS "$UPSTREAM$PROTECTED_PATH" | wc -c)

# measure_h2load TABLE ROW ROUND PID URL: like measure_wrk (lib.sh) with h2load over HTTP/2;
# h2load prints no percentiles, so they come from its per-request log.
measure_h2load() {
  local table=$1 row=$2 round=$3 pid=$4 url=$5
  local raw procs before after requests rps p50 p99 cost failed
  raw="$OUT/$(echo "$table-$row-$round" | tr -c 'A-Za-z0-9._-' _).h2load"
  read -ra procs <<<"$(served_by "$pid")"
  local load=(h2load -c"$H2_CONNECTIONS" -m"$H2_STREAMS" -t"$THREADS")
  "${load[@]}" -D "$(seconds "$WARMUP")" "$url" >/dev/null
  before=$(counters "${procs[@]}")
  "${load[@]}" -D "$(seconds "$DURATION")" --log-file="$raw.log" "$url" >"$raw"
  after=$(counters "${procs[@]}")
  grep -qi 'application protocol: h2' "$raw" || { echo "$row did not speak h2: $raw" >&2; exit 1; }
  requests=$(awk '/^requests:/ { print $8 }' "$raw")
  failed=$(awk '/^requests:/ { n += $10 + $12 + $14 } /^status codes:/ { n += $7 + $9 } END { print n + 0 }' "$raw")
  failures "$table, $row, round $round" "$failed" "$requests" "$raw"
  rps=$(awk '/^finished in/ { print $4 }' "$raw")
  read -r p50 p99 < <(awk -F'\t' '{ print $3 }' "$raw.log" | sort -n |
    awk '{ v[NR] = $1 } END { printf "%.2f %.2f\n", v[int(NR * 0.50) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000 }')
  rm -f "$raw.log"  # large; the percentiles are kept in the results
  cost=$(per_request "$before" "$after" "$requests")
  # shellcheck disable=SC2086 # cost is two columns
  record "$table" "$row" "$round" "$rps" "$p50" "$p99" $cost
}

results "$OUT/results.tsv" "requests/s" "p50 ms" "p99 ms" "CPU µs/req" "switches/req"
echo "## bench/compare.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(machine)."
echo "Settings: ROUNDS=$ROUNDS alternating rounds of $(seconds "$DURATION") s each after a $(seconds "$WARMUP") s warm-up; wrk -t$THREADS, h2load -t$THREADS -c$H2_CONNECTIONS -m$H2_STREAMS; $WORKERS nginx workers, $WORKERS privgate runtime threads; keep-alive HTTPS, TLS 1.3, ECDSA P-256.${BIN_BEFORE:+ Before: $BIN_BEFORE.}"
echo "Plain path: GET $PATH_QUERY ($BYTES-byte JSON). Protected: GET $PROTECTED_PATH (stored record $STORED_BYTES bytes)."

# TABLES picks which tables run (default all three), e.g. TABLES=protected for goal 1 alone.
wants() { [[ " ${TABLES:-plain h2 protected} " == *" $1 "* ]]; }

wants plain && for CONNECTIONS in $CONNECTION_COUNTS; do
  table="plain forwarding, HTTP/1.1, $CONNECTIONS connections"
  for round in $(seq "$ROUNDS"); do
    measure_wrk "$table" nginx "$round" "$NGINX" "https://localhost:$NGINX_PORT$PATH_QUERY"
    measure_wrk "$table" "privgate, stream route" "$round" "$STREAM" "https://localhost:$PRIVGATE_PORT$PATH_QUERY"
    measure_wrk "$table" "privgate, buffered route" "$round" "$STREAM" "https://localhost:$PRIVGATE_PORT/buffered$PATH_QUERY"
    if [ -n "${BIN_BEFORE:-}" ]; then
      measure_wrk "$table" "before: privgate, stream route" "$round" "$BEFORE_STREAM" "https://localhost:$BEFORE_PORT$PATH_QUERY"
      measure_wrk "$table" "before: privgate, buffered route" "$round" "$BEFORE_STREAM" "https://localhost:$BEFORE_PORT/buffered$PATH_QUERY"
    fi
  done
  python3 bench/summarise.py "$RESULTS" --table "$table" --ratio requests/s --ratio "p99 ms"
done

table="plain forwarding, HTTP/2, $H2_CONNECTIONS connections x $H2_STREAMS streams"
wants h2 && for round in $(seq "$ROUNDS"); do
  measure_h2load "$table" nginx "$round" "$NGINX" "https://localhost:$NGINX_PORT$PATH_QUERY"
  measure_h2load "$table" "privgate, stream route" "$round" "$STREAM" "https://localhost:$PRIVGATE_PORT$PATH_QUERY"
  if [ -n "${BIN_BEFORE:-}" ]; then
    measure_h2load "$table" "before: privgate, stream route" "$round" "$BEFORE_STREAM" "https://localhost:$BEFORE_PORT$PATH_QUERY"
  fi
done
wants h2 && python3 bench/summarise.py "$RESULTS" --table "$table" --ratio requests/s --ratio "p99 ms"

wants protected && for CONNECTIONS in $CONNECTION_COUNTS; do
  table="protected route, HTTP/1.1, $CONNECTIONS connections"
  for round in $(seq "$ROUNDS"); do
    measure_wrk "$table" "nginx, stored record" "$round" "$NGINX" "https://localhost:$NGINX_PORT$PROTECTED_PATH"
    measure_wrk "$table" "privgate, stream route, stored record" "$round" "$STREAM" "https://localhost:$PRIVGATE_PORT$PROTECTED_PATH"
    measure_wrk "$table" "privgate, protected route (masked views)" "$round" "$PROTECTED" "$AFTER_URL$PROTECTED_PATH" -H "authorization: Bearer $AFTER_TOKEN"
    if [ -n "${BIN_BEFORE:-}" ]; then
      measure_wrk "$table" "before: privgate, protected route" "$round" "$BEFORE_PROTECTED" "$BEFORE_URL/customers/c-200" -H "authorization: Bearer $BEFORE_TOKEN"
    fi
  done
  python3 bench/summarise.py "$RESULTS" --table "$table" --ratio requests/s --ratio "p99 ms"
done

echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Raw outputs: $OUT."
