"""Optimizers built from config: which parameters train, and at which learning rate.

Freezing and lr scaling happen in the optimizer (`optax.multi_transform`), never by copying
parameters back after a step: a frozen encoder receives exactly zero updates, so it stays
bit-identical, and its Adam moments are not even allocated.
"""

from __future__ import annotations

import jax
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


def make_optimizer(lr: float, transfer: TransferConfig) -> optax.GradientTransformation:
    """Adam at `lr`; in frozen/discriminative mode the encoder gets its own transform."""
    if transfer.mode == "full":
        return optax.adam(lr)  # the reference optimizer, and the same opt_state layout as before
    return optax.multi_transform(
        {ENCODER: encoder_transform(lr, transfer), HEAD: optax.adam(lr)}, param_labels
    )
