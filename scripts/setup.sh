#!/usr/bin/env bash
# Idempotent setup: .venv with aejax (+ test extras), and real Fashion-MNIST from Debian's
# dataset-fashion-mnist package when apt is available (MNIST itself may not be reachable offline).
# --with-torch also installs PyTorch, which only the parity tests and the benchmarks need.
# When nothing changed since the last successful setup (same pyproject.toml, this script, Python
# and extras: a stamp in .venv records them), it returns at once without calling pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WITH_TORCH=0
for arg in "$@"; do
  case "$arg" in
    --with-torch) WITH_TORCH=1 ;;
    *) echo "usage: bash scripts/setup.sh [--with-torch]" >&2; exit 2 ;;
  esac
done

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist; } >/dev/null \
    || echo "warning: could not install dataset-fashion-mnist; pass --data-dir with IDX files" >&2
fi

STAMP=.venv/.aejax-setup-stamp
# What the installed environment depends on; torch installed once stays good for a plain setup.
key() {
  { cat pyproject.toml scripts/setup.sh; .venv/bin/python -c 'import sys; print(sys.version)'; } \
    | sha256sum | cut -d' ' -f1
}
if [ -x .venv/bin/python ] && [ -f "$STAMP" ]; then
  read -r saved_key saved_torch < "$STAMP" || true
  if [ "${saved_key:-}" = "$(key)" ] && [ "${saved_torch:-0}" -ge "$WITH_TORCH" ]; then
    exit 0
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
rm -f "$STAMP"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
# PyTorch for the parity tests and the benchmark smoke test: a pinned CPU build (unpinned, pip may
# pull a multi-GB CUDA build). torchvision is left out: benchmarks/README.md sets up its own venv.
if [ "$WITH_TORCH" = 1 ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import torch" || { echo "error: torch==2.13.0 did not install; the parity tests need it" >&2; exit 1; }
fi
.venv/bin/python -c "import aejax" # fail here, not later, if the install did not work
echo "$(key) $WITH_TORCH" > "$STAMP"
