"""End to end: both scripts on a small real Fashion-MNIST subset, resume, and refusals."""

import errno
import json
import os
import shutil
import time

import chex
import jax
import numpy as np
import pytest

from aejax.config import FinetuneConfig, ObjectiveConfig, PretrainConfig, TrainConfig
from aejax.data.datasets import subset
from aejax.engine.keys import epoch_key, stage_key
from aejax.errors import DiskFullError, UserError
from aejax.evaluation import evaluate_stage, load_stage
from aejax.run import checkpoint
from aejax.run.resume import resume_epoch
from aejax.run.stage_loop import disk_full_is_said
from aejax.stages import finetune, pretrain
from support import (
    SUBSET_DIR,
    SUBSET_SIZES,
    drawn,
    run_script,
    subset_data_config,
    tiny_config,
)

SMALL_RUN = [
    "--dataset",
    "fashion_mnist",
    "--data-dir",
    str(SUBSET_DIR),
    "--hidden",
    "64",
    "--latent",
    "32",
    "--no-progress",
]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    pre = run_script("pretrain", *SMALL_RUN, "--epochs", "3", "--workdir", str(workdir))
    fine = run_script("finetune", *SMALL_RUN, "--epochs", "3", "--workdir", str(workdir))
    return workdir, pre, fine


def test_scripts_run_the_pipeline_and_learn(pipeline_run):
    workdir, pre, fine = pipeline_run
    assert pre.returncode == 0, pre.stderr
    assert fine.returncode == 0, fine.stderr
    pre_metrics = json.loads((workdir / "pretrain" / "metrics.json").read_text())
    fine_metrics = json.loads((workdir / "finetune" / "metrics.json").read_text())
    assert fine_metrics["test_accuracy"] > 0.6  # chance is 0.1
    assert pre_metrics["test_mse"] < 0.2  # an untrained decoder is near 0.5
    for metrics in (pre_metrics, fine_metrics):
        for key in (
            "dataset",
            "epochs",
            "train_loss",
            "test_loss",
            "seconds_per_epoch",
            "compile_s",
            "wall_s",
            "examples_per_s",
        ):
            assert metrics[key] is not None, key
        assert metrics["dataset"] == "fashion_mnist" and metrics["epochs"] == 3
        assert metrics["num_test"] == SUBSET_SIZES[1]
    # The final metrics are printed as JSON on stdout.
    assert json.loads(fine.stdout)["test_accuracy"] == fine_metrics["test_accuracy"]


def test_stage_outputs_are_written(pipeline_run):
    workdir = pipeline_run[0]
    for stage in ("pretrain", "finetune"):
        folder = workdir / stage
        assert (folder / "config.json").is_file() and drawn(folder / "curves.png")
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
        assert checkpoint.latest_epoch(folder / "checkpoints") == 3
    assert drawn(workdir / "pretrain" / "reconstructions.png")


def test_a_stage_prints_its_parameters_only_with_progress(tmp_path, small_fashion, capsys):
    config = tiny_config("pretrain", tmp_path, epochs=1)
    started = time.perf_counter()
    result = pretrain(config, small_fashion, progress=False)
    elapsed = time.perf_counter() - started
    quiet = capsys.readouterr()
    assert quiet.out == "" and "parameters" not in quiet.err
    metrics = result.metrics
    # Its own time, from building its start state (`init_s`) on: all but the checks before it.
    assert 0 < elapsed - metrics["wall_s"] < metrics["init_s"], (elapsed, metrics)
    for phase in ("figures_s", "checkpoint_s", "tensorboard_s", "epochs_s"):
        assert 0 <= metrics[phase] < metrics["wall_s"], phase
    assert "stopped_by" not in metrics  # no callback ended it
    pretrain(tiny_config("pretrain", tmp_path, epochs=2), small_fashion, progress=True)
    assert "pretrain: parameters" in capsys.readouterr().err  # stdout carries the JSON result


def test_a_callback_that_ends_training_is_named_in_the_metrics(tmp_path, small_fashion):
    def enough_after_one(row, state):
        return row["epoch"] == 1

    config = tiny_config("pretrain", tmp_path, epochs=3)
    result = pretrain(config, small_fashion, progress=False, callbacks=[enough_after_one])
    assert len(result.history) == 1 and result.metrics["stopped_by"] == "enough_after_one"


