"""Decompressed copies of gzipped IDX files, so that a later run reads them at disk speed.

Un-gzipping Fashion-MNIST's 26 MB of training images costs a third of a second in every run; a
NumPy copy in ``$XDG_CACHE_HOME/aejax/idx`` loads in a few milliseconds. A copy is named by the
source file's resolved path, size and modification time: a replaced or re-downloaded file gets a
new one. The cache is only ever a shortcut: a copy that cannot be read is read afresh from the
source, and a folder that cannot be written to leaves every run reading the source.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from aejax.files import user_cache_dir, write_whole


def cache_dir() -> Path:
    return user_cache_dir() / "idx"


def copy_path(source: Path) -> Path:
    """Where `source`'s decompressed copy lives: named by its path, size and mtime."""
    stat = source.stat()
    key = f"{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{source.name.removesuffix('.gz')}-{digest}.npy"


def cached(source: Path, read: Callable[[Path], np.ndarray]) -> np.ndarray:
    """``read(source)``; for a gzipped `source`, from its decompressed copy when one was made
    before (else it is made)."""
    if source.suffix != ".gz":
        return read(source)  # read at disk speed already
    try:
        copy = copy_path(source)
    except OSError:
        return read(source)  # the source's own error, as read reports it
    try:
        return np.asarray(np.load(copy, mmap_mode="r"))  # read-only, like a freshly read one
    except (OSError, ValueError, EOFError):
        pass  # no copy yet, or an unreadable one: read the source (and replace the copy)
    array = read(source)
    saved = io.BytesIO()
    np.save(saved, array, allow_pickle=False)
    write_whole(copy, saved.getvalue())
    return array
