"""Moving a pretrained encoder, as a PyTree, into a classifier's parameters, and loading it from
the pretrain stage's checkpoint (Orbax partial restore of the encoder subtree only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from aejax import checkpoint
from aejax.errors import CheckpointError, EncoderMismatchError

ENCODER = "encoder"


def tree_shapes(tree) -> dict[str, tuple[int, ...]]:
    """``{"hidden/kernel": (784, 128), ...}``: every leaf's path and shape."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {_path_name(path): tuple(leaf.shape) for path, leaf in flat}


def encoder_mismatches(expected, actual) -> list[str]:
    """Human-readable differences in paths and shapes between two encoder trees (empty if none)."""
    want, have = tree_shapes(expected), tree_shapes(actual)
    problems = [f"{p}: missing in pretrained encoder" for p in sorted(want.keys() - have.keys())]
    problems += [
        f"{p}: unexpected in pretrained encoder" for p in sorted(have.keys() - want.keys())
    ]
    problems += [
        f"{p}: pretrained {have[p]} vs classifier {want[p]}"
        for p in sorted(want.keys() & have.keys())
        if want[p] != have[p]
    ]
    return problems


def check_encoder_fits(classifier_params, encoder_params) -> None:
    """Raise EncoderMismatchError naming each path/shape where the encoder does not fit."""
    problems = encoder_mismatches(classifier_params[ENCODER], encoder_params)
    if problems:
        raise EncoderMismatchError(
            "pretrained encoder does not fit the classifier ("
            + "; ".join(f"encoder/{p}" for p in problems)
            + "); use the same --hidden/--latent as in pretraining"
        )


def transplant_encoder(classifier_params: dict[str, Any], encoder_params) -> dict[str, Any]:
    """Classifier params with the encoder subtree replaced by `encoder_params` (head untouched)."""
    check_encoder_fits(classifier_params, encoder_params)
    return {**classifier_params, ENCODER: encoder_params}


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def load_pretrained_encoder(pretrain_dir: str | Path, classifier_params) -> Any:
    """The encoder of the newest pretrain checkpoint (Orbax partial restore), shape-checked."""
    checkpoints_dir = Path(pretrain_dir) / "checkpoints"
    epoch = checkpoint.latest_epoch(checkpoints_dir)
    if epoch is None:
        raise CheckpointError(
            f"no pretrained checkpoint in {checkpoints_dir}; run scripts/pretrain.py with the same "
            "--workdir first (or pass --pretrained-dir)"
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
