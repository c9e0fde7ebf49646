"""The errors a user can fix, and the one place that turns an error into an exit status.

Every command (the corpus builders, training, fine-tuning, the export, the AOT check, the
ablations, the demo) runs its program through :func:`run_cli`. An error of a class below
(a :class:`UserError`) or an ``OSError`` (a file, a disk) is one line ``error: …`` on
stderr and exit status 2 (3 for non-finite values, ``exit_code``); a Ctrl-C that reaches
it is ``error: interrupted`` and 130. Anything else is a bug: it keeps its traceback
(exit 1). docs/failure_modes.md lists what each fault says.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional


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


class CommandFailedError(UserError):
    """A command that a driver ran (the demo's stages) failed; it said why itself."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code if 0 < exit_code < 256 else 1


class UsageError(UserError):
    """A command line that does not parse: an unknown flag, a missing or malformed one."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose complaints are :class:`UsageError` s, so that :func:`run_cli`
    says them as one ``error:`` line with status 2 (argparse itself prints the whole
    usage block first). ``--help`` still prints the usage and exits 0."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (--help for the usage)")


def run_cli(program: Callable[[], object], *, kept: str = "") -> int:
    """The exit status of ``program()``: the ``int`` it returns (any other result, such as
    ``None``, is 0), or a user's error's (one ``error:`` line, see the module's docstring).
    ``kept``: what the command leaves intact, said after an ``OSError`` or an interruption
    (``"the last complete checkpoint is kept"``)."""
    after = f"; {kept}" if kept else ""
    try:
        status = program()
        return status if isinstance(status, int) else 0
    except UserError as e:
        print(f"error: {str(e) or type(e).__name__}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"error: {e}{after}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"error: interrupted{after}", file=sys.stderr)
        return 130


def console_script(main: Callable[[], int]) -> Callable[[], None]:
    """``cli``, the console-script entry of a command whose ``main()`` (argparse, through
    :func:`run_cli`) returns its exit status: it exits with that status."""
    def cli() -> None:
        sys.exit(main())
    cli.__doc__ = f"The entry point of ``{main.__module__}`` (``main``'s exit status)."
    return cli
