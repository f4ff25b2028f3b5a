"""Evaluating trained params on a whole split (every example counted once), and a stage folder's
newest checkpoint on its dataset's test split."""

from __future__ import annotations

from pathlib import Path

import jax

from aejax.config import ObjectiveConfig
from aejax.contracts import MetricsFn
from aejax.data.datasets import load_dataset
from aejax.engine.train import make_eval_fn
from aejax.model.models import Autoencoder
from aejax.model.objectives import classification_metrics, pretraining_metrics
from aejax.model.tasks import task_of
from aejax.run.saved_stage import load_stage


def evaluate(
    model, params, images, labels, batch_size: int = 100, objective: ObjectiveConfig | None = None
) -> dict[str, float]:
    """Mean loss over a split: the reconstruction objective (default MSE) for an Autoencoder,
    cross-entropy and accuracy for a Classifier."""
    if isinstance(model, Autoencoder):
        metrics_fn = pretraining_metrics(model, objective or ObjectiveConfig())
    else:
        metrics_fn = classification_metrics(model.apply)
    return evaluate_with(metrics_fn, params, images, labels, batch_size)


def evaluate_with(
    metrics_fn: MetricsFn, params, images, labels, batch_size: int = 100
) -> dict[str, float]:
    """The means of `metrics_fn`'s metrics over a split, and its ``count`` of examples."""
    eval_fn = jax.jit(make_eval_fn(metrics_fn, len(labels), batch_size))
    return {k: float(v) for k, v in jax.device_get(eval_fn(params, images, labels)).items()}


def evaluate_stage(stage_dir: str | Path) -> dict[str, float]:
    """Evaluate the newest checkpoint of a stage folder on its dataset's test split."""
    saved = load_stage(stage_dir)
    config = saved.config
    data = load_dataset(config.data)
    metrics_fn = task_of(config).metrics(config, saved.model)
    test = (data.test_images, data.test_labels)
    metrics = evaluate_with(metrics_fn, saved.params, *test, config.train.batch_size)
    return {"stage": config.stage, "epoch": saved.epoch, "dataset": data.name, **metrics}
