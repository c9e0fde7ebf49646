"""Acceptance 2, 5, 6 (+ non-finite loss): exact resume after SIGKILL, SIGTERM saves and
exits 0, incomplete checkpoints are skipped, a NaN loss stops with the last good one kept."""
import os
import signal

import numpy as np
import pytest

from helpers.synthetic import SyntheticSource
from helpers.training import (OVERRIDES, SOURCE, config_path, driver, metric_rows, result_of,
                              small_config, wait_for)
from linkbert_jax.checkpoint import checkpoints
from linkbert_jax.pretrain import trainer
from linkbert_jax.errors import NonFiniteLossError


def _spec(workdir, **over):
    return {"config": config_path("cpu_small"), "workdir": str(workdir),
            "overrides": {**OVERRIDES, **over}, "source": {**SOURCE, "step_sleep": 0.25}}


def test_sigkill_then_restart_is_bitwise_identical(tmp_path):
    n = 4
    spec_full = _spec(tmp_path / "full", num_train_steps=2 * n, checkpoint_every_steps=n)
    spec_kill = _spec(tmp_path / "kill", num_train_steps=2 * n, checkpoint_every_steps=n)
    full = driver(spec_full, 1)
    victim = driver(spec_kill, 1)
    step_dir = str(tmp_path / "kill" / "checkpoints" / str(n))
    wait_for(lambda: checkpoints.is_complete(step_dir), victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not os.path.isdir(tmp_path / "kill" / "checkpoints" / str(2 * n))
    result_of(driver(spec_kill, 1))  # the same command again: resumes at step n
    result_of(full)
    _, a, sa = checkpoints.load_params(str(tmp_path / "full"))
    _, b, sb = checkpoints.load_params(str(tmp_path / "kill"))
    assert sa == sb == 2 * n
    import jax
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert np.array_equal(x, y)
    resumed = [r["step"] for r in metric_rows(tmp_path / "kill") if "loss" in r]
    assert resumed[-n:] == list(range(n + 1, 2 * n + 1))


def test_sigterm_saves_exits_zero_and_resumes(tmp_path):
    spec = _spec(tmp_path, num_train_steps=500)
    proc = driver(spec, 1)
    wait_for(lambda: any(r.get("step", 0) >= 3 for r in metric_rows(tmp_path)), proc)
    proc.send_signal(signal.SIGTERM)
    out, err = result_of(proc, timeout=120)  # asserts exit status 0
    mgr = checkpoints.manager(str(tmp_path), read_only=True, async_save=False)
    saved = checkpoints.latest_complete_step(mgr)
    assert saved is not None and 3 <= saved < 500, err[-2000:]
    spec["overrides"]["num_train_steps"] = saved + 2
    result_of(driver(spec, 1))
    steps = [r["step"] for r in metric_rows(tmp_path) if "loss" in r]
    assert steps[-2:] == [saved + 1, saved + 2]
    assert max(checkpoints.manager(str(tmp_path), read_only=True).all_steps()) == saved + 2


def test_incomplete_checkpoint_is_skipped(tmp_path):
    c = small_config(num_train_steps=4, checkpoint_every_steps=2, async_checkpointing=False,
                     eval_at_end=False)
    source = SyntheticSource(vocab_size=2048, max_seq_length=32)
    trainer.train_and_evaluate(c, str(tmp_path), source)
    ckpt = tmp_path / "checkpoints"
    os.remove(ckpt / "4" / "params" / "_METADATA")  # crash after the rename, mid-write
    (ckpt / "6.orbax-checkpoint-tmp-123" / "params").mkdir(parents=True)  # crash mid-save
    c.num_train_steps = 5
    trainer.train_and_evaluate(c, str(tmp_path), source)
    steps = [r["step"] for r in metric_rows(tmp_path) if "loss" in r]
    assert steps == [1, 2, 3, 4, 3, 4, 5]  # resumed from step 2
    assert checkpoints.is_complete(str(ckpt / "4")) and checkpoints.is_complete(str(ckpt / "5"))
    assert not (ckpt / "6.orbax-checkpoint-tmp-123").exists()


class _NanAfter(SyntheticSource):
    def batches(self, **kw):
        for i, b in enumerate(super().batches(**kw), start=kw.get("start_batch", 0)):
            if i >= 3:
                b["masked_weights"] = b["masked_weights"] * np.nan
            yield b


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    c = small_config(num_train_steps=8, checkpoint_every_steps=2, log_every_steps=4,
                     async_checkpointing=False)
    with pytest.raises(NonFiniteLossError, match="at step 4: training stopped.*step 2"):
        trainer.train_and_evaluate(c, str(tmp_path), _NanAfter(vocab_size=2048))
    assert sorted(checkpoints.manager(str(tmp_path), read_only=True).all_steps()) == [2]
