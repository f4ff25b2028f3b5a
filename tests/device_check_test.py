"""benchmarks/device_check.py: a CPU smoke run on 2 fake devices, its device counts, its refusals.

The smoke run checks the code path and the record's shape, not the timings: on a CPU neither
bfloat16 nor vmapped seeds nor more (fake) devices are expected to pay.
"""

import json
import math
import os
import subprocess
import sys

import device_check
import pytest

from support import REPO, SUBSET_DIR

SECTIONS = {"autoencoder_dtypes", "pipeline", "multi_seed", "determinism", "data_parallel"}


def test_device_counts_are_powers_of_two_and_all_present_that_divide_the_batch():
    assert device_check.device_counts(100, 1) == ([1], [])
    assert device_check.device_counts(100, 2) == ([1, 2], [])
    assert device_check.device_counts(100, 5) == ([1, 2, 4, 5], [])
    assert device_check.device_counts(100, 8) == ([1, 2, 4], [8])
    assert device_check.device_counts(100, 6) == ([1, 2, 4], [6])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One --tiny run on the committed subset with 2 CPU devices: its record and its output."""
    out = tmp_path_factory.mktemp("device_check")
    command = [
        sys.executable, str(REPO / "benchmarks" / "device_check.py"), "--tiny",
        "--dataset", "fashion_mnist", "--data-dir", str(SUBSET_DIR), "--results-dir", str(out),
    ]  # fmt: skip
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "2"}
    # Compiling a dozen programs is most of a tiny run on a CPU; LLVM's -O0 halves it, and the
    # timings here are not what is tested.
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # Named after the backend unless --name says otherwise.
    record = json.loads((out / "device_check-cpu.json").read_text())
    return record, done.stdout, (out / "device_check-cpu.md").read_text()


def test_tiny_run_records_every_section(smoke):
    record, stdout, table = smoke
    assert set(record) == {"command", "settings", "environment", *SECTIONS}
    env = record["environment"]
    assert env["backend"] == "cpu" and env["env"]["JAX_NUM_CPU_DEVICES"] == "2"
    assert env["devices"]["count"] == 2 and env["devices"]["process_count"] == 1
    assert {"jax", "jaxlib", "flax"} <= set(env["versions"])
    settings = record["settings"]
    assert settings["tiny"] and settings["epochs"] == 2
    assert settings["data"]["train_limit"] == 1000 and settings["model"]["hidden"] == 32
    assert "1000 train / 200 test" in settings["loaded"]
    assert "| determinism, 2 processes | equal" in table and table in stdout


def test_tiny_run_times_are_positive_and_losses_finite(smoke):
    record = smoke[0]
    dtypes = record["autoencoder_dtypes"]
    for dtype in ("float32", "bfloat16"):
        row = dtypes[dtype]
        assert len(row["epoch_s"]) == 2 and min(row["epoch_s"]) > 0
        assert row["steady_epoch_s"] == row["epoch_s"][1]  # the epochs after the first
        assert math.isfinite(row["test_loss"]) and 0 < row["test_loss"] < 0.6
    pipeline = record["pipeline"]
    assert pipeline["wall_s"] > pipeline["pretrain"]["epochs_s"] + pipeline["finetune"]["epochs_s"]
    assert math.isfinite(pipeline["pretrain"]["test_loss"])
    assert 0.2 < pipeline["finetune"]["test_accuracy"] <= 1.0  # chance is 0.1
    seeds = record["multi_seed"]
    one, many = seeds["one_seed"], seeds["many_seeds"]
    assert (one["seeds"], many["seeds"]) == (1, 8) and one["seconds"] > 0 and many["seconds"] > 0
    assert seeds["ratio_vs_loop"] == pytest.approx(many["seconds"] / (8 * one["seconds"]))
    assert math.isfinite(one["final_train_loss"]) and math.isfinite(many["final_train_loss"])


def test_tiny_run_is_deterministic_and_scales_over_both_devices(smoke):
    record = smoke[0]
    same = record["determinism"]
    assert same["equal"] and same["sha256"][0] == same["sha256"][1]
    assert len(same["sha256"][0]) == 64 and same["xla_flags"].endswith("_deterministic_ops=true")
    assert "--xla_backend_optimization_level=0" in same["xla_flags"]  # what this process had
    # The children train exactly what this process trained in float32.
    assert same["test_loss"] == [record["autoencoder_dtypes"]["float32"]["test_loss"]] * 2
    scaling = record["data_parallel"]
    assert set(scaling["runs"]) == {"1", "2"} and scaling["skipped"] == []
    for n, row in scaling["runs"].items():
        assert row["devices"] == int(n) and row["steady_epoch_s"] > 0 and row["speedup"] > 0
        assert math.isfinite(row["test_loss"])
    assert scaling["runs"]["1"]["speedup"] == 1.0
    # The same training on 1 and on 2 devices: early steps agree to rounding (see NOTES).
    losses = [row["test_loss"] for row in scaling["runs"].values()]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_a_missing_data_folder_is_one_line_and_exit_2(tmp_path, capsys):
    missing, out = tmp_path / "missing", tmp_path / "out"
    code = device_check.main(["--tiny", "--data-dir", str(missing), "--results-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(missing) in err and "--data-dir" in err and not out.exists()


def test_one_epoch_is_refused(tmp_path, capsys):
    code = device_check.main(["--epochs", "1", "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--epochs" in err and not list(tmp_path.iterdir())
