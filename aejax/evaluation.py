"""Evaluating trained params on a whole split, every example counted once."""

from __future__ import annotations

import jax

from aejax.models import Autoencoder
from aejax.train import classification_metrics, make_eval_fn, reconstruction_metrics


def evaluate(model, params, images, labels, batch_size: int = 100) -> dict[str, float]:
    """Mean loss over a split: MSE for an Autoencoder, cross-entropy and accuracy otherwise."""
    task = reconstruction_metrics if isinstance(model, Autoencoder) else classification_metrics
    eval_fn = jax.jit(make_eval_fn(task(model.apply), len(labels), batch_size))
    return {k: float(v) for k, v in jax.device_get(eval_fn(params, images, labels)).items()}
