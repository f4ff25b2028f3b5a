"""Figures of the research toolkit: accuracy vs labels, latent scatter, reconstruction grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aejax.figures import plots
from aejax.figures.plots import pyplot

STYLES = ("-", "--", ":")  # past ten methods the colours repeat; the line style does not


def save_label_budget(cells: list[dict[str, Any]], path: str | Path, title: str) -> None:
    """Test accuracy (mean and std over seeds) against the number of labels, log x-axis; with
    more than four methods, a second panel shows each method's gain over ``scratch``."""
    plt = pyplot()
    methods = list(dict.fromkeys(c["method"] for c in cells))
    gains = len(methods) > 4 and "scratch" in methods
    fig, axes = plt.subplots(1, 2 if gains else 1, figsize=(13 if gains else 6.4, 4.8))
    axes = list(np.atleast_1d(axes))
    scratch = {c["num_labels"]: c["mean"] for c in cells if c["method"] == "scratch"}
    for i, method in enumerate(methods):
        rows = sorted((c for c in cells if c["method"] == method), key=lambda c: c["num_labels"])
        x = [r["num_labels"] for r in rows]
        style = {"marker": "o", "capsize": 3, "label": method, "linestyle": STYLES[i // 10]}
        axes[0].errorbar(x, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], **style)
        if gains:
            gain = [100 * (r["mean"] - scratch[r["num_labels"]]) for r in rows]
            axes[1].errorbar(x, gain, yerr=[100 * r["std"] for r in rows], **style)
    axes[0].set_ylabel("test accuracy")
    if gains:
        axes[1].set_ylabel("accuracy - scratch's (points); bars: the method's seed std")
        axes[1].axhline(0.0, color="black", linewidth=0.8)
        axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        axes[0].legend()
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("labelled training examples")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_latent_scatter(points: np.ndarray, labels: np.ndarray, path: str | Path, title: str):
    """2-D points (e.g. PCA of latents) coloured by class label."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5.4))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7)
    ax.legend(*scatter.legend_elements(), title="label", fontsize=7, loc="best", markerscale=0.8)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_reconstruction_grid(rows: dict[str, np.ndarray], path: str | Path, title: str) -> None:
    """One row of images per entry of `rows` (name -> images in [-1, 1]), names on the left."""
    plots.save_image_rows(rows, path, title)
