"""Commands run as a user runs them, supervised: output to a log file, a deadline, and on
the first failure the others of a group are killed (a lone peer of a distributed run
would wait for its coordinator). ``kill_started()`` (an autouse fixture's teardown)
leaves none running after a failed or timed-out test."""
from __future__ import annotations

import shlex
import subprocess
import time

_STARTED: list[subprocess.Popen] = []


def _kill(procs) -> list:
    """Kills those still running; returns them."""
    killed = [p for p in procs if p.poll() is None]
    for p in killed:
        p.kill()
        p.wait()
    return killed


def kill_started() -> None:
    _kill(_STARTED)
    _STARTED.clear()


def start(argv: list[str], cwd, log, env: dict) -> subprocess.Popen:
    """Starts ``argv`` in ``cwd`` with ``env``, stdout and stderr to the file ``log``."""
    with open(log, "w") as f:
        f.write(shlex.join(argv) + "\n")
        f.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    proc.log = log
    _STARTED.append(proc)
    return proc


def finish(*procs, timeout: float = 300) -> list[str]:
    """Waits for all; on the first failure the others are killed. Returns each one's
    output; fails naming the command that failed by itself (not a peer it caused to be
    killed)."""
    deadline = time.monotonic() + timeout
    killed = []
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        killed = _kill(procs)
    outs = [open(p.log).read() for p in procs]
    for p, out in sorted(zip(procs, outs), key=lambda po: po[0] in killed):
        assert p.returncode == 0, (f"exit {p.returncode}" + (" (killed)" if p in killed else "")
                                   + f": {out[-4000:]}")
    return outs
