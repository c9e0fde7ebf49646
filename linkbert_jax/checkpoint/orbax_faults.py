"""What orbax does when something fails, turned into one line and no noise.

Orbax wraps tensorstore's errors in a bare ``Exception`` whose message is a page of
spec; logs and swallows the errors of its background save threads; leaves asyncio tasks
of failed reads whose errors are "never retrieved"; and after a failed write tensorstore
calls back into orbax's closed event loop. The trainer and ``checkpoints`` use these to
report the cause once and keep the output readable.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import sys
import traceback
import warnings

import orbax.checkpoint as ocp

from linkbert_jax.errors import CheckpointWriteError  # noqa: F401  (re-exported)

# how tensorstore and Python name an OS error: "[OS error 28: ...]",
# "... [os_error_code='28']", "[Errno 28] ..."
_ERRNO = re.compile(r"OS error (\d+)|os_error_code='(\d+)'|\[Errno (\d+)\]")


def one_line(e: BaseException) -> str:
    """The innermost cause of ``e`` on one line (orbax wraps tensorstore's errors in a
    bare ``Exception`` whose message is a page of spec), with its OS error named in words
    even where tensorstore gives only the number."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = " ".join(str(e).split())
    found = _ERRNO.search(text)
    code = int(next(g for g in found.groups() if g)) if found else 0
    said = os.strerror(code) if found else ""
    named = f"[OS error {code}: {said}]"
    if len(text) > 320:  # keep the start, the end, and the OS error wherever it is
        head, tail = text[:150], text[-150:]
        middle = f" ... {named}" if found and said not in head + tail else ""
        text = f"{head}{middle} ... {tail}"
    if found and said not in text:
        text = f"{text} {named}"
    return f"{type(e).__name__}: {text}"


class SaveFailures(logging.Filter):
    """Catches what orbax's background save threads fail with.

    Orbax logs such an error (with a traceback, several times) and swallows it while
    finalizing the step, so the training loop would never hear of it. Installed on the
    ``absl`` logger, this keeps the exception for ``raise_if_save_failed`` and drops the
    tracebacks: the run then stops with the cause on one line.
    """

    def __init__(self):
        super().__init__()
        self.errors: list[BaseException] = []

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and f"{os.sep}orbax{os.sep}" in record.pathname:
            self.errors.append(exc)
            return False
        return True

    def __enter__(self):
        logging.getLogger("absl").addFilter(self)
        self._previous_hook = sys.unraisablehook
        self._unraisable = sys.unraisablehook = _without_leftovers(self._previous_hook)
        return self

    def __exit__(self, *exc):
        logging.getLogger("absl").removeFilter(self)
        if sys.unraisablehook == self._unraisable:
            sys.unraisablehook = self._previous_hook


def drain(mgr: ocp.CheckpointManager, failures: SaveFailures) -> None:
    """Wait for the saves in flight; what they fail with goes to ``failures``."""
    try:
        mgr.wait_until_finished()
    except Exception as e:  # noqa: BLE001  a background save's error, raised here
        failures.errors.append(e)


class _UnretrievedTasks(logging.Filter):
    """Orbax reads arrays in asyncio tasks; when one read fails the others' errors are
    never retrieved, and asyncio logs each with a page of tensorstore spec."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Task exception was never retrieved")


class _UnretrievedWrites(logging.Filter):
    """The same for orbax's write tasks and the futures gathering them, told by orbax's
    code in the message (a task's coroutine) or in the error's traceback, and for
    tensorstore's futures, told by the orbax temporary directory they failed to write."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "exception was never retrieved" not in text.partition("\n")[0]:
            return True
        tb = record.exc_info[2] if record.exc_info else None
        places = [text] + [frame.filename for frame in traceback.extract_tb(tb)]
        return not (any(f"{os.sep}orbax{os.sep}" in place for place in places)
                    or ".orbax-checkpoint-tmp" in text)


def quiet_after_failed_write() -> None:
    """Once a save has failed, for the rest of the process (which is stopping): the other
    write tasks of that save fail too, and when collected, often only at exit, asyncio
    logs each error with a traceback and Python warns of their never-awaited coroutines.
    The cause is already on the one error line. Idempotent."""
    asyncio_log = logging.getLogger("asyncio")
    if any(isinstance(f, _UnretrievedWrites) for f in asyncio_log.filters):
        return
    asyncio_log.addFilter(_UnretrievedWrites())
    warnings.filterwarnings("ignore", message=r"coroutine 'async_serialize", category=RuntimeWarning)
    sys.unraisablehook = _without_leftovers(sys.unraisablehook)


def is_leftover(unraisable) -> bool:
    """An error of what a failed orbax read or write left behind: its coroutines, closed
    when collected, or tensorstore's callbacks into orbax's event loop, closed after the
    failure ("Event loop is closed"). Each would print a traceback."""
    value, code = unraisable.exc_value, getattr(unraisable.object, "cr_code", None)
    return (isinstance(value, RuntimeError) and str(value) == "Event loop is closed") or (
        code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename)


def _without_leftovers(previous):
    """An ``unraisablehook`` that drops :func:`is_leftover` errors and passes on the rest."""
    def hook(unraisable):
        if not is_leftover(unraisable):
            previous(unraisable)
    return hook


@contextlib.contextmanager
def quiet_failed_reads():
    """Around restore attempts: the failed reads' leftover tasks and coroutines are
    collected now, silently (else asyncio logs each, and at exit they print 'sys.meta_path
    is None' tracebacks)."""
    quiet = _UnretrievedTasks()
    previous = sys.unraisablehook
    logging.getLogger("asyncio").addFilter(quiet)
    sys.unraisablehook = _without_leftovers(previous)
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous
        logging.getLogger("asyncio").removeFilter(quiet)


class _ReadOnlyNotices(logging.Filter):
    """What orbax says of every read-only manager (its options adjusted, the directory
    read only): true, expected, and no concern of the user's."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not ("read_only=True" in text or text.startswith("Given directory is read only"))


@contextlib.contextmanager
def quiet_read_only():
    """Around opening a read-only ``CheckpointManager`` to look at a step."""
    quiet = _ReadOnlyNotices()
    logging.getLogger("absl").addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger("absl").removeFilter(quiet)
