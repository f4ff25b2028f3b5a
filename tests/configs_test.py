import pytest

from aejax.configs import DataConfig, ModelConfig, StageConfig, TrainConfig, finetune_config
from aejax.errors import UserError


def test_defaults_are_the_reference_pipeline():
    config = finetune_config()
    assert (config.model.hidden, config.model.latent, config.model.init) == (128, 64, "torch")
    assert (config.train.epochs, config.train.batch_size, config.train.lr) == (10, 100, 1e-3)
    assert config.data.dataset == "mnist"


def test_json_round_trip_is_exact():
    config = StageConfig(
        stage="finetune",
        workdir="w",
        model=ModelConfig(hidden=7, latent=3, init="lecun"),
        data=DataConfig(dataset="fashion_mnist", data_dir="/x", train_limit=5),
        train=TrainConfig(epochs=2, lr=0.5, seed=9),
        pretrained_dir="p",
    )
    assert StageConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: TrainConfig(epochs=0), "epochs must be positive"),
        (lambda: TrainConfig(batch_size=-1), "batch size must be positive"),
        (lambda: TrainConfig(lr=0.0), "learning rate must be positive"),
        (lambda: DataConfig(dataset="cifar"), "unknown dataset 'cifar'"),
        (lambda: ModelConfig(init="xavier"), "init must be one of"),
        (lambda: StageConfig.from_dict({"stage": "pretrain", "bogus": 1}), "unknown config keys"),
    ],
)
def test_nonsense_is_refused_with_a_message(make, fragment):
    with pytest.raises(UserError, match=fragment):
        make()
