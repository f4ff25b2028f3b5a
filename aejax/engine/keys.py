"""The random streams of a run: keys that are pure functions of the seed (and the epoch), so a
resumed run replays exactly the data order and noise of an uninterrupted one."""

from __future__ import annotations

import functools

import jax
from jax.sharding import Mesh

from aejax.config import StageConfig
from aejax.engine import parallel

INIT_STREAM, EPOCH_STREAM = 0, 1  # independent random streams derived from the seed


def _stream_key(seed, stream):
    return jax.random.fold_in(jax.random.key(seed), stream)


def _epoch_key(seed, epoch):
    return jax.random.fold_in(_stream_key(seed, EPOCH_STREAM), epoch)


@functools.cache
def _key_program(key_fn, mesh: Mesh | None):
    """`key_fn` compiled; with a mesh, its key is made replicated there (even across processes,
    where a key cannot be copied onto the mesh afterwards)."""
    return parallel.jit_onto(key_fn, mesh)


def stage_key(config: StageConfig, stream: int, mesh: Mesh | None = None):
    """The key of one random stream of a run: a pure function of the seed."""
    return _key_program(_stream_key, mesh)(config.train.seed, stream)


def epoch_key(config: StageConfig, epoch: int, mesh: Mesh | None = None):
    """A pure function of seed and epoch, so a resumed run replays the same data order."""
    # One compiled program for all epochs (seed and epoch are arguments, not constants).
    return _key_program(_epoch_key, mesh)(config.train.seed, epoch)
