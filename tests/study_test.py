"""The label-budget study end to end on a small real subset, and its training-length rule."""

import json

import pytest

from aejax.configs import ModelConfig
from aejax.errors import UserError
from aejax.study import StudyConfig, epochs_for, parse_budgets, run_study
from aejax.study_report import markdown_table, write_outputs


def test_budgets_parse_and_small_budgets_get_enough_steps():
    assert parse_budgets("100,1000,all") == (100, 1000, None)
    with pytest.raises(UserError, match="--labels"):
        parse_budgets("100,lots")
    config = StudyConfig()
    assert epochs_for(100, config) == 500  # 1 step per epoch -> the 500-step floor
    assert epochs_for(1000, config) == 50
    assert epochs_for(10000, config) == 10 and epochs_for(60000, config) == 10


def test_study_runs_every_cell_and_writes_its_outputs(tmp_path, small_fashion):
    config = StudyConfig(
        budgets=(20, None),
        seeds=2,
        model=ModelConfig(hidden=32, latent=16),
        pretrain_epochs=1,
        epochs=1,
        min_steps=20,
        timing_seeds=2,
    )
    result = run_study(config, small_fashion, progress=False)
    cells = result["cells"]
    assert len(cells) == 2 * 4
    assert {c["method"] for c in cells} == set(config.methods())
    assert [c["num_labels"] for c in cells[::4]] == [20, 3000]
    for cell in cells:
        assert len(cell["accuracy"]) == 2 and all(0.0 <= a <= 1.0 for a in cell["accuracy"])
        assert len(cell["train_accuracy"]) == 2
    full_data = [c for c in cells if c["labels"] == "all"]
    assert max(c["mean"] for c in full_data) > 0.5  # 3000 labels: far above chance (0.1)
    assert result["timing"]["seeds"] == 2 and result["timing"]["vmapped_s"] > 0
    paths = write_outputs(result, tmp_path)
    saved = json.loads((tmp_path / "label_budget.json").read_text())
    assert saved["cells"] == cells
    table = (tmp_path / "label_budget.md").read_text()
    assert table == markdown_table(result) and "| 20 |" in table and "pretrained-frozen" in table
    assert (tmp_path / "label_budget.png").stat().st_size > 1000
    assert set(paths) == {"json", "md", "png"}
