"""One run per workdir: a second run started on a workdir in use is refused, naming the first.

Two runs writing the same checkpoints and metrics would corrupt each other silently, so a run holds
an exclusive `flock` on ``WORKDIR/.lock`` while it trains. The OS drops the lock when its process
dies, so a run killed with kill -9 leaves nothing stale to clear by hand. The holder writes its pid,
host, start time and command line into the file, for the refusal to name it.

The lock is re-entrant within a process (the pipeline holds it around both stages, each stage takes
it again), and in a multi-process JAX run only process 0 takes it: the processes of one run share
one workdir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import json
import os
import shlex
import socket
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from aejax.engine import distributed
from aejax.errors import UserError, WorkdirBusyError
from aejax.specs import redact_urls

LOCK_NAME = ".lock"
FOREIGN_WORKDIR_ENV = "AEJAX_FOREIGN_WORKDIR"  # =1: write into another user's workdir
_HOLDER_BYTES = 64 * 1024  # far more than one holder record; a bound on what a refusal reads

_Function = TypeVar("_Function", bound=Callable[..., Any])


@dataclasses.dataclass
class _Hold:
    """An open, locked lock file of this process and how many nested holders it has."""

    fd: int
    depth: int


_holds: dict[Path, _Hold] = {}  # keyed by the resolved lock path, so two spellings are one lock
_holds_guard = threading.Lock()


@contextlib.contextmanager
def workdir_lock(workdir: str | Path) -> Iterator[None]:
    """Hold `workdir`'s run lock for the block; `WorkdirBusyError` if another run holds it.

    In a multi-process run process 0 takes the lock, and a refusal reaches every process (the
    others would otherwise wait for it at the run's first collective).
    """
    path, refusal = None, None
    if distributed.is_primary():
        try:
            path = _acquire(Path(workdir))
        except UserError as err:
            refusal = err
    if distributed.anyone(refusal is not None):
        raise refusal or WorkdirBusyError(
            f"{workdir}: process 0 of this run was refused the workdir (its error says why)"
        )
    try:
        yield
    finally:
        if path is not None:
            _release(path)


def holding_workdir_lock(function: _Function) -> _Function:
    """Decorate `function(config, ...)` to run holding the lock of `config.workdir` throughout."""

    @functools.wraps(function)
    def locked(config, *args, **kwargs):
        with workdir_lock(config.workdir):
            return function(config, *args, **kwargs)

    return locked  # type: ignore[return-value]


def _acquire(workdir: Path) -> Path:
    """Lock `workdir` (created if missing) or join this process's hold; the lock file's path."""
    # The folder resolved (one lock however it is spelled), the lock file itself never: a
    # symlink planted there is refused when it is opened.
    path = workdir.resolve() / LOCK_NAME
    with _holds_guard:
        if path in _holds:
            _holds[path].depth += 1
        else:
            _holds[path] = _Hold(_lock_file(workdir, path), depth=1)
    return path


def _lock_file(workdir: Path, path: Path) -> int:
    """Open and lock `path` without waiting, then record this process in it; the open fd."""
    _refuse_a_foreign_workdir(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        # Never through a symlink: one planted at WORKDIR/.lock would have this run truncate
        # and write whatever file it points at.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise IsADirectoryError(errno.EISDIR, "its lock is not a regular file")
    except OSError as err:
        if path.is_symlink():
            raise UserError(
                f"{path} is a symbolic link; aejax writes its lock only into a file of its own "
                "(remove the link, or choose another workdir)",
                settings=("workdir",),
            ) from None
        raise _unwritable(workdir, err) from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise WorkdirBusyError(_busy_message(workdir, holder)) from None
    try:  # only once locked: a refused run leaves the holder's record as it was
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_holder_record()) + "\n").encode(), 0)
    except OSError as err:
        os.close(fd)
        raise _unwritable(workdir, err) from err
    return fd


def _refuse_a_foreign_workdir(workdir: Path) -> None:
    """A workdir that belongs to another user is not written into (say, a root run sent into a
    user's folder, where that user controls every name), unless `FOREIGN_WORKDIR_ENV` is 1."""
    try:
        owner = workdir.stat().st_uid
    except OSError:
        return  # not there yet: it is made, and is this user's
    if owner != os.geteuid() and os.environ.get(FOREIGN_WORKDIR_ENV) != "1":
        raise UserError(
            f"{workdir} belongs to user id {owner}, not to this user ({os.geteuid()}); use a "
            f"workdir of your own, or set {FOREIGN_WORKDIR_ENV}=1 to write there anyway",
            settings=("workdir",),
        )


def _unwritable(workdir: Path, err: OSError) -> UserError:
    return UserError(
        f"cannot write to {workdir}: {err.strerror}; choose another workdir", settings=("workdir",)
    )


def _release(path: Path) -> None:
    """Leave one nested hold; the outermost one unlocks (for forked children too) and closes."""
    with _holds_guard:
        hold = _holds[path]
        hold.depth -= 1
        if hold.depth:
            return
        del _holds[path]
    # The file stays: deleting it would let a later run lock a new file while another waits on
    # the old one.
    fcntl.flock(hold.fd, fcntl.LOCK_UN)
    os.close(hold.fd)


def _holder_record() -> dict[str, Any]:
    """What a refused run tells its user about this one: who, where, since when, what."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": redact_urls(shlex.join(sys.argv)),
    }


def _read_holder(fd: int) -> dict[str, Any] | None:
    """The holder's record; None while it is still being written (or was never written)."""
    try:
        record = json.loads(os.pread(fd, _HOLDER_BYTES, 0).decode())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _busy_message(workdir: Path, holder: dict[str, Any] | None) -> str:
    """One line: which workdir is busy, which process holds it, and what to do."""
    if holder is None:
        who = "a process that has not yet recorded itself"
    else:
        who = (
            f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
            f"{holder.get('command')}"
        )
    who = " ".join(who.splitlines())  # a command line may hold newlines; the message may not
    return f"{workdir} is in use by another run ({who}); wait for it to end, or use another workdir"
