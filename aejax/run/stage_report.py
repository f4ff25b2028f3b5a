"""What a finished stage reports: its metrics.json summary and the one line per epoch."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from aejax.config import StageConfig
from aejax.data.datasets import Dataset


@dataclasses.dataclass(frozen=True)
class StageTimes:
    """Where this process's time on a stage went (the rest is data placement, restore, outputs),
    and its steady-state epoch time (None when it trained no epoch)."""

    seconds_per_epoch: float | None
    init_s: float
    compile_s: float
    epochs_s: float
    eval_s: float
    checkpoint_s: float
    epochs_run_now: int


def final_metrics(
    config: StageConfig,
    history: list[dict[str, Any]],
    data: Dataset,
    times: StageTimes,
    report: dict[str, Any],
) -> dict[str, Any]:
    """The summary that metrics.json holds; `report`: the stage's own keys (`aejax.model.tasks`)."""
    last, seconds = history[-1], times.seconds_per_epoch
    metrics = {
        "stage": config.stage,
        "dataset": data.name,
        "source": data.source,
        "num_train": len(data.train_labels),
        "num_test": len(data.test_labels),
        "epochs": last["epoch"],
        "batch_size": config.train.batch_size,
        "lr": config.train.lr,
        "seed": config.train.seed,
        "train_loss": last["train_loss"],
        "test_loss": last["test_loss"],
        "seconds_per_epoch": seconds,
        "examples_per_s": len(data.train_labels) / seconds if seconds else None,
        "init_s": times.init_s,
        "compile_s": times.compile_s,
        "epochs_s": times.epochs_s,
        "eval_s": times.eval_s,
        "checkpoint_s": times.checkpoint_s,
        "epochs_run_now": times.epochs_run_now,
        "backend": jax.default_backend(),
    }
    return {**metrics, **report}


def summary_line(config: StageConfig, record, step_losses: np.ndarray) -> str:
    test = "  ".join(f"test_{k} {v:.4f}" for k, v in record.test.items() if k != "count")
    return (
        f"{config.stage} epoch {record.epoch}/{config.train.epochs}  "
        f"train_loss {record.train['loss']:.4f} (last step {float(step_losses[-1]):.4f})  "
        f"{test}  {record.seconds:.2f}s"
    )
