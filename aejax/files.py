"""Files that aejax keeps between runs: the per-user cache folder, and entries written whole.

A cache entry may be made by every process of a run at once, and is read by later runs: each is
written under a temporary name and renamed, so no reader ever sees half a file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/aejax``, or ``~/.cache/aejax``: what aejax keeps between runs."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "aejax"


def write_whole(path: Path, data: bytes) -> bool:
    """`data` into `path` whole or not at all, in any process (a cache's entry: every process
    may make it, and readers never see half a file). False, nothing left, if it cannot be
    written: a cache that is read-only or full is simply not used."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
        return False
