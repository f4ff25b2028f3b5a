"""A trained model applied to new images: class ids (`predict`) and latent codes (`encode`).

Both take images as `aejax.Dataset.from_arrays` does (uint8 in [0, 255] or floats in [0, 1], in
any of its layouts) and normalise them exactly as training did; `model.apply` itself takes floats
in [-1, 1]. Images go through in fixed-size batches by one compiled program per model and size.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aejax.contracts import Arrays, Params
from aejax.data import contract
from aejax.data.datasets import normalize

BATCH_SIZE = 1000


def predict(
    model: nn.Module, params: Params, images: Arrays, batch_size: int = BATCH_SIZE
) -> np.ndarray:
    """The class id (int32) a classifier's logits pick for each image."""
    return _batched(_program(model, "predict"), params, images, batch_size)


def encode(
    model: nn.Module, params: Params, images: Arrays, batch_size: int = BATCH_SIZE
) -> np.ndarray:
    """Each image's latent code ``(N, latent)``: an autoencoder's `encode` (a VAE's mean code),
    or a classifier's `encoder` submodule."""
    return _batched(_program(model, "encode"), params, images, batch_size)


@functools.cache
def _program(model: nn.Module, kind: str):
    """``program(params, batches) -> outputs``, one batch after another (`jax.lax.map`)."""
    if kind == "predict":

        def one(params, batch):
            logits = model.apply({"params": params}, normalize(batch))
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)

    else:
        method = model.encode if hasattr(model, "encode") else (lambda m, x: m.encoder(x))

        def one(params, batch):
            return model.apply({"params": params}, normalize(batch), method=method)

    return jax.jit(lambda params, batches: jax.lax.map(lambda b: one(params, b), batches))


def _batched(program, params, images, batch_size: int) -> np.ndarray:
    """`program` over `images` in batches of `batch_size` (the last one padded, then cut)."""
    images = contract.as_images(images, "images")
    count = len(images)
    batch_size = min(batch_size, count)
    steps = -(-count // batch_size)
    padded = np.zeros((steps * batch_size, images.shape[1]), np.uint8)
    padded[:count] = images
    outputs = np.asarray(program(params, padded.reshape(steps, batch_size, -1)))
    return outputs.reshape(steps * batch_size, *outputs.shape[2:])[:count]
