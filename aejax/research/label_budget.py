"""The label-budget study: does autoencoder pretraining, or generating data with it, help when
labels are scarce?

For each seed one autoencoder per pretraining objective the chosen methods need (MSE, denoising,
BCE, VAE) is pretrained on all training images (labels unused). For each label budget each seed
draws its own class-balanced subset, and every method (`aejax.research.methods`) trains a
classifier on it: from scratch or from a pretrained encoder (fully, discriminatively, frozen),
optionally with generated (latent mixing, latent noise) or shifted examples added to every step.
All seeds of one (budget, method) cell train together in one vmapped, compiled program
(`aejax.research.multi_seed`); generation happens inside it, from the seed's frozen MSE
autoencoder and that seed's labelled subset alone.

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

from aejax.config import DataConfig, ModelConfig
from aejax.data.datasets import Dataset, DeviceData, load_dataset, to_device
from aejax.data.splits import balanced_indices
from aejax.engine import distributed, parallel
from aejax.errors import UserError
from aejax.model import objectives
from aejax.model.models import ENCODER, make_classifier
from aejax.model.objectives import classification_metrics
from aejax.model.optim import make_optimizer
from aejax.research import multi_seed
from aejax.research.methods import (
    GENERATOR,
    PRETRAININGS,
    Method,
    all_methods,
    autoencoder,
    cell_augmentation,
    generated_examples,
    parse_methods,
)

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
    method_names: tuple[str, ...] | None = None  # None: every method
    generated_per_real: int = 1  # R of the latent augmentations
    shift_pixels: int = 2  # P of the shift augmentation

    def __post_init__(self):
        if self.method_names is not None:
            parse_methods(",".join(self.method_names))
        names = ("seeds", "pretrain_epochs", "epochs", "min_steps", "batch_size")
        for name in (*names, "generated_per_real", "shift_pixels"):
            if getattr(self, name) <= 0:
                raise UserError(
                    f"{name} must be positive, got {getattr(self, name)}", settings=(name,)
                )
        if not self.budgets or any(b is not None and b <= 0 for b in self.budgets):
            raise UserError(
                "label budgets must be positive integers or 'all'", settings=("budgets",)
            )

    def methods(self) -> dict[str, Method]:
        """The compared classifiers, by name: the chosen ones, or all of them."""
        every = all_methods(self.encoder_lr_scale, self.generated_per_real, self.shift_pixels)
        names = self.method_names or tuple(every)
        return {name: every[name] for name in names}


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


def pretrain_autoencoders(
    config: LabelBudgetConfig, data: DeviceData, seeds: list[int], objective: str, mesh=None
):
    """One autoencoder per seed, pretrained with `objective` (`PRETRAININGS`) on every training
    image; their params (stacked per seed) and test losses. With a device `mesh`, the seeds are
    split over its devices (`parallel.seed_mesh`)."""
    input_dim = data.train.images.shape[1]
    goal = PRETRAININGS[objective]
    model = autoencoder(config, input_dim, objective)
    metrics_fn = objectives.pretraining_metrics(model, goal)
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
    return states.params, evaluate(states.params, *data.test)["loss"]


def classifier_states(config: LabelBudgetConfig, method: Method, init_params, autoencoders):
    """Per-seed classifiers for `method`: a transplanted encoder, or scratch; same head init."""
    params = dict(init_params)
    if method.pretraining is not None:
        params[ENCODER] = autoencoders[method.pretraining][ENCODER]
    # A copy: each run donates its state, and these params start every method's run.
    params = jax.tree.map(jnp.copy, params)
    model = make_classifier(config.model)
    optimizer = make_optimizer(config.lr, method.transfer)
    return model, multi_seed.make_states(model.apply, params, optimizer)


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

    `start` is ``(classifier init params, {objective: pretrained autoencoders})``, stacked per seed;
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
    augmentation = cell_augmentation(config, method, data, cell, start)
    run = multi_seed.compile_run(
        metrics_fn, states, data.train, keys, cell.indices, batch, epochs, augmentation
    )
    states, per_epoch = run(states, *data.train, keys, cell.indices)
    train_accuracy = np.asarray(per_epoch["accuracy"])[:, -1]
    return evaluate(states.params, *data.test)["accuracy"], train_accuracy


def run_study(
    config: LabelBudgetConfig,
    data: Dataset | None = None,
    progress: bool = True,
    devices: int | None = None,
):
    """Pretrain, then fine-tune every (budget, method) cell; the results (`devices` > 1: the
    seeds split over that many local devices, each training its share)."""
    started = time.perf_counter()
    mesh = _study_mesh(devices, config.seeds)
    data = data if data is not None else load_dataset(config.data)
    seeds = list(range(config.seeds))
    device_data = to_device(data, None, parallel.replicated(mesh))
    autoencoders, test_losses = pretrain_needed(config, device_data, seeds, mesh)
    pretrain_s = time.perf_counter() - started
    model = make_classifier(config.model)
    evaluate = multi_seed.make_evaluator(classification_metrics(model.apply), len(data.test_labels))
    keys = multi_seed.seed_keys(seeds, CLF_INIT)
    init_params = parallel.split_seeds(multi_seed.init_params(model, data.input_dim, keys), mesh)
    start = (init_params, autoencoders)
    cells = _train_cells(config, data, device_data, start, evaluate, mesh, progress)
    result = {
        "dataset": data.name,
        "source": data.source,
        "config": _config_dict(config),
        "pretrain_test_loss": {k: v.tolist() for k, v in test_losses.items()},
        "cells": cells,
        **{"pretrain_s": pretrain_s, "wall_s": time.perf_counter() - started},
        **{"backend": jax.default_backend(), "devices": parallel.device_count(mesh)},
    }
    if GENERATOR in autoencoders:  # for the figure; write_outputs keeps it out of the JSON
        result["examples"] = generated_examples(config, data, autoencoders[GENERATOR])
    return result


def _train_cells(config, data: Dataset, device_data, start, evaluate, mesh, progress: bool):
    """Every (budget, method) cell's results, in order, each with its seconds."""
    seeds = list(range(config.seeds))
    cells, pairs = [], [(b, m) for b in config.budgets for m in config.methods()]
    for budget, method in tqdm(pairs, desc="label budget", disable=not progress):
        indices = jnp.asarray(budget_indices(data.train_labels, budget, seeds))
        cell_started = time.perf_counter()
        cell = Cell(budget, method, parallel.split_seeds(indices, mesh))
        scores = finetune_cell(config, device_data, start, cell, evaluate, mesh)
        cells.append(_cell_result(cell, config, *scores))
        cells[-1]["seconds"] = time.perf_counter() - cell_started  # compile + train + test
    return cells


def pretrain_needed(config: LabelBudgetConfig, data: DeviceData, seeds: list[int], mesh=None):
    """``({objective: per-seed autoencoders}, {objective: test losses})`` for every pretraining
    objective that one of the chosen methods needs, and no other."""
    needed = set().union(*(m.autoencoders for m in config.methods().values()))
    autoencoders, test_losses = {}, {}
    for objective in (o for o in PRETRAININGS if o in needed):
        autoencoders[objective], test_losses[objective] = pretrain_autoencoders(
            config, data, seeds, objective, mesh
        )
    return autoencoders, test_losses


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
    raw["method_names"] = list(config.methods())
    raw["budgets"] = [ALL if b is None else b for b in config.budgets]
    return raw
