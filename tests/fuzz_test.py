"""Fuzzing the doors: whatever a flag value, an IDX header or a config.json holds, aejax either
takes it or refuses it as a user error (one line, exit 2), never with another exception.

Each of the six targets draws `EXAMPLES` inputs (derandomized: the same ones every run)."""

import json

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aejax import FinetuneConfig, PretrainConfig
from aejax.cli import PARSERS, config_from_args
from aejax.data.idx import read_idx
from aejax.errors import UserError
from aejax.run.workdir import read_stage_config

EXAMPLES = 250
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
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
    "finetune": ["--encoder-lr-scale", "--val-split", "--patience", "--num-classes"],
}
SPEC_FLAGS = {"pretrain": ["--noise", "--dataset", "--mirror"], "finetune": ["--augment"]}
KINDS = {"pretrain": PretrainConfig, "finetune": FinetuneConfig}

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
    """Parse `argv` with the stage's parser and build its config: accepted, or refused as a user
    error (argparse's own refusal is exit 2 too); anything else fails the test."""
    parser = PARSERS[stage]()
    try:
        args = parser.parse_args(argv)
        config = config_from_args(KINDS[stage], args)
        jax.random.key(config.train.seed)  # the first thing a run does with its seed
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
