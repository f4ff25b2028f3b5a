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

from aejax import quiet
from aejax.config import (
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    PretrainConfig,
    StageConfig,
    TrainConfig,
    nested_config,
)
from aejax.engine import compile_cache, distributed
from aejax.errors import TrainingInterrupted, UserError
from aejax.figures import worker as figure_worker
from aejax.flags import (
    FlagParser,
    add_common_flags,
    add_compile_cache_flags,
    add_data_flags,
    add_device_flags,
    add_finetune_flags,
    add_model_flags,
    add_objective_flags,
    add_observe_flags,
    add_per_stage_flags,
    flag,
)
from aejax.run.observe import Observe
from aejax.run.options import RunOptions
from aejax.specs import DATASETS

USER_ERROR_EXIT = 2


def stage_parser(
    kind: type[StageConfig],
    description: str,
    workdir_help: str | None = None,
    overwrite_help: str | None = None,
) -> FlagParser:
    """Flags common to both stages; defaults are the reference pipeline's."""
    stage, model, train = kind(), ModelConfig(), TrainConfig()
    parser = FlagParser(description=description)
    flag(parser, stage, "workdir", help=workdir_help or f"outputs go to WORKDIR/{kind.stage}/")
    add_data_flags(parser, DataConfig())
    for name in ("epochs", "batch_size", "lr", "seed", "keep_checkpoints"):
        flag(parser, train, name)
    add_model_flags(parser, model)
    overwrite_help = overwrite_help or f"discard an earlier {kind.stage}"
    parser.add_argument("--overwrite", action="store_true", help=overwrite_help)
    add_device_flags(parser)
    add_observe_flags(parser)
    add_compile_cache_flags(parser)
    add_common_flags(parser)
    return parser


def pretrain_parser() -> FlagParser:
    parser = stage_parser(PretrainConfig, "Pretrain the autoencoder (mlp or conv).")
    add_objective_flags(parser)
    return parser


def finetune_parser() -> FlagParser:
    parser = stage_parser(FinetuneConfig, "Fine-tune encoder + Dense(10) with cross-entropy.")
    add_finetune_flags(parser)
    return parser


def pipeline_parser() -> FlagParser:
    parser = stage_parser(
        PretrainConfig,
        "Pretrain, transplant, fine-tune: the whole pipeline.",
        workdir_help="WORKDIR/{pretrain,finetune}/ (default: runs/DATASET)",
        overwrite_help="discard earlier runs of both stages",
    )
    parser.set_defaults(workdir=None)  # None: runs/DATASET
    add_per_stage_flags(parser, TrainConfig())
    parser.add_argument(
        "--fallback-dataset",
        default=None,
        choices=DATASETS,
        help="if --dataset cannot be loaded, say so and use this one",
    )
    add_objective_flags(parser)
    add_finetune_flags(parser)
    return parser


def config_from_args(
    kind: type, args: argparse.Namespace, prefix: str | None = None, **overrides: Any
) -> Any:
    """The config of class `kind` that the parsed flags describe, nested configs included.

    Flags are named after the fields they set, so every field name must be unique across the
    nested configs (checked). Each field takes, in order: its value in `overrides`; with a
    `prefix`, the flag ``--PREFIX-NAME`` if given; the flag ``--NAME``; else its default.
    """
    names = leaf_fields(kind)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # a bug in the configs, not the user's: the flags could not tell them apart
        raise TypeError(f"{kind.__name__} repeats field names {repeated}; flags need them unique")
    return _config(kind, vars(args), prefix, overrides)


def leaf_fields(kind: type) -> list[str]:
    """The names of `kind`'s fields that hold values, nested configs' fields included."""
    names = []
    for field in dataclasses.fields(kind):
        nested = nested_config(field)
        names.extend(leaf_fields(nested) if nested is not None else [field.name])
    return names


def _config(kind: type, given: dict[str, Any], prefix, overrides: dict[str, Any]) -> Any:
    values = {}
    for field in dataclasses.fields(kind):
        name, nested = field.name, nested_config(field)
        if nested is not None:
            values[name] = _config(nested, given, prefix, overrides)
        elif name in overrides:
            values[name] = overrides[name]
        elif prefix and given.get(f"{prefix}_{name}") is not None:
            values[name] = given[f"{prefix}_{name}"]
        elif name in given:
            values[name] = given[name]
    return kind(**values)


