#!/usr/bin/env bash
# New-connection TLS 1.3 handshakes per second, full and resumed, against nginx and privgate
# side by side in ROUNDS alternating rounds; medians and ratios to nginx.
#
#   bench/handshakes.sh                 # BIN, BIN_BEFORE, QUICK=1 as in compare.sh
#
# The client is `openssl s_time` (HS_CLIENTS processes at once, each HS_TIME seconds):
# `-new` makes a full handshake per connection, `-reuse` resumes the first connection's
# session on every later one (TLS 1.3: a session ticket, PSK with (EC)DHE). Each connection
# sends one `GET /handshake` that both proxies answer 404 themselves, so the ticket the
# server sends after the handshake is read. s_time marks each connection `r` when the server
# resumed it and `*` when it made a full handshake instead; the "resumed" column counts them,
# so a server that does not resume shows 0% there (and full-handshake costs).
#
# Besides the rate (bounded by the client as much as by the server on a small machine), each
# row gives the server's CPU time and context switches per handshake from /proc: the
# server-side cost whatever the client manages.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then HS_TIME=${HS_TIME:-2}; else HS_TIME=${HS_TIME:-10}; fi
HS_CLIENTS=${HS_CLIENTS:-2}
NGINX_PORT=${NGINX_PORT:-$(port 18544)}
PRIVGATE_PORT=${PRIVGATE_PORT:-$(port 18543)}
ADMIN_PORT=${ADMIN_PORT:-$(port 19190)}
BEFORE_PORT=${BEFORE_PORT:-$(port 18553)}
BEFORE_ADMIN_PORT=${BEFORE_ADMIN_PORT:-$(port 19193)}
ports_free "$NGINX_PORT" "$PRIVGATE_PORT" "$ADMIN_PORT" "$BEFORE_PORT" "$BEFORE_ADMIN_PORT"

need nginx nginx
need openssl openssl
privgate_binary
out_dir handshakes
dev_certs

# No request reaches an upstream here; the address only has to parse.
stream_config "$OUT/privgate.toml" "$PRIVGATE_PORT" "$ADMIN_PORT" http://127.0.0.1:9
privgate_serve privgate "$BIN" "$OUT/privgate.toml"
PRIVGATE=$PID
if [ -n "${BIN_BEFORE:-}" ]; then
  stream_config "$OUT/privgate-before.toml" "$BEFORE_PORT" "$BEFORE_ADMIN_PORT" http://127.0.0.1:9
  privgate_serve privgate-before "$BIN_BEFORE" "$OUT/privgate-before.toml"
  BEFORE=$PID
fi
nginx_config "$OUT/nginx" "$NGINX_PORT" 127.0.0.1:9 "" 'location = /handshake { return 404; }'
start_nginx nginx "$OUT/nginx"
NGINX=$PID
for port in "$NGINX_PORT" "$PRIVGATE_PORT" ${BIN_BEFORE:+"$BEFORE_PORT"}; do wait_port "$port"; done

# measure_handshakes TABLE ROW ROUND PID PORT MODE: HS_CLIENTS s_time processes in MODE
# (new or reuse) at once; records handshakes/s (all clients, wall clock), the share resumed,
# and the server's CPU time and context switches per handshake.
measure_handshakes() {
  local table=$1 row=$2 round=$3 pid=$4 port=$5 mode=$6
  local raw procs before after start end clients=() i connections resumed full cost rate
  raw="$OUT/$(echo "$table-$row-$round" | tr -c 'A-Za-z0-9._-' _)"
  read -ra procs <<<"$(served_by "$pid")"
  before=$(counters "${procs[@]}")
  start=$(date +%s.%N)
  for i in $(seq "$HS_CLIENTS"); do
    openssl s_time -connect "localhost:$port" -"$mode" -tls1_3 -time "$HS_TIME" \
      -www /handshake >"$raw.$i" 2>&1 &
    clients+=($!)
  done
  wait "${clients[@]}"
  end=$(date +%s.%N)
  after=$(counters "${procs[@]}")
  connections=$(cat "$raw".* | awk '/connections in .* real seconds/ { n += $1 } END { print n + 0 }')
  resumed=$(cat "$raw".* | grep -E '^[r*]+$' | tr -cd r | wc -c)
  full=$(cat "$raw".* | grep -E '^[r*]+$' | tr -cd '*' | wc -c)
  [ "$connections" -gt 0 ] || { echo "$row: no connection made (raw: $raw.*)" >&2; exit 1; }
  rate=$(awk -v n="$connections" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", n / (e - s) }')
  cost=$(per_request "$before" "$after" "$connections")
  # shellcheck disable=SC2086 # cost is two columns
  record "$table" "$row" "$round" "$rate" \
    "$(awk -v r="$resumed" -v f="$full" 'BEGIN { printf "%.1f", r + f ? 100 * r / (r + f) : 0 }')" $cost
}

results "$OUT/results.tsv" "handshakes/s" "resumed %" "CPU µs/handshake" "switches/handshake"
echo "## bench/handshakes.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(machine)."
echo "Settings: ROUNDS=$ROUNDS alternating rounds; $HS_CLIENTS openssl s_time clients at once for $HS_TIME s, TLS 1.3, ECDSA P-256, one GET answered 404 by the proxy per connection; $WORKERS nginx workers, $WORKERS privgate runtime threads.${BIN_BEFORE:+ Before: $BIN_BEFORE.}"

for mode in new reuse; do
  if [ "$mode" = new ]; then table="TLS 1.3 full handshakes (s_time -new)"; else table="TLS 1.3 resumed handshakes (s_time -reuse, session tickets)"; fi
  for round in $(seq "$ROUNDS"); do
    measure_handshakes "$table" nginx "$round" "$NGINX" "$NGINX_PORT" "$mode"
    measure_handshakes "$table" privgate "$round" "$PRIVGATE" "$PRIVGATE_PORT" "$mode"
    if [ -n "${BIN_BEFORE:-}" ]; then
      measure_handshakes "$table" "before: privgate" "$round" "$BEFORE" "$BEFORE_PORT" "$mode"
    fi
  done
  python3 bench/summarise.py "$RESULTS" --table "$table" --ratio handshakes/s --ratio "CPU µs/handshake"
done

echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Raw outputs: $OUT."
