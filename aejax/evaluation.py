"""Evaluating trained params on a whole split (every example counted once), and a stage folder's
newest checkpoint on its dataset's test split."""

from __future__ import annotations

from pathlib import Path

import flax.linen as nn
import jax

from aejax.config import ObjectiveConfig
from aejax.contracts import Arrays, MetricsFn, Params
from aejax.data import contract
from aejax.data.datasets import Dataset, load_dataset
from aejax.engine.train import make_eval_fn
from aejax.errors import DataError, UserError
from aejax.model.models import Autoencoder
from aejax.model.objectives import classification_metrics, pretraining_metrics
from aejax.model.tasks import task_of
from aejax.run.saved_stage import load_stage
from aejax.run.workdir import OBJECTIVE


def evaluate(
    model: nn.Module,
    params: Params,
    images: Arrays,
    labels: Arrays,
    batch_size: int = 100,
    objective: ObjectiveConfig | None = None,
) -> dict[str, float]:
    """Mean loss over a split: the reconstruction objective (default MSE) for an Autoencoder,
    cross-entropy and accuracy for a Classifier. Images and labels as `aejax.Dataset.from_arrays`
    takes them: uint8 in [0, 255] or floats in [0, 1], and class ids."""
    images = contract.as_images(images, "images")
    labels = contract.as_labels(labels, "labels", len(images))
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


def evaluate_stage(
    stage_dir: str | Path,
    data: Dataset | None = None,
    model: nn.Module | None = None,
    objective: MetricsFn | None = None,
) -> dict[str, float]:
    """Evaluate the newest checkpoint of a stage folder on its dataset's test split (loaded
    again, or `data`: checked to be the data it was tested on); `model` and `objective`: those
    it trained, where they were your own."""
    saved = load_stage(stage_dir, model)
    config = saved.config
    own = saved.identity.get(OBJECTIVE, {})
    if own.get("given") and objective is None:
        raise UserError(
            f"{stage_dir} trained your own objective ({own['name']}); pass it: "
            "evaluate_stage(stage_dir, objective=...)"
        )
    data = _recorded_data(stage_dir, saved, data)
    metrics_fn = objective or task_of(config).metrics(config, saved.model)
    test = (data.test_images, data.test_labels)
    metrics = evaluate_with(metrics_fn, saved.params, *test, config.train.batch_size)
    return {"stage": config.stage, "epoch": saved.epoch, "dataset": data.name, **metrics}


def _recorded_data(stage_dir, saved, data: Dataset | None) -> Dataset:
    """The data a stage folder was trained on (`data`, or loaded again), checked against its
    record; a DataError if it cannot be had."""
    trained_on = saved.trained_on or {}
    if data is None and trained_on.get("source") == "arrays":
        raise DataError(
            f"{stage_dir} was trained on arrays passed in from Python ({trained_on['name']}); "
            "pass them again: evaluate_stage(stage_dir, data=...)"
        )
    what = "the test split given" if data is not None else "the test split loaded here"
    data = data if data is not None else load_dataset(saved.config.data)
    if trained_on and data.fingerprint()["test"] != trained_on["test"]:
        raise DataError(
            f"{what} is not the one {stage_dir} was tested on "
            f"({trained_on['test']['examples']} examples from {trained_on['source']}); "
            "evaluate it on that data",
            settings=("data_dir",),
        )
    return data
