"""Variant options: defaults keep the reference behaviour, JSON round trip, clear refusals."""

import json

import pytest

from aejax.configs import StageConfig
from aejax.errors import UserError
from aejax.variants import FinetuneConfig, ObjectiveConfig, parse_noise


def test_variant_options_round_trip_through_json():
    config = StageConfig(
        stage="finetune",
        objective=ObjectiveConfig(loss="bce", noise="mask:0.25"),
        finetune=FinetuneConfig(
            mode="discriminative", encoder_lr_scale=0.3, val_split=50, patience=2
        ),
    )
    assert StageConfig.from_json(config.to_json()) == config


def test_configs_written_before_the_variants_still_load():
    raw = json.loads(StageConfig(stage="pretrain").to_json())
    del raw["objective"], raw["finetune"]
    loaded = StageConfig.from_dict(raw)
    assert loaded.objective == ObjectiveConfig() and loaded.finetune.mode == "full"


def test_noise_specs_parse():
    assert parse_noise("none") == ("none", 0.0)
    assert parse_noise("gaussian:0.3") == ("gaussian", 0.3)
    assert parse_noise("mask:0.5") == ("mask", 0.5)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: ObjectiveConfig(noise="salt:0.1"), "noise must be"),
        (lambda: ObjectiveConfig(noise="mask:1.5"), "below 1"),
        (lambda: ObjectiveConfig(noise="gaussian:x"), "not a number"),
        (lambda: ObjectiveConfig(loss="l1"), "loss must be"),
        (lambda: FinetuneConfig(mode="partial"), "mode must be"),
        (lambda: FinetuneConfig(patience=3), "needs a validation set"),
        (lambda: FinetuneConfig(encoder_lr_scale=0), "scale must be positive"),
    ],
)
def test_bad_variant_options_are_refused(make, fragment):
    with pytest.raises(UserError, match=fragment):
        make()
