#!/usr/bin/env bash
# Set up, then run the whole pipeline: pretrain -> transplant -> fine-tune (figures included).
# Uses MNIST when it can be had; otherwise says so and uses real Fashion-MNIST.
# Extra arguments go to both stages, e.g.: bash scripts/run_pipeline.sh --epochs 2
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
DATASET=${DATASET:-mnist}
WORKDIR=${WORKDIR:-runs/$DATASET}

if [ "$DATASET" = mnist ] && ! reason=$($PY scripts/find_data.py --dataset mnist 2>&1 >/dev/null); then
  echo "MNIST is not available here (${reason#error: }); using real Fashion-MNIST instead."
  DATASET=fashion_mnist
  WORKDIR=runs/fashion_mnist
fi

$PY scripts/pretrain.py --dataset "$DATASET" --workdir "$WORKDIR" "$@"
$PY scripts/finetune.py --dataset "$DATASET" --workdir "$WORKDIR" "$@"
echo "outputs: $WORKDIR/pretrain and $WORKDIR/finetune (metrics.json, curves.png, reconstructions.png)"
