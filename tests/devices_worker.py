"""Run by tests/devices_test.py in a subprocess with several (fake) CPU devices: the device count
of a process is fixed when JAX starts, so each multi-device case needs a process of its own.

Usage: python tests/devices_worker.py CASE TMPDIR  -> prints one JSON object on stdout.
"""

import json
import sys
from pathlib import Path

import jax
import numpy as np
import optax

import aejax
from aejax.config import ModelConfig
from aejax.data.datasets import load_dataset, to_device
from aejax.engine import parallel
from aejax.engine.epochs import compile_stage, run_epoch
from aejax.engine.keys import INIT_STREAM, epoch_key, stage_key
from aejax.engine.train import create_state
from aejax.model import objectives
from aejax.model.optim import make_optimizer
from aejax.model.tasks import stage_model
from aejax.research.label_budget import LabelBudgetConfig, run_study
from aejax.run import checkpoint
from aejax.run.saved_stage import load_pretrained_encoder
from support import saved_params, subset_data_config, tiny_config

EPOCHS = 3  # of 10 steps each: early steps only, before Adam amplifies rounding (see README)


def step_losses(stage: str, workdir: Path, devices: int) -> dict:
    """Per-step training losses, final params and whether the epoch program all-reduces."""
    config = tiny_config(stage, workdir, epochs=EPOCHS)
    data = load_dataset(subset_data_config(train_limit=1000, test_limit=200))
    mesh = parallel.data_mesh(devices, config.train.batch_size)
    model = stage_model(config, data.input_dim)
    if stage == "pretrain":
        metrics_fn = objectives.reconstruction_metrics(model.apply, config.objective)
    else:
        metrics_fn = objectives.classification_metrics(model.apply)
    if stage == "finetune":
        tx = make_optimizer(config.train.lr, config.transfer)
    else:
        tx = optax.adam(config.train.lr)
    state = create_state(model, data.input_dim, tx, stage_key(config, INIT_STREAM, mesh), mesh)
    device_data = to_device(data, None, parallel.replicated(mesh))
    first_key = epoch_key(config, 0, mesh)
    compiled = compile_stage(metrics_fn, state, device_data, 100, first_key, mesh)
    losses, tests = [], []
    for epoch in range(EPOCHS):
        key = epoch_key(config, epoch, mesh)
        state, record, losses_now = run_epoch(compiled, state, device_data, key, epoch + 1)
        losses += [float(x) for x in losses_now]
        tests.append(record.test["loss"])
    return {
        "losses": losses,
        "test_losses": tests,
        "params": [np.asarray(x).tolist() for x in jax.tree.leaves(state.params)],
        "all_reduce": "all-reduce" in compiled.epoch.as_text(),
        "devices_holding_params": len(jax.tree.leaves(state.params)[0].devices()),
    }


def bitwise_equal(saved, restored) -> bool:
    """Same leaves, bit for bit (and as many)."""
    pairs = zip(saved, restored, strict=True)
    return all(np.array_equal(a, np.asarray(b)) for a, b in pairs)


def equal(tmp: Path) -> dict:
    """The same training on 1 device and on 4, for both stages."""
    return {
        f"{stage}/{n}": step_losses(stage, tmp / f"{stage}{n}", n)
        for stage in ("pretrain", "finetune")
        for n in (1, 4)
    }


def restored_params(stage_dir: Path, devices: int):
    """The newest checkpoint of `stage_dir` restored onto `devices` devices, and its sharding."""
    config = tiny_config("pretrain", stage_dir.parent)
    data = load_dataset(subset_data_config(train_limit=1000, test_limit=200))
    mesh = parallel.data_mesh(devices, 100)
    model = stage_model(config, data.input_dim)
    state = create_state(model, data.input_dim, optax.adam(1e-3), stage_key(config, 0))
    state = parallel.place(state, mesh)
    ckpts = checkpoint.StageCheckpoints(stage_dir / "checkpoints")
    with ckpts:
        restored, _ = ckpts.restore(ckpts.latest_epoch(), state)
    leaves = jax.tree.leaves(restored.params)
    return leaves, len(leaves[0].devices())


def topologies(tmp: Path) -> dict:
    """Write checkpoints on 4 devices and on 1; resume and restore each on the other count."""
    data = load_dataset(subset_data_config(train_limit=1000, test_limit=200))
    out = {}
    for first, second in ((4, 1), (1, 4)):
        workdir = tmp / f"from{first}"
        aejax.pretrain(
            tiny_config("pretrain", workdir, epochs=1), data, progress=False, devices=first
        )
        saved = jax.tree.leaves(saved_params(workdir / "pretrain"))
        leaves, holders = restored_params(workdir / "pretrain", second)
        out[f"restore {first}->{second}"] = {
            "bitwise": bitwise_equal(saved, leaves),
            "devices_holding": holders,
        }
        resumed = aejax.pretrain(
            tiny_config("pretrain", workdir, epochs=2), data, progress=False, devices=second
        )
        out[f"resume {first}->{second}"] = {
            "epochs_run_now": resumed.metrics["epochs_run_now"],
            "epochs": len(resumed.history),
        }
        # The transplant: the encoder subtree alone, restored onto the other device count.
        saved = jax.tree.leaves(saved_params(workdir / "pretrain")["encoder"])
        leaves = restored_encoder(workdir / "pretrain", second)
        out[f"encoder {first}->{second}"] = {
            "bitwise": bitwise_equal(saved, leaves),
            "devices_holding": len(leaves[0].devices()),
        }
    return out


def restored_encoder(pretrain_dir: Path, devices: int) -> list:
    """The pretrained encoder's leaves as fine-tuning loads them, onto `devices` devices."""
    fine = tiny_config("finetune", pretrain_dir.parent)
    mesh = parallel.data_mesh(devices, 100)
    model = stage_model(fine, 784)
    state = parallel.place(create_state(model, 784, optax.adam(1e-3), stage_key(fine, 0)), mesh)
    return jax.tree.leaves(load_pretrained_encoder(pretrain_dir, state.params))


def study(tmp: Path) -> dict:
    """The label-budget study with its 4 seeds trained on 1 device, and split over 4."""
    config = LabelBudgetConfig(
        budgets=(20,),
        seeds=4,
        model=ModelConfig(hidden=32, latent=16),
        data=subset_data_config(train_limit=500, test_limit=100),
        pretrain_epochs=1,
        epochs=1,
        min_steps=5,
        method_names=("scratch", "pretrained-full"),  # a scratch and a transplanted encoder
    )
    data = load_dataset(config.data)
    results = {n: run_study(config, data, progress=False, devices=n) for n in (1, 4)}
    return {
        str(n): {
            "devices": r["devices"],
            "pretrain_test_mse": r["pretrain_test_loss"]["mse"],
            "accuracy": [c["accuracy"] for c in r["cells"]],
            "train_accuracy": [c["train_accuracy"] for c in r["cells"]],
        }
        for n, r in results.items()
    }


if __name__ == "__main__":
    case, tmp = sys.argv[1], Path(sys.argv[2])
    cases = {"equal": equal, "topologies": topologies, "study": study}
    print(json.dumps(cases[case](tmp)))
