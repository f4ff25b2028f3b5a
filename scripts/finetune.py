"""Stage 2: transplant the pretrained encoder into a classifier and fine-tune it.

Example (linear probe with early stopping):
  python scripts/finetune.py --dataset fashion_mnist --mode frozen --val-split 5000 --patience 3
"""

import sys

import aejax
from aejax import cli


def main(args) -> dict:
    config = cli.config_from_args(aejax.FinetuneConfig, args)
    result = aejax.finetune(config, options=cli.run_options(args))
    return result.metrics


if __name__ == "__main__":
    sys.exit(cli.run(main, cli.finetune_parser(), draw_aside=True))
