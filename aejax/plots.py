"""Figures written beside a stage's outputs: loss curves and reconstructions (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported on first use (it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_curves(history: list[dict[str, Any]], path: str | Path, title: str) -> None:
    """Train/test loss per epoch (and accuracy, when present) as a PNG."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    panels = [("loss", "loss")] + (
        [("accuracy", "accuracy")] if "test_accuracy" in history[0] else []
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (metric, label) in zip(axes[0], panels, strict=True):
        for split in ("train", "test"):
            key = f"{split}_{metric}"
            if key in history[0]:
                ax.plot(epochs, [r[key] for r in history], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_reconstructions(
    originals: np.ndarray, reconstructions: np.ndarray, path: str | Path, title: str
) -> None:
    """Test images (top row) above their reconstructions (bottom row); inputs in [-1, 1]."""
    plt = pyplot()
    count = len(originals)
    side = int(round(np.sqrt(originals.shape[1])))
    fig, axes = plt.subplots(2, count, figsize=(1.2 * count, 2.8), squeeze=False)
    for column in range(count):
        for row, images in enumerate((originals, reconstructions)):
            ax = axes[row][column]
            ax.imshow(np.asarray(images[column]).reshape(side, side), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_ylabel("input")
    axes[1][0].set_ylabel("output")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
