"""Configs: reference defaults, exact JSON round trips, clear refusals, and configs written by
earlier versions (one config with every option, under "finetune") still load and resume."""

import copy
import json

import pytest

from aejax.config import (
    DataConfig,
    EarlyStoppingConfig,
    FinetuneConfig,
    ModelConfig,
    ObjectiveConfig,
    PretrainConfig,
    StageConfig,
    TrainConfig,
    TransferConfig,
    finetune_config,
    parse_noise,
    pretrain_config,
)
from aejax.errors import UserError
from aejax.run import workdir


def test_defaults_are_the_reference_pipeline():
    config = finetune_config()
    assert (config.model.hidden, config.model.latent, config.model.init) == (128, 64, "torch")
    assert config.model.dtype == "float32"
    assert (config.train.epochs, config.train.batch_size, config.train.lr) == (10, 100, 1e-3)
    assert config.data.dataset == "mnist"
    assert config.transfer == TransferConfig(encoder="pretrained", mode="full")
    assert config.early_stopping == EarlyStoppingConfig(val_split=0, patience=None)
    assert pretrain_config().objective == ObjectiveConfig(loss="mse", noise="none")


def test_each_stage_has_its_own_config_class():
    assert isinstance(pretrain_config(), PretrainConfig) and pretrain_config().stage == "pretrain"
    assert isinstance(finetune_config(), FinetuneConfig) and finetune_config().stage == "finetune"
    assert str(finetune_config(workdir="w").stage_dir) == "w/finetune"
    assert str(finetune_config(workdir="w").encoder_source_dir) == "w/pretrain"
    assert str(finetune_config(pretrained_dir="p").encoder_source_dir) == "p"


def test_json_round_trip_is_exact():
    config = FinetuneConfig(
        workdir="w",
        model=ModelConfig(hidden=7, latent=3, init="lecun", dtype="bfloat16"),
        data=DataConfig(dataset="fashion_mnist", data_dir="/x", train_limit=5),
        train=TrainConfig(epochs=2, lr=0.5, seed=9),
        pretrained_dir="p",
    )
    assert StageConfig.from_json(config.to_json()) == config


def test_variant_options_round_trip_through_json():
    pre = PretrainConfig(objective=ObjectiveConfig(loss="bce", noise="mask:0.25"))
    fine = FinetuneConfig(
        transfer=TransferConfig(mode="discriminative", encoder_lr_scale=0.3),
        early_stopping=EarlyStoppingConfig(val_split=50, patience=2),
    )
    for config in (pre, fine):
        assert StageConfig.from_json(config.to_json()) == config
    assert json.loads(pre.to_json())["stage"] == "pretrain"


def test_noise_specs_parse():
    assert parse_noise("none") == ("none", 0.0)
    assert parse_noise("gaussian:0.3") == ("gaussian", 0.3)
    assert parse_noise("mask:0.5") == ("mask", 0.5)


@pytest.mark.parametrize(
    "make, fragment, settings",
    [
        (lambda: TrainConfig(epochs=0), "epochs must be positive", ("epochs",)),
        (lambda: TrainConfig(batch_size=-1), "batch size must be positive", None),
        (lambda: TrainConfig(lr=0.0), "learning rate must be positive", ("lr",)),
        (
            lambda: DataConfig(dataset="cifar"),
            "dataset must be mnist, fashion_mnist, npz:PATH or idx:DIR, got 'cifar'",
            ("dataset",),
        ),
        (lambda: ModelConfig(init="xavier"), "init must be one of", ("init",)),
        (lambda: ModelConfig(dtype="float16"), "dtype must be one of", ("dtype",)),
        (
            lambda: StageConfig.from_dict({"stage": "pretrain", "bogus": 1}),
            "unknown config keys: bogus",
            (),
        ),
        (lambda: StageConfig.from_dict({"stage": "evaluate"}), "unknown stage", ()),
        (lambda: TrainConfig(keep_checkpoints=0), "keep_checkpoints must be positive", None),
        (lambda: ObjectiveConfig(noise="salt:0.1"), "noise must be", ("noise",)),
        (lambda: ObjectiveConfig(noise="mask:1.5"), "below 1", ("noise",)),
        (lambda: ObjectiveConfig(noise="gaussian:x"), "not a number", ("noise",)),
        (lambda: ObjectiveConfig(loss="l1"), "loss must be", ("loss",)),
        (lambda: TransferConfig(mode="partial"), "mode must be", ("mode",)),
        (
            lambda: TransferConfig(encoder_lr_scale=0),
            "scale must be positive",
            ("encoder_lr_scale",),
        ),
        (
            lambda: EarlyStoppingConfig(patience=3),
            "early stopping needs a validation set: set val_split with patience",
            ("val_split",),
        ),
    ],
)
def test_nonsense_is_refused_with_a_message_and_the_settings_to_fix(make, fragment, settings):
    with pytest.raises(UserError, match=fragment) as info:
        make()
    if settings is not None:
        assert info.value.settings == settings


def test_a_stage_config_holds_only_its_own_options():
    with pytest.raises(TypeError):
        PretrainConfig(transfer=TransferConfig())
    with pytest.raises(TypeError):
        FinetuneConfig(objective=ObjectiveConfig())


