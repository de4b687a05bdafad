#!/usr/bin/env bash
# The Python analytics client (clients/python): installed as a user would
# (`pip install ./clients/python`) into a fresh virtual environment with the pinned test
# dependencies (clients/python/requirements-test.txt, from PyPI), then its pytest suite
# against a real gateway it starts (`privgate demo --no-fhe`). Needs the debug binary the
# Rust tests built (target/debug/privgate), so .ci/run calls this after them.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${PRIVGATE_PYTHON_VENV:-target/python-ci}"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  -r clients/python/requirements-test.txt ./clients/python
PRIVGATE_BIN="$PWD/target/debug/privgate" "$venv/bin/python" -m pytest -q clients/python/tests
# The example in docs/ parses and imports against the installed client.
"$venv/bin/python" docs/analytics_example.py --help >/dev/null
