#!/usr/bin/env bash
# A normal client's latency while slow clients attack (issue 16, item 2), with more
# attackers than the integration test uses: slowloris (a head trickled), slow bodies on a
# buffered and a streamed route, and slow readers (a 64 MiB answer never read, 4 KiB
# receive window), each reconnecting as soon as the gateway cuts it. The normal client
# sends sequential keep-alive requests for 4 s quiet, then 4 s under attack; the p50 and
# p99 of each, and how many attackers the gateway cut meanwhile, are printed.
#
#   bench/slow-clients.sh              # ATTACKERS per kind (default 400; slow readers a quarter)
#   ROUNDS=3 bench/slow-clients.sh     # repeat, one line per round
#
# It runs the integration test `a_normal_clients_p99_holds_during_slow_client_attacks`
# (the debug test build, loopback only, each round about 15 s) with PRIVGATE_JUDGE_P99=1:
# the round fails if the p99 under attack is over twice the quiet one (plus 1 ms). In
# `cargo test` the test checks only that attackers are cut and the normal client served.
set -euo pipefail
cd "$(dirname "$0")/.."
ATTACKERS=${ATTACKERS:-400}
ROUNDS=${ROUNDS:-1}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for round in $(seq "$ROUNDS"); do
  PRIVGATE_JUDGE_P99=1 PRIVGATE_SLOW_CLIENTS=$ATTACKERS cargo test --quiet --test it \
    hostile::slow::a_normal_clients_p99_holds_during_slow_client_attacks -- --nocapture 2>&1 |
    grep -E '^slow clients:|p99 .* under attack' | sed "s/^/round $round: /" || true
done
