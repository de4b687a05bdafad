#!/usr/bin/env bash
# User-space and kernel CPU per request on the plain stream route, for one or more builds
# and nginx in front of the same upstream, in alternating rounds: where a build's CPU goes
# that nginx's does not. The kernel's share (TLS records, sockets, wake-ups) is the same
# for every proxy doing the same exchanges; the user-space share is the proxy's own code.
#
#   BINS="before=<path> after=<path>" bench/cpu-split.sh           # HTTP/2 (h2load)
#   MODE=h1 CONNECTIONS=32 BINS="..." bench/cpu-split.sh            # HTTP/1.1 (wrk)
#   ROUNDS=5 REQUESTS=200000 DURATION=5s ...                         # the defaults
#
# HTTP/2: h2load with one client thread (-t1), H2_CONNECTIONS x H2_STREAMS, REQUESTS a
# round. HTTP/1.1: wrk -t$THREADS, CONNECTIONS, DURATION a round. Each round is preceded by
# a short warm-up. CPU time is utime and stime from /proc over the round (nginx: its
# workers), divided by the requests the round completed. Prints every round, then the
# medians (requests/s as a ratio of nginx's). Raw outputs: bench/out/cpu-split/.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

MODE=${MODE:-h2}
ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-200000}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
H2_CONNECTIONS=${H2_CONNECTIONS:-4}
H2_STREAMS=${H2_STREAMS:-100}
UPSTREAM_PORT=${UPSTREAM_PORT:-$(port 19480)}
DEMO_PORT=${DEMO_PORT:-$(port 18845)}
DEMO_ADMIN_PORT=${DEMO_ADMIN_PORT:-$(port 19491)}
NGINX_PORT=${NGINX_PORT:-$(port 18844)}
FIRST_PORT=${FIRST_PORT:-$(port 18860)}
[ -n "${BINS:-}" ] || { echo 'BINS="label=<privgate binary> ..." is required' >&2; exit 1; }

need nginx nginx
need h2load nghttp2-client
need wrk wrk
# The first build also sets up the demo (certificates, the sample upstream).
BIN=${BINS%% *}
BIN=${BIN#*=}
privgate_binary
out_dir cpu-split
dev_certs
start_demo demo "$BIN" "$OUT/demo" "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$UPSTREAM_PORT"

# label:port:pid of each proxy measured.
proxies=()
n=0
for entry in $BINS; do
  label=${entry%%=*}
  port=$((FIRST_PORT + 2 * n))
  stream_config "$OUT/$label.toml" "$port" "$((port + 1))" "http://127.0.0.1:$UPSTREAM_PORT"
  privgate_serve "$label" "$(realpath "${entry#*=}")" "$OUT/$label.toml"
  wait_port "$port"
  proxies+=("$label:$port:$PID")
  n=$((n + 1))
done
nginx_config "$OUT/nginx" "$NGINX_PORT" "127.0.0.1:$UPSTREAM_PORT"
start_nginx nginx "$OUT/nginx"
wait_port "$NGINX_PORT"
proxies+=("nginx:$NGINX_PORT:$PID")

# ticks PID...: "utime stime" summed over the processes, in clock ticks.
ticks() {
  local p u=0 s=0 uu ss
  for p in "$@"; do
    read -r uu ss < <(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12, $13 }')
    u=$((u + uu))
    s=$((s + ss))
  done
  echo "$u $s"
}

echo "round	proxy	requests/s	user µs/request	kernel µs/request" | tee "$OUT/rounds.tsv"
for round in $(seq "$ROUNDS"); do
  for proxy in "${proxies[@]}"; do
    IFS=: read -r label port pid <<<"$proxy"
    url="https://localhost:$port/customers?limit=3"
    # shellcheck disable=SC2046 # one argument per process
    set -- $(served_by "$pid")
    raw="$OUT/$label-$round.txt"
    if [ "$MODE" = h2 ]; then
      h2load -c"$H2_CONNECTIONS" -t1 -m"$H2_STREAMS" -n20000 "$url" >/dev/null 2>&1
      read -r u0 s0 < <(ticks "$@")
      h2load -c"$H2_CONNECTIONS" -t1 -m"$H2_STREAMS" -n"$REQUESTS" "$url" >"$raw" 2>&1
      read -r u1 s1 < <(ticks "$@")
      done_requests=$(awk '/^requests:/ { print $8 }' "$raw")
      rps=$(grep -o '[0-9.]* req/s' "$raw" | head -1 | cut -d' ' -f1)
    else
      wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null
      read -r u0 s0 < <(ticks "$@")
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$url" >"$raw"
      read -r u1 s1 < <(ticks "$@")
      done_requests=$(grep -o '[0-9]* requests in' "$raw" | cut -d' ' -f1)
      rps=$(awk '/^Requests\/sec/ { print $2 }' "$raw")
    fi
    awk -v r="$round" -v l="$label" -v rps="$rps" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
      -v n="$done_requests" -v hz="$CLK_TCK" \
      'BEGIN { printf "%s\t%s\t%.0f\t%.2f\t%.2f\n", r, l, rps, u * 1e6 / hz / n, s * 1e6 / hz / n }' |
      tee -a "$OUT/rounds.tsv"
  done
done
python3 - "$OUT/rounds.tsv" <<'PY'
import collections, statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
for r in rows:
    by[r[1]].append(r)
nginx = statistics.median(float(r[2]) for r in by["nginx"])
print("\nmedians\tproxy\trequests/s\t÷ nginx\tuser µs/request\tkernel µs/request")
for label, rs in by.items():
    rps = statistics.median(float(r[2]) for r in rs)
    user = statistics.median(float(r[3]) for r in rs)
    kernel = statistics.median(float(r[4]) for r in rs)
    print(f"\t{label}\t{rps:.0f}\t{rps / nginx:.2f}x\t{user:.2f}\t{kernel:.2f}")
PY
