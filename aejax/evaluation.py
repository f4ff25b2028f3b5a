"""Evaluating trained params on a whole split (every example counted once), and a stage folder's
newest checkpoint on its dataset's test split."""

from __future__ import annotations

from pathlib import Path

import jax

from aejax.config import ObjectiveConfig
from aejax.contracts import MetricsFn
from aejax.data import contract
from aejax.data.datasets import Dataset, load_dataset
from aejax.engine.train import make_eval_fn
from aejax.errors import DataError
from aejax.model.models import Autoencoder
from aejax.model.objectives import classification_metrics, pretraining_metrics
from aejax.model.tasks import task_of
from aejax.run.saved_stage import load_stage


def evaluate(
    model, params, images, labels, batch_size: int = 100, objective: ObjectiveConfig | None = None
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


def evaluate_stage(stage_dir: str | Path) -> dict[str, float]:
    """Evaluate the newest checkpoint of a stage folder on its dataset's test split."""
    saved = load_stage(stage_dir)
    config = saved.config
    data = _recorded_data(stage_dir, saved)
    metrics_fn = task_of(config).metrics(config, saved.model)
    test = (data.test_images, data.test_labels)
    metrics = evaluate_with(metrics_fn, saved.params, *test, config.train.batch_size)
    return {"stage": config.stage, "epoch": saved.epoch, "dataset": data.name, **metrics}


def _recorded_data(stage_dir, saved) -> Dataset:
    """The data a stage folder was trained on, loaded again; a DataError if it cannot be."""
    trained_on = saved.trained_on or {}
    if trained_on.get("source") == "arrays":
        raise DataError(
            f"{stage_dir} was trained on arrays passed in from Python ({trained_on['name']}); "
            "evaluate its params on their test split with aejax.evaluate"
        )
    data = load_dataset(saved.config.data)
    if trained_on and data.fingerprint()["test"] != trained_on["test"]:
        raise DataError(
            f"the test split that {saved.config.data.dataset} loads here is not the one "
            f"{stage_dir} was tested on ({trained_on['test']['examples']} examples from "
            f"{trained_on['source']}); point data_dir at that data",
            settings=("data_dir",),
        )
    return data
