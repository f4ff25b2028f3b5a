"""Figures written beside a stage's outputs: loss curves and reconstructions (matplotlib, Agg)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported on first use (it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(width: float, height: float):
    """A matplotlib Figure of that size in inches, drawn by Agg, outside pyplot's global state."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def margins(fig, left: float, right: float, bottom: float, top: float, between: float = 0.0):
    """Fixed margins in inches: a run's figures have known contents, so they need no
    `tight_layout` (a second full draw of the figure, most of its cost)."""
    width, height = fig.get_size_inches()
    columns = len(fig.axes)
    panel = (width - left - right - between * (columns - 1)) / columns
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=between / panel,
    )


# The helper process drawing this process's figures while `aejax.figures.worker.drawing_aside`
# is on; None: figures are drawn here, when asked for. Set only through `drawn_by`.
_aside = None


@contextlib.contextmanager
def drawn_by(worker) -> Iterator[None]:
    """Within the block, figures are handed to `worker` (its ``draw(name, *args)`` and
    ``wait(path)``) instead of being drawn here."""
    global _aside
    _aside = worker
    try:
        yield
    finally:
        _aside = None


def handed_aside() -> bool:
    """Whether figures are handed to a helper process now (inside `drawn_by`)."""
    return _aside is not None


def _draw(draw, *args) -> None:
    if _aside is None:
        draw(*args)
    else:
        _aside.draw(draw.__name__, *args)


def wait_for_figures(path: str | Path | None = None) -> None:
    """Return once the figure `path` (None: every figure asked for so far) is written."""
    if _aside is not None:
        _aside.wait(path)


def save_curves(history: list[dict[str, Any]], path: str | Path, title: str) -> None:
    """Train/test loss per epoch (and accuracy, when present) as a PNG."""
    _draw(draw_curves, history, path, title)


def draw_curves(history: list[dict[str, Any]], path: str | Path, title: str) -> None:
    epochs = [r["epoch"] for r in history]
    panels = [("loss", "loss")] + (
        [("accuracy", "accuracy")] if "test_accuracy" in history[0] else []
    )
    fig = figure(5 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)
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
    margins(fig, left=0.8, right=0.2, bottom=0.55, top=0.5, between=0.9)
    fig.savefig(path, dpi=120)


def save_reconstructions(
    originals: np.ndarray, reconstructions: np.ndarray, path: str | Path, title: str
) -> None:
    """Test images (top row) above their reconstructions (bottom row); inputs in [-1, 1]."""
    save_image_rows({"input": originals, "output": reconstructions}, path, title)


PIXEL_INCHES = 0.04  # an image pixel's size on the page: 28 pixels, about 1.1 inches


def save_image_rows(rows: dict[str, np.ndarray], path: str | Path, title: str) -> None:
    """One row of flattened square images in [-1, 1] per entry, named on the left."""
    _draw(draw_image_rows, {name: np.asarray(row) for name, row in rows.items()}, path, title)


def draw_image_rows(rows: dict[str, np.ndarray], path: str | Path, title: str) -> None:
    images = list(rows.values())
    side = int(round(np.sqrt(images[0].shape[1])))
    tiles = [tile_row(row, side) for row in images]
    width = max(t.shape[1] for t in tiles)
    gap = np.full((2, width), np.nan)  # NaN pixels stay blank
    grid = [np.pad(t, ((0, 0), (0, width - t.shape[1])), constant_values=np.nan) for t in tiles]
    grid = np.concatenate([part for t in grid for part in (t, gap)][:-1])
    # One image, not one axes per digit: drawing 20 axes costs ten times as long. The figure is
    # sized to the image, with room for the row names and the title.
    left, top, edge = 1.2, 0.45, 0.1
    fig = figure(
        grid.shape[1] * PIXEL_INCHES + left + edge, grid.shape[0] * PIXEL_INCHES + top + edge
    )
    ax = fig.subplots()
    margins(fig, left=left, right=edge, bottom=edge, top=top)
    ax.imshow(grid, cmap="gray", vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([side / 2 + r * (side + 2) for r in range(len(rows))], list(rows))
    ax.set_title(title)
    fig.savefig(path, dpi=120)


def tile_row(images: np.ndarray, side: int, gap: int = 2) -> np.ndarray:
    """Flattened square images side by side, `gap` blank (NaN) columns apart."""
    tiles = []
    for image in np.asarray(images, np.float64):
        tiles += [image.reshape(side, side), np.full((side, gap), np.nan)]
    return np.concatenate(tiles[:-1], axis=1)
