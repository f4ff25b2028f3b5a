"""Settings checked, and the strings of settings parsed: input noise (denoising) and fine-tuning
augmentation (``KIND:AMOUNT``), datasets (a name, ``npz:PATH`` or ``idx:DIR``) and download
mirrors (http(s) URLs). Each bad setting is one `UserError` naming it."""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from aejax.errors import UserError

NOISE_KINDS = ("none", "gaussian", "mask")
AUGMENT_KINDS = ("none", "latent-mix", "latent-noise", "shift")


def require(condition: bool, message: str, *settings: str) -> None:
    """A `UserError` with `message`, naming the `settings` that fix it, unless `condition`."""
    if not condition:
        raise UserError(message, settings=settings)


def require_integers(config, *names: str) -> None:
    """Each named field holds an int (not a float such as 64.0, nor a bool)."""
    for name in names:
        value = getattr(config, name)
        ok = isinstance(value, int) and not isinstance(value, bool)
        require(ok, f"{name} must be a whole number, got {value!r}", name)


def require_numbers(config, *names: str) -> None:
    """Each named field holds a real number (e.g. not the string "1e-3")."""
    for name in names:
        value = getattr(config, name)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        require(ok, f"{name} must be a number, got {value!r}", name)


def require_positive(config, *names: str, labels: dict[str, str] | None = None) -> None:
    """Each named field holds a number above zero, and a finite one (`labels`: names for the
    messages, e.g. "learning rate")."""
    require_numbers(config, *names)
    for name in names:
        value, label = getattr(config, name), (labels or {}).get(name, name)
        finite = math.isfinite(value)
        message = f"{label} must be positive{'' if finite else ' and finite'}, got {value}"
        require(value > 0 and finite, message, name)


def require_one_of(value: str, choices: tuple[str, ...], name: str) -> None:
    require(value in choices, f"{name} must be one of {', '.join(choices)}, got {value!r}", name)


def parse_noise(spec: str) -> tuple[str, float]:
    """``"gaussian:0.3"`` -> ``("gaussian", 0.3)``; ``"none"`` -> ``("none", 0.0)``."""
    kind, _, amount = spec.partition(":")
    if kind == "none" and not amount:
        return "none", 0.0
    usage = f"noise must be none, gaussian:SIGMA or mask:P, got {spec!r}"
    require(kind in NOISE_KINDS[1:] and bool(amount), usage, "noise")
    try:
        value = float(amount)
    except ValueError:
        raise UserError(f"noise amount in {spec!r} is not a number", settings=("noise",)) from None
    positive = value > 0 and math.isfinite(value)
    require(positive, f"noise amount must be positive and finite, got {spec!r}", "noise")
    require(kind != "mask" or value < 1, f"mask probability must be below 1, got {spec!r}", "noise")
    return kind, value


def parse_augment(spec: str) -> tuple[str, int]:
    """``"latent-mix:2"`` -> ``("latent-mix", 2)``: generated examples per real one (for
    ``shift:P``, the largest translation in pixels); ``"none"`` -> ``("none", 0)``."""
    kind, _, amount = spec.partition(":")
    if kind == "none" and not amount:
        return "none", 0
    usage = f"augment must be none, latent-mix:R, latent-noise:R or shift:P, got {spec!r}"
    # Only ASCII digits: str.isdigit also takes "²", which int() refuses.
    require(kind in AUGMENT_KINDS[1:] and amount.isascii() and amount.isdigit(), usage, "augment")
    return kind, int(amount)


# The user:password@ (or token@) of a URL: credentials, never written or printed.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact_urls(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by ``***``."""
    return _URL_CREDENTIALS.sub("***@", text)


def is_http_url(url: str) -> bool:
    """Whether `url` is an absolute http:// or https:// URL."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


DATASETS = ("mnist", "fashion_mnist")  # the named datasets; files are npz:PATH or idx:DIR
FILE_KINDS = ("npz", "idx")


def parse_dataset(spec: str) -> tuple[str, str]:
    """``"fashion_mnist"`` -> ``("named", "fashion_mnist")``; ``"npz:data/x.npz"`` -> ``("npz",
    "data/x.npz")`` (Keras' mnist.npz layout); ``"idx:data/kmnist"`` -> ``("idx",
    "data/kmnist")`` (a folder of the four MNIST-style IDX files)."""
    if spec in DATASETS:
        return "named", spec
    kind, _, where = spec.partition(":")
    usage = f"dataset must be {', '.join(DATASETS)}, npz:PATH or idx:DIR, got {spec!r}"
    require(kind in FILE_KINDS and bool(where), usage, "dataset")
    return kind, where
