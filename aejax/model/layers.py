"""The layers the built-in models are made of: PyTorch-style initialisers, Dense, and the 3x3
stride-2 convolutions of the conv architecture."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.errors import UserError

Dtype = Any
WINDOW = 3  # the side of every convolution window
STRIDE = 2  # and its step: each convolution halves the side, each transposed one doubles it


def torch_uniform(fan_in: int):
    """PyTorch `nn.Linear` init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for kernel and bias alike."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(features: int, fan_in: int, init: str, dtype: Dtype, name: str | None = None) -> nn.Dense:
    """A Dense layer initialised like PyTorch (`torch`) or with Flax defaults (`lecun`)."""
    if init == "torch":
        return nn.Dense(
            features,
            kernel_init=torch_uniform(fan_in),
            bias_init=torch_uniform(fan_in),
            dtype=dtype,
            name=name,
        )
    return nn.Dense(features, dtype=dtype, name=name)


def windows(x: jax.Array, stride: int) -> jax.Array:
    """Every 3x3 window of the (already padded) NHWC `x` at `stride`, flattened into the channel
    axis in (row, column, channel) order: the order of a flattened HWIO kernel."""
    rows, cols = (x.shape[1] - WINDOW) // stride + 1, (x.shape[2] - WINDOW) // stride + 1
    return jnp.concatenate(
        [
            x[:, i : i + stride * (rows - 1) + 1 : stride, j : j + stride * (cols - 1) + 1 : stride]
            for i in range(WINDOW)
            for j in range(WINDOW)
        ],
        axis=-1,
    )


# A SAME transposed convolution at stride 2 is four small convolutions, one per output phase
# (row parity, column parity): for each, the kernel rows (and columns) that meet an input pixel,
# with the offset of that pixel in the input padded by one before. Skipping the zeros a dilated
# input would hold does a quarter of the arithmetic.
PHASE_TAPS = (((0, 0), (2, 1)), ((1, 1),))


def transposed(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`nn.ConvTranspose(strides=2, padding="SAME")` of the NHWC `x` with the 3x3 HWIO `kernel`,
    phase by phase, without bias: (B, H, W, C) -> (B, 2H, 2W, F)."""
    batch, height, width, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0)))
    phases = [
        [
            jnp.concatenate(
                [padded[:, i : i + height, j : j + width] for _, i in rows for _, j in cols], -1
            )
            @ jnp.concatenate([kernel[ky, kx] for ky, _ in rows for kx, _ in cols], 0)
            for cols in PHASE_TAPS
        ]
        for rows in PHASE_TAPS
    ]
    out = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)
    return out.reshape(batch, STRIDE * height, STRIDE * width, kernel.shape[-1])


class StridedConv(nn.Module):
    """`nn.Conv(features, (3, 3), strides=2, padding="SAME")` (``up``: the `nn.ConvTranspose`
    twin), with the same parameters and the same values, computed as matmuls over the windows:
    XLA's CPU convolutions at these channel counts make an autoencoder training step take
    several times as long for the same arithmetic (`benchmarks/conv_layers.py`)."""

    features: int
    up: bool = False
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros_init()
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        shape = (WINDOW, WINDOW, x.shape[-1], self.features)
        kernel = self.param("kernel", self.kernel_init, shape, jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        x, kernel = jnp.asarray(x, self.dtype), jnp.asarray(kernel, self.dtype)
        bias = jnp.asarray(bias, self.dtype)
        if self.up:
            return transposed(x, kernel) + bias
        # SAME at stride 2 on an even side pads one row and one column after
        patches = windows(jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0))), STRIDE)
        return patches @ kernel.reshape(-1, self.features) + bias


def conv(features: int, fan_in: int, init: str, dtype: Dtype, name: str, up: bool = False):
    """A 3x3, stride-2 convolution (`up`: transposed, doubling the side), initialised like
    PyTorch (`torch`: fan_in = 9 x input channels) or with Flax defaults (`lecun`)."""
    inits = {}
    if init == "torch":
        inits = {"kernel_init": torch_uniform(fan_in), "bias_init": torch_uniform(fan_in)}
    return StridedConv(features, up=up, dtype=dtype, name=name, **inits)


def image_side(features: int) -> int:
    """The side of the square images a conv model takes, `features` pixels each."""
    side = math.isqrt(features)
    if side * side != features or side % 4:
        raise UserError(
            f"the conv architecture takes square images whose side is a multiple of 4, not "
            f"{features} pixels; use the mlp one",
            settings=("arch",),
        )
    return side
