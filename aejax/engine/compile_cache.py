"""Compiled programs kept between runs: JAX's persistent compilation cache, the whole programs
aejax keeps beside it, and counting what a run compiles.

With the cache on (`enable`; the scripts turn it on by default in a per-user folder), a program
compiled once is written to disk and a later process that needs the same program (same
computation, shapes, JAX version and backend: JAX keys entries on all of them) loads it instead of
compiling. A folder that cannot be used gives one warning line and the run goes on uncached.
Unreadable entries are JAX's to handle: it warns and compiles afresh.

To look a program up, JAX must first lower it to a StableHLO module and fingerprint that; for the
programs of a stage this costs more than loading the compiled program itself. So each
single-device program is also serialized (`jax.experimental.serialize_executable`) into
``executables/`` inside the cache folder (`compile_program`), keyed on everything the compiled
program depends on:

- the traced program (its jaxpr as printed, and the values of the constants it captured),
- the arguments' types and shardings, and which are donated,
- the XLA compile options (aejax's and ``XLA_FLAGS``),
- the JAX, jaxlib and Python versions, JAX's configuration, the backend and its device kind,
- the host CPU: a program compiled for one instruction set must never run on another.

A later run traces each program (so a changed model, config or code gives a new key, never a
stale program), then loads it; a program whose caller names all it is built from (a stage's own,
`aejax.engine.untraced`) is found without the trace. The program is the very one a cold run
compiled, so it computes the same bits. An entry that cannot be read gives one warning line and
the program is compiled afresh; one that cannot be serialized (e.g. with host callbacks) is
compiled as usual.
Only freshly compiled programs are kept: one that JAX loaded from its own cache serializes without
its kernels (jaxlib 0.10) and would fail when run, so it stays in JAX's cache alone (a folder
filled by an aejax that kept no programs: delete it once to have them kept).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import serialize_executable

from aejax.engine import untraced
from aejax.files import private_folder, probe_writable, user_cache_dir, write_whole

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
CACHE_HIT = "/jax/compilation_cache/cache_hits"
LOADED = "/aejax/compile_cache/load_duration"  # a jax.monitoring event: one kept program loaded

_kept_dir: Path | None = None  # where whole programs are kept; set by `keep_programs` alone


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/aejax/jax``, or ``~/.cache/aejax/jax``."""
    return user_cache_dir() / "jax"


