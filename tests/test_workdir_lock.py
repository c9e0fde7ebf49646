"""Issue 22, row 4 (the lock itself): one writer per directory. A second process is
refused with its holder named and nothing changed; a stale lock is taken over with a
warning; SIGTERM, errors and Ctrl-C release it; of several processes taking over one
stale lock, exactly one wins."""
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers.outcomes import tree_hashes
from linkbert_jax.infra import workdir_lock
from linkbert_jax.infra.workdir_lock import LOCK_NAME, LockedError, lock_dir

# Holds DIR's lock, says so, then waits (killed by the test, or until GO exists).
HOLDER = r"""
import os, sys, time
from linkbert_jax.infra import workdir_lock
d, mode = sys.argv[1], sys.argv[2]
if mode == "race":  # every racer judges the lock stale before any removes it, at once
    real = workdir_lock._remove_if_unchanged
    def slow(lock, held):
        time.sleep(0.5)
        return real(lock, held)
    workdir_lock._remove_if_unchanged = slow
    while not os.path.exists(os.path.join(os.path.dirname(d), "GO")):
        time.sleep(0.005)
try:
    with workdir_lock.lock_dir(d, what="trainer"):
        print("HELD", flush=True)
        time.sleep(60 if mode == "hold" else 3)
except workdir_lock.LockedError as e:
    print("REFUSED", e, flush=True)
"""


def _holder(d, mode="hold") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(d), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _record(**kw) -> dict:
    rec = workdir_lock.me()
    rec.update(kw)
    return rec


def _write_lock(d, record: dict) -> None:
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, LOCK_NAME), "w") as f:
        json.dump(record, f)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_second_writer_is_refused_naming_the_holder_and_sigterm_releases(tmp_path):
    d = tmp_path / "wd"
    d.mkdir()
    (d / "metrics.jsonl").write_text('{"step": 1}\n')
    holder = _holder(d)
    assert holder.stdout.readline().strip() == "HELD"
    before = tree_hashes(d)
    with pytest.raises(LockedError) as e:
        with lock_dir(str(d), what="trainer"):
            pytest.fail("a second writer got the lock")
    msg = str(e.value)
    assert f"pid {holder.pid} on host {socket.gethostname()}" in msg, msg
    assert "its trainer is" in msg and "--take_over_lock" in msg and "\n" not in msg
    assert tree_hashes(d) == before  # the refused writer changed nothing
    holder.send_signal(signal.SIGTERM)
    assert holder.wait(timeout=30) == 143  # exited through its finally blocks
    assert not (d / LOCK_NAME).exists()
    with lock_dir(str(d)) as rec:
        assert rec["pid"] == os.getpid()
    assert sorted(os.listdir(d)) == ["metrics.jsonl"]  # released, nothing left behind


def test_released_on_error_and_on_ctrl_c(tmp_path):
    for exc in (ValueError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with lock_dir(str(tmp_path)):
                assert (tmp_path / LOCK_NAME).exists()
                raise exc
        assert not (tmp_path / LOCK_NAME).exists()


def test_stale_locks_on_this_host_are_taken_over_with_a_warning(tmp_path, caplog):
    cases = {"dead": (_record(pid=_dead_pid()), "is not running"),
             "reused pid": (_record(pid_start="1"), "is another process now"),
             "rebooted": (_record(boot_id="another-boot"), "has restarted since")}
    for name, (held, why) in cases.items():
        _write_lock(tmp_path / name, held)
        with caplog.at_level(logging.WARNING, logger="linkbert_jax"):
            with lock_dir(str(tmp_path / name)) as rec:
                assert json.loads((tmp_path / name / LOCK_NAME).read_text()) == rec
        assert any("took over the lock" in r.message and why in r.message
                   for r in caplog.records), (name, caplog.text)
        assert not (tmp_path / name / LOCK_NAME).exists()


def test_a_holder_on_another_host_needs_take_over(tmp_path, caplog):
    held = _record(host="node-7", pid=4242)
    _write_lock(tmp_path, held)
    with pytest.raises(LockedError, match="pid 4242 on host node-7"):
        workdir_lock.acquire(str(tmp_path))
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == held  # untouched
    with caplog.at_level(logging.WARNING, logger="linkbert_jax"):
        with lock_dir(str(tmp_path), take_over=True):
            pass
    assert "took over the lock of pid 4242 on host node-7 (since " in caplog.text
    assert ": asked to take it over" \
        in caplog.text


def test_an_unreadable_lock_is_held_until_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text("{not json")
    with pytest.raises(LockedError, match="an unknown process"):
        workdir_lock.acquire(str(tmp_path))
    with lock_dir(str(tmp_path), take_over=True):
        pass


def test_a_lock_taken_over_meanwhile_is_not_removed_by_its_old_holder(tmp_path, caplog):
    with lock_dir(str(tmp_path)):
        other = _record(host="node-7", pid=1)
        _write_lock(tmp_path, other)  # someone passed take_over
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == other
    assert "was taken over by pid 1 on host node-7" in caplog.text


def test_racers_on_one_stale_lock_exactly_one_wins(tmp_path):
    d = tmp_path / "wd"
    _write_lock(d, _record(pid=_dead_pid()))
    racers = [_holder(d, "race") for _ in range(6)]
    time.sleep(2)  # all of them started, waiting for GO
    (tmp_path / "GO").write_text("")
    outs = [p.communicate(timeout=60)[0].strip() for p in racers]
    won = [o for o in outs if o == "HELD"]
    refused = [o for o in outs if o.startswith("REFUSED")]
    assert len(won) == 1 and len(refused) == 5, outs
    winner = racers[outs.index("HELD")].pid
    assert all(f"pid {winner} on host" in o for o in refused), outs
    assert not (d / LOCK_NAME).exists()
    assert sorted(os.listdir(d)) == []  # no temporary files left


def test_a_directory_the_lock_created_is_removed_only_if_left_empty(tmp_path):
    """A run refused before it wrote anything leaves no new directory behind; a
    directory that existed, or that the run wrote into, stays."""
    new, kept, existing = tmp_path / "new", tmp_path / "kept", tmp_path / "existing"
    existing.mkdir()
    for path in (new, existing):
        with workdir_lock.lock_dir(str(path)):
            assert (path / workdir_lock.LOCK_NAME).exists()
    with workdir_lock.lock_dir(str(kept)):
        (kept / "config.json").write_text("{}")
    assert not new.exists() and existing.is_dir() and os.listdir(existing) == []
    assert os.listdir(kept) == ["config.json"]
