"""Variants through the stages and scripts, and the figures that inspect them."""

import json

import jax
import numpy as np
import pytest

import aejax
from aejax.config import ObjectiveConfig, PretrainConfig, TransferConfig
from aejax.errors import CheckpointError
from aejax.research.inspection import load_autoencoder, pca_2d, save_latents, save_variant_grid
from aejax.stages import finetune, pretrain
from support import SUBSET_DIR, drawn, run_script, run_script_here, tiny_config

SMALL_RUN = [
    "--dataset", "fashion_mnist", "--data-dir", str(SUBSET_DIR), "--hidden", "32", "--latent", "16",
    "--no-progress",
]  # fmt: skip


def test_pca_projects_on_orthogonal_directions_of_falling_variance():
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(500, 6)) * np.array([5.0, 2.0, 1.0, 0.5, 0.1, 0.1])
    points, explained = pca_2d(latents)
    assert points.shape == (500, 2) and explained[0] > explained[1] > 0.05
    np.testing.assert_allclose(points.mean(axis=0), 0.0, atol=1e-9)
    assert abs(np.corrcoef(points.T)[0, 1]) < 1e-6


def test_bce_denoising_pretraining_then_frozen_finetune(tmp_path, small_fashion):
    objective = ObjectiveConfig(loss="bce", noise="mask:0.3")
    pre_config = tiny_config("pretrain", tmp_path / "bce", epochs=1).replace(objective=objective)
    pre = pretrain(pre_config, small_fashion, progress=False)
    assert 0.0 < pre.metrics["test_bce"] < 0.6931  # below the loss of predicting 0.5 everywhere
    fine_config = tiny_config("finetune", tmp_path / "bce", epochs=2, lr=1e-2).replace(
        transfer=TransferConfig(mode="frozen")
    )
    fine = finetune(fine_config, small_fashion, progress=False)
    same = jax.tree.map(np.array_equal, fine.state.params["encoder"], pre.state.params["encoder"])
    assert all(jax.tree.leaves(same))  # the linear probe never touched the encoder
    # ...while the head learns (slowly: a 1-epoch encoder gives small latents).
    assert fine.history[1]["train_loss"] < fine.history[0]["train_loss"]
    assert fine.metrics["test_accuracy"] > 0.2
    pretrain(tiny_config("pretrain", tmp_path / "mse", epochs=1), small_fashion, progress=False)
    folders = [tmp_path / "mse" / "pretrain", tmp_path / "bce" / "pretrain"]
    saved = load_autoencoder(folders[1])
    assert isinstance(saved.config, PretrainConfig) and saved.config.objective == objective
    assert saved.epoch == 1 and saved.model.logits  # BCE: the decoder outputs logits
    same = jax.tree.map(np.array_equal, saved.params, pre.state.params)
    assert all(jax.tree.leaves(same))
    with pytest.raises(CheckpointError, match="is a finetune folder, not a pretrain one"):
        load_autoencoder(tmp_path / "bce" / "finetune")
    assert drawn(save_latents(folders[0], small_fashion, count=500))
    grid = save_variant_grid(folders, small_fashion, tmp_path / "grid.png", count=4)
    assert drawn(grid)


def test_inspect_script_uses_the_dataset_of_the_first_folder(tmp_path, small_fashion, monkeypatch):
    pretrain(tiny_config("pretrain", tmp_path, epochs=1), small_fashion, progress=False)
    folder = tmp_path / "pretrain"
    asked = []

    def load_dataset(config):
        asked.append(config)
        return small_fashion

    monkeypatch.setattr(aejax, "load_dataset", load_dataset)  # as the command looks it up
    grid = tmp_path / "grid.png"
    shown = run_script_here("inspect_pretrained", str(folder), "--grid", str(grid))
    assert shown.returncode == 0, shown.stderr
    assert [config.dataset for config in asked] == ["fashion_mnist"]  # the default is mnist
    assert json.loads(shown.stdout)["written"] == [str(folder / "latents.png"), str(grid)]
    assert drawn(folder / "latents.png") and drawn(grid)


def test_variant_flags_reach_the_saved_configs(tmp_path):
    pre = run_script(
        "pretrain", *SMALL_RUN, "--epochs", "1", "--workdir", str(tmp_path),
        "--loss", "bce", "--noise", "gaussian:0.4",
    )  # fmt: skip
    assert pre.returncode == 0, pre.stderr
    fine = run_script(
        "finetune", *SMALL_RUN, "--epochs", "2", "--workdir", str(tmp_path),
        "--mode", "discriminative", "--encoder-lr-scale", "0.2", "--val-split", "300",
        "--patience", "1",
    )  # fmt: skip
    assert fine.returncode == 0, fine.stderr
    saved = json.loads((tmp_path / "finetune" / "config.json").read_text())
    assert saved["transfer"] == {
        "mode": "discriminative",
        "encoder": "pretrained",
        "encoder_lr_scale": 0.2,
    }
    assert saved["early_stopping"] == {"val_split": 300, "patience": 1}
    objective = json.loads((tmp_path / "pretrain" / "config.json").read_text())["objective"]
    assert objective == {"loss": "bce", "noise": "gaussian:0.4", "beta": 1.0}
    metrics = json.loads(fine.stdout)
    assert metrics["best_epoch"] in (1, 2) and metrics["num_val"] == 300
    rows = (tmp_path / "finetune" / "metrics.jsonl").read_text().splitlines()
    best = json.loads(rows[metrics["best_epoch"] - 1])  # what is reported is the best epoch's
    assert all(metrics[k] == best[k] for k in ("test_accuracy", "val_accuracy", "train_loss"))
    bad = run_script("pretrain", *SMALL_RUN, "--workdir", str(tmp_path / "x"), "--noise", "salt")
    assert bad.returncode == 2 and "noise must be" in bad.stderr and "Traceback" not in bad.stderr
