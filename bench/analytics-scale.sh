#!/usr/bin/env bash
# Differentially private query latency at scale (issue 19, item 4): generates ROWS rows
# (1 customer per 10 rows, 4 regions, 1,000 merchants) in SQLite and in PostgreSQL, then
# times each query through the whole analytics engine, once per query engine:
#   snapshot  the in-memory copy (its first query, which reads the copy, timed apart)
#   pushdown  SQL in the database; on PostgreSQL the same statements are also run in psql
#             and the ratio engine / psql printed
#
#   bench/analytics-scale.sh                         # 10M rows, both engines, both databases
#   ROWS=100000000 ENGINES=pushdown DATABASES=postgres bench/analytics-scale.sh
#   GROUP_BOUNDS=2,5 bench/analytics-scale.sh        # GROUP BY bounds that bind
#
# It runs the ignored test `analytics::scale` built with optimisations
# (opt-level 3, no debug assertions: the release build's code generation without its LTO;
# CARGO_TARGET_DIR defaults to target/scale). PostgreSQL: PRIVGATE_TEST_POSTGRES_URL
# (a role that may create databases). Loopback only; the generated data is dropped after.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-10000000}
ENGINES=${ENGINES:-"snapshot pushdown"}
DATABASES=${DATABASES:-"sqlite postgres"}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/scale}
export CARGO_PROFILE_DEV_OPT_LEVEL=3 CARGO_PROFILE_DEV_DEBUG_ASSERTIONS=false \
  CARGO_PROFILE_DEV_OVERFLOW_CHECKS=false CARGO_PROFILE_DEV_INCREMENTAL=false
if [[ " $DATABASES " == *" postgres "* && -z "${PRIVGATE_TEST_POSTGRES_URL:-}" ]]; then
  echo "set PRIVGATE_TEST_POSTGRES_URL (or DATABASES=sqlite)" >&2
  exit 2
fi
cargo test --quiet --no-run --test it
for engine in $ENGINES; do
  for database in $DATABASES; do
    PRIVGATE_SCALE_ENGINE=$engine PRIVGATE_SCALE_ROWS=$ROWS \
      PRIVGATE_SCALE_GROUP_BOUNDS=${GROUP_BOUNDS:-4,20} \
      cargo test --quiet --test it "analytics::scale::query_latency_on_$database" -- \
      --ignored --nocapture --test-threads 1 2>&1 | grep -E '^(sqlite|postgres)' || {
      echo "$database $engine: failed" >&2
      exit 1
    }
  done
done