def test_a_batch_may_hold_every_training_example_and_no_more(tmp_path, small_fashion):
    data = subset(small_fashion, 100, 50)
    whole = pretrain(tiny_config("pretrain", tmp_path / "a", epochs=1), data, progress=False)
    assert whole.state.step == 1  # one step: the whole training set
    config = tiny_config("pretrain", tmp_path / "b", epochs=1, batch_size=101)
    with pytest.raises(UserError, match="batch size 101 exceeds the 100 training examples"):
        pretrain(config, data, progress=False)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_only_a_full_disk_becomes_one_line_naming_the_stage_folder(tmp_path, code):
    config = tiny_config("pretrain", tmp_path)

    @disk_full_is_said
    def stage(config):
        raise OSError(code, os.strerror(code))

    expected = DiskFullError if code == errno.ENOSPC else OSError
    with pytest.raises(expected) as info:
        stage(config)
    if code == errno.ENOSPC:
        assert str(config.stage_dir) in str(info.value)
    else:
        assert not isinstance(info.value, DiskFullError) and info.value.errno == code


def test_finetune_starts_from_the_pretrained_encoder(tmp_path, small_fashion):
    pre = pretrain(tiny_config("pretrain", tmp_path, epochs=1), small_fashion, progress=False)
    config = tiny_config("finetune", tmp_path, epochs=1, lr=1e-12)  # lr ~ 0: params stay put
    fine = finetune(config, small_fashion, progress=False)
    # Every layer of it (a transplant that kept the fresh latent layer would differ there).
    chex.assert_trees_all_close(
        fine.state.params["encoder"], pre.state.params["encoder"], atol=1e-6, rtol=0
    )


def test_rerun_resumes_and_continues_exactly(tmp_path, small_fashion):
    straight = pretrain(
        tiny_config("pretrain", tmp_path / "a", epochs=3), small_fashion, progress=False
    )
    pretrain(tiny_config("pretrain", tmp_path / "b", epochs=2), small_fashion, progress=False)
    resumed = pretrain(
        tiny_config("pretrain", tmp_path / "b", epochs=3), small_fashion, progress=False
    )
    assert resumed.metrics["epochs_run_now"] == 1 and resumed.metrics["epochs"] == 3
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    same = jax.tree.map(
        lambda a, b: bool(np.array_equal(a, b)), straight.state.params, resumed.state.params
    )
    assert all(jax.tree.leaves(same))


def test_finetune_without_pretraining_exits_2_with_one_line(tmp_path):
    result = run_script("finetune", *SMALL_RUN, "--workdir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: no pretrained checkpoint")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("(flags: --workdir, --pretrained-dir)")


def test_encoder_shape_mismatch_names_the_paths(tmp_path, small_fashion):
    pretrain(tiny_config("pretrain", tmp_path, epochs=1), small_fashion, progress=False)
    args = [a if a != "64" else "32" for a in SMALL_RUN]  # hidden 32 -> matches; change latent
    result = run_script("finetune", *args[:-1], "--latent", "8", "--workdir", str(tmp_path))
    assert result.returncode == 2
    assert "encoder/latent/kernel: pretrained (32, 16) vs classifier (32, 8)" in result.stderr


def test_a_workdir_of_another_config_is_refused_and_left_intact(tmp_path, small_fashion):
    pretrain(tiny_config("pretrain", tmp_path, epochs=1), small_fashion, progress=False)
    before = sorted(p.name for p in (tmp_path / "pretrain" / "checkpoints").iterdir())
    with pytest.raises(UserError, match=r"different config \(train.lr 0.001 in the folder, 0.5"):
        pretrain(tiny_config("pretrain", tmp_path, epochs=1, lr=0.5), small_fashion, progress=False)
    assert sorted(p.name for p in (tmp_path / "pretrain" / "checkpoints").iterdir()) == before


