"""Looking inside pretrained autoencoders: a 2-D PCA of test latents, reconstructions side by side.

Everything reads a finished pretrain stage folder (its ``config.json`` and newest checkpoint), so
any variant (MSE/BCE, denoising or not) can be inspected after the fact.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aejax import checkpoint, objectives, plots
from aejax.configs import StageConfig
from aejax.data import Dataset, normalize
from aejax.errors import CheckpointError
from aejax.models import make_autoencoder


def pca_2d(latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection of `latents` on their first two principal components, and the variance share."""
    centred = latents - latents.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    explained = singular**2 / np.sum(singular**2)
    return centred @ components[:2].T, explained[:2]


def load_autoencoder(pretrain_dir: str | Path):
    """``(config, model, params)`` of the newest checkpoint in a pretrain stage folder."""
    folder = Path(pretrain_dir)
    config_path, checkpoints = folder / "config.json", folder / "checkpoints"
    epoch = checkpoint.latest_epoch(checkpoints)
    if not config_path.is_file() or epoch is None:
        raise CheckpointError(f"{folder} is not a finished pretrain stage folder (no checkpoint)")
    config = StageConfig.from_json(config_path.read_text())
    shapes = checkpoint.saved_param_shapes(checkpoints, epoch)
    input_dim = shapes["decoder"]["output"]["kernel"][1]
    model = make_autoencoder(config.model, input_dim, objectives.uses_logits(config.objective))
    template = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, input_dim)))
    params = checkpoint.restore_subtree(checkpoints, epoch, {"params": template["params"]})
    return config, model, params["params"]


def variant_name(config: StageConfig) -> str:
    """A short label such as ``mse`` or ``bce, mask:0.3``."""
    noise = config.objective.noise
    return config.objective.loss + ("" if noise == "none" else f", {noise}")


def save_latents(pretrain_dir: str | Path, data: Dataset, path=None, count: int = 2000) -> Path:
    """A PCA scatter of `count` test latents coloured by label (default: DIR/latents.png)."""
    config, model, params = load_autoencoder(pretrain_dir)
    inputs = normalize(jnp.asarray(data.test_images[:count]))
    latents = np.asarray(model.apply({"params": params}, inputs, method=model.encode))
    points, explained = pca_2d(latents)
    path = Path(path) if path else Path(pretrain_dir) / "latents.png"
    title = (
        f"{data.name} test latents ({variant_name(config)}): PCA, "
        f"{100 * explained.sum():.0f}% of variance"
    )
    plots.save_latent_scatter(points, data.test_labels[:count], path, title)
    return path


def save_variant_grid(pretrain_dirs: list, data: Dataset, path, count: int = 10) -> Path:
    """Test images, then each variant's reconstruction (after its own noise, if it denoises)."""
    clean = normalize(jnp.asarray(data.test_images[:count]))
    rows = {"input": np.asarray(clean)}
    for folder in pretrain_dirs:
        config, model, params = load_autoencoder(folder)
        name = variant_name(config)
        inputs = objectives.corrupt(clean, jax.random.key(0), config.objective.noise)
        if config.objective.noise != "none":
            rows[f"{name}\ninput"] = np.asarray(inputs)
        rows[name] = np.asarray(
            objectives.reconstruct(model.apply, params, inputs, config.objective)
        )
    plots.save_reconstruction_grid(rows, path, f"{data.name}: reconstructions per variant")
    return Path(path)
