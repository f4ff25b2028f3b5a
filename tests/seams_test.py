"""A researcher's own pieces through the stages, checkpoints and resume kept: an Optax optimizer
(a schedule included, its learning rate reported per epoch) and callbacks that may end training."""

import importlib.util

import jax
import numpy as np
import optax
import pytest

import aejax
from aejax import Dataset, TrainConfig, UserError
from aejax.run.workdir import read_stage_config
from support import REPO, tiny_config


def _own_data(small_fashion):
    images, labels = small_fashion.train_images[:600], small_fashion.train_labels[:600]
    test_images, test_labels = small_fashion.test_images[:200], small_fashion.test_labels[:200]
    return Dataset.from_arrays(images.reshape(-1, 28, 28) / 255.0, labels, test_images, test_labels)


def test_adamw_with_warmup_cosine_and_a_stopping_callback(tmp_path, small_fashion):
    data = _own_data(small_fashion)  # 600 examples, batch 100: 6 steps an epoch
    schedule = optax.warmup_cosine_decay_schedule(0.0, 2e-3, warmup_steps=6, decay_steps=30)
    adamw = optax.inject_hyperparams(optax.adamw)(learning_rate=schedule, weight_decay=1e-4)
    seen = []

    def stop_after_two(row, state):
        seen.append((row["epoch"], int(state.step)))
        return row["epoch"] >= 2

    config = tiny_config("pretrain", tmp_path, epochs=4)
    run = aejax.pretrain(config, data, optimizer=adamw, callbacks=[stop_after_two], progress=False)
    assert seen == [(1, 6), (2, 12)] and run.metrics["stopped_by"] == "stop_after_two"
    # The learning rate of each epoch's last step (optimizer counts 5 and 11).
    lrs = [row["train_lr"] for row in run.history]
    assert lrs == pytest.approx([float(schedule(5)), float(schedule(11))], rel=1e-6)
    assert [len(losses) for losses in run.step_losses] == [6, 6]
    # Run again: it resumes from epoch 2 with the same optimizer, and trains on to epoch 4.
    more = aejax.pretrain(config, data, optimizer=adamw, progress=False)
    assert [row["epoch"] for row in more.history] == [1, 2, 3, 4]
    assert more.history[:2] == run.history and more.metrics["epochs_run_now"] == 2
    with pytest.raises(UserError, match=r"optimizer.given True in the folder, False now"):
        aejax.pretrain(config.replace(train=config.train), data, progress=False)


def test_a_frozen_encoder_stays_frozen_under_your_optimizer(tmp_path, small_fashion):
    data = _own_data(small_fashion)
    aejax.pretrain(tiny_config("pretrain", tmp_path, epochs=1), data, progress=False)
    config = tiny_config("finetune", tmp_path, epochs=2)
    config = config.replace(transfer=aejax.TransferConfig(mode="frozen"))
    result = aejax.finetune(config, data, optimizer=optax.sgd(0.1), progress=False)
    pretrained = aejax.load_stage(tmp_path / "pretrain").params["encoder"]
    same = jax.tree.map(np.array_equal, result.state.params["encoder"], pretrained)
    assert all(jax.tree.leaves(same))
    losses = [row["test_loss"] for row in result.history]
    assert losses[1] < losses[0]  # the head did train


@pytest.mark.parametrize(
    "given, message",
    [
        ({"optimizer": "adam"}, "optimizer must be an optax transformation, got str"),
        ({"callbacks": [print, 3]}, "callbacks must be a sequence of callables"),
    ],
)
def test_pieces_of_the_wrong_kind_are_one_line(tmp_path, small_fashion, given, message):
    with pytest.raises(UserError, match=message):
        aejax.pretrain(tiny_config("pretrain", tmp_path), small_fashion, progress=False, **given)
    assert not (tmp_path / "pretrain").exists()


