"""Typed, frozen configuration of the pipeline, validated on construction, with a JSON round trip.

Defaults reproduce the reference PyTorch tutorial: 784-128-64 encoder, Adam 1e-3, batch 100,
10 epochs, PyTorch-style uniform initialisation, MSE reconstruction, the whole classifier
fine-tuned. Each stage's config holds only what that stage uses: `PretrainConfig` the
reconstruction objective, `FinetuneConfig` the transfer and early-stopping options.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, ClassVar

from aejax.specs import (
    is_http_url,
    parse_augment,
    parse_dataset,
    parse_noise,
    redact_urls,
    require,
    require_integers,
    require_numbers,
    require_one_of,
    require_positive,
)

SOURCES = ("auto", "idx", "tfds", "download")
INITS = ("torch", "lecun")
ARCHS = ("mlp", "conv")
DTYPES = ("float32", "bfloat16")
LOSSES = ("mse", "bce", "vae")
MODES = ("full", "frozen", "discriminative")
SEEDS = 2**32  # seeds are unsigned 32-bit: what a JAX PRNG key takes
ENCODERS = ("pretrained", "scratch")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture, layer widths, initialisation and compute dtype; the input width follows the
    data. ``arch="conv"``: two stride-2 3x3 convolutions of hidden/8 and hidden/4 channels before
    the code (and transposed ones after it), for square images whose side is a multiple of 4."""

    hidden: int = 128
    latent: int = 64
    num_classes: int = 10
    init: str = "torch"
    dtype: str = "float32"  # of the matmuls; params and optimizer state stay float32
    arch: str = "mlp"

    def __post_init__(self):
        require_integers(self, "hidden", "latent", "num_classes")
        require_positive(self, "hidden", "latent")
        require(self.num_classes > 1, "num_classes must be at least 2", "num_classes")
        require_one_of(self.init, INITS, "init")
        require_one_of(self.dtype, DTYPES, "dtype")
        require_one_of(self.arch, ARCHS, "arch")
        conv_ok = self.arch != "conv" or self.hidden >= 8
        require(conv_ok, f"the conv architecture needs hidden >= 8, got {self.hidden}", "hidden")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset, where to find or download it, and optional subsets for quick runs.

    `dataset` is a named one (mnist, fashion_mnist) or a file of your own: ``npz:PATH`` (the
    arrays x_train, y_train, x_test, y_test, as Keras' mnist.npz) or ``idx:DIR`` (a folder of the
    four MNIST-style IDX files, e.g. KMNIST); files are read as they are, whatever `source` says.

    `mirror`: a base URL holding the four IDX archives, in place of the canonical mirrors.
    """

    dataset: str = "mnist"
    source: str = "auto"
    data_dir: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    mirror: str | None = None
    no_download: bool = False

    def __post_init__(self):
        parse_dataset(self.dataset)
        require_one_of(self.source, SOURCES, "source")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            require(value is None or value > 0, f"{name} must be positive, got {value}", name)
        forbidden = self.no_download and self.source == "download"
        message = "source download and no_download exclude each other"
        require(not forbidden, message, "source", "no_download")
        mirror_ok = self.mirror is None or is_http_url(self.mirror)
        shown = redact_urls(str(self.mirror))
        require(mirror_ok, f"mirror must be an http(s) URL, got {shown!r}", "mirror")

    @property
    def name(self) -> str:
        """A short name of the dataset: a named one's name, or a file's or folder's stem."""
        kind, where = parse_dataset(self.dataset)
        return where if kind == "named" else Path(where).stem


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one stage."""

    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    keep_checkpoints: int = 3

    def __post_init__(self):
        require_integers(self, "epochs", "batch_size", "seed", "keep_checkpoints")
        labels = {"batch_size": "batch size", "lr": "learning rate"}
        require_positive(self, "epochs", "batch_size", "lr", "keep_checkpoints", labels=labels)
        require(0 <= self.seed < SEEDS, f"seed {self.seed} is not in [0, {SEEDS - 1}]", "seed")


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """Pretraining objective: reconstruction loss and the corruption applied to inputs only."""

    loss: str = "mse"
    noise: str = "none"
    beta: float = 1.0  # vae: weight of the KL term (per pixel, as the reconstruction loss)

    def __post_init__(self):
        require_one_of(self.loss, LOSSES, "loss")
        parse_noise(self.noise)
        require_numbers(self, "beta")
        require(0 <= self.beta < math.inf, f"beta must be finite and >= 0, got {self.beta}", "beta")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Examples added to every fine-tuning step: decoded by the frozen pretrained autoencoder
    from mixed or perturbed codes of real ones, or shifted copies of them (never at test)."""

    augment: str = "none"

    def __post_init__(self):
        parse_augment(self.augment)

    @property
    def kind(self) -> str:
        kind, amount = parse_augment(self.augment)
        return "none" if amount == 0 else kind  # R = 0 adds nothing: the plain run

    @property
    def amount(self) -> int:
        return parse_augment(self.augment)[1]


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """Where the classifier's encoder starts, and which parts train at which lr."""

    encoder: str = "pretrained"
    mode: str = "full"
    encoder_lr_scale: float = 0.1

    def __post_init__(self):
        require_one_of(self.encoder, ENCODERS, "encoder")
        require_one_of(self.mode, MODES, "mode")
        require_positive(self, "encoder_lr_scale", labels={"encoder_lr_scale": "encoder lr scale"})


