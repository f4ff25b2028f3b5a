"""Every error aejax raises on purpose.

`UserError` and its subclasses are the user's to fix: the scripts print them as one line and exit
with status 2. Each carries the facts; `settings` names the config fields that would fix it, so a
front end can word the hint in its own terms (the scripts name their flags).
"""

from __future__ import annotations

import errno
import os
import re


class UserError(Exception):
    """Bad input (settings, data, checkpoints, workdir): says what is wrong and what to do."""

    def __init__(self, message: str, *, settings: tuple[str, ...] = ()):
        super().__init__(message)
        self.settings = tuple(settings)


class DataError(UserError):
    """A dataset could not be found or read."""


class CheckpointError(UserError):
    """A checkpoint is missing, incompatible or unreadable."""


class EncoderMismatchError(CheckpointError):
    """The pretrained encoder does not fit the classifier's encoder."""


class StateDictMismatchError(CheckpointError):
    """A PyTorch state_dict or a params tree does not have the reference model's keys or shapes."""


class TorchMissingError(UserError):
    """PyTorch is needed for this call but is not installed."""


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite."""


class WorkdirBusyError(UserError):
    """Another run holds the workdir: two runs in one folder would overwrite each other's files."""

    def __init__(self, message: str, *, settings: tuple[str, ...] = ("workdir",)):
        super().__init__(message, settings=settings)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving a checkpoint; the same command resumes it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class DiskFullError(UserError):
    """The disk (or the file-size limit) ran out while a run wrote its files."""


# errno of "no space left", "file too large" (ulimit -f) and "disk quota exceeded"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
# Orbax's TensorStore reports an OS error inside its message: ... [os_error_code='28']
_OS_ERROR_CODE = re.compile(r"os_error_code='(\d+)'")
_WRITING = re.compile(r'(?:Failed writing|local file): "([^"]+)"')


def disk_full(err: BaseException, folder: os.PathLike | str | None = None) -> DiskFullError | None:
    """A `DiskFullError` saying where, when `err` (or what caused it) is a write that found the
    disk full; else None. Where: the file, when the error names it; else the `folder` written."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        code = getattr(err, "errno", None)
        found = _OS_ERROR_CODE.search(str(err))
        if code in DISK_FULL_ERRNOS or (found and int(found[1]) in DISK_FULL_ERRNOS):
            code = code if code in DISK_FULL_ERRNOS else int(found[1])
            where = getattr(err, "filename", None) or next(iter(_WRITING.findall(str(err))), None)
            place = f" writing {where}" if where else f" writing into {folder}" if folder else ""
            return DiskFullError(
                f"the disk is full{place} ({os.strerror(code)}); free space and run the same "
                "command again: it resumes from the last complete checkpoint",
                settings=("workdir",),
            )
        err = err.__cause__ or err.__context__
    return None
