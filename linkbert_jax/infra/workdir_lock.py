"""One writer per directory: a lock file that names its holder (host, pid, start time).

    with workdir_lock.lock_dir(workdir, take_over=False):
        ...  # this process is the only writer of workdir

A second process gets ``LockedError``, whose message names the holder; it has changed
nothing in the directory. ``lock_run`` does the same for a run of several processes:
process 0 holds the lock (it is the one that writes the config and the metrics) and every
process learns the outcome, so that they all stop together.

How it is taken: the holder's record is written to a temporary file that is hard-linked
to ``LOCK_NAME`` (``link`` fails if the name exists: atomic on local filesystems and on
NFS, where ``O_EXCL`` was not before v3 and ``flock`` may be per host); where a
filesystem has no hard links, ``O_CREAT | O_EXCL``. The lock is a file, not a kernel lock,
so that a holder on another host is seen as well.

A stale lock is taken over with a warning: its holder was on this host and its pid is
not running (or now belongs to another process: the pid's start time differs, or the
host restarted since). A holder on another host cannot be checked from here: pass
``take_over=True`` (the trainer's ``--take_over_lock``) once you know it is gone. Two
processes taking over the same stale lock are serialised by an ``flock`` on the stale
file (best effort where a filesystem has none): one of them wins, the other sees the
winner alive.

Released on exit: normal, exception, KeyboardInterrupt and SIGTERM (while the lock is
held, a SIGTERM that nothing else handles raises ``SystemExit(143)`` so that the lock is
removed on the way out). A SIGKILL or a second Ctrl-C leaves the file: the next start
finds its pid dead and takes it over.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Iterator, Optional

from linkbert_jax.errors import LockedError

log = logging.getLogger("linkbert_jax")

LOCK_NAME = "writer.lock"



def _read_text(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _boot_id() -> Optional[str]:
    return (_read_text("/proc/sys/kernel/random/boot_id") or "").strip() or None


def _start_time(pid: int) -> Optional[str]:
    """The pid's start time (clock ticks since boot, Linux), None where unknown."""
    stat = _read_text(f"/proc/{pid}/stat")
    if not stat:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the name may hold spaces


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def me() -> dict:
    """The record this process writes as a holder."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _start_time(pid),
            "boot_id": _boot_id(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "argv": [str(a) for a in sys.argv][:20], "token": uuid.uuid4().hex}


def describe(holder: dict) -> str:
    if not holder.get("host"):
        return "an unknown process (the lock file is unreadable)"
    return (f"pid {holder.get('pid')} on host {holder['host']} (since "
            f"{holder.get('since', '?')})")


def stale_reason(holder: dict, take_over: bool = False) -> Optional[str]:
    """Why ``holder`` no longer holds the lock, or None while it may."""
    if take_over:
        return "asked to take it over"
    if holder.get("host") != socket.gethostname():
        return None  # another host (or unreadable): cannot be checked from here
    pid = holder.get("pid")
    if holder.get("boot_id") and _boot_id() and holder["boot_id"] != _boot_id():
        return f"this host has restarted since pid {pid} took it"
    if not _alive(pid):
        return f"pid {pid} is not running"
    now = _start_time(pid)
    if holder.get("pid_start") and now and now != holder["pid_start"]:
        return f"pid {pid} is another process now"
    return None


def _read(lock: str) -> Optional[dict]:
    """The holder's record; None when the file is gone, {} when it is unreadable."""
    text = _read_text(lock)
    if text is None:
        return None
    try:
        held = json.loads(text)
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def _create(lock: str, record: dict) -> bool:
    """Write ``record`` as ``lock`` if no such file exists; False if one does."""
    data = json.dumps(record, indent=1) + "\n"
    tmp = f"{lock}.{record['pid']}.{record['token'][:8]}.tmp"
    with open(tmp, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, lock)
        return True
    except FileExistsError:
        return False
    except OSError as e:  # no hard links here (EPERM, ENOTSUP, ...): O_EXCL
        if e.errno == errno.EEXIST:
            return False
        return _create_exclusive(lock, data)
    finally:
        os.unlink(tmp)


def _create_exclusive(lock: str, data: str) -> bool:
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return True


def _remove_if_unchanged(lock: str, held: dict) -> bool:
    """Remove the stale ``lock`` unless another process took it over meanwhile."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        with contextlib.suppress(OSError):  # no flock on this filesystem: best effort
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _read(lock) != held:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        return True
    finally:
        os.close(fd)  # releases the flock


def acquire(path: str, *, take_over: bool = False, what: str = "directory") -> dict:
    """Take ``path``'s lock (creating ``path``); the record written, or ``LockedError``."""
    created = not os.path.isdir(path)
    os.makedirs(path, exist_ok=True)
    lock = os.path.join(path, LOCK_NAME)
    record = me()
    for _ in range(5):
        if _create(lock, record):  # release removes a directory it created, left empty
            return {**record, "_created": True} if created else record
        held = _read(lock)
        if held is None:  # released meanwhile
            continue
        why = stale_reason(held, take_over)
        if why is None:
            raise LockedError(
                f"{path} is in use: its {what} is {describe(held)}, which holds {lock}; "
                f"stop it first (or, if it is gone and was on another host, pass "
                f"--take_over_lock)", held)
        if _remove_if_unchanged(lock, held):
            log.warning("%s: took over the lock of %s: %s", path, describe(held), why)
    held = _read(lock) or {}
    raise LockedError(f"{path}: could not take {lock} (other processes keep taking it; "
                      f"now {describe(held)})", held)


def release(path: str, record: dict) -> None:
    """Remove ``path``'s lock if it is still ``record``'s (not taken over since)."""
    lock = os.path.join(path, LOCK_NAME)
    held = _read(lock)
    if held and held.get("token") == record["token"]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        if record.get("_created"):  # a run refused before writing leaves no directory
            with contextlib.suppress(OSError):
                os.rmdir(path)  # only if empty
    elif held is not None:
        log.warning("%s: the lock was taken over by %s while this process held it",
                    path, describe(held))


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """While the lock is held, an unhandled SIGTERM exits through ``finally`` blocks."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def lock_dir(path: str, *, take_over: bool = False, what: str = "directory"
             ) -> Iterator[dict]:
    """Hold ``path``'s lock for the block (see the module docstring); yields the record."""
    with _held(path, acquire(path, take_over=take_over, what=what)) as record:
        yield record


@contextlib.contextmanager
def _held(path: str, record: dict) -> Iterator[dict]:
    """An acquired lock for the block: SIGTERM exits through it, and it is released."""
    try:
        with _exit_on_sigterm():
            yield record
    finally:
        release(path, record)


def _all_processes_agree(ok: bool) -> bool:
    import jax
    if jax.process_count() == 1:
        return ok
    import numpy as np
    from jax.experimental import multihost_utils
    return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


@contextlib.contextmanager
def lock_run(path: str, *, take_over: bool = False, what: str = "trainer"
             ) -> Iterator[Optional[dict]]:
    """``lock_dir`` for a run of ``jax.process_count()`` processes: process 0 holds it;
    when it cannot, every process raises ``LockedError`` (before writing anything)."""
    import jax
    if jax.process_index() != 0:
        if not _all_processes_agree(True):
            raise LockedError(f"{path} is in use by another {what} (process 0 could not "
                              f"take its lock)")
        yield None
        return
    try:
        record = acquire(path, take_over=take_over, what=what)
    except LockedError:
        _all_processes_agree(False)
        raise
    with _held(path, record):
        _all_processes_agree(True)
        yield record
