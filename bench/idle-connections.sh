#!/usr/bin/env bash
# Memory held by idle keep-alive TLS connections: nginx and privgate side by side, each
# holding IDLE_COUNT connections (default 10,000) that have each served one request; ROUNDS
# alternating rounds, medians and ratios to nginx.
#
#   bench/idle-connections.sh          # BIN, BIN_BEFORE, QUICK=1 as in compare.sh
#
# For each server: resident memory (VmRSS from /proc; nginx: master and workers summed,
# pages they share counted in each) at rest, with the connections open and idle, and after
# they closed; then the increase per connection. The client is bench/idle_clients.py (one
# asyncio process, TLS 1.3, HTTP/1.1); it checks at the end that the server still kept every
# connection (one more request on each). Each connection's request is answered 404 by the
# proxy itself, so no upstream is involved.
#
# Both servers are allowed the connections: file descriptor limits are raised for this
# shell and its children, nginx gets worker_connections for all of them, privgate's
# [limits] max_connections and idle_timeout are raised likewise (nginx's keepalive_timeout
# too), so neither closes an idle connection while it is measured.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then IDLE_COUNT=${IDLE_COUNT:-1000}; else IDLE_COUNT=${IDLE_COUNT:-10000}; fi
IDLE_TIMEOUT_S=${IDLE_TIMEOUT_S:-120}   # bound on each step of the client
SETTLE_S=${SETTLE_S:-2}                 # pause before reading memory
NGINX_PORT=${NGINX_PORT:-$(port 18644)}
PRIVGATE_PORT=${PRIVGATE_PORT:-$(port 18643)}
ADMIN_PORT=${ADMIN_PORT:-$(port 19290)}
BEFORE_PORT=${BEFORE_PORT:-$(port 18653)}
BEFORE_ADMIN_PORT=${BEFORE_ADMIN_PORT:-$(port 19293)}
ports_free "$NGINX_PORT" "$PRIVGATE_PORT" "$ADMIN_PORT" "$BEFORE_PORT" "$BEFORE_ADMIN_PORT"

need nginx nginx
privgate_binary
out_dir idle-connections
dev_certs
# Each process (client, each server) holds one descriptor per connection, plus its own.
FILES=$((IDLE_COUNT + 2048))
ulimit -n "$FILES" || { echo "cannot raise the open-files limit to $FILES (hard: $(ulimit -Hn))" >&2; exit 1; }

# privgate_idle_config FILE PORT ADMIN_PORT: the stream gateway allowed IDLE_COUNT idle
# connections for longer than the run.
privgate_idle_config() {
  stream_config "$1" "$2" "$3" http://127.0.0.1:9
  cat >>"$1" <<TOML

[limits]
max_connections = $((IDLE_COUNT + 1000))
idle_timeout = "10m"
TOML
}
privgate_idle_config "$OUT/privgate.toml" "$PRIVGATE_PORT" "$ADMIN_PORT"
privgate_serve privgate "$BIN" "$OUT/privgate.toml"
PRIVGATE=$PID
if [ -n "${BIN_BEFORE:-}" ]; then
  privgate_idle_config "$OUT/privgate-before.toml" "$BEFORE_PORT" "$BEFORE_ADMIN_PORT"
  privgate_serve privgate-before "$BIN_BEFORE" "$OUT/privgate-before.toml"
  BEFORE=$PID
fi
nginx_config "$OUT/nginx" "$NGINX_PORT" 127.0.0.1:9 "keepalive_timeout 10m;" \
  'location = /idle { return 404; }' "worker_rlimit_nofile $FILES;"
sed -i "s/worker_connections 4096;/worker_connections $((IDLE_COUNT + 1024));/" "$OUT/nginx/nginx.conf"
start_nginx nginx "$OUT/nginx"
NGINX=$PID
for port in "$NGINX_PORT" "$PRIVGATE_PORT" ${BIN_BEFORE:+"$BEFORE_PORT"}; do wait_port "$port"; done
sleep "$SETTLE_S"

# measure_idle TABLE ROW ROUND PID PORT: memory at rest, with IDLE_COUNT idle connections
# and after they closed; the client's own counts are kept in the raw output.
measure_idle() {
  local table=$1 row=$2 round=$3 pid=$4 port=$5 raw procs rest open closed line opened kept
  raw="$OUT/$(echo "$table-$row-$round" | tr -c 'A-Za-z0-9._-' _).json"
  read -ra procs <<<"$(served_by "$pid")"
  procs+=("$pid")  # nginx: the master's memory too
  read -ra procs <<<"$(printf '%s\n' "${procs[@]}" | sort -u | tr '\n' ' ')"
  rest=$(rss_kib "${procs[@]}")
  coproc CLIENT { python3 bench/idle_clients.py --port "$port" --count "$IDLE_COUNT" --ca "$CA" --timeout "$IDLE_TIMEOUT_S"; }
  read -r line <&"${CLIENT[0]}"
  opened=${line#open }
  sleep "$SETTLE_S"
  open=$(rss_kib "${procs[@]}")
  echo close >&"${CLIENT[1]}"
  read -r line <&"${CLIENT[0]}"
  echo "$line" >"$raw"
  wait "$CLIENT_PID" 2>/dev/null || true
  sleep "$SETTLE_S"
  closed=$(rss_kib "${procs[@]}")
  kept=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["kept_open"])' <"$raw")
  [ "$opened" = "$IDLE_COUNT" ] && [ "$kept" = "$IDLE_COUNT" ] ||
    echo "warning: $row, round $round: $opened of $IDLE_COUNT opened, $kept kept open ($raw)" >&2
  record "$table" "$row" "$round" \
    "$(awk -v k="$open" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v k="$rest" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v k="$closed" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v a="$open" -v b="$rest" -v n="$opened" 'BEGIN { printf "%.1f", n ? (a - b) / n : 0 }')" \
    "$opened" "$kept"
}

results "$OUT/results.tsv" "MiB open" "MiB at rest" "MiB after close" "KiB/connection" "opened" "kept open"
echo "## bench/idle-connections.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(machine)."
echo "Settings: ROUNDS=$ROUNDS alternating rounds; $IDLE_COUNT keep-alive TLS 1.3 connections (HTTP/1.1, one request each), held idle $SETTLE_S s before reading VmRSS; $WORKERS nginx workers, $WORKERS privgate runtime threads.${BIN_BEFORE:+ Before: $BIN_BEFORE.}"
table="$IDLE_COUNT idle keep-alive TLS connections, resident memory"
for round in $(seq "$ROUNDS"); do
  measure_idle "$table" nginx "$round" "$NGINX" "$NGINX_PORT"
  measure_idle "$table" privgate "$round" "$PRIVGATE" "$PRIVGATE_PORT"
  if [ -n "${BIN_BEFORE:-}" ]; then
    measure_idle "$table" "before: privgate" "$round" "$BEFORE" "$BEFORE_PORT"
  fi
done
python3 bench/summarise.py "$RESULTS" --table "$table" --ratio "MiB open" --ratio "KiB/connection"
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Raw outputs: $OUT."
