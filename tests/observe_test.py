"""TensorBoard events, the profiler trace and the parameter table of a stage."""

import gzip
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from aejax.config import ModelConfig
from aejax.errors import UserError
from aejax.model.models import make_autoencoder, make_classifier
from aejax.run import observe
from aejax.stages import pretrain
from support import tiny_config


@pytest.fixture(scope="module")
def observed_run(tmp_path_factory, small_fashion):
    """A 3-epoch pretraining with TensorBoard events and a profiled epoch."""
    workdir = tmp_path_factory.mktemp("observed")
    watch = observe.Observe(tensorboard=True, profile_dir=str(workdir / "profile"))
    result = pretrain(
        tiny_config("pretrain", workdir, epochs=3), small_fashion, progress=False, observe=watch
    )
    return workdir, result


def test_tensorboard_holds_one_scalar_per_epoch_equal_to_the_metrics(observed_run):
    workdir, result = observed_run
    events = EventAccumulator(str(workdir / "pretrain" / "tensorboard"), {"images": 0})
    events.Reload()
    rows = [json.loads(line) for line in (workdir / "pretrain" / "metrics.jsonl").open()]
    for key, tag in [("train_loss", "train/loss"), ("test_loss", "test/loss")]:
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in rows], rel=1e-6)
    seconds = [s.value for s in events.Scalars("time/epoch_s")]
    assert seconds == pytest.approx([r["seconds"] for r in rows], rel=1e-6)
    assert events.Tags()["images"] == ["reconstructions"]
    assert "_hparams_/session_start_info" in events.Tags()["tensors"]
    assert 0 < result.metrics["tensorboard_s"] < 5


def test_a_long_stages_step_losses_are_thinned_to_what_tensorboard_shows(tmp_path):
    log = observe.TensorBoardLog(tmp_path)
    losses = np.arange(1, 6001, dtype=np.float32) / 10  # 10 epochs of 600 steps
    for epoch in range(10):
        log.steps("train/step_loss", losses[epoch * 600 : (epoch + 1) * 600], epoch * 600 + 1, 6000)
    log.close()
    events = EventAccumulator(str(tmp_path), {"scalars": 0})
    events.Reload()
    scalars = events.Scalars("train/step_loss")
    assert [s.step for s in scalars] == list(range(6, 6001, 6))  # 1 000 points, the last step's
    assert [s.value for s in scalars] == pytest.approx((losses[5::6]).tolist())
    assert observe.step_stride(1000) == 1 and observe.step_stride(1001) == 2


def test_the_profile_traces_one_steady_epoch_with_named_regions(observed_run):
    workdir, _ = observed_run
    traces = list((workdir / "profile").rglob("perfetto_trace.json.gz"))
    assert len(traces) == 1  # one epoch traced, not every one
    trace = json.loads(gzip.decompress(traces[0].read_bytes()))
    names = {event.get("name") for event in trace["traceEvents"]}
    assert {"epoch", "checkpoint"} <= names  # the epoch's one program trains, then tests
    assert observe.profile_epoch(0, 10) == 1 and observe.profile_epoch(4, 5) == 4


def test_an_unwritable_tensorboard_folder_is_a_warning_and_training_goes_on(
    tmp_path, small_fashion
):
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "tensorboard").write_text("a file where the folder would go")
    config = tiny_config("pretrain", tmp_path, epochs=1)
    with pytest.warns(UserWarning, match="TensorBoard events not written"):
        result = pretrain(config, small_fashion, progress=False)
    assert result.metrics["epochs"] == 1 and "tensorboard_s" not in result.metrics
    off = pretrain(
        config, small_fashion, progress=False, overwrite=True, observe=observe.Observe(False)
    )
    assert "tensorboard_s" not in off.metrics


def test_a_profile_folder_that_cannot_be_made_is_refused_before_training(tmp_path, small_fashion):
    (tmp_path / "blocker").write_text("")
    watch = observe.Observe(profile_dir=str(tmp_path / "blocker" / "profile"))
    with pytest.raises(UserError, match="cannot use .* for the profile") as info:
        pretrain(
            tiny_config("pretrain", tmp_path, epochs=1),
            small_fashion,
            progress=False,
            observe=watch,
        )
    assert info.value.settings == ("profile",)
    assert not (tmp_path / "pretrain" / "checkpoints").exists()


def test_the_parameter_table_counts_the_default_models():
    x = jnp.zeros((1, 784))
    autoencoder = make_autoencoder(ModelConfig(), 784)
    params = jax.eval_shape(autoencoder.init, jax.random.key(0), x)["params"]
    table = observe.parameter_table(params, "pretrain: parameters")
    assert "encoder/hidden/kernel" in table and "(784, 128)" in table
    assert table.splitlines()[-1].split()[-1] == "218,192"  # 784-128-64-128-784 with biases
    assert 218_192 == sum(leaf.size for leaf in jax.tree.leaves(params))
    assert len(table.splitlines()) == 2 + len(jax.tree.leaves(params)) + 1  # one row per leaf
    classifier = make_classifier(ModelConfig())
    params = jax.eval_shape(classifier.init, jax.random.key(0), x)["params"]
    total = observe.parameter_table(params, "").splitlines()[-1].split()[-1]
    assert total == f"{784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10:,}"


def test_tensorboard_holds_every_steps_training_loss(observed_run):
    workdir, result = observed_run
    events = EventAccumulator(str(workdir / "pretrain" / "tensorboard"), {"scalars": 0})
    events.Reload()
    steps = events.Scalars("train/step_loss")
    losses = np.concatenate(result.step_losses)
    assert len(result.step_losses) == 3 and len(losses) == 3 * 20  # 2000 examples, batch 100
    assert [s.step for s in steps] == list(range(1, 61))
    assert [s.value for s in steps] == pytest.approx(losses.tolist(), rel=1e-6)
    means = [r["train_loss"] for r in result.history]
    assert means == pytest.approx([s.mean() for s in result.step_losses], rel=1e-5)
