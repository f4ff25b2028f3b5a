"""Stage 2: transplant the pretrained encoder into a classifier and fine-tune it."""

import sys

import aejax
from aejax import cli


def main(args) -> dict:
    config = cli.config_from_args("finetune", args)
    return aejax.finetune(config, progress=not args.no_progress, overwrite=args.overwrite).metrics


if __name__ == "__main__":
    parser = cli.stage_parser("finetune", "Fine-tune encoder + Dense(10) with cross-entropy.")
    parser.add_argument(
        "--pretrained-dir", default=None, help="pretrain stage folder (default: WORKDIR/pretrain)"
    )
    sys.exit(cli.run(main, parser.parse_args()))