def label_budget_parser() -> FlagParser:
    from aejax.research.label_budget import LabelBudgetConfig, format_budgets

    study = LabelBudgetConfig()
    parser = FlagParser(description="Test accuracy vs number of labels.")
    parser.add_argument(
        "--labels",
        dest="budgets",
        default=format_budgets(study.budgets),
        help="comma-separated budgets; 'all' = every label",
    )
    flag(parser, study, "seeds")
    add_data_flags(parser, study.data, limits=False)
    flag(parser, study.data, "test_limit", type=int, help="test on the first N test examples")
    flag(parser, study, "pretrain_epochs")
    flag(parser, study, "epochs", help="fine-tuning epochs (at least)")
    flag(parser, study, "min_steps", help="fine-tuning steps (at least)")
    for name in ("batch_size", "lr", "encoder_lr_scale"):
        flag(parser, study, name)
    parser.add_argument(
        "--methods",
        dest="method_names",
        default=None,
        help="comma-separated methods to compare (default: all)",
    )
    flag(parser, study, "generated_per_real", help="R of the latent-mix and latent-noise methods")
    flag(parser, study, "shift_pixels", help="P of the shift methods")
    add_model_flags(parser, study.model, stage=False)
    parser.add_argument(
        "--out", default="runs/label_budget", help="folder for label_budget.{json,md,png}"
    )
    add_device_flags(parser, "split the seeds over N local devices", cluster=False)
    add_compile_cache_flags(parser)
    add_common_flags(parser)
    return parser


def evaluate_parser() -> FlagParser:
    parser = FlagParser(description="Evaluate a stage folder's newest checkpoint.")
    parser.add_argument("stage_dir", help="a stage folder, e.g. runs/fashion_mnist/finetune")
    add_common_flags(parser, progress=False)
    return parser


def find_data_parser() -> FlagParser:
    parser = FlagParser(description="Say where a dataset would be loaded from.")
    add_data_flags(parser, DataConfig(), limits=False)
    add_common_flags(parser, progress=False)
    return parser


def inspect_parser() -> FlagParser:
    parser = FlagParser(description="Latent PCA scatter and reconstruction grid.")
    parser.add_argument("pretrain_dirs", nargs="+", help="pretrain stage folders")
    parser.add_argument("--grid", default=None, help="also write a reconstruction grid here")
    add_data_flags(parser, DataConfig(), limits=False)
    parser.set_defaults(dataset=None)  # None: the dataset the first folder was trained on
    add_common_flags(parser, progress=False)
    return parser


PARSERS: dict[str, Callable[[], FlagParser]] = {
    "pretrain": pretrain_parser,
    "finetune": finetune_parser,
    "pipeline": pipeline_parser,
    "evaluate": evaluate_parser,
    "find_data": find_data_parser,
    "label_budget": label_budget_parser,
    "inspect_pretrained": inspect_parser,
}


def run(
    main: Callable[[argparse.Namespace], Any],
    parser: FlagParser,
    argv=None,
    draw_aside: bool = False,
):
    """Parse flags, run `main`, print what it returns (a dict as JSON); return the exit status.

    A UserError becomes one line on stderr naming the flags that fix it, and status 2. With
    `draw_aside`, figures are drawn by a helper process (`aejax.figures.worker`).
    """
    args = parser.parse_args(argv)
    _prepare(args)
    # What the imports made (JAX, Flax, Orbax: ~140 000 GC-tracked objects) lives as long as the
    # process; frozen, Python's cyclic GC stops re-scanning it during tracing and at exit.
    gc.freeze()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = quiet.one_line_warning
            flags = ("coordinator", "num_processes", "process_id")
            cluster = distributed.Cluster(*(getattr(args, f, None) for f in flags))
            distributed.initialize(cluster)  # before anything runs on a device
            with figure_worker.drawing_aside(draw_aside and distributed.is_primary()):
                result = main(args)
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}{_flags_hint(parser, err.settings)}", file=sys.stderr)
        quiet.until_exit()
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


def _prepare(args: argparse.Namespace) -> None:
    """Quiet logs (without --debug) and the compile cache (unless --no-compile-cache)."""
    if not args.debug:
        # Orbax and tfds log routine warnings through absl, and Orbax logs a failed background
        # save before the same error reaches the run, which reports it in its one line.
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.FATAL)
        sys.unraisablehook = quiet.without_closed_loops(sys.unraisablehook)
    if hasattr(args, "no_compile_cache") and not args.no_compile_cache:
        compile_cache.enable(args.compile_cache)  # None: the per-user default folder


def run_options(args: argparse.Namespace) -> RunOptions:
    """How a stage (or the pipeline) runs, from the flags."""
    return RunOptions(
        progress=progress(args),
        overwrite=args.overwrite,
        devices=args.devices,
        observe=Observe(tensorboard=not args.no_tensorboard, profile_dir=args.profile),
    )


def progress(args: argparse.Namespace) -> bool:
    """Whether to show progress: unless --no-progress, and only in the primary process."""
    return not args.no_progress and distributed.is_primary()


def _flags_hint(parser: FlagParser, settings: tuple[str, ...]) -> str:
    """`` (flags: --a, --b)`` for the settings this parser has a flag for, else nothing."""
    flags = [parser.flag_for(s) for s in settings if parser.flag_for(s)]
    return f" (flags: {', '.join(flags)})" if flags else ""
