"""Kill -9 at random moments, Ctrl-C, and determinism: a resumed run is bit-identical.

CI runs a few kill trials; a longer campaign:
    AEJAX_KILL_TRIALS=10 .venv/bin/python -m pytest tests/resilience_test.py
"""

import json
import os
import random
import signal
import time

import numpy as np
import pytest

from aejax import checkpoint
from support import SUBSET_DIR, run_script, run_script_async, saved_params

# Twelve short epochs on the 2000-image subset: training and checkpointing fill a few seconds of
# the run, so random kills land in start-up, in training, mid-save and after the last epoch.
EPOCHS = 12
ARGS = [
    "--dataset", "fashion_mnist", "--data-dir", str(SUBSET_DIR), "--hidden", "64",
    "--latent", "16", "--epochs", str(EPOCHS), "--no-progress",
]  # fmt: skip
TIMING_KEYS = {"seconds_per_epoch", "compile_s", "wall_s", "examples_per_s", "epochs_run_now"}
KILL_TRIALS = int(os.environ.get("AEJAX_KILL_TRIALS", "2"))


def _metrics(stage_dir):
    metrics = json.loads((stage_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def _history(stage_dir):
    rows = [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _assert_same_params(a, b):
    flat_a, flat_b = _flatten(a), _flatten(b)
    assert flat_a.keys() == flat_b.keys()
    for name in flat_a:
        np.testing.assert_array_equal(flat_a[name], flat_b[name], err_msg=name)


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key in tree for k, v in _flatten(tree[key], f"{prefix}/{key}").items()}
    return {prefix: np.asarray(tree)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and when its first checkpoint appeared and the run ended."""
    work = tmp_path_factory.mktemp("reference")
    started = time.monotonic()
    process = run_script_async("pretrain", *ARGS, "--workdir", str(work))
    first_checkpoint = None
    while process.poll() is None:
        if first_checkpoint is None and (work / "pretrain" / "checkpoints" / "1").exists():
            first_checkpoint = time.monotonic() - started
        time.sleep(0.02)
    assert process.returncode == 0, process.stderr.read()
    return work / "pretrain", first_checkpoint, time.monotonic() - started


def test_same_seed_same_result(reference, tmp_path):
    stage_dir = reference[0]
    again = run_script("pretrain", *ARGS, "--workdir", str(tmp_path))
    assert again.returncode == 0, again.stderr
    _assert_same_params(saved_params(stage_dir), saved_params(tmp_path / "pretrain"))
    assert _metrics(stage_dir) == _metrics(tmp_path / "pretrain")


@pytest.mark.parametrize("trial", range(KILL_TRIALS))
def test_kill_9_anywhere_then_rerun_is_bit_identical(reference, tmp_path, trial):
    stage_dir, first_checkpoint, total = reference
    # From well before the first checkpoint (start-up, compilation) to the end of training.
    delay = random.Random(trial).uniform(0.5 * first_checkpoint, total)
    process = run_script_async("pretrain", *ARGS, "--workdir", str(tmp_path))
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoints_dir = tmp_path / "pretrain" / "checkpoints"
    if checkpoints_dir.exists():  # a step folder appears only once both items are written
        for step in checkpoints_dir.iterdir():
            if step.name.isdigit():
                assert (step / "state").is_dir() and (step / "meta").is_dir()
    resumed = run_script("pretrain", *ARGS, "--workdir", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert not [p for p in checkpoints_dir.iterdir() if "tmp" in p.name]  # leftovers removed
    _assert_same_params(saved_params(stage_dir), saved_params(tmp_path / "pretrain"))
    assert _history(stage_dir) == _history(tmp_path / "pretrain")
    assert _metrics(stage_dir) == _metrics(tmp_path / "pretrain")


def test_ctrl_c_checkpoints_then_resumes_identically(reference, tmp_path):
    process = run_script_async("pretrain", *ARGS, "--workdir", str(tmp_path))
    checkpoints_dir = tmp_path / "pretrain" / "checkpoints"
    while not (checkpoints_dir / "1").exists() and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
    done = checkpoint.latest_epoch(checkpoints_dir)
    assert 1 <= done < EPOCHS
    assert len((tmp_path / "pretrain" / "metrics.jsonl").read_text().splitlines()) == done
    resumed = run_script("pretrain", *ARGS, "--workdir", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_params(saved_params(reference[0]), saved_params(tmp_path / "pretrain"))
