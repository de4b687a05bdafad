#!/usr/bin/env bash
# Sustained mixed load (issue 16, item 6): LOAD_IDLE keep-alive TLS connections held open
# (default 10,000) while LOAD_WORKERS clients run protected reads, onboarding writes,
# analytics queries and FHE status calls for LOAD_SECONDS (default 600) against `privgate
# demo`'s gateway, with the sample upstream in its own process. Every 10 s: the gateway's
# resident memory and per-kind p50/p99 latency; at the end, that every idle connection is
# still open. Fails on any unexpected answer or lost connection.
#
#   bench/load.sh                                   # release build, 10,000 conns, 10 min
#   BIN=target/debug/privgate LOAD_IDLE=2000 LOAD_SECONDS=60 bench/load.sh   # CI's short run
#
# FHE status calls run when the binary has the `fhe` feature (the demo then makes its key
# set first: tens of seconds); the release build used by the other benches leaves it out
# unless FEATURES_FHE=1 builds it in. Output: bench/out/load/ (load.jsonl, the logs).
#
# Memory: each 10-s line has the resident set (rss_kib) and its anonymous part (anon_kib:
# heap and stacks, without the mapped binary and SQLite's shared-memory index); the summary
# has their slopes over the run's second half. LOAD_MAX_SLOPE=MiB-per-minute fails the run
# when the resident set's slope exceeds it (unset: reported, not judged; a 60-s run is too
# short to judge). LOAD_HEAPTRACK=1 runs the gateway under heaptrack (Debian package
# `heaptrack`): its profile lands in bench/out/load/heaptrack.*.zst, for `heaptrack_print`.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

LOAD_IDLE=${LOAD_IDLE:-10000}
LOAD_WORKERS=${LOAD_WORKERS:-32}
LOAD_SECONDS=${LOAD_SECONDS:-600}
LOAD_PORT=${LOAD_PORT:-$(port 18843)}
LOAD_ADMIN_PORT=${LOAD_ADMIN_PORT:-$(port 19490)}
LOAD_UPSTREAM_PORT=${LOAD_UPSTREAM_PORT:-$(port 19480)}
ports_free "$LOAD_PORT" "$LOAD_ADMIN_PORT" "$LOAD_UPSTREAM_PORT"

if [ -z "${BIN:-}" ] && [ "${FEATURES_FHE:-0}" = 1 ]; then
  cargo build --release --locked -q >&2
  BIN=${CARGO_TARGET_DIR:-target}/release/privgate
fi
privgate_binary
out_dir load
FILES=$((LOAD_IDLE + 4096))
ulimit -n "$FILES" || { echo "cannot raise the open-files limit to $FILES (hard: $(ulimit -Hn))" >&2; exit 1; }

# The demo sets itself up (certificates, tokens, keyring, datasets, FHE keys if built in)
# and serves; once it answers it is stopped, its config allowed the connections, and the
# gateway and the sample upstream restarted as two processes, so the gateway's memory is
# its own.
demo_args=(--dir "$OUT/demo" --port "$LOAD_PORT" --admin-port "$LOAD_ADMIN_PORT" --upstream-port "$LOAD_UPSTREAM_PORT")
start demo "$BIN" demo "${demo_args[@]}"
wait_port "$LOAD_PORT" 900
stop "$PID"
# Without the demo's early warning: the workload reads thousands of distinct customers with
# a few identities, which is exactly what its thresholds and risk policies stop (a
# second factor past 25 customers in 5 minutes, docs/risk.md). Its per-request cost is
# measured on its own (benches/risk.rs).
python3 - "$OUT/demo/privgate.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
# Drop [risk] and its sub-tables ([[risk.threshold]], [risk.x]) up to the next other table.
text = re.sub(r"(?ms)^\[\[?risk[\].].*?(?=^\[(?!\[?risk[\].])|\Z)", "", text)
open(path, "w").write(text)
PY
grep -q '^\[\[\?risk' "$OUT/demo/privgate.toml" && { echo "load: could not remove [risk]" >&2; exit 1; }
cat >>"$OUT/demo/privgate.toml" <<TOML

[limits]
max_connections = $((LOAD_IDLE + 1000))
idle_timeout = "$((LOAD_SECONDS / 60 + 5))m"
TOML
start upstream "$BIN" demo "${demo_args[@]}" --upstream-only
wait_port "$LOAD_UPSTREAM_PORT"
if [ "${LOAD_HEAPTRACK:-0}" = 1 ]; then
  need heaptrack heaptrack
  # heaptrack must start the binary itself: through `env` it would trace `env`.
  TOKIO_WORKER_THREADS="$WORKERS" RUST_LOG=warn start gateway heaptrack -o "$OUT/heaptrack" \
    "$BIN" serve --config "$OUT/demo/privgate.toml"
  HEAPTRACK=$PID
  wait_port "$LOAD_PORT" 600
  # heaptrack runs the gateway as its child (and does not pass signals on): measure and stop
  # that child.
  GATEWAY=$(pgrep -P "$HEAPTRACK" -f -- "serve --config")
else
  privgate_serve gateway "$BIN" "$OUT/demo/privgate.toml"
  GATEWAY=$PID
  wait_port "$LOAD_PORT" 600
fi
fhe=()
grep -q '^\[fhe\]' "$OUT/demo/privgate.toml" && fhe=(--fhe)
echo "load: $LOAD_IDLE idle connections, $LOAD_WORKERS workers, $LOAD_SECONDS s, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
status=0
python3 bench/load_clients.py --port "$LOAD_PORT" --dir "$OUT/demo" --pid "$GATEWAY" \
  --idle "$LOAD_IDLE" --workers "$LOAD_WORKERS" --duration "$LOAD_SECONDS" "${fhe[@]}" \
  ${LOAD_MAX_SLOPE:+--max-slope "$LOAD_MAX_SLOPE"} |
  tee "$OUT/load.jsonl" || status=1
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [ -n "${HEAPTRACK:-}" ]; then
  stop "$GATEWAY"
  wait "$HEAPTRACK" || true
  echo "heap profile: $(ls "$OUT"/heaptrack.*)" >&2
fi
exit "$status"
