"""The label-budget study: does autoencoder pretraining help when labels are scarce?

For each seed one autoencoder is pretrained on all training images (labels unused). For each label
budget each seed draws its own class-balanced subset, and four classifiers train on it: from
scratch, and from the seed's pretrained encoder fine-tuned fully, discriminatively (encoder at a
smaller lr) or frozen (linear probe). All seeds of one (budget, method) cell train together in one
vmapped, compiled program (`aejax.research.multi_seed`).

Training length: ``max(epochs, ceil(min_steps / steps_per_epoch))`` epochs. Ten epochs of 100
labels at batch 100 would be ten Adam steps, far too few to fit even a linear head; a floor of
`min_steps` steps (500 by default) lets every budget converge on its training set, while budgets
with more than ``min_steps / epochs`` batches keep the reference's 10 epochs.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from aejax import distributed, parallel
from aejax.config import DataConfig, ModelConfig, ObjectiveConfig, TransferConfig
from aejax.data import Dataset, DeviceData, load_dataset, to_device
from aejax.errors import UserError
from aejax.models import ENCODER, make_autoencoder, make_classifier
from aejax.objectives import classification_metrics, reconstruction_metrics
from aejax.optim import make_optimizer
from aejax.research import multi_seed
from aejax.splits import balanced_indices

AE_INIT, AE_EPOCHS, CLF_INIT, CLF_EPOCHS = 0, 1, 2, 3  # independent random streams per seed
ALL = "all"


@dataclasses.dataclass(frozen=True)
class LabelBudgetConfig:
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

    def __post_init__(self):
        for name in ("seeds", "pretrain_epochs", "epochs", "min_steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise UserError(
                    f"{name} must be positive, got {getattr(self, name)}", settings=(name,)
                )
        if not self.budgets or any(b is not None and b <= 0 for b in self.budgets):
            raise UserError(
                "label budgets must be positive integers or 'all'", settings=("budgets",)
            )

    def methods(self) -> dict[str, TransferConfig]:
        """The four compared classifiers and how each starts and trains."""
        scale = self.encoder_lr_scale
        return {
            "scratch": TransferConfig(encoder="scratch"),
            "pretrained-full": TransferConfig(),
            "pretrained-discriminative": TransferConfig(
                mode="discriminative", encoder_lr_scale=scale
            ),
            "pretrained-frozen": TransferConfig(mode="frozen"),
        }


def parse_budgets(text: str) -> tuple[int | None, ...]:
    """``"100,1000,all"`` -> ``(100, 1000, None)``."""
    try:
        return tuple(None if p.strip() == ALL else int(p) for p in text.split(","))
    except ValueError:
        raise UserError(
            f"label budgets must be integers or 'all', comma-separated; got {text!r}",
            settings=("budgets",),
        ) from None


def format_budgets(budgets: tuple[int | None, ...]) -> str:
    """``(100, 1000, None)`` -> ``"100,1000,all"``."""
    return ",".join(ALL if b is None else str(b) for b in budgets)


def epochs_for(num_examples: int, config: LabelBudgetConfig) -> int:
    """Reference epochs, raised so that every budget trains at least `min_steps` steps."""
    steps_per_epoch = math.ceil(num_examples / min(config.batch_size, num_examples))
    return max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))


def budget_indices(labels: np.ndarray, budget: int | None, seeds: list[int]) -> np.ndarray:
    """``(seeds, n)`` training indices: a class-balanced subset per seed, or all of them."""
    if budget is None or budget >= len(labels):
        return np.tile(np.arange(len(labels), dtype=np.int32), (len(seeds), 1))
    return np.stack([balanced_indices(labels, budget, seed) for seed in seeds])


def pretrain_encoders(config: LabelBudgetConfig, data: DeviceData, seeds: list[int], mesh=None):
    """One MSE autoencoder per seed on every training image; their encoders and test MSE.

    With a device `mesh`, the seeds are split over its devices (`parallel.seed_mesh`).
    """
    input_dim = data.train.images.shape[1]
    model = make_autoencoder(config.model, input_dim)
    metrics_fn = reconstruction_metrics(model.apply, ObjectiveConfig())
    keys = multi_seed.seed_keys(seeds, AE_INIT)
    states = multi_seed.init_states(model, input_dim, optax.adam(config.lr), keys)
    indices = jnp.asarray(budget_indices(np.asarray(data.train.labels), None, seeds))
    keys = multi_seed.seed_keys(seeds, AE_EPOCHS)
    states, indices, keys = parallel.split_seeds((states, indices, keys), mesh)
    run = multi_seed.compile_run(
        metrics_fn, states, data.train, keys, indices, config.batch_size, config.pretrain_epochs
    )
    states, _ = run(states, *data.train, keys, indices)
    evaluate = multi_seed.make_evaluator(metrics_fn, len(data.test.labels))
    return states.params[ENCODER], evaluate(states.params, *data.test)["loss"]


def classifier_states(config: LabelBudgetConfig, method: TransferConfig, init_params, encoders):
    """Per-seed classifiers for `method`: transplanted encoders, or scratch; same head init."""
    params = dict(init_params)
    if method.encoder == "pretrained":
        params[ENCODER] = encoders
    # A copy: each run donates its state, and these params start every method's run.
    params = jax.tree.map(jnp.copy, params)
    model = make_classifier(config.model)
    return model, multi_seed.make_states(model.apply, params, make_optimizer(config.lr, method))


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (budget, method) cell's inputs: per-seed training indices and how to fine-tune."""

    budget: int | None
    method: str
    indices: jax.Array  # (seeds, labels)


