"""The library guide's worked example (docs/examples/own_pieces.py) runs as printed: your arrays,
a conv model, AdamW with warmup and cosine decay, an L1 objective and a callback through both
stages; killed with kill -9 after its first checkpoint and run again, it ends bit-identical."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from support import REPO, SUBSET_DIR, saved_params

EXAMPLE = REPO / "docs" / "examples" / "own_pieces.py"
SMALL = [str(SUBSET_DIR), "600", "200", "3"]  # the committed subset, 600/200 examples, 3 epochs


def _command(work):
    return [sys.executable, str(EXAMPLE), str(work), *SMALL]


def _run(work) -> dict:
    done = subprocess.run(_command(work), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _history(stage_dir):
    rows = [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds" and not k.endswith("_s")} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp("guide")
    return work, _run(work)


def test_the_example_trains_both_stages_and_predicts(reference):
    work, printed = reference
    assert printed["predicted_accuracy"] == pytest.approx(printed["test_accuracy"], abs=1e-6)
    assert printed["test_accuracy"] > 0.3  # 600 examples, 3 epochs: well above chance
    events = EventAccumulator(str(work / "pretrain" / "tensorboard"), {"scalars": 0})
    events.Reload()
    assert [s.step for s in events.Scalars("train/lr")] == [1, 2, 3]  # the schedule, per epoch
    assert len(events.Scalars("train/step_loss")) == 3 * 6  # every step of every epoch
    identity = json.loads((work / "pretrain" / "config.json").read_text())["identity"]
    assert identity["model"]["class"] == "__main__.ConvAutoencoder"
    assert identity["objective"]["name"].endswith("l1_objective.<locals>.l1")


def test_kill_9_after_the_first_checkpoint_then_rerun_is_bit_identical(reference, tmp_path):
    work, printed = reference
    process = subprocess.Popen(_command(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = tmp_path / "pretrain" / "checkpoints" / "1"
    while not first.exists() and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert _run(tmp_path) == printed
    for stage in ("pretrain", "finetune"):
        assert _history(tmp_path / stage) == _history(work / stage)
        a, b = saved_params(work / stage), saved_params(tmp_path / stage)
        for x, y in zip(_leaves(a), _leaves(b), strict=True):
            np.testing.assert_array_equal(x, y)


def _leaves(tree):
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
    return [np.asarray(tree)]
