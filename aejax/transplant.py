"""Moving a pretrained encoder, as a PyTree, into a classifier's parameters, and loading it from
the pretrain stage's checkpoint (Orbax partial restore of the encoder subtree only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from aejax import checkpoint, trees
from aejax.errors import CheckpointError, EncoderMismatchError
from aejax.models import ENCODER


def encoder_mismatches(expected, actual) -> list[str]:
    """Human-readable differences in paths and shapes between two encoder trees (empty if none)."""
    words = {
        "missing": lambda d: f"{d.path}: missing in pretrained encoder",
        "unexpected": lambda d: f"{d.path}: unexpected in pretrained encoder",
        "shape": lambda d: f"{d.path}: pretrained {d.actual} vs classifier {d.expected}",
    }
    return [words[d.kind](d) for d in trees.differences(expected, actual)]


def check_encoder_fits(classifier_params, encoder_params) -> None:
    """Raise EncoderMismatchError naming each path/shape where the encoder does not fit."""
    problems = encoder_mismatches(classifier_params[ENCODER], encoder_params)
    if problems:
        raise EncoderMismatchError(
            "pretrained encoder does not fit the classifier ("
            + "; ".join(f"{ENCODER}/{p}" for p in problems)
            + "); use the same hidden and latent widths as in pretraining",
            settings=("hidden", "latent"),
        )


def transplant_encoder(classifier_params: dict[str, Any], encoder_params) -> dict[str, Any]:
    """Classifier params with the encoder subtree replaced by `encoder_params` (head untouched)."""
    check_encoder_fits(classifier_params, encoder_params)
    return {**classifier_params, ENCODER: encoder_params}


def load_pretrained_encoder(pretrain_dir: str | Path, classifier_params) -> Any:
    """The encoder of the newest pretrain checkpoint (Orbax partial restore), shape-checked."""
    checkpoints_dir = Path(pretrain_dir) / "checkpoints"
    epoch = checkpoint.latest_epoch(checkpoints_dir)
    if epoch is None:
        raise CheckpointError(
            f"no pretrained checkpoint in {checkpoints_dir}; pretrain into the same workdir "
            "first, or name a finished pretrain stage folder as pretrained_dir",
            settings=("workdir", "pretrained_dir"),
        )
    saved = checkpoint.saved_param_shapes(checkpoints_dir, epoch)
    if ENCODER not in saved:
        raise CheckpointError(f"checkpoint {checkpoints_dir}/{epoch} holds no encoder")
    shapes = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s, jnp.float32),
        saved[ENCODER],
        is_leaf=lambda x: isinstance(x, tuple),
    )
    check_encoder_fits(classifier_params, shapes)
    target = {"params": {ENCODER: classifier_params[ENCODER]}}
    return checkpoint.restore_subtree(checkpoints_dir, epoch, target)["params"][ENCODER]
