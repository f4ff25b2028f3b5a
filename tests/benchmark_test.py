"""The JAX-vs-PyTorch benchmark: FLOP counts, report arithmetic, and a tiny end-to-end run.

The end-to-end run is a smoke test of the code path, not a timing: it checks that every contender
whose packages import here trains to sensible accuracy and that the files it writes agree.
"""

import gzip
import json
import subprocess
import sys

import compare_torch
import epoch_floor
import machine
import numpy as np
import pytest
import report

from support import REPO, SUBSET_DIR, SUBSET_SIZES


def can_import(*modules: str) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"import {', '.join(modules)}"])
    return probe.returncode == 0


def test_autoencoder_epoch_flops_count_forward_and_backward():
    # Forward 2*in*out per layer, weight gradient the same, input gradient the same except for
    # the first layer: 784-128-64-128-784 gives 1,101,824 FLOPs per example, 66.1 GFLOP/epoch.
    assert machine.ae_train_flops_per_example([(3, 2)]) == 2 * 6 * 2
    assert machine.ae_train_flops_per_example([(3, 2), (2, 5)]) == (12 + 20) * 2 + 20
    assert machine.ae_train_flops_per_example(machine.dense_layers()) == 1_101_824
    assert machine.ae_epoch_flops(60_000) == 66_109_440_000


def test_rounds_alternate_and_rotate():
    order = compare_torch.rounds(["aejax", "eager", "compiled"], seeds=3)
    assert order[:3] == [("aejax", 0), ("eager", 0), ("compiled", 0)]
    assert [c for c, s in order if s == 1] == ["eager", "compiled", "aejax"]
    assert [c for c, s in order if s == 2] == ["compiled", "aejax", "eager"]


def fake_run(contender, seed, epochs, accuracy, wall, compile_s=None):
    stage = {"epoch_seconds": epochs, "test": {"loss": 0.1 + seed / 100}}
    if compile_s is not None:
        stage["compile_s"] = compile_s
    result = {
        "pretrain": stage,
        "finetune": {**stage, "test": {"loss": 0.5, "accuracy": accuracy}},
        "num_train": 60_000,
        "num_test": 10_000,
        "peak_rss_mib": 500.0 + seed,
        "children_peak_rss_mib": 0.0,
    }
    return {"contender": contender, "seed": seed, "wall_s": wall, "result": result}


def test_summary_ratios_and_table():
    runs = [
        fake_run("aejax", 0, [9.0, 1.0, 2.0], 0.80, 30.0, compile_s=3.0),
        fake_run("aejax", 1, [9.0, 3.0, 1.0], 0.82, 40.0, compile_s=3.0),
        fake_run("eager", 0, [8.0, 4.0, 4.0], 0.81, 60.0),
        fake_run("eager", 1, [8.0, 4.0, 6.0], 0.81, 80.0),
    ]
    summary = report.summarize(runs, ae_epoch_flops=66e9, peak_gflops=200.0)
    ours, theirs = summary["aejax"], summary["eager"]
    assert ours["pretrain_s_per_epoch"] == 1.5  # median of 1, 2, 3, 1: first epochs left out
    assert ours["pretrain_first_epoch_s"] == 12.0  # compile + first epoch
    assert theirs["pretrain_first_epoch_s"] == 8.0
    assert ours["pretrain_examples_per_s"] == 40_000
    assert ours["ae_gflops"] == pytest.approx(44.0)
    assert ours["ae_fraction_of_peak"] == pytest.approx(0.22)
    assert ours["wall_s"] == 35.0 and ours["peak_rss_mib"] == 501.0
    assert ours["test_accuracy"][0] == pytest.approx(0.81)
    assert ours["test_accuracy"][1] == pytest.approx(np.std([0.80, 0.82], ddof=1))
    assert theirs["test_accuracy"] == (pytest.approx(0.81), 0.0)
    ratio = report.ratios(summary)["eager"]
    assert ratio["pretrain_epoch_speedup"] == pytest.approx(4.0 / 1.5)
    assert ratio["wall_speedup"] == pytest.approx(70.0 / 35.0)
    assert ratio["accuracy_difference"] == pytest.approx(0.0)


