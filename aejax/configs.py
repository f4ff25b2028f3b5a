"""Typed, frozen configuration for both stages, with a JSON round trip.

Defaults reproduce the reference PyTorch tutorial: 784-128-64 encoder, Adam 1e-3, batch 100,
10 epochs, PyTorch-style uniform initialisation.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from aejax.errors import UserError
from aejax.variants import FinetuneConfig, ObjectiveConfig

DATASETS = ("mnist", "fashion_mnist")
SOURCES = ("auto", "idx", "tfds")
INITS = ("torch", "lecun")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Layer widths and initialisation; the input width follows the data."""

    hidden: int = 128
    latent: int = 64
    num_classes: int = 10
    init: str = "torch"

    def __post_init__(self):
        _require(self.hidden > 0 and self.latent > 0, "layer widths must be positive")
        _require(self.num_classes > 1, "num_classes must be at least 2")
        _require(self.init in INITS, f"init must be one of {', '.join(INITS)}, got {self.init!r}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset, where to find it, and optional subsets for quick runs."""

    dataset: str = "mnist"
    source: str = "auto"
    data_dir: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None

    def __post_init__(self):
        _require(
            self.dataset in DATASETS,
            f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}",
        )
        _require(self.source in SOURCES, f"source must be one of {', '.join(SOURCES)}")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            _require(value is None or value > 0, f"{name} must be positive, got {value}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one stage."""

    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    keep_checkpoints: int = 3

    def __post_init__(self):
        _require(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        _require(self.batch_size > 0, f"batch size must be positive, got {self.batch_size}")
        _require(self.lr > 0, f"learning rate must be positive, got {self.lr}")
        _require(self.keep_checkpoints > 0, "keep_checkpoints must be positive")


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Everything one stage (pretrain or finetune) needs; saved as its config.json."""

    stage: str
    workdir: str = "runs/default"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    # Fine-tuning only: the pretrain stage directory whose encoder is transplanted.
    pretrained_dir: str | None = None
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)

    def __post_init__(self):
        _require(self.stage in ("pretrain", "finetune"), f"unknown stage {self.stage!r}")

    @property
    def stage_dir(self) -> Path:
        return Path(self.workdir) / self.stage

    @property
    def encoder_source_dir(self) -> Path:
        """Where fine-tuning finds the pretrained encoder (default: WORKDIR/pretrain)."""
        return Path(self.pretrained_dir) if self.pretrained_dir else Path(self.workdir) / "pretrain"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StageConfig:
        nested = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
        nested.update(objective=ObjectiveConfig, finetune=FinetuneConfig)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - fields
        _require(not unknown, f"unknown config keys: {', '.join(sorted(unknown))}")
        values = {k: (nested[k](**v) if k in nested else v) for k, v in raw.items()}
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> StageConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> StageConfig:
        return dataclasses.replace(self, **changes)


def pretrain_config(**overrides: Any) -> StageConfig:
    """The reference pretraining stage: MSE autoencoder, Adam 1e-3, batch 100, 10 epochs."""
    return StageConfig(stage="pretrain", **overrides)


def finetune_config(**overrides: Any) -> StageConfig:
    """The reference fine-tuning stage: encoder + Dense(10), cross-entropy, Adam 1e-3."""
    return StageConfig(stage="finetune", **overrides)
