"""Pretraining objectives: MSE or BCE reconstruction, optionally of corrupted inputs (denoising).

Inputs always reach the encoder normalised to [-1, 1], exactly as the classifier will see them, so
the transplanted encoder meets the input distribution it was trained on. Only the target and the
decoder's output differ: MSE compares tanh outputs with [-1, 1] pixels; BCE compares sigmoid
outputs (taken from logits) with pixels in [0, 1]. Noise touches inputs only; targets stay clean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from aejax.data import normalize
from aejax.losses import bce_per_example, mse_per_example
from aejax.train import MetricsFn
from aejax.variants import ObjectiveConfig, parse_noise

BLACK = -1.0  # a masked pixel becomes background (0 in [0, 255]), not mid-grey


def corrupt(inputs, rng, noise: str):
    """`inputs` in [-1, 1] with `noise` applied (``none``, ``gaussian:SIGMA``, ``mask:P``)."""
    kind, amount = parse_noise(noise)
    if kind == "none" or rng is None:  # evaluation passes no rng: it scores clean inputs
        return inputs
    if kind == "gaussian":
        return inputs + amount * jax.random.normal(rng, inputs.shape, inputs.dtype)
    keep = jax.random.bernoulli(rng, 1.0 - amount, inputs.shape)
    return jnp.where(keep, inputs, BLACK)


def reconstruction_metrics(apply_fn, objective: ObjectiveConfig) -> MetricsFn:
    """Per-example reconstruction loss of clean images from (possibly corrupted) inputs."""

    def metrics(params, images, labels, rng):
        del labels
        clean = normalize(images)
        outputs = apply_fn({"params": params}, corrupt(clean, rng, objective.noise))
        if objective.loss == "bce":
            return {"loss": bce_per_example(outputs, (clean + 1.0) / 2.0)}
        return {"loss": mse_per_example(outputs, clean)}

    return metrics


def uses_logits(objective: ObjectiveConfig) -> bool:
    """Whether the decoder must output logits (BCE) instead of tanh pixels (MSE)."""
    return objective.loss == "bce"


def reconstruct(apply_fn, params, inputs, objective: ObjectiveConfig):
    """Reconstructions of `inputs` in [-1, 1], whatever the objective's output layer."""
    outputs = apply_fn({"params": params}, inputs)
    return 2.0 * jax.nn.sigmoid(outputs) - 1.0 if uses_logits(objective) else outputs
