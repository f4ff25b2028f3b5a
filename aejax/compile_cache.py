"""JAX's persistent compilation cache, and counting what a run compiles.

With the cache on, a program compiled once is written to disk and a later process that needs the
same program (same computation, shapes, JAX version and backend: JAX keys entries on all of them)
loads it instead of compiling. The scripts turn it on by default in a per-user folder; a folder
that cannot be used gives one warning line and the run goes on uncached. Unreadable entries are
JAX's to handle: it warns and compiles afresh. Beside JAX's entries, `aejax.program_cache` keeps
each single-device program whole, so that a warm run loads it without lowering it first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import jax

from aejax import program_cache

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
CACHE_HIT = "/jax/compilation_cache/cache_hits"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/aejax``, or ``~/.cache/aejax``: what aejax keeps between runs."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "aejax"


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/aejax/jax``, or ``~/.cache/aejax/jax``."""
    return user_cache_dir() / "jax"


def enable(directory: str | os.PathLike) -> Path | None:
    """Cache every compiled program in `directory`; None (after one warning line) if unusable."""
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        print(
            f"warning: compile cache {path} is not usable ({err.strerror}); compiling without it",
            file=sys.stderr,
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    program_cache.enable(path / "executables")  # whole programs, loaded without lowering
    # The programs here compile in well under JAX's default 1 s threshold: cache them all.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path


@dataclasses.dataclass
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
    # program kept by `aejax.program_cache` skips JAX's compile path and counts as a cache hit.
    if event in (BACKEND_COMPILE, program_cache.LOADED):
        for counter in _counters:
            counter.requests += 1
            counter.seconds += seconds
            counter.cache_hits += event == program_cache.LOADED


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
