"""User-facing exception types.

Every error a user can cause (bad config, bad data, bad checkpoint) is a
:class:`FromZeroError`. The CLI prints its message in one or two lines and
exits with code 2, without a traceback.
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