def test_markdown_names_each_contender_and_the_skipped_ones():
    runs = [fake_run("aejax", 0, [2.0, 1.0], 0.8, 10.0), fake_run("eager", 0, [4.0, 3.0], 0.8, 20)]
    summary = report.summarize(runs, 66e9, 200.0)
    text = report.markdown(
        {
            "settings": {
                "dataset": "fashion_mnist",
                "num_train": 60000,
                "num_test": 10000,
                "epochs": 2,
                "seeds": [0],
            },
            "machine_line": "2 cores of AMD EPYC",
            "peak": {"gflops": 200.0, "size": 2048},
            "ae_epoch_gflop": 66.1,
            "summary": summary,
            "ratios": report.ratios(summary),
            "skipped": {"as_written": "no torchvision"},
            "command": "python benchmarks/compare_torch.py",
        }
    )
    assert "| aejax (JAX) | 1.000 | 2.00 | 60,000 |" in text
    assert "| PyTorch eager, preloaded | 3.0× |" in text
    assert "Skipped PyTorch as written (torchvision + DataLoader): no torchvision" in text


def test_pytorch_side_reads_the_same_data_as_aejax(small_fashion):
    pytest.importorskip("torch")
    import torch_reference

    data = torch_reference.load_arrays("fashion_mnist", SUBSET_DIR, *SUBSET_SIZES)
    np.testing.assert_array_equal(data.train_images, small_fashion.train_images)
    np.testing.assert_array_equal(data.train_labels, small_fashion.train_labels)
    np.testing.assert_array_equal(data.test_labels, small_fashion.test_labels)
    x = torch_reference.normalize(data.train_images[:5]).numpy()
    assert x.min() == -1.0 and x.max() == 1.0 and x.dtype == np.float32


