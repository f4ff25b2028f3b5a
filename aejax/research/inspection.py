"""Looking inside pretrained autoencoders: a 2-D PCA of test latents, reconstructions side by side.

Everything reads a finished pretrain stage folder (its ``config.json`` and newest checkpoint), so
any variant (MSE/BCE, denoising or not) can be inspected after the fact.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aejax.config import PretrainConfig
from aejax.data.datasets import Dataset, normalize
from aejax.errors import CheckpointError
from aejax.model import objectives
from aejax.research import figures
from aejax.run.saved_stage import SavedStage, load_stage


def pca_2d(latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection of `latents` on their first two principal components, and the variance share."""
    centred = latents - latents.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    explained = singular**2 / np.sum(singular**2)
    return centred @ components[:2].T, explained[:2]


def load_autoencoder(pretrain_dir: str | Path) -> SavedStage:
    """The newest checkpoint of a pretrain stage folder (refusing any other stage's folder)."""
    saved = load_stage(pretrain_dir)
    if not isinstance(saved.config, PretrainConfig):
        raise CheckpointError(
            f"{pretrain_dir} is a {saved.config.stage} folder, not a pretrain one"
        )
    return saved


def variant_name(config: PretrainConfig) -> str:
    """A short label such as ``mse`` or ``bce, mask:0.3``."""
    noise = config.objective.noise
    return config.objective.loss + ("" if noise == "none" else f", {noise}")


def save_latents(pretrain_dir: str | Path, data: Dataset, path=None, count: int = 2000) -> Path:
    """A PCA scatter of `count` test latents coloured by label (default: DIR/latents.png)."""
    saved = load_autoencoder(pretrain_dir)
    inputs = normalize(jnp.asarray(data.test_images[:count]))
    model = saved.model
    latents = np.asarray(model.apply({"params": saved.params}, inputs, method=model.encode))
    points, explained = pca_2d(latents)
    path = Path(path) if path else Path(pretrain_dir) / "latents.png"
    title = (
        f"{data.name} test latents ({variant_name(saved.config)}): PCA, "
        f"{100 * explained.sum():.0f}% of variance"
    )
    figures.save_latent_scatter(points, data.test_labels[:count], path, title)
    return path


def save_variant_grid(pretrain_dirs: list, data: Dataset, path, count: int = 10) -> Path:
    """Test images, then each variant's reconstruction (after its own noise, if it denoises)."""
    clean = normalize(jnp.asarray(data.test_images[:count]))
    rows = {"input": np.asarray(clean)}
    for folder in pretrain_dirs:
        saved = load_autoencoder(folder)
        objective, name = saved.config.objective, variant_name(saved.config)
        inputs = objectives.corrupt(clean, jax.random.key(0), objective.noise)
        if objective.noise != "none":
            rows[f"{name}\ninput"] = np.asarray(inputs)
        rows[name] = np.asarray(
            objectives.reconstruct(saved.model.apply, saved.params, inputs, objective)
        )
    figures.save_reconstruction_grid(rows, path, f"{data.name}: reconstructions per variant")
    return Path(path)
