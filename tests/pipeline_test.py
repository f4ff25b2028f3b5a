"""scripts/pipeline.py: both stages in one process, the same results as the two stage scripts."""

import json
import shutil

import jax
import numpy as np

from support import SUBSET_DIR, run_script_here, saved_params

TINY = [
    "--dataset", "fashion_mnist", "--source", "idx", "--data-dir", str(SUBSET_DIR),
    "--hidden", "32", "--latent", "16", "--train-limit", "600", "--test-limit", "200",
    "--epochs", "2", "--no-progress", "--no-compile-cache",
]  # fmt: skip
TIMED = {"seconds_per_epoch", "examples_per_s", "epochs_run_now"}


def _results(stage_dir):
    metrics = json.loads((stage_dir / "metrics.json").read_text())
    figures = {k: v for k, v in metrics.items() if k not in TIMED and not k.endswith("_s")}
    return figures, saved_params(stage_dir)


def _assert_same(a, b):
    assert a[0] == b[0]
    jax.tree.map(np.testing.assert_array_equal, a[1], b[1])


def test_pipeline_equals_the_two_stage_scripts(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    done = run_script_here("pipeline", *TINY, "--workdir", str(one))
    assert done.returncode == 0, done.stderr
    for stage in ("pretrain", "finetune"):
        result = run_script_here(stage, *TINY, "--workdir", str(two))
        assert result.returncode == 0, result.stderr
        _assert_same(_results(one / stage), _results(two / stage))
    record = json.loads((one / "pipeline.json").read_text())
    assert json.loads(done.stdout) == record
    assert record["finetune"]["test_accuracy"] == _results(two / "finetune")[0]["test_accuracy"]
    assert record["programs"] >= record["compiled"] >= 0
    for phase in ("imports_s", "data_s", "process_s"):
        assert record[phase] >= 0
    for stage in ("pretrain", "finetune"):
        for phase in ("init_s", "compile_s", "epochs_s", "eval_s", "checkpoint_s", "figures_s"):
            assert 0 <= record[stage][phase] <= record[stage]["wall_s"], phase


def _torchvision_root(tmp_path):
    """A data root holding Fashion-MNIST only, in torchvision's layout."""
    root = tmp_path / "data"
    shutil.copytree(SUBSET_DIR, root / "FashionMNIST" / "raw")
    return str(root)


def test_an_unavailable_dataset_falls_back_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default workdir, runs/DATASET, follows the fallback
    args = [*TINY, "--data-dir", _torchvision_root(tmp_path), "--dataset", "mnist"]
    done = run_script_here("pipeline", *args, "--fallback-dataset", "fashion_mnist")
    assert done.returncode == 0, done.stderr
    notice = done.stderr.splitlines()
    assert len(notice) == 1 and notice[0].startswith("mnist is not available here (")
    assert notice[0].endswith("); using fashion_mnist instead.")
    record = json.loads(done.stdout)
    assert (record["dataset"], record["workdir"]) == ("fashion_mnist", "runs/fashion_mnist")
    saved = json.loads((tmp_path / "runs/fashion_mnist/finetune/config.json").read_text())
    assert saved["data"]["dataset"] == "fashion_mnist"


def test_each_stage_trains_with_its_own_epochs_and_lr(tmp_path):
    own = ["--pretrain-epochs", "1", "--finetune-lr", "0.002", "--workdir", str(tmp_path)]
    done = run_script_here("pipeline", *TINY, *own)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["pretrain"]["epochs"], record["pretrain"]["lr"]) == (1, 0.001)
    assert (record["finetune"]["epochs"], record["finetune"]["lr"]) == (2, 0.002)


def test_without_a_fallback_an_unavailable_dataset_is_an_error(tmp_path):
    args = [*TINY, "--data-dir", _torchvision_root(tmp_path), "--dataset", "mnist"]
    done = run_script_here("pipeline", *args, "--workdir", str(tmp_path / "work"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: no IDX files for mnist") and done.stderr.count("\n") == 1
    assert not (tmp_path / "work").exists()
