"""Stage 1: pretrain the autoencoder. Example: python scripts/pretrain.py --dataset fashion_mnist

Variants: --loss bce (sigmoid output, [0, 1] targets); --noise gaussian:0.5 or --noise mask:0.3
(denoising: corrupted inputs, clean targets).
"""

import sys

import aejax
from aejax import cli


def main(args) -> dict:
    config = cli.config_from_args(aejax.PretrainConfig, args)
    result = aejax.pretrain(config, options=cli.run_options(args))
    return result.metrics


if __name__ == "__main__":
    sys.exit(cli.run(main, cli.pretrain_parser(), draw_aside=True))
