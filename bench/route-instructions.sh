#!/usr/bin/env bash
# Instructions per request on the protected route, counted by callgrind: the user-space
# work of `GET /customers/c-100` read by the demo's fraud analyst (the route of
# bench/compare.sh's protected table), stable to a fraction of a percent from run to run
# where requests per second on these machines vary by 10-25 % between rounds. Use it to
# compare builds instruction for instruction; the kernel's share (TCP over loopback, wake-
# ups) is not counted, so the requests/s ratio still comes from bench/compare.sh.
#
#   BIN=target/release/privgate bench/route-instructions.sh
#   BIN=new BIN_BEFORE=old bench/route-instructions.sh   # both, one after the other
#   REQUESTS=2000 CONNECTIONS=4 ...                      # the defaults
#
# The gateway runs under valgrind (one thread at a time, ~50x slower): REQUESTS requests
# are sent after a warm-up of WARMUP_REQUESTS (caches filled, connections pooled), the
# counters zeroed in between, and the profile of the measured requests is kept in
# bench/out/route-instructions/<label>.callgrind for callgrind_annotate. Heap allocations per
# request are counted from the same profile (calls into the allocator, bench/callgrind_calls.py).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

REQUESTS=${REQUESTS:-2000}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-200}
CONNECTIONS=${CONNECTIONS:-4}
UPSTREAM_PORT=${UPSTREAM_PORT:-$(port 29080)}
DEMO_PORT=${DEMO_PORT:-$(port 28445)}
DEMO_ADMIN_PORT=${DEMO_ADMIN_PORT:-$(port 29091)}
PROTECTED_PORT=${PROTECTED_PORT:-$(port 28446)}
PROTECTED_ADMIN_PORT=${PROTECTED_ADMIN_PORT:-$(port 29092)}
ports_free "$UPSTREAM_PORT" "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$PROTECTED_PORT" "$PROTECTED_ADMIN_PORT"

need valgrind valgrind
need h2load nghttp2-client
need curl curl
need python3 python3
privgate_binary
out_dir route-instructions

# count LABEL BINARY: instructions per request of one build, on its own demo and upstream.
count() {
  local label=$1 bin=$2 demo_dir=$OUT/demo-$1 profile=$OUT/$1.callgrind url total
  start_demo "demo-$label" "$bin" "$demo_dir" "$DEMO_PORT" "$DEMO_ADMIN_PORT" "$UPSTREAM_PORT"
  local demo=$PID
  protected_config "$demo_dir" "$demo_dir/bench.toml" "$PROTECTED_PORT" "$PROTECTED_ADMIN_PORT" \
    "http://127.0.0.1:$UPSTREAM_PORT" "bench"
  start "callgrind-$label" env TOKIO_WORKER_THREADS=2 RUST_LOG=warn \
    valgrind --tool=callgrind --callgrind-out-file="$profile" "$bin" serve --config "$demo_dir/bench.toml"
  local gateway=$PID
  wait_port "$PROTECTED_PORT" 300
  url=https://localhost:$PROTECTED_PORT
  onboard "$url" "$demo_dir/certs" c-100
  local load=(h2load --h1 -c"$CONNECTIONS" -t1
    -H "authorization: Bearer $(cat "$demo_dir/tokens/password-only.jwt")")
  "${load[@]}" -n"$WARMUP_REQUESTS" "$url/customers/c-100" >"$OUT/$label-warmup.h2load" 2>&1 || true
  callgrind_control -z "$gateway" >/dev/null 2>&1
  "${load[@]}" -n"$REQUESTS" "$url/customers/c-100" >"$OUT/$label.h2load" 2>&1 || true
  grep -q "status codes: $REQUESTS 2xx" "$OUT/$label.h2load" ||
    { echo "$label: not every request succeeded: $(grep 'status codes' "$OUT/$label.h2load")" >&2; exit 1; }
  callgrind_control -d "$gateway" >/dev/null 2>&1
  stop "$gateway"
  stop "$demo"
  # The dump after zeroing (`.1`) holds the measured requests only; the one at exit, the rest.
  total=$(awk '/^summary:/ { print $2; exit }' "$profile.1")
  # Heap allocations: calls into the gateway's allocator (mimalloc) from Rust code.
  allocations=$(python3 "$(dirname "$0")/callgrind_calls.py" "$profile.1" \
    mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned)
  printf '| %s | %s | %s | %s |\n' "$label" "$total" "$((total / REQUESTS))" \
    "$(awk -v a="$allocations" -v n="$REQUESTS" 'BEGIN { printf "%.1f", a / n }')"
}

echo "## bench/route-instructions.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Protected route, $REQUESTS requests over $CONNECTIONS keep-alive HTTPS connections after $WARMUP_REQUESTS warm-up requests; user-space instructions of the gateway process (callgrind)."
echo
echo "| build | instructions | per request | allocations per request |"
echo "| --- | ---: | ---: | ---: |"
count after "$BIN"
[ -z "${BIN_BEFORE:-}" ] || count before "$BIN_BEFORE"
