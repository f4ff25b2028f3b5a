"""Lowered programs kept between runs (`jax.export`), so that a warm run does not lower them again.

JAX's persistent compilation cache (`aejax.compile_cache`) saves compiling, but to look a program
up JAX must first trace it and lower it to a StableHLO module; for the programs of a stage that
lowering costs more than the cache lookup itself. Here each lowered module is also serialized
into ``exported/`` inside the compilation cache folder, keyed on everything lowering depends on:

- the traced program (its jaxpr as printed, and the values of the constants it captured),
- the arguments' types and shardings, and which are donated,
- the JAX and jaxlib versions, JAX's configuration, the backend and its device kind.

A later run still traces (so a changed model, config or code gives a new key, never a stale
program), then loads the module and lowers only a call of it. The program XLA compiles is the
same either way: a run that exported it and a run that loaded it share the compiled entry.
An entry that cannot be read gives one warning line and the program is lowered afresh; a
program `jax.export` cannot serialize (e.g. one with host callbacks) is compiled as usual.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jaxlib
import numpy as np

from aejax.workdir import write_whole

FORMAT = 1  # of the entries here; a change gives every program a new key

_directory: Path | None = None


def enable(directory: Path | None) -> None:
    """Keep lowered programs in `directory` (None: do not keep them)."""
    global _directory
    _directory = directory


def compile_program(
    fn: Callable, args: tuple, donate_argnums: tuple[int, ...] = (), options: dict | None = None
):
    """``jax.jit(fn, donate_argnums)`` compiled for `args` (XLA `options`, if any), lowered from
    the kept module when there is one. Called with arguments shaped like `args`."""
    if _directory is None:
        return jax.jit(fn, donate_argnums=donate_argnums).lower(*args).compile(options)
    flat_args, in_tree = jax.tree.flatten(args)
    out_trees = []
    # On flat arguments and results, a module jax.export can serialize whatever the Python types
    # around the arrays (e.g. a TrainState holding its optimizer); tracing records the results'
    # structure.
    jitted = jax.jit(_flat_fn(fn, in_tree, out_trees))
    traced = jitted.trace(*flat_args)
    donated = _donated_leaves(args, donate_argnums)
    path = _directory / f"{program_key(traced, flat_args, donated)}.exported"
    exported = _load(path)
    if exported is None:
        try:
            exported = jax.export.export(jitted)(*flat_args)  # the trace above, lowered
        except Exception:  # noqa: BLE001 - e.g. host callbacks, which jax.export refuses
            return jax.jit(fn, donate_argnums=donate_argnums).lower(*args).compile(options)
        write_whole(path, bytes(exported.serialize()))
    call = jax.jit(exported.call, donate_argnums=donated).lower(*flat_args).compile(options)
    out_tree = out_trees[0]

    def program(*args):
        return jax.tree.unflatten(out_tree, call(*jax.tree.leaves(args)))

    return program


def program_key(traced, flat_args: list, donated: tuple[int, ...]) -> str:
    """A digest of everything the lowered module of `traced` depends on."""
    digest = hashlib.sha256()
    for part in (FORMAT, jax.__version__, jaxlib.__version__, sys.version, platform.machine()):
        digest.update(f"{part}\0".encode())
    device = jax.devices()[0]
    settings = sorted(jax.config.values.items())
    digest.update(f"{device.platform}\0{device.device_kind}\0{settings}\0".encode())
    digest.update(str(traced.jaxpr).encode())
    for const in traced.jaxpr.consts:
        _update_with_array(digest, const)
    for leaf in flat_args:
        sharding = getattr(leaf, "sharding", None)
        digest.update(f"{jax.typeof(leaf)}\0{sharding}\0".encode())
    digest.update(repr(donated).encode())
    return digest.hexdigest()


def _update_with_array(digest, value: Any) -> None:
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        value = jax.random.key_data(value)
    array = np.asarray(value)
    digest.update(f"{array.dtype}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())


def _donated_leaves(args: tuple, donate_argnums: tuple[int, ...]) -> tuple[int, ...]:
    """Positions, among the flattened `args`, of the leaves of the donated arguments."""
    donated, start = [], 0
    for i, arg in enumerate(args):
        count = len(jax.tree.leaves(arg))
        if i in donate_argnums:
            donated += range(start, start + count)
        start += count
    return tuple(donated)


def _flat_fn(fn: Callable, in_tree, out_trees: list) -> Callable:
    """`fn` on flattened arguments and results; appends its results' structure to `out_trees`."""

    def flat(*leaves):
        results, out_tree = jax.tree.flatten(fn(*jax.tree.unflatten(in_tree, leaves)))
        out_trees.append(out_tree)
        return results

    return flat


def _load(path: Path):
    try:
        blob = path.read_bytes()
    except OSError:
        return None  # not kept yet
    try:
        return jax.export.deserialize(bytearray(blob))
    except Exception as err:  # noqa: BLE001 - any damage: lower afresh, and say so
        name = type(err).__name__
        print(
            f"warning: kept program {path} is unreadable ({name}); lowering it afresh",
            file=sys.stderr,
        )
        return None
