"""The label-budget study end to end on a small real subset, and its training-length rule."""

import dataclasses
import json
import time
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.config import AugmentConfig, ModelConfig, TransferConfig
from aejax.data.datasets import to_device
from aejax.errors import UserError
from aejax.model.models import ENCODER, make_classifier
from aejax.research import label_budget, multi_seed
from aejax.research.label_budget import (
    Cell,
    LabelBudgetConfig,
    budget_indices,
    classifier_states,
    epochs_for,
    finetune_cell,
    format_budgets,
    parse_budgets,
    run_study,
)
from aejax.research.label_budget_report import markdown_table, write_outputs
from aejax.research.methods import Method, all_methods, parse_methods
from support import drawn


def test_budgets_parse_and_small_budgets_get_enough_steps():
    assert parse_budgets("100,1000,all") == (100, 1000, None)
    assert format_budgets((100, 1000, None)) == "100,1000,all"
    assert parse_budgets(format_budgets(LabelBudgetConfig().budgets)) == LabelBudgetConfig().budgets
    with pytest.raises(UserError, match="label budgets must be integers") as info:
        parse_budgets("100,lots")
    assert info.value.settings == ("budgets",)
    config = LabelBudgetConfig()
    assert epochs_for(100, config) == 500  # 1 step per epoch -> the 500-step floor
    assert epochs_for(1000, config) == 50
    assert epochs_for(10000, config) == 10 and epochs_for(60000, config) == 10


def test_methods_say_how_they_start_train_and_augment():
    methods = LabelBudgetConfig(encoder_lr_scale=0.3, shift_pixels=3).methods()
    assert methods["scratch"] == Method(TransferConfig(encoder="scratch"), None)
    assert methods["pretrained-full"] == Method(TransferConfig(encoder="pretrained", mode="full"))
    assert methods["pretrained-discriminative"].transfer == TransferConfig(
        mode="discriminative", encoder_lr_scale=0.3
    )
    assert methods["pretrained-frozen"].transfer == TransferConfig(mode="frozen")
    assert methods["pretrained-vae-full"].pretraining == "vae"
    assert methods["scratch+shift"].augmentation == AugmentConfig("shift:3")
    mix = methods["scratch+latent-mix"]
    assert mix.pretraining is None and mix.autoencoders == {"mse"}  # the MSE AE generates
    assert methods["pretrained-denoise-full"].autoencoders == {"denoise"}
    assert len(methods) == 13 and set(methods) == set(all_methods(0.1, 1, 1))
    chosen = LabelBudgetConfig(method_names=("scratch", "pretrained-bce-full")).methods()
    assert list(chosen) == ["scratch", "pretrained-bce-full"]
    assert parse_methods(" scratch, pretrained-full ") == ("scratch", "pretrained-full")
    with pytest.raises(UserError, match="unknown method.*pretrained-gan") as info:
        parse_methods("scratch,pretrained-gan")
    assert info.value.settings == ("methods",)


@pytest.mark.parametrize(
    "changes, setting",
    [({"seeds": 0}, "seeds"), ({"budgets": (100, 0)}, "budgets"), ({"budgets": ()}, "budgets")],
)
def test_bad_study_settings_are_refused(changes, setting):
    with pytest.raises(UserError) as info:
        LabelBudgetConfig(**changes)
    assert info.value.settings == (setting,)


def test_each_seed_draws_its_own_balanced_subset_and_the_same_seed_the_same():
    labels = np.repeat(np.arange(10), 50)
    subsets = budget_indices(labels, 100, [0, 1, 2])
    assert subsets.shape == (3, 100)
    for subset in subsets:
        assert np.bincount(labels[subset], minlength=10).tolist() == [10] * 10
    assert len({tuple(s) for s in subsets.tolist()}) == 3  # no two seeds share a subset
    np.testing.assert_array_equal(budget_indices(labels, 100, [2, 0])[0], subsets[2])
    every = budget_indices(labels, None, [0, 1])  # all labels: every seed the whole set
    assert every.shape == (2, 500) and (every == np.arange(500)).all()
    np.testing.assert_array_equal(budget_indices(labels, 500, [0, 1]), every)  # as many as all
    # Classes of unequal size: a budget of every label is every label, not a balanced draw.
    uneven = np.array([0] * 30 + [1] * 70)
    np.testing.assert_array_equal(budget_indices(uneven, 100, [0]), [np.arange(100)])


