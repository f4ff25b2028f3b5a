#!/usr/bin/env bash
# Set up, then run the whole pipeline in one process: pretrain -> transplant -> fine-tune ->
# figures. Uses MNIST when it can be had; otherwise says so and uses real Fashion-MNIST.
# Extra arguments go to both stages, e.g.: bash scripts/run_pipeline.sh --epochs 2
# Outputs: runs/<dataset>/{pretrain,finetune}/ and runs/<dataset>/pipeline.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/pipeline.py --fallback-dataset fashion_mnist "$@"
