"""User-facing exception types.

Every error a user can cause (bad config, bad data, bad checkpoint, a full
disk) is a :class:`FromZeroError`, raised where the cause is known. The CLI
prints its message in one line and exits with code 2, without a traceback;
:class:`TrainingStopped` (a stop signal, not an error) exits 128 + signal.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FromZeroError(Exception):
    """Base class for errors caused by user input; the message says what to fix."""


class ConfigError(FromZeroError):
    """A recipe or override is invalid: unknown key, wrong type, impossible value."""


class DataError(FromZeroError):
    """Input data is missing, unreadable, malformed or empty."""


class CheckpointError(FromZeroError):
    """A run directory or checkpoint is missing, incomplete or incompatible."""


class TrainingDivergedError(FromZeroError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class DiskFullError(FromZeroError):
    """A write failed because the disk (or quota) is full; nothing half-written is left behind."""


class TrainingStopped(FromZeroError):
    """Training stopped on a signal (SIGTERM, SIGUSR1) after writing a checkpoint; ``exit_code`` = 128 + signal."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
