"""The label-budget study end to end on a small real subset, and its training-length rule."""

import json

import pytest

from aejax.config import ModelConfig, TransferConfig
from aejax.errors import UserError
from aejax.research.label_budget import (
    LabelBudgetConfig,
    epochs_for,
    format_budgets,
    parse_budgets,
    run_study,
)
from aejax.research.label_budget_report import markdown_table, write_outputs


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


def test_methods_are_the_four_transfer_configs():
    methods = LabelBudgetConfig(encoder_lr_scale=0.3).methods()
    assert methods == {
        "scratch": TransferConfig(encoder="scratch"),
        "pretrained-full": TransferConfig(encoder="pretrained", mode="full"),
        "pretrained-discriminative": TransferConfig(mode="discriminative", encoder_lr_scale=0.3),
        "pretrained-frozen": TransferConfig(mode="frozen"),
    }


@pytest.mark.parametrize(
    "changes, setting",
    [({"seeds": 0}, "seeds"), ({"budgets": (100, 0)}, "budgets"), ({"budgets": ()}, "budgets")],
)
def test_bad_study_settings_are_refused(changes, setting):
    with pytest.raises(UserError) as info:
        LabelBudgetConfig(**changes)
    assert info.value.settings == (setting,)


def test_study_runs_every_cell_and_writes_its_outputs(tmp_path, small_fashion):
    config = LabelBudgetConfig(
        budgets=(20, None),
        seeds=2,
        model=ModelConfig(hidden=32, latent=16),
        pretrain_epochs=1,
        epochs=1,
        min_steps=20,
    )
    result = run_study(config, small_fashion, progress=False)
    cells = result["cells"]
    assert len(cells) == 2 * 4
    assert {c["method"] for c in cells} == set(config.methods())
    assert [c["num_labels"] for c in cells[::4]] == [20, 2000]
    for cell in cells:
        assert len(cell["accuracy"]) == 2 and all(0.0 <= a <= 1.0 for a in cell["accuracy"])
        assert len(cell["train_accuracy"]) == 2
    full_data = [c for c in cells if c["labels"] == "all"]
    # Far above chance (0.1); one epoch of the 2000-label subset is only 20 Adam steps, which
    # reach about 0.53 on the CPU, so the bound leaves room for other backends' rounding.
    assert max(c["mean"] for c in full_data) > 0.4
    assert len(result["pretrain_test_mse"]) == 2 and "timing" not in result
    paths = write_outputs(result, tmp_path)
    saved = json.loads((tmp_path / "label_budget.json").read_text())
    assert saved["cells"] == cells
    assert saved["config"]["budgets"] == [20, "all"]
    table = (tmp_path / "label_budget.md").read_text()
    assert table == markdown_table(result) and "| 20 |" in table and "pretrained-frozen" in table
    assert (tmp_path / "label_budget.png").stat().st_size > 1000
    assert set(paths) == {"json", "md", "png"}
