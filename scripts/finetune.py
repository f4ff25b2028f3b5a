"""Stage 2: transplant the pretrained encoder into a classifier and fine-tune it.

Example (linear probe with early stopping):
  python scripts/finetune.py --dataset fashion_mnist --mode frozen --val-split 5000 --patience 3
"""

import sys

import aejax
from aejax import cli, cli_variants


def main(args) -> dict:
    config = cli_variants.with_variants(cli.config_from_args("finetune", args), args)
    return aejax.finetune(config, progress=not args.no_progress, overwrite=args.overwrite).metrics


if __name__ == "__main__":
    parser = cli.stage_parser("finetune", "Fine-tune encoder + Dense(10) with cross-entropy.")
    parser.add_argument(
        "--pretrained-dir", default=None, help="pretrain stage folder (default: WORKDIR/pretrain)"
    )
    cli_variants.add_finetune_flags(parser)
    sys.exit(cli.run(main, parser.parse_args()))
