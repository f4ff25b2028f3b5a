"""Files that aejax keeps between runs: the per-user cache folder, and entries written whole.

A cache entry may be made by every process of a run at once, and is read by later runs: each is
written under a temporary name and renamed, so no reader ever sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import stat
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
        create_new(partial, data)
        os.replace(partial, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
        return False


# Create, never follow or reuse: a symlink planted at the name (in a shared or foreign folder)
# must not redirect a write to a file its owner did not mean this process to touch.
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def create_new(path: Path, data: bytes) -> None:
    """Write `data` into a file `path` that this call creates (OSError if anything is there)."""
    fd = os.open(path, NEW_FILE_FLAGS, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def probe_writable(folder: Path) -> None:
    """Create and remove a small file in `folder` (OSError if that cannot be done)."""
    probe = folder / f".write-test-{os.getpid()}"
    create_new(probe, b"ok")
    probe.unlink()


def private_folder(folder: Path) -> str | None:
    """Make `folder` (mode 0700 when new) and say why it cannot be trusted with code, or None:
    it must belong to this user and be writable by nobody else. What a cache loads from it runs
    as this user, so another user's folder, or one others may write into, is refused."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.geteuid():
        return f"it belongs to user id {info.st_uid}, not to this user ({os.geteuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(info.st_mode)
        return f"others may write into it: mode {mode:o}; chmod go-w {folder} makes it private"
    return None