# config.json as earlier versions wrote it: one class for both stages, with every option.
EARLIER_MODEL = {"hidden": 32, "latent": 16, "num_classes": 10, "init": "lecun"}
EARLIER_DATA = {
    "dataset": "fashion_mnist",
    "source": "idx",
    "data_dir": "/data/fashion",
    "train_limit": 3000,
    "test_limit": None,
}
EARLIER_TRAIN = {"epochs": 4, "batch_size": 50, "lr": 0.002, "seed": 7, "keep_checkpoints": 2}


def _earlier_pretrain_json() -> dict:
    return {
        "stage": "pretrain",
        "workdir": "runs/old",
        "model": dict(EARLIER_MODEL),
        "data": dict(EARLIER_DATA),
        "train": dict(EARLIER_TRAIN),
        "pretrained_dir": None,
        "objective": {"loss": "bce", "noise": "mask:0.3"},
        "finetune": {
            "mode": "full",
            "encoder": "pretrained",
            "encoder_lr_scale": 0.1,
            "val_split": 0,
            "patience": None,
        },
    }


def _earlier_finetune_json() -> dict:
    return {
        "stage": "finetune",
        "workdir": "runs/old",
        "model": dict(EARLIER_MODEL),
        "data": dict(EARLIER_DATA),
        "train": dict(EARLIER_TRAIN),
        "pretrained_dir": "runs/other/pretrain",
        "objective": {"loss": "mse", "noise": "none"},
        "finetune": {
            "mode": "discriminative",
            "encoder": "pretrained",
            "encoder_lr_scale": 0.2,
            "val_split": 500,
            "patience": 3,
        },
    }


def _same_config_now(stage: str) -> StageConfig:
    common = {
        "workdir": "runs/old",
        "model": ModelConfig(hidden=32, latent=16, num_classes=10, init="lecun"),
        "data": DataConfig("fashion_mnist", "idx", "/data/fashion", train_limit=3000),
        "train": TrainConfig(epochs=4, batch_size=50, lr=0.002, seed=7, keep_checkpoints=2),
    }
    if stage == "pretrain":
        return PretrainConfig(**common, objective=ObjectiveConfig(loss="bce", noise="mask:0.3"))
    return FinetuneConfig(
        **common,
        pretrained_dir="runs/other/pretrain",
        transfer=TransferConfig(encoder="pretrained", mode="discriminative", encoder_lr_scale=0.2),
        early_stopping=EarlyStoppingConfig(val_split=500, patience=3),
    )


@pytest.mark.parametrize(
    "stage, earlier", [("pretrain", _earlier_pretrain_json), ("finetune", _earlier_finetune_json)]
)
def test_configs_written_by_earlier_versions_load_with_the_same_values(stage, earlier):
    loaded = StageConfig.from_dict(earlier())
    assert loaded == _same_config_now(stage) and loaded.stage == stage
    assert loaded.model.dtype == "float32"  # earlier versions computed in float32 only
    assert StageConfig.from_json(json.dumps(earlier())) == loaded
    # Their run folders still resume: the resume key matches that of today's same config.
    assert workdir.resume_key(loaded) == workdir.resume_key(_same_config_now(stage))


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_configs_written_before_the_variant_options_still_load(stage):
    raw = {**_earlier_pretrain_json(), "stage": stage}
    del raw["objective"], raw["finetune"]
    loaded = StageConfig.from_dict(raw)
    assert loaded.stage == stage and loaded.train == TrainConfig(**EARLIER_TRAIN)
    if stage == "pretrain":
        assert loaded.objective == ObjectiveConfig()
    else:
        assert loaded.transfer == TransferConfig() and loaded.early_stopping.patience is None


@pytest.mark.parametrize(
    "stage, earlier, other",
    [
        ("pretrain", _earlier_pretrain_json, {"objective": ObjectiveConfig(loss="mse")}),
        ("finetune", _earlier_finetune_json, {"pretrained_dir": "elsewhere"}),
    ],
)
def test_a_run_folder_of_an_earlier_version_resumes(tmp_path, stage, earlier, other):
    def write_earlier_config():
        raw = {**earlier(), "workdir": str(tmp_path)}
        (tmp_path / stage / "config.json").write_text(json.dumps(raw, indent=2, sort_keys=True))

    (tmp_path / stage).mkdir()
    config = _same_config_now(stage).replace(workdir=str(tmp_path))
    more_epochs = config.replace(train=TrainConfig(epochs=9, batch_size=50, lr=0.002, seed=7))
    for same in (config, more_epochs):
        write_earlier_config()
        assert workdir.prepare_stage_dir(same) == tmp_path / stage  # not "a different config"
    write_earlier_config()
    with pytest.raises(UserError, match="different config"):
        workdir.prepare_stage_dir(config.replace(**other))


def test_loading_leaves_the_given_dict_unchanged():
    raw = _earlier_finetune_json()
    before = copy.deepcopy(raw)
    first = StageConfig.from_dict(raw)
    assert raw == before
    assert StageConfig.from_dict(raw) == first
