#!/usr/bin/env bash
# The long fuzz run (issue 16; figures in SECURITY.md "Fuzzing"): every target for
# FUZZ_MINUTES (default 5) minutes, its corpus kept in fuzz/corpus/<target> between runs,
# then one line per target: executions, coverage (edges, features), corpus size, findings.
#
#   fuzz/run-long.sh                    # every target but the FHE ones
#   FUZZ_FHE=1 fuzz/run-long.sh         # the FHE targets too (builds TFHE-rs instrumented)
#   fuzz/run-long.sh jwt_claims jwks    # only these
#
# Findings (crashing inputs) are in fuzz/artifacts/<target>/; reproduce one with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz --dev -s none <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
flags=(--fuzz-dir fuzz --dev --sanitizer none --target-dir fuzz/target)
minutes="${FUZZ_MINUTES:-5}"
features=()
[ "${FUZZ_FHE:-0}" = 1 ] && features=(--features fhe)

cargo fuzz build "${flags[@]}" "${features[@]}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for t in $(cargo fuzz list --fuzz-dir fuzz); do
    case "$t" in fhe_*) [ "${FUZZ_FHE:-0}" = 1 ] || continue ;; esac
    targets+=("$t")
  done
fi
mkdir -p fuzz/target/long-run
summary=fuzz/target/long-run/summary.txt
printf '%-20s %12s %8s %8s %8s %s\n' target executions edges features corpus findings | tee "$summary"
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  log="fuzz/target/long-run/$target.log"
  before=$(ls "fuzz/artifacts/$target" | wc -l)
  # A finding stops this target's run (its input is then in fuzz/artifacts/<target>/).
  cargo fuzz run "${flags[@]}" "${features[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time=$((minutes * 60)) -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    >"$log" 2>&1 || true
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo '?')
  last=$(grep -E '^#[0-9]+' "$log" | grep -E ' cov: ' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  corpus=$(ls "fuzz/corpus/$target" | wc -l)
  found=$(($(ls "fuzz/artifacts/$target" | wc -l) - before))
  printf '%-20s %12s %8s %8s %8s %s\n' "$target" "$execs" "$cov" "$ft" "$corpus" "$found" | tee -a "$summary"
done
