"""Decompressed copies of gzipped IDX files, so that a later run reads them at disk speed.

Un-gzipping Fashion-MNIST's 26 MB of training images costs a third of a second in every run; a
NumPy copy in ``$XDG_CACHE_HOME/aejax/idx`` loads in a few milliseconds. A copy is named by the
source file's resolved path, size and modification time: a replaced or re-downloaded file gets a
new one. The cache is only ever a shortcut: a copy that cannot be read is read afresh from the
source, and a folder that cannot be written to leaves every run reading the source. Each copy's
content digest is recorded when it is made and checked when it is read, and a folder that is not
this user's alone is not used: a changed copy is never trained on.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from aejax.files import private_folder, user_cache_dir, write_whole


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
    before and still holds what was recorded when it was made (else the copy is made anew)."""
    if source.suffix != ".gz":
        return read(source)  # read at disk speed already
    try:
        copy = copy_path(source)
        usable = private_folder(cache_dir()) is None  # a folder others may write: not used
    except OSError:
        return read(source)  # the source's own error, as read reports it
    if usable and (array := _verified_copy(copy)) is not None:
        return array
    array = read(source)
    saved = io.BytesIO()
    np.save(saved, array, allow_pickle=False)
    if usable and write_whole(copy, saved.getvalue()):
        write_whole(_digest_path(copy), content_digest(array).encode())
    return array


def content_digest(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes."""
    digest = hashlib.sha256(f"{array.shape} {array.dtype}\n".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _digest_path(copy: Path) -> Path:
    return copy.with_suffix(".sha256")


def _verified_copy(copy: Path) -> np.ndarray | None:
    """The copy, read-only, if it holds what its digest recorded when it was made; else None
    (not made yet, unreadable, or changed since: then it is made again from the source)."""
    try:
        array = np.load(copy, mmap_mode="r")
        recorded = _digest_path(copy).read_text()
    except (OSError, ValueError, EOFError):
        return None
    if content_digest(array) != recorded:
        return None
    return np.asarray(array)