def finetune_cell(
    config: LabelBudgetConfig, data: DeviceData, start, cell: Cell, evaluate, mesh=None
):
    """Test and last-epoch train accuracy per seed of one cell, all seeds in one program.

    `start` is ``(classifier init params, pretrained encoders)``, both stacked per seed;
    `evaluate` is the (shared, compiled once) per-seed test evaluation; `mesh` splits the seeds.
    """
    method = config.methods()[cell.method]
    model, states = classifier_states(config, method, *start)
    seeds = list(range(config.seeds))
    keys = multi_seed.seed_keys(seeds, CLF_EPOCHS)
    states, keys = parallel.split_seeds((states, keys), mesh)
    batch = min(config.batch_size, cell.indices.shape[1])
    epochs = epochs_for(cell.indices.shape[1], config)
    metrics_fn = classification_metrics(model.apply)
    run = multi_seed.compile_run(metrics_fn, states, data.train, keys, cell.indices, batch, epochs)
    states, per_epoch = run(states, *data.train, keys, cell.indices)
    train_accuracy = np.asarray(per_epoch["accuracy"])[:, -1]
    return evaluate(states.params, *data.test)["accuracy"], train_accuracy


def run_study(
    config: LabelBudgetConfig,
    data: Dataset | None = None,
    progress: bool = True,
    devices: int | None = None,
):
    """Pretrain, then fine-tune every (budget, method) cell; the results as a dict. `devices` > 1
    splits the seeds over that many local devices (each trains its share)."""
    started = time.perf_counter()
    mesh = _study_mesh(devices, config.seeds)
    data = data if data is not None else load_dataset(config.data)
    seeds = list(range(config.seeds))
    device_data = to_device(data, None, parallel.replicated(mesh))
    encoders, test_mse = pretrain_encoders(config, device_data, seeds, mesh)
    pretrain_s = time.perf_counter() - started
    model = make_classifier(config.model)
    evaluate = multi_seed.make_evaluator(classification_metrics(model.apply), len(data.test_labels))
    keys = multi_seed.seed_keys(seeds, CLF_INIT)
    init_params = parallel.split_seeds(multi_seed.init_params(model, data.input_dim, keys), mesh)
    cells = []
    pairs = [(b, m) for b in config.budgets for m in config.methods()]
    for budget, method in tqdm(pairs, desc="label budget", disable=not progress):
        indices = jnp.asarray(budget_indices(data.train_labels, budget, seeds))
        cell_started = time.perf_counter()
        cell = Cell(budget, method, parallel.split_seeds(indices, mesh))
        scores = finetune_cell(config, device_data, (init_params, encoders), cell, evaluate, mesh)
        cells.append(_cell_result(cell, config, *scores))
        cells[-1]["seconds"] = time.perf_counter() - cell_started  # compile + train + test
    return {
        "dataset": data.name,
        "source": data.source,
        "config": _config_dict(config),
        "pretrain_test_mse": test_mse.tolist(),
        "cells": cells,
        "pretrain_s": pretrain_s,
        "wall_s": time.perf_counter() - started,
        "backend": jax.default_backend(),
        "devices": parallel.device_count(mesh),
    }


def _study_mesh(devices: int | None, seeds: int):
    """The mesh the seeds are split over; a multi-process run is refused (one host's devices)."""
    if distributed.is_multiprocess():
        raise UserError(
            "the label-budget study runs in one process; split its seeds over that host's "
            "devices with --devices",
            settings=("coordinator",),
        )
    return parallel.seed_mesh(devices, seeds)


def _cell_result(cell: Cell, config: LabelBudgetConfig, accuracy, train_accuracy) -> dict:
    num_labels = cell.indices.shape[1]
    return {
        "labels": ALL if cell.budget is None else cell.budget,
        "num_labels": int(num_labels),
        "method": cell.method,
        "epochs": epochs_for(num_labels, config),
        "accuracy": [float(a) for a in accuracy],
        "mean": float(np.mean(accuracy)),
        "std": float(np.std(accuracy, ddof=1)) if len(accuracy) > 1 else 0.0,
        "train_accuracy": [float(a) for a in train_accuracy],
    }


def _config_dict(config: LabelBudgetConfig) -> dict:
    raw = dataclasses.asdict(config)
    raw["budgets"] = [ALL if b is None else b for b in config.budgets]
    return raw
