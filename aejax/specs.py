"""The strings of settings, parsed and checked: input noise (denoising) and fine-tuning
augmentation (``KIND:AMOUNT``), and download mirrors (http(s) URLs). Each bad spec is one
`UserError` naming its setting."""

from __future__ import annotations

from urllib.parse import urlsplit

from aejax.errors import UserError

NOISE_KINDS = ("none", "gaussian", "mask")
AUGMENT_KINDS = ("none", "latent-mix", "latent-noise", "shift")


def _require(condition: bool, message: str, setting: str) -> None:
    if not condition:
        raise UserError(message, settings=(setting,))


def parse_noise(spec: str) -> tuple[str, float]:
    """``"gaussian:0.3"`` -> ``("gaussian", 0.3)``; ``"none"`` -> ``("none", 0.0)``."""
    kind, _, amount = spec.partition(":")
    if kind == "none" and not amount:
        return "none", 0.0
    usage = f"noise must be none, gaussian:SIGMA or mask:P, got {spec!r}"
    _require(kind in NOISE_KINDS[1:] and bool(amount), usage, "noise")
    try:
        value = float(amount)
    except ValueError:
        raise UserError(f"noise amount in {spec!r} is not a number", settings=("noise",)) from None
    _require(value > 0, f"noise amount must be positive, got {spec!r}", "noise")
    _require(
        kind != "mask" or value < 1, f"mask probability must be below 1, got {spec!r}", "noise"
    )
    return kind, value


def parse_augment(spec: str) -> tuple[str, int]:
    """``"latent-mix:2"`` -> ``("latent-mix", 2)``: generated examples per real one (for
    ``shift:P``, the largest translation in pixels); ``"none"`` -> ``("none", 0)``."""
    kind, _, amount = spec.partition(":")
    if kind == "none" and not amount:
        return "none", 0
    usage = f"augment must be none, latent-mix:R, latent-noise:R or shift:P, got {spec!r}"
    _require(kind in AUGMENT_KINDS[1:] and amount.isdigit(), usage, "augment")
    return kind, int(amount)


def is_http_url(url: str) -> bool:
    """Whether `url` is an absolute http:// or https:// URL."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
