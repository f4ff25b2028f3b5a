"""Command-line flags of the research variants (objective, fine-tuning mode, early stopping)."""

from __future__ import annotations

import argparse
import dataclasses

from aejax.configs import StageConfig
from aejax.variants import ENCODERS, LOSSES, MODES, FinetuneConfig, ObjectiveConfig


def add_objective_flags(parser: argparse.ArgumentParser) -> None:
    """--loss and --noise for pretraining."""
    parser.add_argument("--loss", default="mse", choices=LOSSES, help="bce: sigmoid output")
    parser.add_argument(
        "--noise", default="none", help="denoising: gaussian:SIGMA or mask:P (inputs only)"
    )


def add_finetune_flags(parser: argparse.ArgumentParser) -> None:
    """--mode, --encoder, --encoder-lr-scale, --val-split and --patience for fine-tuning."""
    default = FinetuneConfig()
    add = parser.add_argument
    add("--mode", default=default.mode, choices=MODES, help="frozen: train the head only")
    add("--encoder", default=default.encoder, choices=ENCODERS, help="scratch: no transplant")
    add(
        "--encoder-lr-scale",
        type=float,
        default=default.encoder_lr_scale,
        help="discriminative mode: encoder lr = scale * lr",
    )
    add("--val-split", type=int, default=0, help="hold out N training examples for validation")
    add("--patience", type=int, default=None, help="stop after P epochs without improvement")


def _fields_of(cls, args: argparse.Namespace) -> dict:
    given = vars(args)
    return {f.name: given[f.name] for f in dataclasses.fields(cls) if f.name in given}


def with_variants(config: StageConfig, args: argparse.Namespace) -> StageConfig:
    """`config` with the variant options that `args` carries (absent flags keep defaults)."""
    return config.replace(
        objective=ObjectiveConfig(**_fields_of(ObjectiveConfig, args)),
        finetune=FinetuneConfig(**_fields_of(FinetuneConfig, args)),
    )
