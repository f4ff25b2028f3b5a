"""The command line of every script: its flags (defaults read from the config dataclasses), the
configs they describe, and the one place where user errors become a line on stderr and exit 2.

Library errors carry facts and the config fields that would fix them (`UserError.settings`);
here those fields are named by their flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import warnings
from collections.abc import Callable
from typing import Any

from aejax import compile_cache, distributed
from aejax.config import (
    DATASETS,
    DTYPES,
    ENCODERS,
    INITS,
    LOSSES,
    MODES,
    SOURCES,
    DataConfig,
    EarlyStoppingConfig,
    FinetuneConfig,
    ModelConfig,
    ObjectiveConfig,
    PretrainConfig,
    StageConfig,
    TrainConfig,
    TransferConfig,
    nested_config,
)
from aejax.errors import TrainingInterrupted, UserError

USER_ERROR_EXIT = 2


def _flag(parser, owner, name: str, help: str | None = None, **kwargs) -> None:
    """``--name`` whose default is `owner`'s field `name` (a config instance's default)."""
    default = getattr(owner, name)
    if "type" not in kwargs and "choices" not in kwargs and default is not None:
        kwargs["type"] = type(default)
    flag = "--" + name.replace("_", "-")
    parser.add_argument(flag, default=default, help=help, **kwargs)


def add_data_flags(parser: argparse.ArgumentParser, data: DataConfig, limits: bool = True) -> None:
    """--dataset, --source, --data-dir (and --train-limit, --test-limit)."""
    _flag(parser, data, "dataset", choices=DATASETS)
    _flag(parser, data, "source", choices=SOURCES, help="auto: local IDX files, then tfds")
    _flag(parser, data, "data_dir", help="folder with IDX files (torchvision's ROOT works too)")
    if limits:
        _flag(parser, data, "train_limit", type=int, help="use only the first N training examples")
        _flag(parser, data, "test_limit", type=int, help="use only the first N test examples")


def add_common_flags(parser: argparse.ArgumentParser, progress: bool = True) -> None:
    """--no-progress and --debug."""
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="no progress output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")


def add_compile_cache_flags(parser: argparse.ArgumentParser) -> None:
    """--compile-cache DIR and --no-compile-cache (JAX's persistent compilation cache)."""
    parser.add_argument(
        "--compile-cache", default=None, help="cache folder (default: ~/.cache/aejax/jax)"
    )
    parser.add_argument("--no-compile-cache", action="store_true", help="compile everything anew")


def add_device_flags(
    parser: argparse.ArgumentParser,
    help: str = "train data-parallel over N devices (each step's batch split over them)",
    cluster: bool = True,
) -> None:
    """--devices, and (`cluster`) how this process joins a multi-process run."""
    parser.add_argument(
        "--devices", type=int, default=None, help=help + "; default 1, or all of a multi-host run"
    )
    if not cluster:
        return
    parser.add_argument(
        "--coordinator",
        default=None,
        help="HOST:PORT of process 0 of a multi-host run, or 'auto' (SLURM, Cloud TPU, ...)",
    )
    parser.add_argument("--num-processes", type=int, default=None, help="processes in the run")
    parser.add_argument("--process-id", type=int, default=None, help="this process: 0..P-1")


def stage_parser(kind: type[StageConfig], description: str) -> argparse.ArgumentParser:
    """Flags common to both stages; defaults are the reference pipeline's."""
    stage, model, train = kind(), ModelConfig(), TrainConfig()
    parser = argparse.ArgumentParser(description=description)
    _flag(parser, stage, "workdir", help=f"outputs go to WORKDIR/{kind.stage}/")
    add_data_flags(parser, DataConfig())
    for name in ("epochs", "batch_size", "lr", "seed", "keep_checkpoints"):
        _flag(parser, train, name)
    for name in ("hidden", "latent", "num_classes"):
        _flag(parser, model, name)
    _flag(parser, model, "init", choices=INITS, help="torch: U(+-1/sqrt(fan_in)); lecun: Flax")
    _flag(parser, model, "dtype", choices=DTYPES, help="dtype of the matmuls")
    parser.add_argument("--overwrite", action="store_true", help=f"discard an earlier {kind.stage}")
    add_device_flags(parser)
    add_compile_cache_flags(parser)
    add_common_flags(parser)
    return parser


def add_objective_flags(parser: argparse.ArgumentParser) -> None:
    """--loss and --noise: the pretraining objective."""
    objective = ObjectiveConfig()
    _flag(parser, objective, "loss", choices=LOSSES, help="bce: sigmoid output, [0, 1] targets")
    _flag(parser, objective, "noise", help="denoising: gaussian:SIGMA or mask:P (inputs only)")


def add_finetune_flags(parser: argparse.ArgumentParser) -> None:
    """Where the encoder comes from, how it trains, and early stopping."""
    _flag(parser, FinetuneConfig(), "pretrained_dir", help="pretrain stage folder")
    transfer, stopping = TransferConfig(), EarlyStoppingConfig()
    _flag(parser, transfer, "encoder", choices=ENCODERS, help="scratch: no transplant")
    _flag(parser, transfer, "mode", choices=MODES, help="frozen: train the head only")
    _flag(parser, transfer, "encoder_lr_scale", help="discriminative mode: encoder lr = scale * lr")
    _flag(parser, stopping, "val_split", help="hold out N training examples for validation")
    _flag(parser, stopping, "patience", type=int, help="stop after P epochs without improvement")


def pretrain_parser() -> argparse.ArgumentParser:
    parser = stage_parser(PretrainConfig, "Pretrain the fully-connected autoencoder.")
    add_objective_flags(parser)
    return parser


def finetune_parser() -> argparse.ArgumentParser:
    parser = stage_parser(FinetuneConfig, "Fine-tune encoder + Dense(10) with cross-entropy.")
    add_finetune_flags(parser)
    return parser


def pipeline_parser() -> argparse.ArgumentParser:
    parser = stage_parser(PretrainConfig, "Pretrain, transplant, fine-tune: the whole pipeline.")
    parser.set_defaults(workdir=None)  # None: runs/DATASET
    parser._option_string_actions["--workdir"].help = "WORKDIR/{pretrain,finetune}/"
    parser._option_string_actions["--overwrite"].help = "discard earlier runs of both stages"
    parser.add_argument(
        "--fallback-dataset",
        default=None,
        choices=DATASETS,
        help="if --dataset cannot be loaded, say so and use this one",
    )
    add_objective_flags(parser)
    add_finetune_flags(parser)
    return parser


def config_from_args(kind: type, args: argparse.Namespace) -> Any:
    """The config of class `kind` that the parsed flags describe, nested configs included.

    Every field with a flag of the same name takes that flag's value; the rest keep defaults.
    """
    given, values = vars(args), {}
    for field in dataclasses.fields(kind):
        nested = nested_config(field)
        if nested is not None:
            values[field.name] = config_from_args(nested, args)
        elif field.name in given:
            values[field.name] = given[field.name]
    return kind(**values)


def label_budget_parser() -> argparse.ArgumentParser:
    from aejax.research.label_budget import LabelBudgetConfig, format_budgets

    study = LabelBudgetConfig()
    parser = argparse.ArgumentParser(description="Test accuracy vs number of labels.")
    parser.add_argument(
        "--labels",
        dest="budgets",
        default=format_budgets(study.budgets),
        help="comma-separated budgets; 'all' = every label",
    )
    _flag(parser, study, "seeds")
    add_data_flags(parser, study.data, limits=False)
    _flag(parser, study.data, "test_limit", type=int, help="test on the first N test examples")
    _flag(parser, study, "pretrain_epochs")
    _flag(parser, study, "epochs", help="fine-tuning epochs (at least)")
    _flag(parser, study, "min_steps", help="fine-tuning steps (at least)")
    for name in ("batch_size", "lr", "encoder_lr_scale"):
        _flag(parser, study, name)
    for name in ("hidden", "latent"):
        _flag(parser, study.model, name)
    parser.add_argument(
        "--out", default="runs/label_budget", help="folder for label_budget.{json,md,png}"
    )
    add_device_flags(parser, "split the seeds over N local devices", cluster=False)
    add_compile_cache_flags(parser)
    add_common_flags(parser)
    return parser


def evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Evaluate a stage folder's newest checkpoint.")
    parser.add_argument("stage_dir", help="a stage folder, e.g. runs/fashion_mnist/finetune")
    add_common_flags(parser, progress=False)
    return parser


def find_data_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Say where a dataset would be loaded from.")
    add_data_flags(parser, DataConfig(), limits=False)
    add_common_flags(parser, progress=False)
    return parser


def inspect_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Latent PCA scatter and reconstruction grid.")
    parser.add_argument("pretrain_dirs", nargs="+", help="pretrain stage folders")
    parser.add_argument("--grid", default=None, help="also write a reconstruction grid here")
    add_data_flags(parser, DataConfig(), limits=False)
    parser.set_defaults(dataset=None)  # None: the dataset the first folder was trained on
    add_common_flags(parser, progress=False)
    return parser


PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "pretrain": pretrain_parser,
    "finetune": finetune_parser,
    "pipeline": pipeline_parser,
    "evaluate": evaluate_parser,
    "find_data": find_data_parser,
    "label_budget": label_budget_parser,
    "inspect_pretrained": inspect_parser,
}


