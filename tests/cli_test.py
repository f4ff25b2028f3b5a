"""The scripts' command line: flags default to the config classes' defaults, reach the nested
configs, and user errors become one line on stderr naming the flags that fix them, exit 2."""

import argparse
import dataclasses
import json
import signal

import pytest

from aejax import cli
from aejax.config import FinetuneConfig, PretrainConfig
from aejax.errors import TrainingInterrupted, UserError
from aejax.research.label_budget import LabelBudgetConfig, parse_budgets
from support import REPO


def _raises(error):
    def main(args):
        raise error

    return main


def test_every_script_has_a_parser():
    scripts = {p.stem for p in (REPO / "scripts").glob("*.py")}
    assert set(cli.PARSERS) == scripts
    for make in cli.PARSERS.values():
        assert "--debug" in make().format_help()


def test_a_user_error_is_one_line_naming_its_flags_and_exit_2(capsys):
    error = UserError("learning rate too large", settings=("lr",))
    assert cli.run(_raises(error), cli.pretrain_parser(), []) == cli.USER_ERROR_EXIT == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines == ["error: learning rate too large (flags: --lr)"]
    assert captured.out == ""


def _stderr(capsys, parser, *settings) -> str:
    assert cli.run(_raises(UserError("bad", settings=settings)), parser, []) == 2
    return capsys.readouterr().err


def test_the_hint_names_only_flags_that_script_has(capsys):
    settings = ("val_split", "patience", "workdir")
    fine, pre = cli.finetune_parser(), cli.pretrain_parser()
    hint = "(flags: --val-split, --patience, --workdir)"
    assert _stderr(capsys, fine, *settings) == f"error: bad {hint}\n"
    assert _stderr(capsys, pre, *settings) == "error: bad (flags: --workdir)\n"
    assert _stderr(capsys, pre, "val_split") == "error: bad\n"
    # A setting whose flag has another name: --labels fills `budgets`.
    assert _stderr(capsys, cli.label_budget_parser(), "budgets") == "error: bad (flags: --labels)\n"


def test_debug_shows_the_traceback_instead():
    with pytest.raises(UserError, match="boom"):
        cli.run(_raises(UserError("boom", settings=("lr",))), cli.pretrain_parser(), ["--debug"])


def test_results_are_printed_and_interruptions_keep_their_exit_status(capsys):
    assert cli.run(lambda args: {"lr": args.lr}, cli.pretrain_parser(), ["--lr", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out) == {"lr": 0.5}
    stop = TrainingInterrupted("stopped; run again", signal.SIGTERM)
    assert cli.run(_raises(stop), cli.pretrain_parser(), []) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "stopped; run again\n"


@pytest.mark.parametrize(
    "kind, parser", [(PretrainConfig, cli.pretrain_parser), (FinetuneConfig, cli.finetune_parser)]
)
def test_flag_defaults_are_the_config_defaults(kind, parser):
    assert cli.config_from_args(kind, parser().parse_args([])) == kind()


def test_label_budget_flag_defaults_are_the_study_defaults():
    args = cli.label_budget_parser().parse_args([])
    args.budgets = parse_budgets(args.budgets)
    assert cli.config_from_args(LabelBudgetConfig, args) == LabelBudgetConfig()


def test_flags_reach_the_nested_configs():
    argv = [
        "--lr", "0.01", "--dtype", "bfloat16", "--data-dir", "/d", "--train-limit", "30",
        "--mode", "frozen", "--val-split", "10", "--patience", "2", "--pretrained-dir", "p",
    ]  # fmt: skip
    config = cli.config_from_args(FinetuneConfig, cli.finetune_parser().parse_args(argv))
    assert config.train.lr == 0.01 and config.train.epochs == 10
    assert config.model.dtype == "bfloat16" and config.model.hidden == 128
    assert (config.data.data_dir, config.data.train_limit) == ("/d", 30)
    assert config.transfer.mode == "frozen" and config.transfer.encoder == "pretrained"
    assert (config.early_stopping.val_split, config.early_stopping.patience) == (10, 2)
    assert config.pretrained_dir == "p"
    pre = cli.config_from_args(
        PretrainConfig, cli.pretrain_parser().parse_args(["--loss", "bce", "--noise", "mask:0.2"])
    )
    assert (pre.objective.loss, pre.objective.noise) == ("bce", "mask:0.2")
    args = cli.label_budget_parser().parse_args(["--labels", "10,all", "--latent", "8"])
    args.budgets = parse_budgets(args.budgets)
    study = cli.config_from_args(LabelBudgetConfig, args)
    assert study.budgets == (10, None) and study.model.latent == 8


def test_each_pipeline_stage_takes_its_own_training_flags_over_the_shared_ones():
    argv = ["--epochs", "3", "--lr", "0.01", "--pretrain-epochs", "1", "--finetune-lr", "0.002"]
    args = cli.pipeline_parser().parse_args(argv)
    pre = cli.config_from_args(PretrainConfig, args, prefix="pretrain")
    fine = cli.config_from_args(FinetuneConfig, args, prefix="finetune")
    assert (pre.train.epochs, pre.train.lr) == (1, 0.01)
    assert (fine.train.epochs, fine.train.lr) == (3, 0.002)
    assert cli.config_from_args(FinetuneConfig, args, workdir="w", epochs=5).train.epochs == 5


def test_flag_names_are_unique_across_nested_configs_or_the_mapping_refuses():
    for kind in (PretrainConfig, FinetuneConfig, LabelBudgetConfig):
        names = cli.leaf_fields(kind)
        assert len(names) == len(set(names)), kind

    @dataclasses.dataclass(frozen=True)
    class Inner:
        lr: float = 0.1

    @dataclasses.dataclass(frozen=True)
    class Outer:
        lr: float = 0.2
        inner: Inner = dataclasses.field(default_factory=Inner)

    with pytest.raises(TypeError, match=r"repeats field names \['lr'\]"):
        cli.config_from_args(Outer, argparse.Namespace(lr=0.5))


def test_a_user_error_names_the_per_stage_flags_only_where_the_parser_has_them():
    assert cli.pipeline_parser().flag_for("pretrain_lr") == "--pretrain-lr"
    assert cli.pretrain_parser().flag_for("pretrain_lr") is None
