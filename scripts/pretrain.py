"""Stage 1: pretrain the autoencoder. Example: python scripts/pretrain.py --dataset fashion_mnist"""

import sys

import aejax
from aejax import cli


def main(args) -> dict:
    config = cli.config_from_args("pretrain", args)
    return aejax.pretrain(config, progress=not args.no_progress, overwrite=args.overwrite).metrics


if __name__ == "__main__":
    parser = cli.stage_parser("pretrain", "Pretrain the fully-connected autoencoder (MSE).")
    sys.exit(cli.run(main, parser.parse_args()))
