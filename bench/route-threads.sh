#!/usr/bin/env bash
# Where the protected route's CPU and context switches go, thread by thread, as the number of
# connections changes: one gateway (the route of bench/compare.sh's protected table), wrk
# alternating between the connection counts round after round, and for each round the CPU
# time and the voluntary and involuntary context switches of the connection lanes, the audit
# writer and every other thread, per request, read from /proc/<pid>/task.
#
#   BIN=target/release/privgate bench/route-threads.sh
#   CONNECTIONS_LIST="32 64" ROUNDS=3 DURATION=6s WARMUP=2s ...   # the defaults
#
# Read across rounds before reading across connection counts: on a shared 2-core machine the
# CPU a request takes moves between rounds by more than a connection count changes it. An
# involuntary switch is a lane preempted (by the load generator or the upstream, woken on
# the same cores); a voluntary one, a thread that went to sleep with nothing to do.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

CONNECTIONS_LIST=${CONNECTIONS_LIST:-32 64}
DURATION=${DURATION:-6s}
WARMUP=${WARMUP:-2s}
UPSTREAM_PORT=${UPSTREAM_PORT:-$(port 29180)}
DEMO_PORT=${DEMO_PORT:-$(port 28545)}
DEMO_ADMIN_PORT=${DEMO_ADMIN_PORT:-$(port 29191)}
PROTECTED_PORT=${PROTECTED_PORT:-$(port 28546)}
PROTECTED_ADMIN_PORT=${PROTECTED_ADMIN_PORT:-$(port 29192)}
ports_free "$UPSTREAM_PORT" "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$PROTECTED_PORT" "$PROTECTED_ADMIN_PORT"

need wrk wrk
need curl curl
privgate_binary
out_dir route-threads

start_demo demo "$BIN" "$OUT/demo" "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$UPSTREAM_PORT"
protected_config "$OUT/demo" "$OUT/demo/bench.toml" "$PROTECTED_PORT" "$PROTECTED_ADMIN_PORT" \
  "http://127.0.0.1:$UPSTREAM_PORT" "bench"
privgate_serve gateway "$BIN" "$OUT/demo/bench.toml"
GATEWAY=$PID
wait_port "$PROTECTED_PORT" 60
URL=https://localhost:$PROTECTED_PORT
onboard "$URL" "$OUT/demo/certs" c-100
TOKEN=$(cat "$OUT/demo/tokens/password-only.jwt")

# threads: one line per gateway thread, "group ticks voluntary involuntary" (group: lanes,
# audit or other, by the thread's name).
threads() {
  local t name group
  for t in /proc/"$GATEWAY"/task/*; do
    name=$(cat "$t/comm" 2>/dev/null) || continue
    case $name in
      lane-*) group=lanes ;;
      privgate-audit) group=audit ;;
      *) group=other ;;
    esac
    echo "$group $(sed 's/^.*) //' "$t/stat" | awk '{ print $12 + $13 }') $(awk \
      '/^voluntary_ctxt/ { v = $2 } /^nonvoluntary_ctxt/ { n = $2 } END { print v + 0, n + 0 }' \
      "$t/status")"
  done
}

# per_group BEFORE AFTER REQUESTS: "group cpu_us voluntary involuntary" per request and group.
per_group() {
  awk -v n="$3" -v hz="$CLK_TCK" '
    FNR == NR { t[$1] -= $2; v[$1] -= $3; i[$1] -= $4; next }
    { t[$1] += $2; v[$1] += $3; i[$1] += $4 }
    END { for (g in t) printf "%s %.1f %.3f %.3f\n", g, t[g] * 1e6 / hz / n, v[g] / n, i[g] / n }
  ' "$1" "$2"
}

echo "## bench/route-threads.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(machine)."
echo "Protected route (GET /customers/c-100, the demo's fraud analyst), wrk -t$THREADS, $WORKERS runtime threads; $ROUNDS rounds of $(seconds "$DURATION") s per connection count, alternating, each after a $(seconds "$WARMUP") s warm-up."
echo
echo "| round | connections | requests/s | CPU µs/req | lanes µs/req | audit µs/req | other µs/req | lanes voluntary/req | lanes involuntary/req | audit switches/req |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for round in $(seq "$ROUNDS"); do
  for connections in $CONNECTIONS_LIST; do
    load=(wrk -t"$THREADS" -c"$connections" -H "authorization: Bearer $TOKEN")
    "${load[@]}" -d"$(seconds "$WARMUP")s" "$URL/customers/c-100" >/dev/null
    threads >"$OUT/before"
    raw=$OUT/round-$round-$connections.wrk
    "${load[@]}" -d"$(seconds "$DURATION")s" "$URL/customers/c-100" >"$raw"
    threads >"$OUT/after"
    requests=$(awk '/requests in/ { print $1 }' "$raw")
    rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$raw")
    [ -z "$(awk '/Non-2xx|Socket errors/' "$raw")" ] ||
      echo "warning: round $round, $connections connections: $(awk '/Non-2xx|Socket errors/' "$raw")" >&2
    per_group "$OUT/before" "$OUT/after" "$requests" >"$OUT/groups"
    col() { awk -v g="$1" -v c="$2" '$1 == g { print $c }' "$OUT/groups"; }
    total=$(awk '{ s += $2 } END { printf "%.1f", s }' "$OUT/groups")
    audit_switches=$(awk '$1 == "audit" { printf "%.3f", $3 + $4 }' "$OUT/groups")
    echo "| $round | $connections | $rps | $total | $(col lanes 2) | $(col audit 2) | $(col other 2) | $(col lanes 3) | $(col lanes 4) | $audit_switches |"
  done
done
