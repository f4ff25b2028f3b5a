"""Early stopping on a held-out validation split: score every epoch, stop when the score stalls,
and restore the best epoch's checkpoint (kept by Orbax's `BestN`) for the final test evaluation.

Everything is derived from the per-epoch history saved in each checkpoint, so a resumed run makes
the same decisions as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import jax

from aejax.contracts import MetricsFn
from aejax.data.datasets import Split
from aejax.engine.epochs import compile_eval
from aejax.run.checkpoint import StageCheckpoints


def score(row: dict[str, Any]) -> float:
    """Higher is better: validation accuracy when there is one, else minus validation loss."""
    return row["val_accuracy"] if "val_accuracy" in row else -row["val_loss"]


def best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The earliest epoch with the best validation score (None before any validated epoch)."""
    rows = [r for r in history if "val_loss" in r]
    if not rows:
        return None
    best = max(score(r) for r in rows)
    return next(r["epoch"] for r in rows if score(r) == best)


def should_stop(history: list[dict[str, Any]], patience: int | None) -> bool:
    """True once the score has not improved for `patience` epochs (never with no patience)."""
    best = best_epoch(history)
    return patience is not None and best is not None and history[-1]["epoch"] - best >= patience


class Validator:
    """The compiled evaluation of one validation split; returns ``val_*`` metrics per call.

    `patience`: epochs without improvement after which training stops (None: never).
    """

    def __init__(
        self,
        metrics_fn: MetricsFn,
        params,
        split: Split,
        batch_size: int,
        patience=None,
        mesh=None,
        recipe: str | None = None,
    ):
        self.split, self.patience = split, patience
        recipe = recipe and f"{recipe}/eval/{batch_size}"
        self._evaluate = compile_eval(metrics_fn, params, split, batch_size, mesh, recipe)

    def __call__(self, params) -> dict[str, float]:
        values = jax.device_get(self._evaluate(params, *self.split))
        return {f"val_{k}": float(v) for k, v in values.items() if k != "count"}


def restore_best(
    ckpt: StageCheckpoints, state, evaluate, test: Split, history: list[dict[str, Any]]
) -> tuple[Any, dict]:
    """The best checkpointed state and that epoch's test, training and validation figures."""
    # Test metrics are recomputed from the restored params; train/val come from that epoch's row
    # of `history`, so no reported figure belongs to another epoch.
    epoch = ckpt.best_epoch()
    state, _ = ckpt.restore(epoch, state)
    scores = jax.device_get(evaluate(state.params, *test))
    row = next(r for r in history if r["epoch"] == epoch)
    trained = {k: v for k, v in row.items() if k.startswith(("train_", "val_"))}
    summary = {f"test_{k}": float(v) for k, v in scores.items() if k != "count"}
    return state, {"best_epoch": epoch, **trained, **summary}
