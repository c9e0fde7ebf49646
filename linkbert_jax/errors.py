"""The errors a user can fix: each command reports one as a single ``error: …`` line
(no traceback) with its ``exit_code`` (2; 3 for non-finite values). Every user-facing
error class of the package is defined here; the modules that raise them import them
(their old names, such as ``readers.DataError``, still import).
"""
from __future__ import annotations

from typing import Optional


class UserError(Exception):
    """An error the user can fix; its message names the file, record, field or flag."""
    exit_code = 2


class ConfigError(UserError, ValueError):
    """A configuration that cannot run: wrong sizes, missing data, too few devices."""


class DataError(ConfigError):
    """Input data that cannot be used (a corpus to build, a fine-tuning split, a build of
    the ablations); the message names the file (and record)."""


class OutputDirError(ConfigError):
    """An output directory that a command may not write into."""


class CorruptDataError(UserError, ValueError):
    """A data file is missing, truncated or corrupt; the message names the file."""


class CorruptShardError(CorruptDataError):
    """A TFRecord shard is truncated or corrupt; the message names the file."""


class RecordError(CorruptDataError):
    """A TFRecord file that cannot be read record by record; the message names it."""


class ConversionError(UserError, ValueError):
    """Bad input for a Hugging Face conversion or export; the message names the file/key."""


class IntegrityError(UserError, ValueError):
    """A checkpoint step whose arrays do not match their checksums or are not finite."""


class NoValidCheckpointError(UserError, FileNotFoundError):
    """A workdir without any complete and valid checkpoint."""


class CheckpointWriteError(UserError, OSError):
    """A checkpoint could not be written (a full disk...); the last complete one is kept."""


class LockedError(UserError, RuntimeError):
    """The directory is locked by another live (or unverifiable) writer."""

    def __init__(self, message: str, holder: Optional[dict] = None):
        super().__init__(message)
        self.holder = holder or {}


class NonFiniteLossError(UserError, RuntimeError):
    """Training produced a NaN/Inf loss or state; the last good checkpoint is kept."""
    exit_code = 3