@dataclasses.dataclass(frozen=True)
class EarlyStoppingConfig:
    """An optional validation hold-out and how many epochs without improvement end training."""

    val_split: int = 0
    patience: int | None = None

    def __post_init__(self):
        require(self.val_split >= 0, f"val split must be >= 0, got {self.val_split}", "val_split")
        patience_ok = self.patience is None or self.patience > 0
        require(patience_ok, f"patience must be positive, got {self.patience}", "patience")
        require(
            self.patience is None or self.val_split > 0,
            "early stopping needs a validation set: set val_split with patience",
            "val_split",
        )


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """What both stages share; saved with the stage name as the stage folder's config.json."""

    stage: ClassVar[str]
    workdir: str = "runs/default"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    @property
    def stage_dir(self) -> Path:
        return Path(self.workdir) / self.stage

    def to_dict(self) -> dict[str, Any]:
        raw = {"stage": self.stage, **dataclasses.asdict(self)}
        if self.data.mirror:  # what is recorded never holds a mirror's credentials
            raw["data"]["mirror"] = redact_urls(self.data.mirror)
        return raw

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StageConfig:
        """The config a dict describes, of the class its ``stage`` names."""
        raw = dict(raw)
        stage = raw.pop("stage", None)
        kinds = {c.stage: c for c in (PretrainConfig, FinetuneConfig)}
        require(stage in kinds, f"unknown stage {stage!r}")
        kind = kinds[stage]
        raw = kind.upgrade(raw)
        fields = {f.name: f for f in dataclasses.fields(kind)}
        unknown = set(raw) - set(fields)
        require(not unknown, f"unknown config keys: {', '.join(sorted(unknown))}")
        values = {k: _build(fields[k], v) for k, v in raw.items()}
        return kind(**values)

    @classmethod
    def from_json(cls, text: str) -> StageConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def upgrade(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """`raw` in the current layout (config.json files of older versions stay loadable)."""
        return raw

    def replace(self, **changes: Any) -> StageConfig:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class PretrainConfig(StageConfig):
    """The autoencoder stage: the reference is MSE on clean inputs."""

    stage: ClassVar[str] = "pretrain"
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)

    @classmethod
    def upgrade(cls, raw: dict[str, Any]) -> dict[str, Any]:
        # Older versions gave every stage every option; pretraining never used these two.
        return {k: v for k, v in raw.items() if k not in ("finetune", "pretrained_dir")}


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(StageConfig):
    """The classifier stage: encoder from `pretrained_dir` (default WORKDIR/pretrain)."""

    stage: ClassVar[str] = "finetune"
    pretrained_dir: str | None = None
    transfer: TransferConfig = dataclasses.field(default_factory=TransferConfig)
    early_stopping: EarlyStoppingConfig = dataclasses.field(default_factory=EarlyStoppingConfig)
    augmentation: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    @property
    def encoder_source_dir(self) -> Path:
        """Where fine-tuning finds the pretrained encoder."""
        return Path(self.pretrained_dir) if self.pretrained_dir else Path(self.workdir) / "pretrain"

    @classmethod
    def upgrade(cls, raw: dict[str, Any]) -> dict[str, Any]:
        # Older versions kept transfer and early-stopping options together under "finetune",
        # and gave fine-tuning a pretraining objective it never used.
        raw = {k: v for k, v in raw.items() if k != "objective"}
        if "finetune" in raw:
            old = dict(raw.pop("finetune"))  # a copy: the caller's dict stays as it was
            stopping = [f.name for f in dataclasses.fields(EarlyStoppingConfig)]
            raw["early_stopping"] = {k: old.pop(k) for k in stopping if k in old}
            raw["transfer"] = old
        return raw


def nested_config(field: dataclasses.Field) -> type | None:
    """The config class of a field that holds a nested config (judged by its default), else None."""
    if field.default_factory is dataclasses.MISSING:
        return None
    default = field.default_factory()
    return type(default) if dataclasses.is_dataclass(default) else None


def _build(field: dataclasses.Field, value: Any) -> Any:
    """`value` as the field's config class when it is a nested config, else unchanged."""
    kind = nested_config(field)
    return kind(**value) if kind is not None else value


def pretrain_config(**overrides: Any) -> PretrainConfig:
    """The reference pretraining stage: MSE autoencoder, Adam 1e-3, batch 100, 10 epochs."""
    return PretrainConfig(**overrides)


def finetune_config(**overrides: Any) -> FinetuneConfig:
    """The reference fine-tuning stage: encoder + Dense(10), cross-entropy, Adam 1e-3."""
    return FinetuneConfig(**overrides)
