"""Errors that are the user's to fix: scripts print them as one line and exit with status 2."""


class UserError(Exception):
    """Bad input (flags, data, checkpoints, workdir): says what is wrong and what to do."""


class DataError(UserError):
    """A dataset could not be found or read."""


class CheckpointError(UserError):
    """A checkpoint is missing, incompatible or unreadable."""


class EncoderMismatchError(CheckpointError):
    """The pretrained encoder does not fit the classifier's encoder."""