def test_torchvision_root_is_a_decompressed_copy(tmp_path):
    pytest.importorskip("torch")
    import torch_reference

    root = torch_reference.torchvision_root("fashion_mnist", SUBSET_DIR, tmp_path)
    raw = root / "FashionMNIST" / "raw"
    labels = gzip.decompress((SUBSET_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert (raw / "t10k-labels-idx1-ubyte").read_bytes() == labels
    assert sorted(p.name for p in raw.iterdir()) == sorted(torch_reference.IDX_FILES)
    # Already laid out for torchvision: used in place, nothing copied.
    assert torch_reference.torchvision_root("fashion_mnist", root, tmp_path / "other") == root


def test_benchmark_runs_end_to_end_on_a_tiny_subset(tmp_path):
    command = [
        sys.executable, str(REPO / "benchmarks" / "compare_torch.py"),
        "--data-dir", str(SUBSET_DIR), "--train-limit", "1000", "--test-limit", "200",
        "--epochs", "2", "--torch-threads", "1", "--peak-size", "512",
        "--out-dir", str(tmp_path), "--workdir", str(tmp_path / "work"), "--name", "smoke",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "smoke.json").read_text())
    expected = {"aejax"} | ({"eager", "compiled"} if can_import("torch") else set())
    if can_import("torch", "torchvision"):
        expected.add("as_written")
    else:
        assert "torchvision" in results["skipped"]["as_written"]
    summary = results["summary"]
    assert set(summary) == expected and not results["failed"]
    assert results["settings"]["num_train"] == 1000 and results["settings"]["num_test"] == 200
    assert results["peak"]["gflops"] > 0
    for name, row in summary.items():
        assert 0.45 < row["test_accuracy"][0] <= 1.0, name  # chance is 0.1
        assert 0.0 < row["test_mse"][0] < 0.4, name  # an untrained autoencoder gives ~0.69
        assert row["pretrain_examples_per_s"] == pytest.approx(1000 / row["pretrain_s_per_epoch"])
        assert row["wall_s"] > row["pretrain_s_per_epoch"] + row["finetune_s_per_epoch"]
        assert row["peak_rss_mib"] > 50
    for name, ratio in results["ratios"].items():
        speedup = summary[name]["pretrain_s_per_epoch"] / summary["aejax"]["pretrain_s_per_epoch"]
        assert ratio["pretrain_epoch_speedup"] == pytest.approx(speedup)
        assert abs(ratio["accuracy_difference"]) < 0.2  # same model, data and epochs
    table = (tmp_path / "smoke.md").read_text()
    for name in summary:
        assert f"| {report.LABELS[name]} |" in table


def test_epoch_floor_summary_arithmetic():
    summary = epoch_floor.summarize({"aejax": [2.0, 1.0, 3.0], "xla_matmuls": [1.0, 1.5]}, 6e9)
    assert summary["aejax"] == {
        "median_s": 2.0,
        "min_s": 1.0,
        "gflops_at_median": 3.0,
        "fraction_of_aejax": 1.0,
    }
    assert summary["xla_matmuls"]["median_s"] == 1.25
    assert summary["xla_matmuls"]["fraction_of_aejax"] == 0.625


def test_epoch_floor_times_aejax_against_its_matmuls_on_a_tiny_subset(tmp_path):
    args = ["--data-dir", str(SUBSET_DIR), "--train-limit", "250", "--rounds", "1"]
    assert epoch_floor.main([*args, "--results-dir", str(tmp_path), "--name", "floor"]) == 0
    record = json.loads((tmp_path / "floor.json").read_text())
    expected = {"aejax", "xla_matmuls"} | ({"torch_matmuls"} if can_import("torch") else set())
    assert set(record["summary"]) == set(record["seconds"]) == expected
    # 250 examples in batches of 100: three steps, the last one padded, as aejax trains them.
    assert record["epoch_flops"] == 3 * 100 * 1_101_824
    assert all(len(times) == 1 and times[0] > 0 for times in record["seconds"].values())
    table = (tmp_path / "floor.md").read_text()
    assert all(f"| {epoch_floor.LABELS[name]} |" in table for name in expected)


def test_epoch_floor_refuses_zero_rounds(tmp_path, capsys):
    assert epoch_floor.main(["--rounds", "0", "--results-dir", str(tmp_path)]) == 2
    assert "--rounds" in capsys.readouterr().err and not list(tmp_path.iterdir())


def _ttr_run(contender, epochs, wall, steady, **phases):
    row = {"contender": contender, "epochs": epochs, "wall_s": wall, "steady_epochs_s": steady}
    return {**row, "accuracy": 0.8, **phases}


def test_time_to_result_summary_medians_speedups_and_breakdown():
    import time_to_result as ttr

    phases = {k: 1.0 for k in ttr.BREAKDOWN if k != "other_s"}  # 8 phases of 1 s
    runs = [
        _ttr_run("aejax-warm", 3, 10.0, 4.0, **phases),
        _ttr_run("aejax-warm", 3, 12.0, 4.0, **phases),
        _ttr_run("aejax-warm", 3, 14.0, 4.0, **phases),
        _ttr_run("eager", 3, 30.0, 20.0),
        _ttr_run("eager", 3, 24.0, 20.0),
    ]
    block = ttr.summarize(runs)["3"]
    warm = block["contenders"]["aejax-warm"]
    assert warm["wall_s"] == 12.0 and warm["wall_over_steady_epochs"] == 3.0
    assert warm["breakdown"]["other_s"] == 12.0 - 8.0  # what the phases leave unexplained
    assert block["speedups"] == {"aejax-warm vs eager": 27.0 / 12.0}
    record = {"summary": ttr.summarize(runs), "rounds": 3, "command": "c", "machine": {}}
    record["machine"] = machine.describe()
    table = ttr.markdown(record)
    assert "| aejax-warm | 12.0 | 4.0 | 3.00 |" in table and "**2.25×**" in table


def test_time_to_result_rounds_put_the_cold_run_first():
    import time_to_result as ttr

    plan = ttr.schedule([3, 10], rounds=2)
    assert [(e, r) for e, r, _ in plan] == [(3, 0), (3, 1), (10, 0), (10, 1)]
    assert all(order[0] == "aejax-cold" and sorted(order) == sorted(ttr.CONTENDERS)
               for _, _, order in plan)  # fmt: skip
    assert plan[0][2][1:] != plan[1][2][1:]  # the others rotate
    both = ("aejax-cold", "aejax-warm", "before-cold", "before-warm")
    plan = ttr.schedule([3], rounds=2, contenders=both)
    for _, _, order in plan:  # each cold run fills the cache its warm run reads
        assert sorted(order[:2]) == ["aejax-cold", "before-cold"] and sorted(order) == sorted(both)
    assert plan[0][2] != plan[1][2]  # before and after alternate in who goes first


def test_time_to_result_fixed_cost_leaves_out_imports_epochs_and_their_tests():
    import time_to_result as ttr

    # Earlier versions: the per-epoch test a phase of its own; later: inside the epochs.
    before = {"wall_s": 12.0, "start_and_imports_s": 1.5, "steady_epochs_s": 8.0, "eval_s": 0.5}
    after = {**before, "wall_s": 11.0, "steady_epochs_s": 8.5, "eval_s": 0.0}
    assert ttr.fixed_cost(before) == 2.0 and ttr.fixed_cost(after) == 1.0


def test_time_to_result_refuses_a_baseline_that_is_not_aejax_and_a_warm_run_alone(tmp_path):
    import time_to_result as ttr

    flags = ["--results-dir", str(tmp_path), "--epochs", "1", "--rounds", "1"]
    assert ttr.main([*flags, "--baseline", str(tmp_path)]) == 2
    assert ttr.main([*flags, "--contenders", "aejax-warm"]) == 2
    assert ttr.main([*flags, "--contenders", "aejax-cold", "before-cold"]) == 2
    assert not list(tmp_path.iterdir())


def test_run_command_times_the_readme_command_against_its_epochs(tmp_path):
    import run_command

    tiny = ["--source", "idx", "--hidden", "32", "--latent", "16", "--train-limit", "300"]
    tiny += ["--test-limit", "100", "--epochs", "2"]
    args = ["--data-dir", str(SUBSET_DIR), "--results-dir", str(tmp_path), "--name", "rc"]
    assert run_command.main([*args, "--runs", "1", "--", *tiny]) == 0
    record = json.loads((tmp_path / "rc.json").read_text())
    (run,) = record["runs"]
    assert run["wall_s"] > run["steady_epochs_s"] > 0
    assert record["warm_median"]["wall_over_steady_epochs"] == run["wall_over_steady_epochs"]
    assert 0.1 < run["test_accuracy"] <= 1.0 and run["programs"] == 8
    assert "| 0 |" in (tmp_path / "rc.md").read_text()


def test_fixed_costs_splits_a_warm_runs_fixed_cost_into_its_steps(tmp_path):
    import fixed_costs
    import timed_pipeline

    tiny = ["--source", "idx", "--hidden", "32", "--latent", "16", "--train-limit", "300"]
    tiny += ["--test-limit", "100"]
    args = ["--data-dir", str(SUBSET_DIR), "--results-dir", str(tmp_path), "--name", "fc"]
    assert fixed_costs.main([*args, "--epochs", "2", "--rounds", "1", "--", *tiny]) == 0
    record = json.loads((tmp_path / "fc.json").read_text())
    kinds = [r["kind"] for r in record["runs"]]
    assert kinds == ["cold", "warm", "plain"]
    warm = record["runs"][1]
    # Every step was found and timed; the epochs, the figures and the saves took time.
    assert set(warm["steps"]) == set(timed_pipeline.STEPS)
    for step in ("epochs", "checkpoint saves (their synchronous part)", "data load"):
        assert warm["steps"][step] > 0, step
    # The parts add up to the fixed cost, but for wrapping the steps in timers (milliseconds).
    parts = fixed_costs.split(warm)
    assert sum(parts.values()) == pytest.approx(fixed_costs.fixed_cost(warm), abs=0.05)
    assert 0 < warm["exit_s"] < warm["wall_s"] and record["summary"]["fixed_s"] > 0
    assert "| data load |" in (tmp_path / "fc.md").read_text()


def test_run_command_refuses_zero_runs(tmp_path, capsys):
    import run_command

    assert run_command.main(["--runs", "0", "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
