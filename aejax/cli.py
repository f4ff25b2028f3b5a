"""Command-line flags shared by the scripts, and the one place user errors become exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from absl import logging as absl_logging

from aejax.configs import (
    DATASETS,
    INITS,
    SOURCES,
    DataConfig,
    ModelConfig,
    StageConfig,
    TrainConfig,
)
from aejax.errors import UserError
from aejax.interrupt import TrainingInterrupted

USER_ERROR_EXIT = 2


def stage_parser(stage: str, description: str) -> argparse.ArgumentParser:
    """Flags common to both stages; defaults are the reference pipeline's."""
    model, data, train = ModelConfig(), DataConfig(), TrainConfig()
    parser = argparse.ArgumentParser(description=description)
    add = parser.add_argument
    add("--workdir", default="runs/default", help=f"outputs go to WORKDIR/{stage}/")
    add("--dataset", default=data.dataset, choices=DATASETS)
    add("--source", default=data.source, choices=SOURCES, help="auto: local IDX files, then tfds")
    add("--data-dir", default=None, help="folder with IDX files (torchvision's ROOT works too)")
    add("--train-limit", type=int, default=None, help="use only the first N training examples")
    add("--test-limit", type=int, default=None, help="use only the first N test examples")
    add("--epochs", type=int, default=train.epochs)
    add("--batch-size", type=int, default=train.batch_size)
    add("--lr", type=float, default=train.lr)
    add("--seed", type=int, default=train.seed)
    add("--keep-checkpoints", type=int, default=train.keep_checkpoints)
    add("--hidden", type=int, default=model.hidden)
    add("--latent", type=int, default=model.latent)
    add("--num-classes", type=int, default=model.num_classes)
    add("--init", default=model.init, choices=INITS, help="torch: U(+-1/sqrt(fan_in)); lecun: Flax")
    add("--overwrite", action="store_true", help="discard an earlier run of this stage in WORKDIR")
    add("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    add("--debug", action="store_true", help="show tracebacks for user errors")
    return parser


def config_from_args(stage: str, args: argparse.Namespace) -> StageConfig:
    """The StageConfig that the parsed flags describe (validated by the config classes)."""
    return StageConfig(
        stage=stage,
        workdir=args.workdir,
        model=ModelConfig(
            hidden=args.hidden, latent=args.latent, num_classes=args.num_classes, init=args.init
        ),
        data=DataConfig(
            dataset=args.dataset,
            source=args.source,
            data_dir=args.data_dir,
            train_limit=args.train_limit,
            test_limit=args.test_limit,
        ),
        train=TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            keep_checkpoints=args.keep_checkpoints,
        ),
        pretrained_dir=getattr(args, "pretrained_dir", None),
    )


def run(main: Callable[[argparse.Namespace], dict], args: argparse.Namespace) -> int:
    """Run `main`, print its final metrics; a UserError becomes one line on stderr and exit 2."""
    if not args.debug:  # Orbax and tfds log routine warnings through absl; errors still show
        absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        metrics = main(args)
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR_EXIT
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C: the newest checkpoint is still there
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(json.dumps(metrics, indent=2))
    return 0