def _guide_example():
    """docs/examples/own_pieces.py as a module: its conv models and objective are the ones here."""
    spec = importlib.util.spec_from_file_location(
        "own_pieces", REPO / "docs/examples/own_pieces.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_your_conv_model_and_objective_through_both_stages(tmp_path, small_fashion):
    data, example = _own_data(small_fashion), _guide_example()
    autoencoder, classifier = example.ConvAutoencoder(), example.ConvClassifier()
    l1 = example.l1_objective(autoencoder)  # a metrics function: one loss per example

    pre_config = tiny_config("pretrain", tmp_path, epochs=1)
    pre = aejax.pretrain(pre_config, data, model=autoencoder, objective=l1, progress=False)
    assert "test_mse" not in pre.metrics and (tmp_path / "pretrain/reconstructions.png").is_file()
    frozen = aejax.TransferConfig(mode="frozen")
    fine_config = tiny_config("finetune", tmp_path, epochs=1).replace(transfer=frozen)
    fine = aejax.finetune(fine_config, data, model=classifier, progress=False)
    same = jax.tree.map(np.array_equal, fine.state.params["encoder"], pre.state.params["encoder"])
    assert all(jax.tree.leaves(same))  # transplanted, then frozen
    with pytest.raises(UserError, match=r"trained your own model \(.*ConvAutoencoder\); pass it"):
        aejax.evaluate_stage(tmp_path / "pretrain", data)
    with pytest.raises(UserError, match=r"trained your own objective \(.*l1\); pass it"):
        aejax.evaluate_stage(tmp_path / "pretrain", data, model=autoencoder)
    again = aejax.evaluate_stage(tmp_path / "pretrain", data, model=autoencoder, objective=l1)
    assert again["loss"] == pytest.approx(pre.metrics["test_loss"], rel=1e-6)
    judged = aejax.evaluate_stage(tmp_path / "finetune", data, model=classifier)
    assert judged["accuracy"] == pytest.approx(fine.metrics["test_accuracy"], rel=1e-6)
    ids = aejax.predict(classifier, fine.state.params, data.test_images)
    assert np.mean(ids == data.test_labels) == pytest.approx(judged["accuracy"], abs=1e-6)
    with pytest.raises(UserError, match=r"model.given True in the folder, False now"):
        aejax.pretrain(pre_config.replace(train=TrainConfig(epochs=2)), data, progress=False)


def test_a_pipeline_takes_pieces_per_stage_and_one_optimizer_for_both(tmp_path, small_fashion):
    data, example = _own_data(small_fashion), _guide_example()
    autoencoder, classifier = example.ConvAutoencoder(), example.ConvClassifier()
    l1 = example.l1_objective(autoencoder)
    adamw = optax.adamw(1e-3, weight_decay=1e-4)
    configs = [tiny_config(stage, tmp_path, epochs=1) for stage in ("pretrain", "finetune")]
    run = aejax.run_pipeline(
        *configs,
        data,
        model={"pretrain": autoencoder, "finetune": classifier},
        optimizer=adamw,
        objective={"pretrain": l1},
        progress=False,
    )
    same = jax.tree.map(
        np.array_equal, run.finetune.state.params["encoder"], run.pretrain.state.params["encoder"]
    )
    assert not all(jax.tree.leaves(same))  # the transplanted encoder trained on
    pre, fine = (read_stage_config(tmp_path / stage)[1] for stage in ("pretrain", "finetune"))
    assert pre["model"]["given"] and pre["objective"]["given"] and pre["optimizer"]["given"]
    assert fine["model"]["given"] and fine["optimizer"]["given"] and not fine["objective"]["given"]
    assert "ConvClassifier" in str(fine["model"]) and "test_accuracy" in run.finetune.metrics


@pytest.mark.parametrize(
    "pieces, message",
    [
        ({"model": "module"}, r"a pipeline's model differs by stage: give \{'pretrain'"),
        ({"objective": {"pretrian": print}}, "objective names no stage pretrian: the stages are"),
    ],
)
def test_a_pipeline_refuses_pieces_it_cannot_share_out(tmp_path, small_fashion, pieces, message):
    configs = [tiny_config(stage, tmp_path) for stage in ("pretrain", "finetune")]
    with pytest.raises(UserError, match=message):
        aejax.run_pipeline(*configs, small_fashion, progress=False, **pieces)
    assert not (tmp_path / "pretrain").exists()
