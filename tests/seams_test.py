"""A researcher's own pieces through the stages, checkpoints and resume kept: an Optax optimizer
(a schedule included, its learning rate reported per epoch) and callbacks that may end training."""

import jax
import numpy as np
import optax
import pytest

import aejax
from aejax import Dataset, UserError
from support import tiny_config


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
        ({"optimizer": "adam"}, "optimizer must be an optax GradientTransformation, got str"),
        ({"callbacks": [print, 3]}, "callbacks must be a sequence of callables"),
    ],
)
def test_pieces_of_the_wrong_kind_are_one_line(tmp_path, small_fashion, given, message):
    with pytest.raises(UserError, match=message):
        aejax.pretrain(tiny_config("pretrain", tmp_path), small_fashion, progress=False, **given)
    assert not (tmp_path / "pretrain").exists()
