"""SIGTERM (preemption) and Ctrl-C (SIGINT) handling: finish the current step, save,
exit 0. A second Ctrl-C exits at once with status 130, without saving: the last complete
checkpoint stays, and a save in flight is never half-used (orbax writes a step under a
temporary name and renames it when complete; the next start removes the leftover).

Single process: a signal handler sets a flag that the loop reads every step. Several
processes: the flags are OR-ed across processes every ``check_every`` steps (a tiny
all-gather), so that every process stops at the same step and saves together.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import jax
import numpy as np

log = logging.getLogger("linkbert_jax")


class StopSignal:
    def __init__(self, check_every: int = 10, signals=(signal.SIGTERM, signal.SIGINT)):
        self.requested = False
        self.check_every = max(1, int(check_every))
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in signals:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):  # noqa: ARG002
        name = signal.Signals(signum).name
        if self.requested and signum == signal.SIGINT:
            # Not a KeyboardInterrupt: raised inside orbax's or TF's threads' machinery
            # it leaves them half-stopped, with tracebacks at exit.
            sys.stdout.flush()
            sys.stderr.write(f"error: second {name}: stopped at once, without saving; the "
                             f"last complete checkpoint is kept\n")
            sys.stderr.flush()
            os._exit(130)
        log.warning("received %s: will save a checkpoint and stop%s", name,
                    " (Ctrl-C again to stop at once, without saving)"
                    if signum == signal.SIGINT else "")
        self.requested = True

    def should_stop(self, step: int) -> bool:
        """The same answer on every process for the same ``step``."""
        if jax.process_count() == 1:
            return self.requested
        if step % self.check_every:
            return False
        from jax.experimental import multihost_utils
        flags = multihost_utils.process_allgather(np.int32(self.requested))
        return bool(np.any(flags))

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


class Interrupted(Exception):
    """A loop (an eval) stopped early by a termination signal: its partial results are
    not results (never logged as if complete)."""


def raise_if_requested(stop, i: int) -> None:
    """Call between the items of a loop that every process runs in step (an eval's
    batches): ``Interrupted`` once ``stop`` (a ``StopSignal``, or None) has a signal,
    agreed across processes every ``stop.check_every`` items."""
    if stop is not None and stop.should_stop(i):
        raise Interrupted(f"interrupted by a termination signal after {i} batches")