def test_pretrained_methods_start_from_their_autoencoders_encoder_and_scratch_does_not():
    config = LabelBudgetConfig(seeds=2, model=ModelConfig(hidden=32, latent=16))
    model = make_classifier(config.model)
    init = multi_seed.init_params(model, 784, multi_seed.seed_keys([0, 1], 2))
    pretrained = {
        objective: {ENCODER: jax.tree.map(lambda p, i=i: p + 1.0 + i, init[ENCODER])}
        for i, objective in enumerate(("mse", "vae"))
    }
    methods = config.methods()
    for name, objective in (("pretrained-full", "mse"), ("pretrained-vae-full", "vae")):
        _, states = classifier_states(config, methods[name], init, pretrained)
        chex.assert_trees_all_equal(states.params[ENCODER], pretrained[objective][ENCODER])
        chex.assert_trees_all_equal(states.params["head"], init["head"])  # the same head init
    _, scratch = classifier_states(config, methods["scratch"], init, pretrained)
    chex.assert_trees_all_equal(scratch.params, init)


def test_the_study_defaults_are_the_reported_ones_and_its_config_is_frozen():
    config = LabelBudgetConfig()
    assert config.budgets == (100, 1000, 10000, None) and config.seeds == 5
    assert (config.pretrain_epochs, config.epochs, config.min_steps) == (10, 10, 500)
    assert (config.batch_size, config.lr, config.encoder_lr_scale) == (100, 1e-3, 0.1)
    assert (config.generated_per_real, config.shift_pixels) == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seeds = 3


def test_each_seeds_random_streams_are_distinct_and_numbered_as_the_results_were_made():
    streams = (label_budget.AE_INIT, label_budget.AE_EPOCHS, label_budget.CLF_INIT)
    streams += (label_budget.CLF_EPOCHS,)
    # One key reused for two purposes would correlate them; other numbers would draw other
    # subsets of randomness than the study's recorded results (benchmarks/results) were made with.
    assert streams == (0, 1, 2, 3)


def test_a_cell_reports_each_seeds_last_epoch_train_accuracy(monkeypatch, small_fashion):
    config = LabelBudgetConfig(seeds=2, model=ModelConfig(hidden=32, latent=16))
    init = multi_seed.init_params(
        make_classifier(config.model), 784, multi_seed.seed_keys([0, 1], 2)
    )
    per_epoch = {"accuracy": np.array([[0.1, 0.5, 0.9], [0.2, 0.6, 0.8]])}  # (seeds, epochs)
    compiled = []

    def compile_run(metrics_fn, states, train, keys, indices, batch, epochs, augmentation):
        compiled.append((indices.shape, batch, epochs))
        return lambda states, *_: (states, per_epoch)

    monkeypatch.setattr(multi_seed, "compile_run", compile_run)
    cell = Cell(300, "scratch", jnp.zeros((2, 300), jnp.int32))
    tested = {"accuracy": np.array([0.3, 0.4])}
    data = to_device(small_fashion)
    accuracy, train = finetune_cell(config, data, (init, {}), cell, lambda *_: tested)
    assert train.tolist() == [0.9, 0.8] and accuracy.tolist() == [0.3, 0.4]
    # Trained on each seed's 300 labels, in batches of 100, as long as the rule says for 300.
    assert compiled == [((2, 300), 100, epochs_for(300, config))]


