"""The pretrained autoencoder as a generator of labelled training examples, and shifted copies.

Every generator is a pure function of (params, examples, key): the same key gives the same images.
They see only the labelled examples they are given — a batch of them, and per-class latent
statistics fitted on the labelled set — never test images or unlabelled ones.

- *latent mixing*: each example's code is interpolated, with a uniform random weight, towards the
  code of another example of the same class in the batch; the decoded mix keeps that label.
- *latent noise*: each example's code is moved by Gaussian noise scaled by its class's latent
  standard deviation (`NOISE_SCALE` of it per dimension), then decoded; same label.
- *shift* (the classical baseline): a copy translated by up to P pixels, background filled in.

`make_augment` turns a spec (`aejax.config.AugmentConfig`) into the function the training step
calls on each batch: ``augment(images, labels, weights, key, generator)`` returns the batch with
R generated examples per real one appended (the padding of a last batch keeps weight 0, and so do
its generations). Generated images are stored as uint8 like real ones, so the classifier's inputs
are normalised exactly as the test images are.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from aejax.config import AugmentConfig
from aejax.contracts import Augment
from aejax.data.datasets import normalize
from aejax.errors import UserError

NOISE_SCALE = 0.5  # noise std per code dimension, as a fraction of the class's spread there
LATENT_KINDS = ("latent-mix", "latent-noise")


class Generator(NamedTuple):
    """A frozen autoencoder's params and the per-class std of its codes on the labelled set."""

    params: Any
    class_std: jax.Array  # (classes, latent)


def to_uint8(pixels):
    """Images in [-1, 1] -> uint8 [0, 255]: `aejax.data.datasets.normalize` inverted (rounded)."""
    return jnp.round((jnp.clip(pixels, -1.0, 1.0) + 1.0) * 127.5).astype(jnp.uint8)


def coder(model):
    """``(encode, decode)`` of an `aejax.model.models.Autoencoder`: uint8 images -> codes ->
    [-1, 1]."""

    def encode(params, images):
        return model.apply({"params": params}, normalize(images), method=model.encode)

    def decode(params, codes):
        outputs = model.apply({"params": params}, codes, method=model.decode)
        return 2.0 * jax.nn.sigmoid(outputs) - 1.0 if model.logits else outputs

    return encode, decode


def class_latent_std(encode, params, images, labels, num_classes: int):
    """Per-class standard deviation of the codes of `images` (classes without examples: 0)."""
    codes = encode(params, images)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=codes.dtype)  # (N, classes)
    counts = jnp.maximum(onehot.sum(0), 1.0)[:, None]
    mean = onehot.T @ codes / counts
    variance = onehot.T @ jnp.square(codes) / counts - jnp.square(mean)
    return jnp.sqrt(jnp.maximum(variance, 0.0))


def fit_generator(model, params, images, labels, num_classes: int) -> Generator:
    """The generator of autoencoder `model` for a labelled set (its per-class code spread)."""
    encode, _ = coder(model)
    return Generator(params, class_latent_std(encode, params, images, labels, num_classes))


def same_class_partners(labels, weights, key):
    """For each example, a random other example of its class with weight > 0 (itself if none)."""
    n = labels.shape[0]
    same = (labels[:, None] == labels[None, :]) & (weights[None, :] > 0)
    itself = jnp.eye(n, dtype=bool)
    scores = jax.random.gumbel(key, (n, n))
    # Another member always beats itself; itself beats members of other classes.
    scores = jnp.where(same & ~itself, scores, jnp.where(itself, -1e9, -jnp.inf))
    return jnp.argmax(scores, axis=1)


def latent_mix(decode, params, codes, labels, weights, key):
    """Decoded interpolations between each code and a same-class partner's, uniform weight."""
    partner_key, weight_key = jax.random.split(key)
    partners = same_class_partners(labels, weights, partner_key)
    mix = jax.random.uniform(weight_key, (codes.shape[0], 1), codes.dtype)
    return decode(params, (1.0 - mix) * codes + mix * codes[partners])


def latent_noise(decode, params, codes, labels, class_std, key):
    """Decoded codes moved by Gaussian noise of `NOISE_SCALE` x their class's code std."""
    noise = jax.random.normal(key, codes.shape, codes.dtype)
    return decode(params, codes + NOISE_SCALE * class_std[labels] * noise)


def shift(images, key, pixels: int, side: int):
    """uint8 `images` (N, side*side), each translated by up to `pixels` in x and y, 0-filled."""
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * pixels + 1)
    padded = jnp.pad(images.reshape(-1, side, side), ((0, 0), (pixels, pixels), (pixels, pixels)))

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1]), (side, side))

    return jax.vmap(crop)(padded, offsets).reshape(images.shape)


def generate(kind: str, codec, images, labels, weights, key, generator: Generator):
    """One generated uint8 example per example of the batch (`kind`: a latent kind), same labels.

    `codec` is the autoencoder's ``(encode, decode)`` (`coder`); `generator` holds its params.
    """
    encode, decode = codec
    codes = encode(generator.params, images)
    if kind == "latent-mix":
        pixels = latent_mix(decode, generator.params, codes, labels, weights, key)
    else:
        pixels = latent_noise(decode, generator.params, codes, labels, generator.class_std, key)
    return to_uint8(pixels)


def make_augment(config: AugmentConfig, model=None, side: int = 28) -> Augment | None:
    """The batch augmentation `config` asks for (None for none, or R = 0); latent kinds need the
    pretrained autoencoder `model` whose params the `Generator` passed to each call holds."""
    kind, amount = config.kind, config.amount
    if kind == "none":
        return None
    if kind in LATENT_KINDS and model is None:
        raise ValueError(f"{kind} needs the autoencoder that generates")
    if kind == "shift" and amount >= side:
        raise UserError(
            f"shift:{amount} moves {side}-pixel images out of the frame; shift by fewer than "
            f"{side} pixels",
            settings=("augment",),
        )
    codec = coder(model) if kind in LATENT_KINDS else None

    def augment(images, labels, weights, key, generator):
        if kind == "shift":
            made = [shift(images, key, amount, side)]
        else:  # R generations per example, each from its own key
            keys = jax.random.split(key, amount)
            made = [generate(kind, codec, images, labels, weights, k, generator) for k in keys]
        copies = len(made) + 1
        return (
            jnp.concatenate([images, *made]),
            jnp.tile(labels, copies),
            jnp.tile(weights, copies),
        )

    return augment


def examples_per_class(model, params, images, labels, num_classes: int, key, count: int = 6):
    """For each class, its first example in the labelled set and `count` generations of it per
    latent kind: ``(sources (classes, D), {kind: (classes, count, D)})``, uint8."""
    codec = coder(model)
    generator = fit_generator(model, params, images, labels, num_classes)
    weights = jnp.ones(labels.shape, jnp.float32)
    sources = jnp.argmax(labels[None, :] == jnp.arange(num_classes)[:, None], axis=1)
    made = {}
    for kind in LATENT_KINDS:
        keys = jax.random.split(jax.random.fold_in(key, LATENT_KINDS.index(kind)), count)
        batches = [generate(kind, codec, images, labels, weights, k, generator) for k in keys]
        made[kind] = jnp.stack(batches, axis=1)[sources]
    return images[sources], made
