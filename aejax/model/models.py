"""Flax Linen modules: Encoder, Decoder, Autoencoder, Classifier. No training logic here.

`Autoencoder` and `Classifier` both hold their encoder as a submodule named ``encoder`` (`ENCODER`)
so that the two parameter trees share that subtree exactly and the transplant is a PyTree
operation. ``dtype`` is the dtype of the matmuls; parameters and outputs are always float32.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.config import ModelConfig
from aejax.errors import UserError
from aejax.model.layers import conv, dense, image_side

Dtype = Any
ENCODER = "encoder"  # the submodule (and params subtree) that moves between the models


@functools.cache  # once per process, not once per stage
def warn_if_slow_dtype(dtype: str) -> None:
    """Say so when `dtype` is slower than float32 on this backend: bfloat16 on a CPU, where XLA
    computes the matmuls in float32 with conversions around them (1.2-1.3x slower per epoch)."""
    if dtype == "bfloat16" and jax.default_backend() == "cpu":
        warnings.warn(
            "bfloat16 runs slower than float32 on CPU (XLA converts its matmuls to float32 "
            "here); it pays on GPUs and TPUs",
            stacklevel=2,
        )


class Encoder(nn.Module):
    """x -> Dense(hidden) -> ReLU -> Dense(latent)."""

    hidden: int = 128
    latent: int = 64
    init_style: str = "torch"
    dtype: Dtype = jnp.float32
    with_hidden: bool = False  # also return the hidden activation (a VAE's variance head reads it)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = dense(self.hidden, x.shape[-1], self.init_style, self.dtype, "hidden")(x)
        h = nn.relu(x)
        z = dense(self.latent, self.hidden, self.init_style, self.dtype, "latent")(h)
        return (z, h) if self.with_hidden else z


class Decoder(nn.Module):
    """z -> Dense(hidden) -> ReLU -> Dense(output) -> tanh (pixels live in [-1, 1]).

    With ``logits=True`` the final tanh is left out: a BCE loss takes the logits directly, which
    is numerically stable where sigmoid-then-log is not.
    """

    hidden: int = 128
    output: int = 784
    init_style: str = "torch"
    dtype: Dtype = jnp.float32
    logits: bool = False

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        z = dense(self.hidden, z.shape[-1], self.init_style, self.dtype, "hidden")(z)
        z = nn.relu(z)
        out = dense(self.output, self.hidden, self.init_style, self.dtype, "output")(z)
        return out if self.logits else jnp.tanh(out)


class ConvEncoder(nn.Module):
    """x -> Conv(hidden/8) -> ReLU -> Conv(hidden/4) -> ReLU -> Dense(latent), the convolutions
    3x3 with stride 2 on the square image `x` holds (given flat, as every model takes it)."""

    hidden: int = 128
    latent: int = 64
    init_style: str = "torch"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        side = image_side(x.shape[-1])
        h = x.reshape(-1, side, side, 1)
        for i, channels in enumerate((self.hidden // 8, self.hidden // 4)):
            h = nn.relu(conv(channels, 9 * h.shape[-1], self.init_style, self.dtype, f"conv{i}")(h))
        flat = h.reshape(h.shape[0], -1)
        return dense(self.latent, flat.shape[-1], self.init_style, self.dtype, "latent")(flat)


class ConvDecoder(Decoder):
    """z -> Dense -> ReLU -> ConvTranspose(hidden/8) -> ReLU -> ConvTranspose(1) -> tanh: the
    conv encoder's mirror, back to `output` pixels (``logits=True``: without the tanh). The
    Decoder's settings, another body."""

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        small, (wide, deep) = image_side(self.output) // 4, (self.hidden // 8, self.hidden // 4)
        h = dense(small * small * deep, z.shape[-1], self.init_style, self.dtype, "expand")(z)
        h = nn.relu(h).reshape(-1, small, small, deep)
        h = nn.relu(conv(wide, 9 * deep, self.init_style, self.dtype, "up", up=True)(h))
        out = conv(1, 9 * wide, self.init_style, self.dtype, "output", up=True)(h)
        out = out.reshape(out.shape[0], -1)
        return out if self.logits else jnp.tanh(out)


