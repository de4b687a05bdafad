#!/usr/bin/env bash
# Instructions per body of the field work, counted by callgrind: the `protect_body`
# criterion benchmark's protect (the 874-byte customer record stored protected) and masked
# reveal (that record read back in the masked view), stable to a fraction of a percent where
# the benchmark's times move by several percent between runs. Use it to compare two
# builds of the benchmark instruction for instruction; the times still come from criterion.
#
#   cargo bench --locked --no-default-features --bench protect_body --no-run   # prints its path
#   BENCH=<that path> bench/field-instructions.sh
#   BENCH=new BENCH_BEFORE=old bench/field-instructions.sh   # both, one after the other
#   SECONDS_EACH=2 ...                                       # the default
#
# Only criterion's measured loop is counted (`--toggle-collect` on `Bencher::iter`): not the
# keyring's set-up nor the records protected before the reveal. A body is one call of
# `Protection::locate`, which both protect and reveal make once. Protect cycles through 256
# records whose card numbers take from one FF1 call to dozens (Luhn cycle walking), so its
# count moves with how far through the cycle the run stopped: the FF1 walk is printed apart
# (`fpe::run`), and protect less the walk is the figure to compare. Compare runs of the same
# SECONDS_EACH only: a 1-second run counted every function of protect about 10 % lower a
# body than the 2-second default (the reveal within 0.1 %), a difference not explained yet.
# Each profile is kept in bench/out/field-instructions/<label>-<side>.callgrind for
# callgrind_annotate.
set -euo pipefail
# Paths as given, before lib.sh moves to the repository's root.
BENCH=${BENCH:+$(realpath "$BENCH")}
BENCH_BEFORE=${BENCH_BEFORE:+$(realpath "$BENCH_BEFORE")}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

SECONDS_EACH=${SECONDS_EACH:-2}
need valgrind valgrind
need python3 python3
[ -x "${BENCH:-}" ] ||
  { echo "BENCH=<protect_body benchmark binary> is required (see the header)" >&2; exit 1; }
out_dir field-instructions

# count LABEL BINARY: one line per side of one build.
count() {
  local label=$1 bench=$2 side filter profile
  for side in protect reveal_masked; do
    case $side in
      protect) filter='body/protect$' ;;
      reveal_masked) filter='body/reveal_masked' ;;
    esac
    profile=$OUT/$label-$side.callgrind
    valgrind --tool=callgrind --callgrind-out-file="$profile" \
      --toggle-collect='criterion::bencher::Bencher*::iter*' \
      "$bench" --bench --profile-time "$SECONDS_EACH" "$filter" >"$OUT/$label-$side.log" 2>&1
    python3 - "$profile" "$label" "$side" <<'PY'
import re, subprocess, sys

profile, label, side = sys.argv[1:]
annotated = subprocess.run(
    ["callgrind_annotate", "--inclusive=yes", profile], capture_output=True, text=True, check=True
).stdout
total = int(re.search(r"([0-9,]+) \(100\.0%\)\s+PROGRAM TOTALS", annotated)[1].replace(",", ""))
bodies = int(
    subprocess.run(
        ["python3", "bench/callgrind_calls.py", profile,
         "privgate::protect::egress::<impl privgate::protect::Protection>::locate"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[-1]
)
walk = re.search(
    r"^\s*([0-9,]+) \([ 0-9.]+%\)\s+\S+:privgate::protect::transform::fpe::run \[", annotated, re.M
)
walk = int(walk[1].replace(",", "")) if walk else 0
line = f"{label:>8} {side:<14} {total / bodies:>10,.0f} instructions a body ({bodies} bodies)"
if walk:
    line += f", {walk / bodies:,.0f} in the FF1 walk, {(total - walk) / bodies:,.0f} without it"
print(line)
PY
  done
}

count "after" "$BENCH"
if [ -n "${BENCH_BEFORE:-}" ]; then
  count "before" "$BENCH_BEFORE"
fi
