"""Issue 11, cases 8 and 9: Ctrl-C saves and exits 0 (a second one stops at once), and a
checkpoint that cannot be written (a full disk) stops the run at the next step with the
cause on one line, the last complete checkpoint kept."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from helpers import TESTS
from helpers.outcomes import one_error_line
from helpers.synthetic import SyntheticSource
from helpers.training import (OVERRIDES, SMALL_MODEL, config_path, driver, metric_rows,
                              small_config, wait_for)
from linkbert_jax import main
from linkbert_jax.checkpoint import checkpoints, orbax_faults


def _full_disk_from_step(first_failing: int):
    """Orbax's background write of a step's metadata, failing as on a full disk."""
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as jch
    real = jch.JsonCheckpointHandler._save_fn

    async def save_fn(self, x, directory):
        if x.get("step", 0) >= first_failing:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
        return await real(self, x, directory)
    return save_fn


# In a private mount namespace: a tmpfs as the workdir, filled up (all but 256 KiB) once
# step 2 is saved, so that the save of step 4 meets a full disk; then the verdict on the
# checkpoints, read inside the namespace (the tmpfs goes with it).
FULL_DISK = r"""
mount -t tmpfs -o size=64m tmpfs "$WD" || exit 99
"$@" &
pid=$!
while [ ! -e "$WD/checkpoints/2/_CHECKPOINT_METADATA" ]; do
  kill -0 $pid 2>/dev/null || break; sleep 0.1
done
avail=$(( $(stat -f -c '%a * %S' "$WD") ))
dd if=/dev/zero of="$WD/filler" bs=64k count=$(( (avail - 262144) / 65536 )) 2>/dev/null
wait $pid
echo "RC=$?"
python -c "from linkbert_jax.checkpoint import checkpoints as c; print('VALID', c.latest_valid_step('$WD'))"
"""


def _can_mount_tmpfs(where) -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c",
                               f"mount -t tmpfs -o size=1m tmpfs {where}"],
                              capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _on_a_full_tmpfs(workdir) -> tuple[int, str, str]:
    """(exit status, stderr, latest valid step) of a run that fills its tmpfs workdir."""
    over = {**OVERRIDES, **SMALL_MODEL, "num_train_steps": 12,
            "checkpoint_every_steps": 2, "async_checkpointing": True,
            "log_every_steps": 1000}  # metrics at step 1 only: the checkpoint meets the full disk
    spec = {"config": config_path("cpu_small"), "workdir": str(workdir), "overrides": over,
            "source": {"vocab_size": 2048, "max_seq_length": 32, "step_sleep": 0.5}}
    env = dict(os.environ, JAX_PLATFORMS="cpu", WD=str(workdir),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    p = subprocess.run(["unshare", "-rm", "sh", "-c", FULL_DISK, "sh", sys.executable, "-m",
                        "helpers.train_driver", json.dumps(spec)], cwd=TESTS, env=env,
                       capture_output=True, text=True, timeout=600)
    rc = re.search(r"^RC=(\d+)$", p.stdout, re.M)
    valid = re.search(r"^VALID (\S+)$", p.stdout, re.M)
    assert rc and valid, p.stdout[-2000:] + p.stderr[-3000:]
    return int(rc.group(1)), p.stderr, valid.group(1)


def _on_a_simulated_full_disk(workdir, monkeypatch, capsys) -> tuple[int, str, str]:
    """The same with orbax's background write of step 4's metadata failing with ENOSPC."""
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as jch
    monkeypatch.setattr(jch.JsonCheckpointHandler, "_save_fn", _full_disk_from_step(4))
    c = small_config(num_train_steps=12, checkpoint_every_steps=2, async_checkpointing=True,
                     eval_at_end=False)
    rc = main.run(c, str(workdir), SyntheticSource(vocab_size=2048, max_seq_length=32,
                                                   step_sleep=0.2))
    last = max(r["step"] for r in metric_rows(workdir) if "loss" in r)
    assert 5 <= last <= 6, last  # stopped at the step after the failed save (not 12)
    return rc, capsys.readouterr().err, str(checkpoints.latest_valid_step(str(workdir)))


def test_full_disk_stops_the_run_with_the_cause(tmp_path, monkeypatch, capsys):
    """A real full disk where the machine lets a user namespace mount a tmpfs (this one
    does), else orbax's write failing with ENOSPC in-process: the same outcome."""
    workdir = tmp_path / "wd"
    workdir.mkdir()
    if _can_mount_tmpfs(workdir):
        rc, err, valid = _on_a_full_tmpfs(workdir)
    else:
        rc, err, valid = _on_a_simulated_full_disk(workdir, monkeypatch, capsys)
    line = one_error_line(err)
    assert rc == 2, err[-3000:]
    assert "could not be written" in line and "No space left on device" in line
    kept = re.search(r"the last complete checkpoint \(step (\d+)\) is kept", line)
    # step 2, unless a loaded machine let step 4's save in before the disk was full
    assert kept and int(kept.group(1)) >= 2, line
    assert valid == kept.group(1)  # that step restores and verifies


