"""What a finished stage reports: its metrics.json summary and the one line per epoch."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from aejax.config import PretrainConfig, StageConfig
from aejax.data import Dataset


def final_metrics(run, data: Dataset, start) -> dict[str, Any]:
    """The summary of `run` (an `aejax.stage_loop.StageRun`) that metrics.json holds."""
    config, last = run.config, run.history[-1]
    seconds = run.seconds_per_epoch()
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
        # Where this process's time went (the rest is data placement, restore, outputs).
        "init_s": start.init_s,
        "compile_s": run.compiled.compile_s,
        "epochs_s": run.total("seconds"),
        "eval_s": run.total("eval_s"),
        "checkpoint_s": sum(run.checkpoint_seconds),
        "epochs_run_now": len(run.history) - run.resumed,
        "backend": jax.default_backend(),
    }
    if isinstance(config, PretrainConfig):  # named after the objective: test_mse or test_bce
        if config.objective.loss == "vae":  # the ELBO's parts: test_reconstruction, test_kl
            metrics.update({f"test_{k}": last[f"test_{k}"] for k in ("reconstruction", "kl")})
        else:
            metrics[f"test_{config.objective.loss}"] = last["test_loss"]
    else:
        metrics["test_accuracy"] = last["test_accuracy"]
    return metrics


def summary_line(config: StageConfig, record, step_losses: np.ndarray) -> str:
    test = "  ".join(f"test_{k} {v:.4f}" for k, v in record.test.items() if k != "count")
    return (
        f"{config.stage} epoch {record.epoch}/{config.train.epochs}  "
        f"train_loss {record.train['loss']:.4f} (last step {float(step_losses[-1]):.4f})  "
        f"{test}  {record.seconds:.2f}s"
    )
