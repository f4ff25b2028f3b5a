"""What each kind of stage trains and reports, declared once: its model, its metrics function, its
own keys in ``metrics.json`` and the figure files it writes besides its curves.

A stage that trains, a saved stage read back and a stage evaluated later all look their kind up
here (`task_of`, by the config's ``stage``), so none of them branches on the kind of config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn

from aejax.config import FinetuneConfig, PretrainConfig, StageConfig
from aejax.contracts import MetricsFn
from aejax.model.models import make_autoencoder, make_classifier
from aejax.model.objectives import (
    classification_metrics,
    is_variational,
    pretraining_metrics,
    uses_logits,
)


@dataclasses.dataclass(frozen=True)
class Task:
    """A kind of stage. `model(config, input_dim)` builds what it trains, `metrics(config,
    model)` what it optimises, `report(config, last_row)` its own summary keys from the last
    epoch's metrics row; `figure_files` are the figures it draws into its folder (removed with
    the rest of a run it overwrites) and `board_image` the one TensorBoard shows."""

    model: Callable[[Any, int], nn.Module]
    metrics: Callable[[Any, nn.Module], MetricsFn]
    report: Callable[[Any, dict[str, Any]], dict[str, Any]]
    figure_files: tuple[str, ...] = ()
    board_image: str | None = None


def _autoencoder(config: PretrainConfig, input_dim: int) -> nn.Module:
    """The autoencoder (output layer per objective, a VAE for ``vae``)."""
    objective = config.objective
    logits, variational = uses_logits(objective), is_variational(objective)
    return make_autoencoder(config.model, input_dim, logits, variational)


def _reconstruction_report(config: PretrainConfig, last: dict[str, Any]) -> dict[str, Any]:
    """Named after the objective: test_mse or test_bce; a VAE's ELBO parts for ``vae``."""
    if config.objective.loss == "vae":
        return {f"test_{k}": last[f"test_{k}"] for k in ("reconstruction", "kl")}
    return {f"test_{config.objective.loss}": last["test_loss"]}


PRETRAINING = Task(
    model=_autoencoder,
    metrics=lambda config, model: pretraining_metrics(model, config.objective),
    report=_reconstruction_report,
    figure_files=("reconstructions.png", "samples.png", "interpolation.png"),
    board_image="reconstructions.png",
)
FINETUNING = Task(
    model=lambda config, input_dim: make_classifier(config.model),
    metrics=lambda config, model: classification_metrics(model.apply),
    report=lambda config, last: {"test_accuracy": last["test_accuracy"]},
)
TASKS = {PretrainConfig.stage: PRETRAINING, FinetuneConfig.stage: FINETUNING}


def task_of(config: StageConfig) -> Task:
    """The kind of stage `config` describes."""
    return TASKS[config.stage]


def stage_model(config: StageConfig, input_dim: int) -> nn.Module:
    """The model a stage of `config` trains, for inputs of `input_dim` features."""
    return task_of(config).model(config, input_dim)
