"""Optimizers built from config: which parameters train, and at which learning rate.

Freezing and lr scaling happen in the optimizer (`optax.multi_transform`), never by copying
parameters back after a step: a frozen encoder receives exactly zero updates, so it stays
bit-identical, and its Adam moments are not even allocated.
"""

from __future__ import annotations

import jax
import optax

from aejax.transplant import ENCODER
from aejax.variants import FinetuneConfig

HEAD = "head"


def param_labels(params) -> dict:
    """``"encoder"`` for every leaf under the encoder subtree, ``"head"`` for every other leaf."""
    return {
        name: jax.tree.map(lambda _, n=name: ENCODER if n == ENCODER else HEAD, subtree)
        for name, subtree in params.items()
    }


def encoder_transform(lr: float, finetune: FinetuneConfig) -> optax.GradientTransformation:
    """What the encoder's gradients go through in `finetune.mode`."""
    if finetune.mode == "frozen":
        return optax.set_to_zero()
    scale = finetune.encoder_lr_scale if finetune.mode == "discriminative" else 1.0
    return optax.adam(lr * scale)


def make_optimizer(lr: float, finetune: FinetuneConfig) -> optax.GradientTransformation:
    """Adam at `lr`; in frozen/discriminative mode the encoder gets its own transform."""
    if finetune.mode == "full":
        return optax.adam(lr)  # the reference optimizer, and the same opt_state layout as before
    return optax.multi_transform(
        {ENCODER: encoder_transform(lr, finetune), HEAD: optax.adam(lr)}, param_labels
    )
