"""The label-budget study: does autoencoder pretraining help when labels are scarce?

For each seed one autoencoder is pretrained on all training images (labels unused). For each label
budget each seed draws its own class-balanced subset, and four classifiers train on it: from
scratch, and from the seed's pretrained encoder fine-tuned fully, discriminatively (encoder at a
smaller lr) or frozen (linear probe). All seeds of one (budget, method) cell train together in one
vmapped, compiled program (`aejax.ensemble`).

Training length: ``max(epochs, ceil(min_steps / steps_per_epoch))`` epochs. Ten epochs of 100
labels at batch 100 would be ten Adam steps, far too few to fit even a linear head; a floor of
`min_steps` steps (500 by default) lets every budget converge on its training set, while budgets
with more than ``min_steps / epochs`` batches keep the reference's 10 epochs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from aejax import ensemble, objectives
from aejax.configs import DataConfig, ModelConfig
from aejax.data import Dataset, load_dataset
from aejax.errors import UserError
from aejax.models import make_autoencoder, make_classifier
from aejax.optim import make_optimizer
from aejax.splits import balanced_indices
from aejax.train import classification_metrics
from aejax.transplant import ENCODER
from aejax.variants import FinetuneConfig, ObjectiveConfig

AE_INIT, AE_EPOCHS, CLF_INIT, CLF_EPOCHS = 0, 1, 2, 3  # independent random streams per seed
ALL = "all"


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """What the study trains; the defaults take about five minutes on two CPU cores."""

    budgets: tuple[int | None, ...] = (100, 1000, 10000, None)  # None: every training label
    seeds: int = 5
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=lambda: DataConfig("fashion_mnist"))
    pretrain_epochs: int = 10
    epochs: int = 10
    min_steps: int = 500
    batch_size: int = 100
    lr: float = 1e-3
    encoder_lr_scale: float = 0.1
    timing_seeds: int = 8  # 0 skips the vmap-vs-one-seed timing

    def __post_init__(self):
        for name in ("seeds", "pretrain_epochs", "epochs", "min_steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.budgets or any(b is not None and b <= 0 for b in self.budgets):
            raise UserError("label budgets must be positive integers or 'all'")

    def methods(self) -> dict[str, FinetuneConfig]:
        """The four compared classifiers and how each starts and trains."""
        scale = self.encoder_lr_scale
        return {
            "scratch": FinetuneConfig(encoder="scratch"),
            "pretrained-full": FinetuneConfig(),
            "pretrained-discriminative": FinetuneConfig("discriminative", encoder_lr_scale=scale),
            "pretrained-frozen": FinetuneConfig(mode="frozen"),
        }


def parse_budgets(text: str) -> tuple[int | None, ...]:
    """``"100,1000,all"`` -> ``(100, 1000, None)``."""
    try:
        return tuple(None if p.strip() == ALL else int(p) for p in text.split(","))
    except ValueError:
        raise UserError(
            f"--labels must be integers or 'all', comma-separated; got {text!r}"
        ) from None


def epochs_for(num_examples: int, config: StudyConfig) -> int:
    """Reference epochs, raised so that every budget trains at least `min_steps` steps."""
    steps_per_epoch = math.ceil(num_examples / min(config.batch_size, num_examples))
    return max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))


def budget_indices(labels: np.ndarray, budget: int | None, seeds: list[int]) -> np.ndarray:
    """``(seeds, n)`` training indices: a class-balanced subset per seed, or all of them."""
    if budget is None or budget >= len(labels):
        return np.tile(np.arange(len(labels), dtype=np.int32), (len(seeds), 1))
    return np.stack([balanced_indices(labels, budget, seed) for seed in seeds])


def pretrain_encoders(config: StudyConfig, arrays, seeds: list[int]) -> tuple[Any, np.ndarray]:
    """One MSE autoencoder per seed on every training image; their encoders and test MSE."""
    (images, labels), (test_images, test_labels) = arrays
    model = make_autoencoder(config.model, images.shape[1])
    metrics_fn = objectives.reconstruction_metrics(model.apply, ObjectiveConfig())
    states = ensemble.init_states(
        model, images.shape[1], optax.adam(config.lr), ensemble.seed_keys(seeds, AE_INIT)
    )
    indices = jnp.asarray(budget_indices(np.asarray(labels), None, seeds))
    keys = ensemble.seed_keys(seeds, AE_EPOCHS)
    run = ensemble.compile_run(
        metrics_fn, states, images, labels, keys, indices, config.batch_size, config.pretrain_epochs
    )
    states, _ = run(states, images, labels, keys, indices)
    test = ensemble.evaluate_all(metrics_fn, states.params, test_images, test_labels)
    return states.params[ENCODER], test["loss"]


def classifier_states(config: StudyConfig, method: FinetuneConfig, init_params, encoders):
    """Per-seed classifiers for `method`: transplanted encoders, or scratch; same head init."""
    params = dict(init_params)
    if method.encoder == "pretrained":
        params[ENCODER] = encoders
    # A copy: each run donates its state, and these params start every method's run.
    params = jax.tree.map(jnp.copy, params)
    model = make_classifier(config.model)
    return model, ensemble.make_states(model.apply, params, make_optimizer(config.lr, method))


def finetune_cell(config: StudyConfig, arrays, start, seeds, indices, method, evaluate):
    """Test and last-epoch train accuracy per seed of one (budget, method) cell, in one program.

    `start` is ``(classifier init params, pretrained encoders)``, both stacked per seed;
    `evaluate` is the (shared, compiled once) per-seed test evaluation.
    """
    (images, labels), (test_images, test_labels) = arrays
    model, states = classifier_states(config, method, *start)
    metrics_fn = classification_metrics(model.apply)
    keys = ensemble.seed_keys(seeds, CLF_EPOCHS)
    batch = min(config.batch_size, indices.shape[1])
    epochs = epochs_for(indices.shape[1], config)
    run = ensemble.compile_run(metrics_fn, states, images, labels, keys, indices, batch, epochs)
    states, per_epoch = run(states, images, labels, keys, indices)
    train_accuracy = np.asarray(per_epoch["accuracy"])[:, -1]
    return evaluate(states.params, test_images, test_labels)["accuracy"], train_accuracy


def run_study(config: StudyConfig, data: Dataset | None = None, progress: bool = True) -> dict:
    """Pretrain, fine-tune every (budget, method) cell, time vmap; the results as a dict."""
    started = time.perf_counter()
    data = data if data is not None else load_dataset(config.data)
    seeds = list(range(config.seeds))
    arrays = (
        (jax.device_put(data.train_images), jax.device_put(data.train_labels)),
        (jax.device_put(data.test_images), jax.device_put(data.test_labels)),
    )
    encoders, test_mse = pretrain_encoders(config, arrays, seeds)
    pretrain_s = time.perf_counter() - started
    model = make_classifier(config.model)
    evaluate = ensemble.make_evaluator(classification_metrics(model.apply), len(data.test_labels))
    start = (
        ensemble.init_params(model, data.input_dim, ensemble.seed_keys(seeds, CLF_INIT)),
        encoders,
    )
    cells = []
    pairs = [(b, m) for b in config.budgets for m in config.methods()]
    for budget, name in tqdm(pairs, desc="label budget", disable=not progress):
        indices = jnp.asarray(budget_indices(data.train_labels, budget, seeds))
        method = config.methods()[name]
        cell_started = time.perf_counter()
        accuracy, train = finetune_cell(config, arrays, start, seeds, indices, method, evaluate)
        cells.append(_cell(budget, name, indices.shape[1], config, accuracy, train))
        cells[-1]["seconds"] = time.perf_counter() - cell_started  # compile + train + test
    timing = measure_speedup(config, arrays) if config.timing_seeds else None
    return {
        "dataset": data.name,
        "source": data.source,
        "config": _config_dict(config),
        "pretrain_test_mse": test_mse.tolist(),
        "cells": cells,
        "timing": timing,
        "pretrain_s": pretrain_s,
        "wall_s": time.perf_counter() - started,
        "backend": jax.default_backend(),
    }


def measure_speedup(config: StudyConfig, arrays) -> dict:
    """Wall time of one 1000-label cell (every parameter training) for 1 vs many seeds.

    Looping over seeds would cost ``seeds x one_seed_s``: the one-seed program compiles once and
    each further seed reruns it.
    """
    (images, labels), _ = arrays
    method = config.methods()["scratch"]  # the same work as pretrained-full, no encoder needed
    budget = min(1000, len(labels))
    model = make_classifier(config.model)
    rows = {}
    for count in (1, config.timing_seeds):
        seeds = list(range(count))
        indices = jnp.asarray(budget_indices(np.asarray(labels), budget, seeds))
        keys = ensemble.seed_keys(seeds, CLF_EPOCHS)
        params = ensemble.init_params(model, images.shape[1], keys)
        rows[count] = ensemble.time_run(
            classifier_states(config, method, params, None)[1],
            classification_metrics(model.apply),
            images,
            labels,
            keys,
            indices,
            min(config.batch_size, budget),
            epochs_for(budget, config),
        )
    one, many = rows[1]["seconds"], rows[config.timing_seeds]["seconds"]
    return {
        "labels": budget,
        "steps": epochs_for(budget, config) * math.ceil(budget / config.batch_size),
        "one_seed_s": one,
        "vmapped_s": many,
        "seeds": config.timing_seeds,
        "ratio_vs_one_seed": many / one,
        "speedup_vs_loop": config.timing_seeds * one / many,
    }


def _cell(budget, method, num_labels, config, accuracy, train_accuracy) -> dict:
    return {
        "labels": ALL if budget is None else budget,
        "num_labels": int(num_labels),
        "method": method,
        "epochs": epochs_for(num_labels, config),
        "accuracy": [float(a) for a in accuracy],
        "mean": float(np.mean(accuracy)),
        "std": float(np.std(accuracy, ddof=1)) if len(accuracy) > 1 else 0.0,
        "train_accuracy": [float(a) for a in train_accuracy],
    }


def _config_dict(config: StudyConfig) -> dict:
    raw = dataclasses.asdict(config)
    raw["budgets"] = [ALL if b is None else b for b in config.budgets]
    return raw
