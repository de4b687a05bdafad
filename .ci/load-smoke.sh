#!/usr/bin/env bash
# CI's short load run (issue 16, item 6): bench/load.sh for 60 s with 2,000 idle keep-alive
# connections, on the debug binary the tests built (CI builds no release binary). Fails on
# any unexpected answer or lost connection; the figures are printed for the log, not judged
# (a shared CI machine's latency says little). SECURITY.md, "Load", has the long run.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== short load: 2,000 idle connections and a mixed workload for 60 s (bench/load.sh)"
BIN=target/debug/privgate LOAD_IDLE=${LOAD_IDLE:-2000} LOAD_SECONDS=${LOAD_SECONDS:-60} bench/load.sh
