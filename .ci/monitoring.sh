#!/usr/bin/env bash
# Monitoring files (README, "Operations"): the alert rules pass `promtool check rules`, and
# every query of the Grafana dashboard parses as PromQL (promtool checks them as recording
# rules). That both name only metrics the gateway exports is an integration test
# (tests/it/monitoring.rs). promtool comes from Debian's `prometheus` package.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== monitoring: alert rules and dashboard queries (promtool)"
if ! command -v promtool >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool check rules docs/alerts.yml
queries=$(mktemp --suffix=.yml)
trap 'rm -f "$queries"' EXIT
python3 - docs/grafana-dashboard.json >"$queries" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
print("groups:\n  - name: dashboard\n    rules:")
for i, t in enumerate(targets):
    print(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(t['expr'])}")
PY
promtool check rules "$queries"