def enable(directory: str | os.PathLike | None = None) -> Path | None:
    """Cache every compiled program in `directory` (default: `default_dir`); the folder used, or
    None (after one warning line) if it is unusable."""
    path = Path(directory or default_dir()).expanduser()
    try:
        distrust = private_folder(path) or private_folder(path / "executables")
        probe_writable(path)
    except OSError as err:
        distrust = err.strerror or type(err).__name__
    if distrust:
        # Its entries are programs this process would run: only this user's folder will do.
        print(
            f"warning: compile cache {path} is not usable ({distrust}); compiling without it",
            file=sys.stderr,
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    keep_programs(path / "executables")  # whole programs, loaded without lowering
    # The programs here compile in well under JAX's default 1 s threshold: cache them all.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path


def keep_programs(directory: Path | None) -> None:
    """Keep whole compiled programs in `directory` (None: do not keep them); `enable` does this
    inside JAX's cache folder."""
    global _kept_dir
    _kept_dir = directory


def compile_program(
    fn: Callable,
    args: tuple,
    donate_argnums: tuple[int, ...] = (),
    options: dict | None = None,
    recipe: str | None = None,
):
    """``jax.jit(fn, donate_argnums)`` compiled for `args` (XLA `options`, if any), or loaded
    when it was kept. Called with arguments shaped like `args`. A `recipe` that names everything
    `fn` is built from (`aejax.engine.untraced`) lets a kept program load without a trace."""
    jitted = jax.jit(fn, donate_argnums=donate_argnums)
    device = _device(args)
    if _kept_dir is None or device is None:
        return jitted.lower(*args).compile(options)
    entry = None
    if recipe is not None:
        key = untraced.recipe_key(recipe, untraced.environment(options), args, donate_argnums)
        entry = _kept_dir / f"{key}.recipe"
        compiled = _load_untraced(entry, args, device)
        if compiled is not None:
            return compiled
    traced = jitted.trace(*args)
    path = _kept_dir / f"{program_key(traced, args, donate_argnums, options)}.executable"
    compiled = _load(path, traced, device)
    if compiled is None:
        compiled, fresh = _compile(traced, options)
        if fresh:  # one that JAX loaded from its own cache serializes without its kernels
            _keep(path, compiled)
    if entry is not None and path.is_file():
        outputs = untraced.recipe_entry(path.name, jax.tree.structure(traced.out_info), args)
        if outputs is not None:
            write_whole(entry, outputs)
    return compiled


def program_key(traced, args: tuple, donate_argnums: tuple[int, ...], options) -> str:
    """A digest of everything the compiled program of `traced` depends on."""
    digest = hashlib.sha256()
    digest.update(untraced.environment(options).encode())
    digest.update(str(traced.jaxpr).encode())
    for const in traced.jaxpr.consts:
        _update_with_array(digest, const)
    for i, arg in enumerate(args):
        for leaf in jax.tree.leaves(arg):
            sharding = getattr(leaf, "sharding", None)
            digest.update(f"{i in donate_argnums}\0{jax.typeof(leaf)}\0{sharding}\0".encode())
    return digest.hexdigest()


def _device(args: tuple):
    """The one device a program on `args` runs on (None if they span several, or it is unclear)."""
    # Arrays, or their shapes (`jax.ShapeDtypeStruct`) where they say where they will be.
    shardings = [getattr(leaf, "sharding", None) for leaf in jax.tree.leaves(args)]
    devices = {d for sharding in shardings if sharding is not None for d in sharding.device_set}
    if not devices:  # nothing placed yet: JAX's default device
        default = jax.config.jax_default_device
        devices = {jax.devices()[0] if default is None else default}
    device = devices.pop()
    return device if not devices and isinstance(device, jax.Device) else None


def _update_with_array(digest, value: Any) -> None:
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        value = jax.random.key_data(value)
    array = np.asarray(value)
    digest.update(f"{array.dtype}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())


def _compile(traced, options):
    """`traced` compiled, and whether XLA compiled it just now.

    Only such a program is kept: one JAX loaded from its persistent cache, or handed back from
    its in-memory cache after loading it from there, serializes without its kernels (jaxlib 0.10).
    """
    with count_compiles() as counted:  # JAX's own events: backend compiles and cache hits
        compiled = traced.lower().compile(options)
    return compiled, counted.compiled > 0


def _keep(path: Path, compiled) -> None:
    """Serialize `compiled` into `path`, if JAX can (not with host callbacks or constants)."""
    try:
        payload, _, _ = serialize_executable.serialize(compiled)
    except Exception:  # noqa: BLE001 - not serializable: it is compiled again next time
        return
    write_whole(path, payload)


def _load_untraced(entry: Path, args: tuple, device):
    """The program a recipe's `entry` names, loaded for `args`, or None."""
    try:
        program, out_tree = untraced.read_recipe_entry(entry.read_bytes(), args)
        if Path(program).name != program or not program.endswith(".executable"):
            raise ValueError(f"{entry} names no kept program")
    except OSError:
        return None  # not kept yet
    except Exception:  # noqa: BLE001 - damaged: written afresh after a trace
        entry.unlink(missing_ok=True)
        return None
    return _load(_kept_dir / program, jax.tree.structure((args, {})), device, out_tree)


def _load(path: Path, traced, device, out_tree=None):
    """The kept program at `path` for `traced` (or for the input structure `traced` with
    `out_tree`), loaded onto `device`, or None (said in one line if it is damaged)."""
    started = time.perf_counter()
    try:
        blob = path.read_bytes()
    except OSError:
        return None  # not kept yet
    if out_tree is None:
        in_tree = jax.tree.structure(traced.args_info)
        out_tree = jax.tree.structure(traced.out_info)
    else:
        in_tree = traced
    try:
        compiled = serialize_executable.deserialize_and_load(
            blob, in_tree, out_tree, device.client, execution_devices=[device]
        )
    except Exception as err:  # noqa: BLE001 - any damage: compile afresh, and say so once
        name = type(err).__name__
        print(
            f"warning: kept program {path} is unreadable ({name}); compiling it afresh",
            file=sys.stderr,
        )
        with contextlib.suppress(OSError):
            path.unlink()  # replaced, or gone: either way not warned about again
        return None
    jax.monitoring.record_event_duration_secs(LOADED, time.perf_counter() - started)
    return compiled


@dataclasses.dataclass(eq=False)  # compared by identity: nested counters may hold equal counts
class CompileCounter:
    """Programs JAX needed since creation: how many, how many the persistent cache held, and the
    seconds spent getting them (compiling, or loading from the cache)."""

    requests: int = 0
    cache_hits: int = 0
    seconds: float = 0.0

    @property
    def compiled(self) -> int:
        """Programs compiled afresh (not found in the persistent cache)."""
        return self.requests - self.cache_hits


_counters: list[CompileCounter] = []


def _on_duration(event: str, seconds: float, **_) -> None:
    # JAX records a backend compile for every program it compiles or finds in its cache; a
    # kept program skips JAX's compile path and counts as a cache hit.
    if event in (BACKEND_COMPILE, LOADED):
        for counter in _counters:
            counter.requests += 1
            counter.seconds += seconds
            counter.cache_hits += event == LOADED


def _on_event(event: str, **_) -> None:
    if event == CACHE_HIT:
        for counter in _counters:
            counter.cache_hits += 1


_listening = False


@contextlib.contextmanager
def count_compiles() -> Iterator[CompileCounter]:
    """Within the block, count XLA compilations and persistent-cache hits (JAX's own events)."""
    global _listening
    if not _listening:  # JAX offers no way to remove a listener: register ours once
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        jax.monitoring.register_event_listener(_on_event)
        _listening = True
    counter = CompileCounter()
    _counters.append(counter)
    try:
        yield counter
    finally:
        _counters.remove(counter)
