"""aejax.RunOptions: how a stage runs, one bundle for every stage and the pipeline."""

import pytest

from aejax import Observe, RunOptions


def test_keywords_override_the_options_they_name():
    base = RunOptions(devices=2, observe=Observe(tensorboard=False))
    resolved = RunOptions.resolve(base, {"progress": False})
    assert resolved == RunOptions(progress=False, devices=2, observe=Observe(tensorboard=False))
    assert RunOptions.resolve(None, {}) == RunOptions()


def test_an_unknown_option_is_refused_with_the_known_ones():
    with pytest.raises(TypeError, match=r"unknown run options \['seen'\]; the options are"):
        RunOptions.resolve(None, {"seen": Observe()})


def test_options_of_another_type_are_refused():
    # A positional False, once the progress flag, must not pass for the default options.
    with pytest.raises(TypeError, match="options must be a RunOptions, got False"):
        RunOptions.resolve(False, {})