def test_the_os_error_survives_shortening_wherever_it_sits():
    """A tensorstore error is a page of spec; its OS error may sit in the middle (seen
    when the full disk met a zarr metadata write), or only as a number."""
    spec = '{"driver":"zarr","metadata":{"chunks":[4,4]},"cached_metadata":false}' * 4
    assert orbax_faults.one_line(Exception("short")) == "Exception: short"
    for said in ("[OS error 28: No space left on device]",
                 "Failed to write 4 bytes: No space left on device [os_error_code='28']"):
        wrapped = Exception("orbax")
        wrapped.__cause__ = ValueError(f'Error writing "{"x" * 200}/.zarray": {said} {spec}')
        line = orbax_faults.one_line(wrapped)
        assert line.startswith("ValueError: Error writing") and len(line) < 420, line
        assert "No space left on device" in line and line.endswith("false}"), line
    # tensorstore may give only the number, at the end (seen on CI's full tmpfs), or in a
    # short message: the line still names it in words
    for text in (f"Error writing {spec} [os_error_code='28']", "write failed [Errno 28]"):
        line = orbax_faults.one_line(OSError(text))
        assert "[OS error 28: No space left on device]" in line and len(line) < 420, line


def test_ctrl_c_saves_and_exits_zero_then_a_finished_run_runs_its_final_eval(tmp_path):
    c = small_config(num_train_steps=500, checkpoint_every_steps=1000, eval_at_end=False)
    source = SyntheticSource(vocab_size=2048, max_seq_length=32, step_sleep=0.1)

    def ctrl_c_at_step_3():
        while not any(r.get("step", 0) >= 3 for r in metric_rows(tmp_path)):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # what a terminal's Ctrl-C sends
    threading.Thread(target=ctrl_c_at_step_3, daemon=True).start()
    assert main.run(c, str(tmp_path), source) == 0  # not 130: the Ctrl-C was handled
    saved = checkpoints.latest_valid_step(str(tmp_path))
    assert saved is not None and 3 <= saved < 500
    assert max(r["step"] for r in metric_rows(tmp_path) if "loss" in r) == saved
    # The run, finished at that step (as if its final eval had failed), run again with
    # the eval asked for: it evaluates, and trains no further.
    c.update(num_train_steps=saved, eval_at_end=True)
    assert main.run(c, str(tmp_path), source) == 0
    rows = metric_rows(tmp_path)
    assert max(r["step"] for r in rows if "loss" in r) == saved
    assert [r["step"] for r in rows if "eval_loss" in r] == [saved]


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    over = {**OVERRIDES, **SMALL_MODEL, "num_train_steps": 500, "checkpoint_every_steps": 2}
    spec = {"config": config_path("cpu_small"), "workdir": str(tmp_path), "overrides": over,
            "source": {"vocab_size": 2048, "max_seq_length": 32,
                       "step_sleep": 2.0}}  # the signals land in a step
    proc = driver(spec, 1)
    wait_for(lambda: checkpoints.is_complete(str(tmp_path / "checkpoints" / "2")), proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)  # two signals before the handler runs would count as one
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "second SIGINT: stopped at once, without saving" in one_error_line(err)
    assert max(r["step"] for r in metric_rows(tmp_path) if "loss" in r) < 500
    assert checkpoints.latest_valid_step(str(tmp_path)) >= 2  # kept, valid


# The write tasks of a failed save as orbax leaves them, and the future gathering them:
# their errors never retrieved, collected at exit. The coroutine lives in a file under a
# directory named orbax, as orbax's own do.
LEFTOVER_WRITE = r"""
import asyncio, gc, sys
from orbax_like.orbax import writer  # from the working directory (python -c)
if sys.argv[1] == "quiet":
    from linkbert_jax.checkpoint import orbax_faults
    orbax_faults.quiet_after_failed_write()
async def save():  # a task of the coroutine, a future gathering another, tensorstore's
    write = asyncio.get_running_loop().create_future()
    write.set_exception(ValueError("Error writing 4.orbax-checkpoint-tmp/d/9cf6: ENOSPC"))
    leftovers = asyncio.ensure_future(writer.write_fragment()), asyncio.gather(
        writer.write_fragment()), write
    await asyncio.sleep(0.05)
asyncio.run(save())
gc.collect()
"""


def test_a_failed_saves_leftover_write_tasks_print_no_traceback(tmp_path):
    pkg = tmp_path / "orbax_like" / "orbax"
    pkg.mkdir(parents=True)
    (pkg / "writer.py").write_text(
        "async def write_fragment():\n    raise OSError(28, 'No space left on device')\n")

    def stderr_of(mode):
        return subprocess.run([sys.executable, "-c", LEFTOVER_WRITE, mode], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120).stderr
    loud = stderr_of("loud")
    for leftover in ("Task", "_GatheringFuture", "Future"):
        assert f"exception was never retrieved\nfuture: <{leftover} finished" in loud, loud
    assert "Traceback" in loud
    assert stderr_of("quiet") == ""