def run(main: Callable[[argparse.Namespace], Any], parser: argparse.ArgumentParser, argv=None):
    """Parse flags, run `main`, print what it returns (a dict as JSON); return the exit status.

    A UserError becomes one line on stderr naming the flags that fix it, and status 2.
    """
    args = parser.parse_args(argv)
    if not args.debug:  # Orbax and tfds log routine warnings through absl; errors still show
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    if hasattr(args, "no_compile_cache") and not args.no_compile_cache:
        compile_cache.enable(args.compile_cache or compile_cache.default_dir())
    # What the imports made (JAX, Flax, Orbax: ~140 000 GC-tracked objects) lives as long as the
    # process; frozen, Python's cyclic GC stops re-scanning it during tracing and at exit.
    gc.freeze()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            flags = ("coordinator", "num_processes", "process_id")
            cluster = distributed.Cluster(*(getattr(args, f, None) for f in flags))
            distributed.initialize(cluster)  # before anything runs on a device
            result = main(args)
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}{_flags_hint(parser, err.settings)}", file=sys.stderr)
        return USER_ERROR_EXIT
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C: the newest checkpoint is still there
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if distributed.is_primary():  # one answer per run, not one per process
        print(result if isinstance(result, str) else json.dumps(result, indent=2))
    gc.freeze()  # and what the run made: the final collection at exit then has nothing to scan
    return 0


def progress(args: argparse.Namespace) -> bool:
    """Whether to show progress: unless --no-progress, and only in the primary process."""
    return not args.no_progress and distributed.is_primary()


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. JAX's about an unreadable compile-cache entry) as one line on stderr."""
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=sys.stderr if file is None else file)


def _flags_hint(parser: argparse.ArgumentParser, settings: tuple[str, ...]) -> str:
    """`` (flags: --a, --b)`` for the settings this parser has a flag for, else nothing."""
    by_dest = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    flags = [by_dest[s] for s in settings if s in by_dest]
    return f" (flags: {', '.join(flags)})" if flags else ""
