"""Evaluating trained params on a whole split, every example counted once."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

from aejax import checkpoint
from aejax.configs import StageConfig
from aejax.data import load_dataset
from aejax.errors import CheckpointError
from aejax.models import Autoencoder, make_autoencoder, make_classifier
from aejax.objectives import reconstruction_metrics, uses_logits
from aejax.train import classification_metrics, make_eval_fn
from aejax.variants import ObjectiveConfig


def evaluate(
    model, params, images, labels, batch_size: int = 100, objective: ObjectiveConfig | None = None
) -> dict[str, float]:
    """Mean loss over a split: the reconstruction objective (default MSE) for an Autoencoder,
    cross-entropy and accuracy for a Classifier."""
    if isinstance(model, Autoencoder):
        metrics_fn = reconstruction_metrics(model.apply, objective or ObjectiveConfig())
    else:
        metrics_fn = classification_metrics(model.apply)
    eval_fn = jax.jit(make_eval_fn(metrics_fn, len(labels), batch_size))
    return {k: float(v) for k, v in jax.device_get(eval_fn(params, images, labels)).items()}


def evaluate_stage(stage_dir: str | Path) -> dict[str, float]:
    """Evaluate the newest checkpoint of a stage folder on its dataset's test split."""
    stage_dir = Path(stage_dir)
    config_path = stage_dir / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{stage_dir} is not a stage folder (no config.json)")
    config = StageConfig.from_json(config_path.read_text())
    epoch = checkpoint.latest_epoch(stage_dir / "checkpoints")
    if epoch is None:
        raise CheckpointError(f"no checkpoint in {stage_dir / 'checkpoints'}")
    data = load_dataset(config.data)
    if config.stage == "pretrain":
        model = make_autoencoder(config.model, data.input_dim, logits=uses_logits(config.objective))
    else:
        model = make_classifier(config.model)
    like = model.init(jax.random.key(0), jnp.zeros((1, data.input_dim)))["params"]
    params = checkpoint.restore_subtree(stage_dir / "checkpoints", epoch, {"params": like})
    metrics = evaluate(
        model,
        params["params"],
        data.test_images,
        data.test_labels,
        config.train.batch_size,
        config.objective,
    )
    return {"stage": config.stage, "epoch": epoch, "dataset": data.name, **metrics}
