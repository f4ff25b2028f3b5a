"""Early stopping: stop when validation stalls, restore the best epoch, resume consistently."""

import json

import jax
import numpy as np

from aejax.config import EarlyStoppingConfig
from aejax.run import checkpoint
from aejax.run.early_stopping import best_epoch, should_stop
from aejax.stages import finetune, pretrain
from support import tiny_config


def _rows(*accuracies):
    return [{"epoch": i + 1, "val_loss": 1.0, "val_accuracy": a} for i, a in enumerate(accuracies)]


def test_best_is_the_earliest_top_score_and_patience_counts_from_it():
    history = _rows(0.5, 0.7, 0.7, 0.6)
    assert best_epoch(history) == 2
    assert not should_stop(history, patience=3)
    assert should_stop(history, patience=2)
    assert not should_stop(history, patience=None)
    assert best_epoch([{"epoch": 1, "train_loss": 1.0}]) is None
    # Without an accuracy (an autoencoder), the best epoch is the one of least validation loss.
    losses = [{"epoch": i + 1, "val_loss": v} for i, v in enumerate((0.5, 0.3, 0.4, 0.35))]
    assert best_epoch(losses) == 2 and should_stop(losses, patience=2)


def test_finetune_stops_early_and_restores_the_best_epoch(tmp_path, small_fashion):
    pretrain(tiny_config("pretrain", tmp_path, epochs=1), small_fashion, progress=False)
    # A large lr makes validation accuracy wobble, so patience 1 stops after a worse epoch. One
    # checkpoint kept: the best epoch, one before the last, survives only as the tracked best.
    config = tiny_config("finetune", tmp_path, epochs=20, lr=0.03, keep_checkpoints=1).replace(
        early_stopping=EarlyStoppingConfig(val_split=500, patience=1)
    )
    result = finetune(config, small_fashion, progress=False)
    history, best = result.history, result.metrics["best_epoch"]
    assert len(history) < 20 and best == len(history) - 1  # stopped one epoch after the best
    assert best == best_epoch(history)
    assert history[-1]["val_accuracy"] <= history[best - 1]["val_accuracy"]
    # The final test numbers are those of the restored best epoch, not of the last one.
    assert result.metrics["test_accuracy"] == history[best - 1]["test_accuracy"]
    # ...and so are its training and validation figures: nothing reported is from another epoch.
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert result.metrics[key] == history[best - 1][key], key
    assert result.metrics["train_loss"] != history[-1]["train_loss"]
    assert result.metrics["num_train"] == 1500 and result.metrics["num_val"] == 500
    saved = json.loads((tmp_path / "finetune" / "metrics.json").read_text())
    assert saved["best_epoch"] == best
    kept = {int(p.name) for p in (tmp_path / "finetune" / "checkpoints").iterdir()}
    assert kept == {best, len(history)}
    with checkpoint.StageCheckpoints(tmp_path / "finetune" / "checkpoints", track_best=True) as ck:
        restored, _ = ck.restore(best, result.state)
    same = jax.tree.map(np.array_equal, restored.params, result.state.params)
    assert all(jax.tree.leaves(same))
    # Running the same command again trains nothing more and reports the same best epoch.
    again = finetune(config, small_fashion, progress=False)
    assert again.metrics["epochs_run_now"] == 0 and again.metrics["best_epoch"] == best
