"""Flag builders shared by the scripts' parsers: each flag's default is read from a config
dataclass, so the command line and the library cannot disagree about a default."""

from __future__ import annotations

import argparse

from aejax.config import (
    ARCHS,
    DTYPES,
    ENCODERS,
    INITS,
    LOSSES,
    MODES,
    SOURCES,
    AugmentConfig,
    DataConfig,
    EarlyStoppingConfig,
    FinetuneConfig,
    ModelConfig,
    ObjectiveConfig,
    TransferConfig,
)
from aejax.data.download import MIRROR_ENV
from aejax.specs import DATASETS


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser that knows each option's flag by the setting it sets (`flag_for`), so an
    error naming a setting can name the flag that fixes it."""

    def __init__(self, *args, **kwargs):
        self.flags: dict[str, str] = {}  # before argparse adds --help through add_argument
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        """As argparse's, with the default (when it says something) at the end of the help."""
        default = kwargs.get("default")
        help = kwargs.get("help") or ""
        unsaid = default is None or default is False or default == argparse.SUPPRESS
        shown = not unsaid and "default" not in help  # 0 is said: it is a value, not an absence
        if shown and kwargs.get("action") not in ("store_true", "store_false"):
            kwargs["help"] = f"{help} (default: {default})".strip()
        action = super().add_argument(*args, **kwargs)
        if action.option_strings:
            self.flags.setdefault(action.dest, action.option_strings[0])
        return action

    def flag_for(self, setting: str) -> str | None:
        """The flag that sets `setting` (a config field name), if this parser has one."""
        return self.flags.get(setting)


# Training settings the pipeline can give each stage its own value of: --pretrain-NAME and
# --finetune-NAME, each defaulting to the shared --NAME.
PER_STAGE = ("epochs", "batch_size", "lr", "seed")
STAGE_PREFIXES = ("pretrain", "finetune")


def add_per_stage_flags(parser: argparse.ArgumentParser, train) -> None:
    """--pretrain-epochs, --finetune-lr, ...: one stage's value of a shared training flag."""
    for prefix in STAGE_PREFIXES:
        for name in PER_STAGE:
            shared = "--" + name.replace("_", "-")
            parser.add_argument(
                f"--{prefix}-{name.replace('_', '-')}",
                type=type(getattr(train, name)),
                default=None,
                help=f"{prefix} stage only (default: {shared})",
            )


# What a flag sets, where its call gives no help of its own.
FIELD_HELP = {
    "dataset": "which dataset",
    "epochs": "training epochs",
    "batch_size": "examples per step",
    "lr": "learning rate (Adam)",
    "seed": "seed of the initialisation, data order and noise",
    "keep_checkpoints": "keep the newest N checkpoints",
    "hidden": "width of the hidden layer",
    "latent": "width of the code (the encoder's output)",
    "num_classes": "classes the classifier tells apart",
    "seeds": "seeds per method and budget (trained together as one program)",
    "pretrain_epochs": "autoencoder epochs per seed",
    "encoder_lr_scale": "discriminative mode: encoder lr = scale * lr",
}


def flag(parser, owner, name: str, help: str | None = None, **kwargs) -> None:
    """``--name`` whose default is `owner`'s field `name` (a config instance's default)."""
    help = help or FIELD_HELP.get(name)
    default = getattr(owner, name)
    if "type" not in kwargs and "choices" not in kwargs and default is not None:
        kwargs["type"] = type(default)
    flag = "--" + name.replace("_", "-")
    parser.add_argument(flag, default=default, help=help, **kwargs)


def add_data_flags(parser: argparse.ArgumentParser, data: DataConfig, limits: bool = True) -> None:
    """--dataset, --source, --data-dir, --mirror, --no-download (--train-limit, --test-limit)."""
    named = ", ".join(DATASETS)
    flag(
        parser,
        data,
        "dataset",
        help=f"{named}, npz:PATH (x_train, y_train, x_test, y_test) or idx:DIR",
    )
    auto = "auto: local IDX files, a prepared tfds dataset, then a download"
    flag(parser, data, "source", choices=SOURCES, help=auto)
    flag(parser, data, "data_dir", help="folder with IDX files (torchvision's ROOT works too)")
    flag(parser, data, "mirror", help=f"download from this base URL (default: ${MIRROR_ENV})")
    parser.add_argument(
        "--no-download", action="store_true", default=data.no_download, help="never download"
    )
    if limits:
        flag(parser, data, "train_limit", type=int, help="use only the first N training examples")
        flag(parser, data, "test_limit", type=int, help="use only the first N test examples")


def add_model_flags(parser: argparse.ArgumentParser, model: ModelConfig, stage: bool = True):
    """--hidden, --latent, --arch (a stage's parser: --num-classes, --init and --dtype too)."""
    for name in ("hidden", "latent", "num_classes") if stage else ("hidden", "latent"):
        flag(parser, model, name)
    if stage:
        flag(parser, model, "init", choices=INITS, help="torch: U(+-1/sqrt(fan_in)); lecun: Flax")
        flag(parser, model, "dtype", choices=DTYPES, help="dtype of the matmuls")
    flag(parser, model, "arch", choices=ARCHS, help="conv: 3x3 stride-2 convolutions")


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


def add_objective_flags(parser: argparse.ArgumentParser) -> None:
    """--loss and --noise: the pretraining objective."""
    objective = ObjectiveConfig()
    flag(parser, objective, "loss", choices=LOSSES, help="bce: sigmoid output; vae: + KL term")
    flag(parser, objective, "noise", help="denoising: gaussian:SIGMA or mask:P (inputs only)")
    flag(parser, objective, "beta", help="vae: weight of the KL term (1 = the ELBO)")


def add_finetune_flags(parser: argparse.ArgumentParser) -> None:
    """Where the encoder comes from, how it trains, and early stopping."""
    flag(parser, FinetuneConfig(), "pretrained_dir", help="pretrain stage folder")
    transfer, stopping = TransferConfig(), EarlyStoppingConfig()
    flag(parser, transfer, "encoder", choices=ENCODERS, help="scratch: no transplant")
    flag(parser, transfer, "mode", choices=MODES, help="frozen: train the head only")
    flag(parser, transfer, "encoder_lr_scale", help="discriminative mode: encoder lr = scale * lr")
    flag(parser, stopping, "val_split", help="hold out N training examples for validation")
    flag(parser, stopping, "patience", type=int, help="stop after P epochs without improvement")
    flag(
        parser,
        AugmentConfig(),
        "augment",
        help="add generated examples: latent-mix:R, latent-noise:R (R per real one), shift:P",
    )


def add_observe_flags(parser: argparse.ArgumentParser) -> None:
    """--no-tensorboard and --profile DIR (`aejax.run.observe`)."""
    parser.add_argument(
        "--no-tensorboard", action="store_true", help="no TensorBoard events in STAGE/tensorboard/"
    )
    parser.add_argument(
        "--profile", default=None, help="write a profiler trace of one steady-state epoch here"
    )
