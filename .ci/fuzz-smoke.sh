#!/usr/bin/env bash
# Fuzz smoke (issue 16, SECURITY.md "Fuzzing"): builds every fuzz target in one cargo-fuzz
# invocation, then runs each for FUZZ_SECONDS (default 20) from its committed seeds
# (fuzz/seeds/<target>), FUZZ_JOBS (default: the CPUs) at a time. A crash, panic, failed
# invariant, out-of-memory or slow input (libFuzzer's -timeout) fails the step, with the
# input under fuzz/artifacts/<target>/.
#
# The FHE targets (`fhe_*`, the fuzz crate's `fhe` feature) are left to fuzz/run-long.sh:
# TFHE-rs and the FHE crate graph under coverage instrumentation nearly double the build
# (SECURITY.md, "Fuzzing", gives both cold build times: about 28 and 51 minutes measured on
# a busy 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_fuzz_version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $cargo_fuzz_version"; then
  cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version"
fi
# cargo-fuzz asks rustc for sanitizer-coverage flags that stable rustc takes only with this.
export RUSTC_BOOTSTRAP=1
# Dev profile (dependencies optimised, as for the tests; our crate with debug assertions and
# overflow checks), no sanitizer: the crate forbids unsafe code, and AddressSanitizer would
# double the build for the dependencies' unsafe code, which their own projects fuzz.
flags=(--fuzz-dir fuzz --dev --sanitizer none --target-dir fuzz/target)
seconds="${FUZZ_SECONDS:-20}"
jobs_at_once="${FUZZ_JOBS:-$(nproc)}"

cargo metadata --locked --format-version 1 >/dev/null # the fuzz crate builds against Cargo.lock
cargo fuzz build "${flags[@]}"
echo "-- built (${SECONDS}s since this step began)"

# smoke TARGET: one target's run; its exit status is the run's own, its output is shown
# trimmed, in one piece (runs go side by side). (Until 2026-12-06 the status was read from
# PIPESTATUS after `run | grep || true`, which under pipefail is `true`'s: a crashing target
# passed.)
smoke() {
  local target=$1 log="fuzz/target/smoke-$1.log" status=0 summary
  mkdir -p "fuzz/corpus/$target"
  cargo fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1 ||
    status=$?
  summary=$(grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|panicked|ERROR|SUMMARY' "$log" || true)
  if [ "$status" -eq 0 ]; then
    printf -- '-- %s: %ss\n%s\n' "$target" "$seconds" "$summary"
  else
    printf -- '-- %s: %ss\n%s\nfuzz target %s failed (exit %s)\n%s\n' "$target" "$seconds" \
      "$summary" "$target" "$status" "$(tail -n 40 "$log")"
  fi
  return "$status"
}

failed=0
running=0
for target in $(cargo fuzz list --fuzz-dir fuzz); do
  case "$target" in fhe_*) continue ;; esac
  if [ "$running" -ge "$jobs_at_once" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  smoke "$target" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
[ "$failed" -eq 0 ] || { echo "fuzz smoke failed (above)"; exit 1; }
