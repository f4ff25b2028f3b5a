"""Data parallelism over a device mesh (`--devices`), on 4 fake CPU devices in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from support import REPO, run_script_here, snapshot, subset_data_config, tiny_config

FAKE_DEVICES = 4


def run_worker(case: str, tmp_path) -> dict:
    """tests/devices_worker.py CASE in a process with 4 CPU devices; its JSON result."""
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_NUM_CPU_DEVICES": str(FAKE_DEVICES),
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)]),
        # The workers compile the same tiny programs: JAX's persistent cache, in the suite's
        # private cache folder (conftest), compiles each once.
        "JAX_COMPILATION_CACHE_DIR": str(Path(os.environ["XDG_CACHE_HOME"]) / "devices-workers"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "devices_worker.py"), case, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def same_training(tmp_path_factory) -> dict:
    return run_worker("equal", tmp_path_factory.mktemp("devices-equal"))


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_four_devices_train_as_one(same_training, stage):
    one, four = same_training[f"{stage}/1"], same_training[f"{stage}/4"]
    assert len(one["losses"]) == 30  # 3 epochs of 10 steps: early steps, compared one by one
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
    np.testing.assert_allclose(four["test_losses"], one["test_losses"], rtol=1e-5)
    for a, b in zip(one["params"], four["params"], strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-5)
    # The losses did move: a run that trained nothing would also "match".
    assert one["losses"][-1] < 0.9 * one["losses"][0]


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_the_batch_is_split_and_gradients_all_reduced(same_training, stage):
    one, four = same_training[f"{stage}/1"], same_training[f"{stage}/4"]
    assert four["all_reduce"] and four["devices_holding_params"] == FAKE_DEVICES
    assert not one["all_reduce"] and one["devices_holding_params"] == 1


def test_checkpoints_move_between_device_counts(tmp_path):
    result = run_worker("topologies", tmp_path)
    for first, second in ((4, 1), (1, 4)):
        for what in ("restore", "encoder"):
            moved = result[f"{what} {first}->{second}"]
            assert moved == {"bitwise": True, "devices_holding": second}, (what, first, second)
        # The device count is not part of a run's identity: the other count resumes the run.
        assert result[f"resume {first}->{second}"] == {"epochs_run_now": 1, "epochs": 2}


def test_the_study_splits_its_seeds_over_devices(tmp_path):
    result = run_worker("study", tmp_path)
    one, four = result["1"], result["4"]
    assert (one["devices"], four["devices"]) == (1, 4)
    np.testing.assert_allclose(four["pretrain_test_mse"], one["pretrain_test_mse"], rtol=1e-5)
    for key in ("accuracy", "train_accuracy"):
        np.testing.assert_allclose(four[key], one[key], rtol=0, atol=1e-5)
    assert len(one["accuracy"]) == 2 and all(len(seeds) == 4 for seeds in one["accuracy"])


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--devices", "3"], "batch size 100 does not split evenly over 3 devices"),
        (["--devices", "0"], "devices must be at least 1"),
        (["--devices", "2"], "2 devices asked for but 1 cpu device(s) present"),
    ],
)
def test_bad_device_counts_exit_2_and_keep_the_earlier_run(tmp_path, flags, says):
    config = tiny_config("pretrain", tmp_path)
    stage_dir = config.stage_dir
    stage_dir.mkdir(parents=True)
    (stage_dir / "metrics.json").write_text("{}")
    before = snapshot(tmp_path)
    data = subset_data_config()
    done = run_script_here(
        "pretrain",
        *("--workdir", str(tmp_path), "--dataset", data.dataset, "--source", "idx"),
        *("--data-dir", data.data_dir, "--overwrite", "--no-progress", *flags),
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "--devices" in lines[0]
    assert snapshot(tmp_path) == before


def test_the_study_refuses_seeds_that_do_not_split_over_the_devices(tmp_path):
    done = run_script_here(
        "label_budget", "--seeds", "5", "--devices", "2", "--out", str(tmp_path / "out")
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "seed count 5 does not split evenly over 2 devices" in lines[0]
    assert not (tmp_path / "out").exists()
