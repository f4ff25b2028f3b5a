"""The random streams of a run: keys that are pure functions of the seed (and the epoch), so a
resumed run replays exactly the data order and noise of an uninterrupted one."""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh

from aejax.config import StageConfig
from aejax.engine import compile_cache, parallel

INIT_STREAM, EPOCH_STREAM = 0, 1  # independent random streams derived from the seed


def _stream_key(seed, stream):
    return jax.random.fold_in(jax.random.key(seed), stream)


def _epoch_key(seed, epoch):
    return jax.random.fold_in(_stream_key(seed, EPOCH_STREAM), epoch)


@functools.cache
def _key_program(key_fn, mesh: Mesh | None):
    """`key_fn` compiled for a seed and a stream or epoch number; with a mesh, its key is made
    replicated there (even across processes, where a key cannot be copied onto the mesh
    afterwards). On one device, a warm run loads the program kept by an earlier one."""
    args = (np.uint32(0), np.int32(0))
    if mesh is not None:
        return parallel.jit_onto(key_fn, mesh).lower(*args).compile()
    recipe = f"aejax.engine.keys.{key_fn.__name__}"  # the function and its arguments are all
    return compile_cache.compile_program(key_fn, args, recipe=recipe)


def _seed(config: StageConfig) -> np.uint32:
    # Seeds are unsigned 32-bit: a Python int of 2**31 or more overflows a program's int32.
    return np.uint32(config.train.seed)


def stage_key(config: StageConfig, stream: int, mesh: Mesh | None = None):
    """The key of one random stream of a run: a pure function of the seed."""
    return _key_program(_stream_key, mesh)(_seed(config), np.int32(stream))


def epoch_key(config: StageConfig, epoch: int, mesh: Mesh | None = None):
    """A pure function of seed and epoch, so a resumed run replays the same data order."""
    # One compiled program for all epochs (seed and epoch are arguments, not constants).
    return _key_program(_epoch_key, mesh)(_seed(config), np.int32(epoch))
