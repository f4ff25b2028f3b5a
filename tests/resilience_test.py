"""Kill -9 at random moments, Ctrl-C, and determinism: a resumed run is bit-identical, for a
stage script and for the one-process pipeline (which must resume the right stage).

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

from aejax.run import checkpoint
from support import SUBSET_DIR, run_script, run_script_async, saved_params

# Twelve short epochs on the 2000-image subset: training and checkpointing fill a few seconds of
# the run, so random kills land in start-up, in training, mid-save and after the last epoch.
EPOCHS = 12
ARGS = [
    "--dataset", "fashion_mnist", "--data-dir", str(SUBSET_DIR), "--hidden", "64",
    "--latent", "16", "--epochs", str(EPOCHS), "--no-progress",
]  # fmt: skip
# Times, and what they depend on, differ from run to run; every other figure must not.
TIMING_KEYS = {"seconds_per_epoch", "examples_per_s", "epochs_run_now"}
KILL_TRIALS = int(os.environ.get("AEJAX_KILL_TRIALS", "2"))
STAGES = {"pretrain": ("pretrain",), "pipeline": ("pretrain", "finetune")}  # what each writes


def _run_args(work) -> list[str]:
    # Each test its own compile cache, so a kill mid-write stays inside that test.
    return [*ARGS, "--workdir", str(work), "--compile-cache", str(work / "cache")]


def _assert_same_run(expected_dir, actual_dir, script):
    for stage in STAGES[script]:
        expected, actual = expected_dir / stage, actual_dir / stage
        _assert_same_params(saved_params(expected), saved_params(actual))
        assert _history(expected) == _history(actual)
        assert _metrics(expected) == _metrics(actual)


def _metrics(stage_dir):
    metrics = json.loads((stage_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS and not k.endswith("_s")}


def _history(stage_dir):
    rows = [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in row.items() if k != "seconds" and not k.endswith("_s")} for row in rows
    ]


def _assert_same_params(a, b):
    flat_a, flat_b = _flatten(a), _flatten(b)
    assert flat_a.keys() == flat_b.keys()
    for name in flat_a:
        np.testing.assert_array_equal(flat_a[name], flat_b[name], err_msg=name)


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key in tree for k, v in _flatten(tree[key], f"{prefix}/{key}").items()}
    return {prefix: np.asarray(tree)}


@pytest.fixture(scope="module", params=sorted(STAGES))
def reference(request, tmp_path_factory):
    """An uninterrupted run, and when its first checkpoint appeared and the run ended."""
    script, work = request.param, tmp_path_factory.mktemp("reference")
    started = time.monotonic()
    process = run_script_async(script, *_run_args(work))
    first_checkpoint = None
    while process.poll() is None:
        if first_checkpoint is None and (work / "pretrain" / "checkpoints" / "1").exists():
            first_checkpoint = time.monotonic() - started
        time.sleep(0.02)
    assert process.returncode == 0, process.stderr.read()
    return script, work, first_checkpoint, time.monotonic() - started


def test_same_seed_same_result(reference, tmp_path):
    script, work = reference[:2]
    again = run_script(script, *_run_args(tmp_path))
    assert again.returncode == 0, again.stderr
    _assert_same_run(work, tmp_path, script)


@pytest.mark.parametrize("trial", range(KILL_TRIALS))
def test_kill_9_anywhere_then_rerun_is_bit_identical(reference, tmp_path, trial):
    script, work, first_checkpoint, total = reference
    # From well before the first checkpoint (start-up, compilation) to the end of training.
    delay = random.Random(trial).uniform(0.5 * first_checkpoint, total)
    process = run_script_async(script, *_run_args(tmp_path))
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for stage in STAGES[script]:
        # A step folder appears only once both items are written; one missing an item is an old
        # checkpoint whose deletion (Orbax's max_to_keep) the kill interrupted.
        complete, partial = _steps(tmp_path / stage / "checkpoints")
        assert all(int(p.name) < max(int(c.name) for c in complete) for p in partial)
    resumed = run_script(script, *_run_args(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    for stage in STAGES[script]:
        leftovers = [p for p in (tmp_path / stage / "checkpoints").iterdir() if "tmp" in p.name]
        assert not leftovers and not _steps(tmp_path / stage / "checkpoints")[1]
    _assert_same_run(work, tmp_path, script)


def _steps(checkpoints_dir):
    """``(complete, partial)`` step folders: with both items, and with one missing."""
    steps = [p for p in checkpoints_dir.glob("*") if p.name.isdigit()]
    whole = [p for p in steps if (p / "state").is_dir() and (p / "meta").is_dir()]
    return whole, [p for p in steps if p not in whole]


def test_ctrl_c_checkpoints_then_resumes_identically(reference, tmp_path):
    script, work = reference[:2]
    process = run_script_async(script, *_run_args(tmp_path))
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
    assert not (tmp_path / "finetune").exists()  # the pipeline stopped inside pretraining
    resumed = run_script(script, *_run_args(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(work, tmp_path, script)