def encoder_of(model: nn.Module, with_hidden: bool = False) -> nn.Module:
    """The encoder of a model with the same architecture, widths, init and dtype: one
    definition, one subtree."""
    if model.arch == "conv":
        return ConvEncoder(model.hidden, model.latent, model.init_style, model.dtype)
    return Encoder(
        hidden=model.hidden,
        latent=model.latent,
        init_style=model.init_style,
        dtype=model.dtype,
        with_hidden=with_hidden,
    )


class Autoencoder(nn.Module):
    """Encoder followed by Decoder; returns the reconstruction.

    With ``variational=True`` it is a VAE: a second head reads the encoder's hidden layer and
    gives the log-variance of a Gaussian code whose mean is the encoder's output. The encoder
    subtree is the same as a plain autoencoder's, so the mean path transplants as it is; calling
    the model decodes the mean (`posterior` and `decode` give the sampling path its parts).
    """

    hidden: int = 128
    latent: int = 64
    output: int = 784
    init_style: str = "torch"
    dtype: Dtype = jnp.float32
    logits: bool = False
    variational: bool = False
    arch: str = "mlp"

    def setup(self) -> None:
        self.encoder = encoder_of(self, with_hidden=self.variational)
        if self.variational:
            self.log_variance = dense(self.latent, self.hidden, self.init_style, self.dtype)
        decoder = ConvDecoder if self.arch == "conv" else Decoder
        self.decoder = decoder(
            hidden=self.hidden,
            output=self.output,
            init_style=self.init_style,
            dtype=self.dtype,
            logits=self.logits,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.variational:  # through the variance head too, so that init creates its params
            return self.decode(self.posterior(x)[0])
        return self.decode(self.encoder(x))

    def encode(self, x: jax.Array) -> jax.Array:
        """The code of `x` (a VAE's posterior mean)."""
        return self.encoder(x)[0] if self.variational else self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        # Losses in float32 whatever the matmul dtype (a no-op for float32 models).
        return self.decoder(z).astype(jnp.float32)

    def posterior(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """VAE only: mean and log-variance of the Gaussian code of `x`."""
        mean, hidden = self.encoder(x)
        return mean, self.log_variance(hidden).astype(jnp.float32)


class Classifier(nn.Module):
    """Encoder followed by a linear head; returns logits."""

    hidden: int = 128
    latent: int = 64
    num_classes: int = 10
    init_style: str = "torch"
    dtype: Dtype = jnp.float32
    arch: str = "mlp"

    def setup(self) -> None:
        self.encoder = encoder_of(self)
        self.head = dense(self.num_classes, self.latent, self.init_style, self.dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        # Softmax and cross-entropy in float32 whatever the matmul dtype (no-op for float32).
        return self.head(self.encoder(x)).astype(jnp.float32)


def make_autoencoder(
    config: ModelConfig, input_dim: int, logits: bool = False, variational: bool = False
) -> Autoencoder:
    """The autoencoder (a VAE with `variational`) described by `config` for `input_dim` inputs."""
    if variational and config.arch == "conv":
        raise UserError(
            "the vae loss needs the mlp architecture (its variance head reads the mlp encoder's "
            "hidden layer)",
            settings=("arch", "loss"),
        )
    return Autoencoder(
        hidden=config.hidden,
        latent=config.latent,
        output=input_dim,
        init_style=config.init,
        dtype=jnp.dtype(config.dtype),
        logits=logits,
        variational=variational,
        arch=config.arch,
    )


def make_classifier(config: ModelConfig) -> Classifier:
    """The classifier described by `config`."""
    return Classifier(
        hidden=config.hidden,
        latent=config.latent,
        num_classes=config.num_classes,
        init_style=config.init,
        dtype=jnp.dtype(config.dtype),
        arch=config.arch,
    )


def fingerprint(model: nn.Module, params, given: bool) -> dict[str, Any]:
    """What tells models apart: its class and its parameters' paths, shapes and dtypes, and
    whether it was given rather than built from the config."""
    layout = "\n".join(
        f"{jax.tree_util.keystr(path)} {tuple(leaf.shape)} {leaf.dtype}"
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
    )
    kind = type(model)
    digest = hashlib.sha256(layout.encode()).hexdigest()
    return {
        "given": given,
        "class": f"{kind.__module__}.{kind.__qualname__}",
        "params_sha256": digest,
    }
