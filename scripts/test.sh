#!/usr/bin/env bash
# Set up, then run the test suite (CPU only; a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-torch
JAX_PLATFORMS=cpu exec .venv/bin/python -m pytest -q "$@"