def test_a_cells_spread_is_the_sample_standard_deviation_over_seeds():
    config = LabelBudgetConfig(seeds=2, model=ModelConfig(hidden=32, latent=16))
    cell = Cell(20, "scratch", jnp.zeros((2, 20), jnp.int32))
    two = label_budget._cell_result(cell, config, np.array([0.5, 0.7]), np.array([0.9, 0.8]))
    assert two["mean"] == pytest.approx(0.6) and two["std"] == pytest.approx(0.2 / np.sqrt(2))
    one = label_budget._cell_result(
        Cell(20, "scratch", jnp.zeros((1, 20), jnp.int32)), config, np.array([0.5]), np.array([0.9])
    )
    assert one["std"] == 0.0 and one["accuracy"] == [0.5]


def test_the_smallest_budget_is_one_label_and_a_cell_is_frozen():
    assert LabelBudgetConfig(budgets=(1, None)).budgets == (1, None)
    with pytest.raises(UserError, match="label budgets must be positive"):
        LabelBudgetConfig(budgets=(0,))
    cell = Cell(1, "scratch", jnp.zeros((2, 1), jnp.int32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.budget = 2


# Last: the slowest, so that a quicker test that fails is seen first.
def test_study_runs_every_cell_and_writes_its_outputs(tmp_path, small_fashion, capsys):
    config = LabelBudgetConfig(
        budgets=(20, None),
        seeds=2,
        model=ModelConfig(hidden=32, latent=16),
        pretrain_epochs=1,
        epochs=1,
        min_steps=20,
        method_names=("scratch", "pretrained-vae-full", "scratch+latent-mix"),
    )
    started = time.perf_counter()
    result = run_study(config, small_fashion, progress=False)
    elapsed = time.perf_counter() - started
    assert "label budget" not in capsys.readouterr().err  # no progress bar when asked for none
    cells = result["cells"]
    assert len(cells) == 2 * 3
    # Every phase timed, each within the study's wall time.
    phases = [result["pretrain_s"], *(c["seconds"] for c in cells)]
    assert all(s > 0 for s in phases) and sum(phases) <= result["wall_s"] <= elapsed
    assert [c["method"] for c in cells[:3]] == list(config.method_names)
    assert [c["num_labels"] for c in cells[::3]] == [20, 2000]
    for cell in cells:
        assert len(cell["accuracy"]) == 2 and all(0.0 <= a <= 1.0 for a in cell["accuracy"])
        assert len(cell["train_accuracy"]) == 2
    for scratch, pretrained in zip(cells[::3], cells[1::3], strict=True):
        # Same init and optimizer but the encoder: the pretrained cells really start elsewhere.
        assert all(a != b for a, b in zip(scratch["accuracy"], pretrained["accuracy"], strict=True))
    full_data = [c for c in cells if c["labels"] == "all"]
    # Far above chance (0.1); one epoch of the 2000-label subset is only 20 Adam steps, which
    # reach about 0.53 on the CPU, so the bound leaves room for other backends' rounding.
    assert max(c["mean"] for c in full_data) > 0.4
    losses = result["pretrain_test_loss"]
    assert set(losses) == {"mse", "vae"} and len(losses["vae"]) == 2  # only what methods need
    real, mixes = result["examples"]["real"], result["examples"]["latent-mix"]
    assert real.shape == (10, 784) and mixes.shape == (10, 6, 784)
    paths = write_outputs(result, tmp_path)
    saved = json.loads((tmp_path / "label_budget.json").read_text())
    assert saved["cells"] == cells and "examples" not in saved
    assert saved["config"]["budgets"] == [20, "all"]
    assert saved["config"]["method_names"] == list(config.method_names)
    table = (tmp_path / "label_budget.md").read_text()
    assert table == markdown_table(result) and "| 20 |" in table and "scratch+latent-mix" in table
    assert set(paths) == {"json", "md", "png", "generated"}
    assert all(drawn(Path(p)) for k, p in paths.items() if k not in ("md", "json"))
