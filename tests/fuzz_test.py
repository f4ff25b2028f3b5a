"""Fuzzing the doors: whatever a flag value, an IDX header or a config.json holds, aejax either
takes it or refuses it as a user error (one line, exit 2), never with another exception.

Each of the ten targets draws `EXAMPLES` inputs (derandomized: the same ones every run), each in
at most `DEADLINE` (a hang is a failure)."""

import json
from datetime import timedelta

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aejax import DataConfig, FinetuneConfig, PretrainConfig
from aejax.cli import PARSERS, config_from_args
from aejax.commands import _stage_configs
from aejax.data.idx import read_idx
from aejax.engine.distributed import Cluster
from aejax.errors import UserError
from aejax.run.workdir import read_stage_config

EXAMPLES = 250
DEADLINE = timedelta(seconds=10)  # parsing and checking take milliseconds; far above any slow host
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NUMERIC_FLAGS = {
    "pretrain": [
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--keep-checkpoints",
        "--hidden",
        "--latent",
        "--num-classes",
        "--train-limit",
        "--test-limit",
        "--beta",
    ],
    "finetune": [
        "--encoder-lr-scale",
        "--val-split",
        "--patience",
        "--num-classes",
        "--devices",
        "--num-processes",
        "--process-id",
    ],
    "pipeline": [
        "--pretrain-epochs",
        "--finetune-epochs",
        "--pretrain-lr",
        "--finetune-lr",
        "--pretrain-seed",
        "--finetune-seed",
        "--pretrain-batch-size",
        "--finetune-batch-size",
        "--keep-checkpoints",
    ],
    "label_budget": [
        "--seeds",
        "--epochs",
        "--pretrain-epochs",
        "--min-steps",
        "--batch-size",
        "--lr",
        "--encoder-lr-scale",
        "--generated-per-real",
        "--shift-pixels",
        "--hidden",
        "--latent",
        "--test-limit",
        "--devices",
    ],
}
SPEC_FLAGS = {
    "pretrain": ["--noise", "--dataset", "--mirror", "--coordinator"],
    "finetune": ["--augment"],
    "pipeline": ["--noise", "--augment", "--coordinator"],
    "label_budget": ["--labels", "--methods", "--dataset"],
}


def _stage(kind):
    def build(args):
        return [config_from_args(kind, args)]

    return build


def _pipeline(args):
    return list(_stage_configs(args, config_from_args(DataConfig, args)))


def _label_budget(args):
    from aejax.research.label_budget import LabelBudgetConfig, parse_budgets
    from aejax.research.methods import parse_methods

    names = None if args.method_names is None else parse_methods(args.method_names)
    budgets = parse_budgets(args.budgets)
    return [config_from_args(LabelBudgetConfig, args, budgets=budgets, method_names=names)]


# Each parser's configs, built as its command builds them.
BUILDERS = {
    "pretrain": _stage(PretrainConfig),
    "finetune": _stage(FinetuneConfig),
    "pipeline": _pipeline,
    "label_budget": _label_budget,
}

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e-3", "0x10", "1_000", "²", "١٢", "", " ", "nan", "-0", "1e400"]),
)
specs = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda kind, amount: f"{kind}:{amount}",
        st.sampled_from(
            [
                "gaussian",
                "mask",
                "latent-mix",
                "latent-noise",
                "shift",
                "npz",
                "idx",
                "none",
                "http",
                "ftp",
            ]
        ),
        st.one_of(
            st.text(max_size=12),
            st.integers(-5, 10**6).map(str),
            st.sampled_from(["²", "١٢", "1e3", "-1", "inf", "nan", "0"]),
        ),
    ),
)


def _door(stage: str, argv: list[str]) -> None:
    """Parse `argv` with the stage's parser and build its configs (and cluster): accepted, or
    refused as a user error (argparse's own refusal is exit 2 too); anything else fails."""
    parser = PARSERS[stage]()
    try:
        args = parser.parse_args(argv)
        for config in BUILDERS[stage](args):
            seed = getattr(getattr(config, "train", config), "seed", 0)
            jax.random.key(seed)  # the first thing a run does with its seed
        if hasattr(args, "coordinator"):
            Cluster(args.coordinator, args.num_processes, args.process_id)
    except SystemExit as exit_:
        assert exit_.code == 2
    except UserError as err:
        assert "\n" not in str(err)


@pytest.mark.parametrize("stage", list(NUMERIC_FLAGS))
def test_numeric_flags_take_or_refuse_any_value(stage, capsys):
    @FUZZ
    @given(flag=st.sampled_from(NUMERIC_FLAGS[stage]), value=numbers)
    def check(flag, value):
        _door(stage, [f"{flag}={value}"])

    check()
    capsys.readouterr()  # argparse's usage lines


@pytest.mark.parametrize("stage", list(SPEC_FLAGS))
def test_spec_flags_take_or_refuse_any_text(stage, capsys):
    @FUZZ
    @given(flag=st.sampled_from(SPEC_FLAGS[stage]), value=specs)
    def check(flag, value):
        _door(stage, [f"{flag}={value}"])

    check()
    capsys.readouterr()


@FUZZ
@given(
    magic=st.sampled_from([0x0801, 0x0803, 0x0802, 0x0800, 0x12345678]),
    dims=st.lists(st.integers(0, 2**32 - 1), max_size=4),
    body=st.binary(max_size=64),
)
def test_idx_headers_are_read_or_refused_in_one_line(tmp_path_factory, magic, dims, body):
    path = tmp_path_factory.mktemp("idx") / "x-idx-ubyte"
    path.write_bytes(magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + body)
    try:
        array = read_idx(path)
    except UserError as err:
        assert "\n" not in str(err)
    else:
        assert array.dtype == np.uint8 and array.size == len(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
config_sections = st.fixed_dictionaries(
    {"stage": st.sampled_from(["pretrain", "finetune", "other", 3])},
    optional={
        key: json_values
        for key in ("train", "model", "data", "objective", "transfer", "identity", "workdir")
    },
)


@FUZZ
@given(raw=st.one_of(config_sections, json_values))
def test_config_json_is_read_or_refused_in_one_line(tmp_path_factory, raw):
    stage_dir = tmp_path_factory.mktemp("stage")
    (stage_dir / "config.json").write_text(json.dumps(raw))
    try:
        read_stage_config(stage_dir)
    except UserError as err:
        assert "\n" not in str(err)
