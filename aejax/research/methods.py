"""The classifiers the label-budget study compares: how each starts, trains and augments.

A method's name says what it is: ``scratch`` or ``pretrained[-OBJECTIVE]-MODE`` (the encoder's
start: random, or transplanted from an autoencoder pretrained with that objective; MSE when none
is named), then ``+AUGMENTATION`` when every step adds generated or shifted examples. Generated
examples come from the seed's MSE autoencoder (the reference one), decoder included, whatever
encoder the classifier starts from.
"""

from __future__ import annotations

import dataclasses
import math

import jax

from aejax.config import AugmentConfig, ObjectiveConfig, TransferConfig
from aejax.contracts import Augmentation
from aejax.data.datasets import Dataset, DeviceData, normalize
from aejax.data.splits import balanced_indices
from aejax.errors import UserError
from aejax.model import generation, objectives
from aejax.model.models import make_autoencoder

# The pretraining objectives compared; "denoise" masks a quarter of the input pixels.
PRETRAININGS = {
    "mse": ObjectiveConfig(),
    "denoise": ObjectiveConfig(noise="mask:0.25"),
    "bce": ObjectiveConfig(loss="bce"),
    "vae": ObjectiveConfig(loss="vae"),
}
GENERATOR = "mse"  # the autoencoder that generates for the latent augmentations


@dataclasses.dataclass(frozen=True)
class Method:
    """One compared classifier: its encoder's start (`pretraining` None: scratch), how it trains,
    and what each step adds to the batch."""

    transfer: TransferConfig
    pretraining: str | None = "mse"
    augmentation: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    @property
    def autoencoders(self) -> set[str]:
        """The pretraining objectives this method needs an autoencoder of."""
        needed = {self.pretraining} if self.pretraining else set()
        if self.augmentation.kind.startswith("latent"):
            needed.add(GENERATOR)
        return needed


def all_methods(encoder_lr_scale: float, per_real: int, shift_pixels: int) -> dict[str, Method]:
    """Every method, by name: transfer modes, pretraining objectives, augmentations."""
    scratch = TransferConfig(encoder="scratch")
    methods = {
        "scratch": Method(scratch, None),
        "pretrained-full": Method(TransferConfig()),
        "pretrained-discriminative": Method(
            TransferConfig(mode="discriminative", encoder_lr_scale=encoder_lr_scale)
        ),
        "pretrained-frozen": Method(TransferConfig(mode="frozen")),
    }
    for objective in ("denoise", "bce", "vae"):
        methods[f"pretrained-{objective}-full"] = Method(TransferConfig(), objective)
    augmentations = {
        "shift": f"shift:{shift_pixels}",
        "latent-mix": f"latent-mix:{per_real}",
        "latent-noise": f"latent-noise:{per_real}",
    }
    for name, spec in augmentations.items():
        augment = AugmentConfig(spec)
        methods[f"scratch+{name}"] = Method(scratch, None, augment)
        methods[f"pretrained-full+{name}"] = Method(TransferConfig(), "mse", augment)
    return methods


def parse_methods(text: str) -> tuple[str, ...]:
    """``"scratch,pretrained-full"`` -> ``("scratch", "pretrained-full")``."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    known = all_methods(0.1, 1, 1)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UserError(
            f"unknown method(s) {', '.join(map(repr, unknown)) or '(none given)'}; known: "
            + ", ".join(known),
            settings=("methods",),
        )
    return names


def autoencoder(config, input_dim: int, objective: str):
    """The autoencoder pretrained with `objective`: its output layer and, for a VAE, its head."""
    goal = PRETRAININGS[objective]
    return make_autoencoder(
        config.model, input_dim, objectives.uses_logits(goal), objectives.is_variational(goal)
    )


def cell_augmentation(config, method: Method, data: DeviceData, cell, start):
    """The `Augmentation` of `method` in `cell` (None: none), its generator stacked per seed: each
    seed's generator is fitted on that seed's labelled subset only."""
    spec = method.augmentation
    if spec.kind == "none":
        return None
    side = math.isqrt(data.train.images.shape[1])
    if spec.kind == "shift":
        return Augmentation(generation.make_augment(spec, side=side))
    model = autoencoder(config, data.train.images.shape[1], GENERATOR)
    classes = config.model.num_classes

    def fit(params, indices):
        images, labels = data.train.images[indices], data.train.labels[indices]
        return generation.fit_generator(model, params, images, labels, classes)

    generators = jax.jit(jax.vmap(fit))(start[1][GENERATOR], cell.indices)
    return Augmentation(generation.make_augment(spec, model, side), generators)


def generated_examples(config, data: Dataset, autoencoders):
    """Seed 0's generations from its smallest-budget labelled subset, per class (host arrays)."""
    budget = config.budgets[0]
    indices = slice(None) if budget is None else balanced_indices(data.train_labels, budget, 0)
    model = autoencoder(config, data.input_dim, GENERATOR)
    params = jax.tree.map(lambda leaf: leaf[0], autoencoders)
    make = jax.jit(generation.examples_per_class, static_argnums=(0, 4))
    images, labels = data.train_images[indices], data.train_labels[indices]
    sources, made = make(model, params, images, labels, config.model.num_classes, jax.random.key(0))
    images = {"real": sources, **made}  # uint8 -> [-1, 1], as the figures take them
    return jax.device_get(jax.tree.map(normalize, images))
