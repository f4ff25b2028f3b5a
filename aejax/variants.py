"""Typed options of the research variants: the pretraining objective and the fine-tuning mode.

Both default to the reference pipeline (MSE without noise; every parameter trained at one lr), so
configs written before these options existed load unchanged.
"""

from __future__ import annotations

import dataclasses

from aejax.errors import UserError

LOSSES = ("mse", "bce")
NOISE_KINDS = ("none", "gaussian", "mask")
MODES = ("full", "frozen", "discriminative")
ENCODERS = ("pretrained", "scratch")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def parse_noise(spec: str) -> tuple[str, float]:
    """``"gaussian:0.3"`` -> ``("gaussian", 0.3)``; ``"none"`` -> ``("none", 0.0)``."""
    kind, _, amount = spec.partition(":")
    if kind == "none" and not amount:
        return "none", 0.0
    _require(
        kind in NOISE_KINDS[1:] and bool(amount),
        f"noise must be none, gaussian:SIGMA or mask:P, got {spec!r}",
    )
    try:
        value = float(amount)
    except ValueError:
        raise UserError(f"noise amount in {spec!r} is not a number") from None
    _require(value > 0, f"noise amount must be positive, got {spec!r}")
    _require(kind != "mask" or value < 1, f"mask probability must be below 1, got {spec!r}")
    return kind, value


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """Pretraining objective: reconstruction loss and the corruption applied to inputs only."""

    loss: str = "mse"
    noise: str = "none"

    def __post_init__(self):
        _require(self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        parse_noise(self.noise)


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """How the classifier starts and which parts train at which lr; optional early stopping."""

    mode: str = "full"
    encoder: str = "pretrained"
    encoder_lr_scale: float = 0.1
    val_split: int = 0
    patience: int | None = None

    def __post_init__(self):
        _require(self.mode in MODES, f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        _require(
            self.encoder in ENCODERS,
            f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}",
        )
        _require(self.encoder_lr_scale > 0, "encoder lr scale must be positive")
        _require(self.val_split >= 0, f"val split must be >= 0, got {self.val_split}")
        _require(
            self.patience is None or self.patience > 0,
            f"patience must be positive, got {self.patience}",
        )
        _require(
            self.patience is None or self.val_split > 0,
            "early stopping needs a validation set; pass --val-split N with --patience",
        )
