"""Evaluating trained params on a whole split (every example counted once), and reading a stage
folder's newest params back for that."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax import checkpoint
from aejax.config import ObjectiveConfig, PretrainConfig, StageConfig
from aejax.data import load_dataset
from aejax.errors import CheckpointError
from aejax.models import ENCODER, Autoencoder, make_autoencoder, make_classifier
from aejax.objectives import (
    classification_metrics,
    is_variational,
    pretraining_metrics,
    uses_logits,
)
from aejax.train import make_eval_fn


@dataclasses.dataclass(frozen=True)
class SavedStage:
    """A stage folder's config, its model, and the params of its newest checkpoint."""

    config: StageConfig
    model: nn.Module
    params: Any
    epoch: int


def stage_model(config: StageConfig, input_dim: int) -> nn.Module:
    """The model a stage trains: the autoencoder (output layer per objective) or the classifier."""
    if isinstance(config, PretrainConfig):
        objective = config.objective
        return make_autoencoder(
            config.model, input_dim, uses_logits(objective), is_variational(objective)
        )
    return make_classifier(config.model)


def load_stage(stage_dir: str | Path) -> SavedStage:
    """The newest checkpoint of a stage folder, restored without loading its dataset."""
    stage_dir = Path(stage_dir)
    config_path, checkpoints = stage_dir / "config.json", stage_dir / "checkpoints"
    if not config_path.is_file():
        raise CheckpointError(f"{stage_dir} is not a stage folder (no config.json)")
    config = StageConfig.from_json(config_path.read_text())
    epoch = checkpoint.latest_epoch(checkpoints)
    if epoch is None:
        raise CheckpointError(f"no checkpoint in {checkpoints}")
    input_dim = checkpoint.saved_param_shapes(checkpoints, epoch)[ENCODER]["hidden"]["kernel"][0]
    model = stage_model(config, input_dim)
    template = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, input_dim)))
    params = checkpoint.restore_subtree(checkpoints, epoch, {"params": template["params"]})
    return SavedStage(config, model, params["params"], epoch)


def evaluate(
    model, params, images, labels, batch_size: int = 100, objective: ObjectiveConfig | None = None
) -> dict[str, float]:
    """Mean loss over a split: the reconstruction objective (default MSE) for an Autoencoder,
    cross-entropy and accuracy for a Classifier."""
    if isinstance(model, Autoencoder):
        metrics_fn = pretraining_metrics(model, objective or ObjectiveConfig())
    else:
        metrics_fn = classification_metrics(model.apply)
    eval_fn = jax.jit(make_eval_fn(metrics_fn, len(labels), batch_size))
    return {k: float(v) for k, v in jax.device_get(eval_fn(params, images, labels)).items()}


def evaluate_stage(stage_dir: str | Path) -> dict[str, float]:
    """Evaluate the newest checkpoint of a stage folder on its dataset's test split."""
    saved = load_stage(stage_dir)
    config = saved.config
    data = load_dataset(config.data)
    objective = config.objective if isinstance(config, PretrainConfig) else None
    metrics = evaluate(
        saved.model,
        saved.params,
        data.test_images,
        data.test_labels,
        config.train.batch_size,
        objective,
    )
    return {"stage": config.stage, "epoch": saved.epoch, "dataset": data.name, **metrics}
