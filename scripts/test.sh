#!/usr/bin/env bash
# Runs the whole test suite in its own virtual environment (.venv-test).
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv-test/bin/python ]; then
  "$PYTHON" -m venv .venv-test
fi
.venv-test/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
.venv-test/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,dev]" \
  2> >(grep -v "^WARNING: Location" >&2)
export PATH="$PWD/.venv-test/bin:$PATH"
export MELTANO_CLI_DISABLE_VERSION_CHECK=true MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
set +e
.venv-test/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure (the suite must never be empty)" >&2
  exit 1
fi
exit "$rc"
