"""Issue 11, cases 8 and 9: Ctrl-C saves and exits 0 (a second one stops at once), and a
checkpoint that cannot be written (a full disk) stops the run at the next step with the
cause on one line, the last complete checkpoint kept."""
import errno
import os
import signal
import threading
import time

from helpers.synthetic import SyntheticSource
from helpers.training import (OVERRIDES, SOURCE, config_path, driver, metric_rows,
                              small_config, wait_for)
from linkbert_jax import checkpoints, main


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def _full_disk_from_step(first_failing: int):
    """Orbax's background write of a step's metadata, failing as on a full disk."""
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as jch
    real = jch.JsonCheckpointHandler._save_fn

    async def save_fn(self, x, directory):
        if x.get("step", 0) >= first_failing:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
        return await real(self, x, directory)
    return save_fn


def test_failed_background_save_stops_the_run_with_the_cause(tmp_path, monkeypatch, capsys):
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as jch
    monkeypatch.setattr(jch.JsonCheckpointHandler, "_save_fn", _full_disk_from_step(4))
    c = small_config(num_train_steps=12, checkpoint_every_steps=2, async_checkpointing=True,
                     eval_at_end=False)
    rc = main.run(c, str(tmp_path), SyntheticSource(vocab_size=2048, max_seq_length=32,
                                                     step_sleep=0.2))
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert "could not be written" in line and "No space left on device" in line
    assert "last complete checkpoint (step 2) is kept" in line
    last = max(r["step"] for r in metric_rows(tmp_path) if "loss" in r)
    assert 5 <= last <= 6, last  # stopped at the step after the failed save (not 12)
    _, _, step = checkpoints.load_params(str(tmp_path))  # restores and verifies
    assert step == 2


def test_ctrl_c_saves_and_exits_zero(tmp_path):
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


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    over = {**OVERRIDES, "num_train_steps": 500, "checkpoint_every_steps": 2}
    spec = {"config": config_path("cpu_small"), "workdir": str(tmp_path), "overrides": over,
            "source": {**SOURCE, "step_sleep": 3.0}}  # the signals land in a step
    proc = driver(spec, 1)
    wait_for(lambda: checkpoints.is_complete(str(tmp_path / "checkpoints" / "2")), proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)  # two signals before the handler runs would count as one
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "second SIGINT: stopped at once, without saving" in _one_error_line(err)
    assert max(r["step"] for r in metric_rows(tmp_path) if "loss" in r) < 500
    assert checkpoints.latest_valid_step(str(tmp_path)) >= 2  # kept, valid
