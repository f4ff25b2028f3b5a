#!/usr/bin/env bash
# Set up, then run the test suite (CPU only; about 10 minutes on 2 cores).
# One pytest worker per core (pytest-xdist), each taking whole test files: most tests wait on
# scripts run as subprocesses, much of whose time (imports, tracing) is single-threaded Python.
# Arguments go to pytest: `-n 0` runs in one process, `-k NAME` picks tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-torch
JAX_PLATFORMS=cpu exec .venv/bin/python -m pytest -q --numprocesses auto --dist loadfile --durations=15 "$@"
