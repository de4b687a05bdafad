#!/usr/bin/env bash
# Instructions per request on the plain forwarding path, privgate's stream route and nginx
# side by side, over HTTP/1.1 and HTTP/2, counted by callgrind: the user-space part of
# bench/compare.sh's plain tables (`GET /customers?limit=3` from the demo's upstream),
# stable to a fraction of a percent where requests/s rounds spread by 10-25 %. The kernel's
# share (TCP over loopback, the same for both proxies) is not counted.
#
#   BIN=target/release/privgate bench/plain-instructions.sh
#   BIN=new BIN_BEFORE=old bench/plain-instructions.sh   # two builds, one after the other
#   REQUESTS=4000 NGINX=0 ...                            # the defaults: 4000, nginx counted
#
# Each proxy runs under valgrind (nginx as one process: `master_process off`, one worker);
# HTTP/1.1 is h2load --h1 over 4 keep-alive connections, HTTP/2 4 connections x 100
# streams; WARMUP_REQUESTS first, then the counters are zeroed and REQUESTS counted.
# Profiles: bench/out/plain-instructions/<label>-<h1|h2>.callgrind.<n>.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

REQUESTS=${REQUESTS:-4000}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-400}
UPSTREAM_PORT=${UPSTREAM_PORT:-$(port 39080)}
DEMO_PORT=${DEMO_PORT:-$(port 38445)}
DEMO_ADMIN_PORT=${DEMO_ADMIN_PORT:-$(port 39091)}
PROXY_PORT=${PROXY_PORT:-$(port 38443)}
PROXY_ADMIN_PORT=${PROXY_ADMIN_PORT:-$(port 39090)}
ports_free "$UPSTREAM_PORT" "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$PROXY_PORT" "$PROXY_ADMIN_PORT"

need valgrind valgrind
need h2load nghttp2-client
need curl curl
need nginx nginx
privgate_binary
out_dir plain-instructions
dev_certs
start_demo demo "$BIN" "$OUT/demo" "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$UPSTREAM_PORT"
UPSTREAM=http://127.0.0.1:$UPSTREAM_PORT
URL=https://localhost:$PROXY_PORT/customers?limit=3

# count LABEL PID: h1 and h2 counts of the proxy under callgrind as PID, one table row.
count() {
  local label=$1 pid=$2 row=$1 n=0 mode total
  wait_port "$PROXY_PORT" 300
  for mode in h1 h2; do
    local load=(h2load -c4 -t1 -m100)
    if [ "$mode" = h1 ]; then load=(h2load -c4 -t1 --h1); fi
    "${load[@]}" -n"$WARMUP_REQUESTS" "$URL" >"$OUT/$label-$mode-warmup.h2load" 2>&1 || true
    callgrind_control -z "$pid" >/dev/null 2>&1
    "${load[@]}" -n"$REQUESTS" "$URL" >"$OUT/$label-$mode.h2load" 2>&1 || true
    grep -q "status codes: $REQUESTS 2xx" "$OUT/$label-$mode.h2load" ||
      { echo "$label $mode: not every request succeeded" >&2; exit 1; }
    callgrind_control -d "$pid" >/dev/null 2>&1
    n=$((n + 1))
    total=$(awk '/^summary:/ { print $2; exit }' "$OUT/$label.callgrind.$n")
    row="$row | $((total / REQUESTS))"
  done
  stop "$pid"
  echo "| $row |"
}

echo "## bench/plain-instructions.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Plain forwarding, GET /customers?limit=3, $REQUESTS requests after $WARMUP_REQUESTS; user-space instructions per request of the proxy process (callgrind)."
echo
echo "| proxy | HTTP/1.1, 4 connections | HTTP/2, 4 x 100 streams |"
echo "| --- | ---: | ---: |"
stream_config "$OUT/stream.toml" "$PROXY_PORT" "$PROXY_ADMIN_PORT" "$UPSTREAM"
for build in after ${BIN_BEFORE:+before}; do
  bin=$BIN
  [ "$build" = after ] || bin=$BIN_BEFORE
  start "privgate-$build" env TOKIO_WORKER_THREADS=2 RUST_LOG=warn valgrind --tool=callgrind \
    --callgrind-out-file="$OUT/privgate-$build.callgrind" "$bin" serve --config "$OUT/stream.toml"
  count "privgate-$build" "$PID"
done
if [ "${NGINX:-1}" = 1 ]; then
  WORKERS=1 nginx_config "$OUT/nginx" "$PROXY_PORT" "127.0.0.1:$UPSTREAM_PORT" "" "" "master_process off;"
  start nginx valgrind --tool=callgrind --callgrind-out-file="$OUT/nginx.callgrind" \
    nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" -g 'daemon off;'
  count nginx "$PID"
fi
