"""Optimizers built from config: which parameters train, and at which learning rate.

Freezing and lr scaling happen in the optimizer (`optax.multi_transform`), never by copying
parameters back after a step: a frozen encoder receives exactly zero updates, so it stays
bit-identical, and its Adam moments are not even allocated.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np
import optax

from aejax.config import TransferConfig
from aejax.model.models import ENCODER

HEAD = "head"


def param_labels(params) -> dict:
    """``"encoder"`` for every leaf under the encoder subtree, ``"head"`` for every other leaf."""
    return {
        name: jax.tree.map(lambda _, n=name: ENCODER if n == ENCODER else HEAD, subtree)
        for name, subtree in params.items()
    }


def encoder_transform(lr: float, transfer: TransferConfig) -> optax.GradientTransformation:
    """What the encoder's gradients go through in `transfer.mode`."""
    if transfer.mode == "frozen":
        return optax.set_to_zero()
    scale = transfer.encoder_lr_scale if transfer.mode == "discriminative" else 1.0
    return optax.adam(lr * scale)


def make_optimizer(
    lr: float, transfer: TransferConfig, base: optax.GradientTransformation | None = None
) -> optax.GradientTransformation:
    """Adam at `lr`, or `base` (your own optimizer, `lr` unused); in frozen or discriminative
    mode the encoder gets its own transform: zero updates, or `base`'s scaled by
    `transfer.encoder_lr_scale` (which for Adam-like optimizers scales their learning rate)."""
    if base is None:
        if transfer.mode == "full":
            return optax.adam(lr)  # the reference optimizer, and the same opt_state as before
        encoder = encoder_transform(lr, transfer)
        return optax.multi_transform({ENCODER: encoder, HEAD: optax.adam(lr)}, param_labels)
    if transfer.mode == "full":
        return base
    if transfer.mode == "frozen":
        encoder = optax.set_to_zero()
    else:
        encoder = optax.chain(base, optax.scale(transfer.encoder_lr_scale))
    return optax.multi_transform({ENCODER: encoder, HEAD: base}, param_labels)


def learning_rate(opt_state) -> jax.Array | None:
    """The learning rate the last step used, where the optimizer state holds one
    (`optax.inject_hyperparams`; the first such optimizer's); None where it holds none."""
    for path, value in optax.tree_utils.tree_get_all_with_path(opt_state, "learning_rate"):
        if any(getattr(key, "name", None) == "hyperparams" for key in path):
            return value
    return None


def fingerprint(opt_state, given: bool) -> dict[str, Any]:
    """What tells optimizers apart from their state: its structure (the kinds of state and the
    parameters they cover), the hyperparameters it holds at the start, and whether the
    optimizer was given rather than built from the config."""
    structure = str(jax.tree.structure(opt_state)).encode()
    held = optax.tree_utils.tree_get_all_with_path(opt_state, "hyperparams")
    hyperparams = {
        name: float(value)
        for _, tree in held
        if isinstance(tree, dict)
        for name, value in tree.items()
        if np.ndim(value) == 0
    }
    digest = hashlib.sha256(structure).hexdigest()
    return {"given": given, "state_sha256": digest, "hyperparams": hyperparams}
