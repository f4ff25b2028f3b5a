"""Every error aejax raises on purpose.

`UserError` and its subclasses are the user's to fix: the scripts print them as one line and exit
with status 2. Each carries the facts; `settings` names the config fields that would fix it, so a
front end can word the hint in its own terms (the scripts name their flags).
"""

from __future__ import annotations


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
