#!/usr/bin/env bash
# The shipped policy set is formatted as `privgate policy fmt` (cedar-policy-formatter)
# writes it, so a reviewer's diff of a policy change shows the change and nothing else.
# Runs the binary the tests built (debug, default features): nothing is compiled here.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== the shipped policies are formatted (privgate policy fmt --check)"
target/debug/privgate policy fmt --check --dir policies