def test_finetune_overwrite_starts_again_from_the_pretrained_encoder(tmp_path, small_fashion):
    pretrain(tiny_config("pretrain", tmp_path / "a", epochs=1), small_fashion, progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    finetune(
        tiny_config("finetune", tmp_path / "a", epochs=2, lr=0.01), small_fashion, progress=False
    )
    config = tiny_config("finetune", tmp_path / "a", epochs=1, lr=0.002)
    with pytest.raises(UserError, match="different config"):
        finetune(config, small_fashion, progress=False)
    replaced = finetune(config, small_fashion, progress=False, overwrite=True)
    # Nothing of the discarded run survives: the result is that of a fresh fine-tuning.
    fresh = finetune(config.replace(workdir=str(tmp_path / "b")), small_fashion, progress=False)
    assert replaced.metrics["epochs_run_now"] == 1 and [r["epoch"] for r in replaced.history] == [1]
    same = jax.tree.map(np.array_equal, replaced.state.params, fresh.state.params)
    assert all(jax.tree.leaves(same))
    assert replaced.metrics["test_accuracy"] == fresh.metrics["test_accuracy"]
    kept = sorted(p.name for p in (tmp_path / "a" / "finetune" / "checkpoints").iterdir())
    assert kept == ["1"]


def test_evaluate_script_reproduces_the_final_metrics(pipeline_run):
    workdir = pipeline_run[0]
    result = run_script("evaluate", str(workdir / "finetune"))
    assert result.returncode == 0, result.stderr
    final = json.loads((workdir / "finetune" / "metrics.json").read_text())
    evaluated = json.loads(result.stdout)
    assert evaluated["epoch"] == 3 and evaluated["count"] == SUBSET_SIZES[1]
    assert evaluated["accuracy"] == final["test_accuracy"]
    assert evaluated["loss"] == pytest.approx(final["test_loss"], rel=1e-6)


def test_evaluate_stage_scores_a_bce_autoencoder_with_its_own_objective(tmp_path, small_fashion):
    # evaluate_stage reloads the data from the config: the subset trained on.
    config = tiny_config("pretrain", tmp_path, epochs=1).replace(
        objective=ObjectiveConfig(loss="bce"), data=subset_data_config()
    )
    result = pretrain(config, small_fashion, progress=False)
    evaluated = evaluate_stage(tmp_path / "pretrain")
    assert evaluated["loss"] == pytest.approx(result.metrics["test_loss"], rel=1e-5)


def test_load_stage_restores_the_newest_checkpoint_of_either_stage(pipeline_run):
    workdir = pipeline_run[0]
    for stage, kind in (("pretrain", PretrainConfig), ("finetune", FinetuneConfig)):
        saved = load_stage(workdir / stage)
        assert isinstance(saved.config, kind) and saved.epoch == 3
        assert saved.config.model.hidden == 64 and saved.config.model.latent == 32
        assert saved.params["encoder"]["hidden"]["kernel"].shape == (784, 64)
    assert set(load_stage(workdir / "finetune").params) == {"encoder", "head"}


def test_stages_refuse_the_other_stages_config(tmp_path, small_fashion):
    with pytest.raises(TypeError, match="needs a PretrainConfig, got FinetuneConfig"):
        pretrain(tiny_config("finetune", tmp_path), small_fashion, progress=False)
    with pytest.raises(TypeError, match="needs a FinetuneConfig, got PretrainConfig"):
        finetune(tiny_config("pretrain", tmp_path), small_fashion, progress=False)


def test_where_a_run_resumes_is_read_from_its_stage_folder(pipeline_run, tmp_path):
    config = PretrainConfig(workdir=str(pipeline_run[0]))
    assert resume_epoch(config, overwrite=False) == 3
    assert resume_epoch(config, overwrite=True) is None
    assert resume_epoch(FinetuneConfig(workdir=str(tmp_path)), overwrite=False) is None


def test_epoch_keys_depend_on_seed_and_epoch_only():
    def data(key):
        return jax.random.key_data(key).tolist()

    config = PretrainConfig(workdir="a")
    same = FinetuneConfig(workdir="b")
    assert data(epoch_key(config, 2)) == data(epoch_key(same, 2))
    assert data(epoch_key(config, 2)) != data(epoch_key(config, 3))
    other_seed = config.replace(train=TrainConfig(seed=1))
    assert data(epoch_key(config, 2)) != data(epoch_key(other_seed, 2))


@pytest.mark.parametrize("seed", [0, 2**31 - 1, 2**31, 2**32 - 1])
def test_every_accepted_seed_makes_the_keys_jax_random_makes(seed):
    """Seeds are unsigned 32-bit: those of 2**31 and more once overflowed the key programs."""
    config = PretrainConfig().replace(train=TrainConfig(seed=seed))
    stream = jax.random.fold_in(jax.random.key(seed), 1)
    for epoch in (0, 5):
        expected = jax.random.key_data(jax.random.fold_in(stream, epoch))
        np.testing.assert_array_equal(jax.random.key_data(epoch_key(config, epoch)), expected)
    init = jax.random.key_data(stage_key(config, 0))
    np.testing.assert_array_equal(
        init, jax.random.key_data(jax.random.fold_in(jax.random.key(seed), 0))
    )
