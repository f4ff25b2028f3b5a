"""Stage 1: pretrain the autoencoder. Example: python scripts/pretrain.py --dataset fashion_mnist

Variants: --loss bce (sigmoid output, [0, 1] targets); --noise gaussian:0.5 or --noise mask:0.3
(denoising: corrupted inputs, clean targets).
"""

import sys

import aejax
from aejax import cli, cli_variants


def main(args) -> dict:
    config = cli_variants.with_variants(cli.config_from_args("pretrain", args), args)
    return aejax.pretrain(config, progress=not args.no_progress, overwrite=args.overwrite).metrics


if __name__ == "__main__":
    parser = cli.stage_parser("pretrain", "Pretrain the fully-connected autoencoder.")
    cli_variants.add_objective_flags(parser)
    sys.exit(cli.run(main, parser.parse_args()))
