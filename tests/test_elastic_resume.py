"""Issue 22, multi-host acceptance: a run stopped after a checkpoint and resumed on
another process count continues the same global example stream (TFRecord data, fp32).

Each run is the real trainer in subprocesses (2 processes x 2 CPU devices, or 1 process
x 4). "Stopped after the checkpoint at step 3" is a copy of a finished run's workdir
without its step-6 checkpoint and the metrics rows after step 3: what a kill right after
the step-3 save leaves on disk.
"""
import json
import shutil

import numpy as np
import pytest

from helpers.shards import MAX_LEN, write_shards
from helpers.training import config_path, driver, free_port, metric_rows, result_of

STEPS, CHECKPOINT = 6, 3


def _overrides(data_dir) -> dict:
    return {"data_dir": str(data_dir), "model.num_hidden_layers": 1, "seq_length": MAX_LEN,
            "global_batch_size": 8, "masking.max_predictions": 8, "warmup_steps": 2,
            "num_train_steps": STEPS, "checkpoint_every_steps": CHECKPOINT,
            "log_every_steps": 1, "eval_every_steps": 0, "eval_at_end": False,
            "async_checkpointing": False}


def _train(data_dir, workdir, processes: int) -> None:
    spec = {"config": config_path("cpu_small"), "overrides": _overrides(data_dir),
            "source": "tfrecord", "workdir": str(workdir)}
    if processes == 1:
        result_of(driver(spec, 4))
        return
    port = free_port()
    procs = [driver({**spec, "distributed": {"coordinator": f"localhost:{port}",
                                              "num_processes": processes,
                                              "process_id": i}}, 4 // processes)
             for i in range(processes)]
    for p in procs:
        result_of(p)


def _losses(workdir, after: int = 0) -> list[float]:
    return [r["loss"] for r in metric_rows(workdir) if "loss" in r and r["step"] > after]


def _stopped_copy(workdir, dst):
    """``workdir`` as a kill right after the checkpoint at step CHECKPOINT leaves it."""
    shutil.copytree(workdir, dst)
    shutil.rmtree(dst / "checkpoints" / str(STEPS))
    rows = [r for r in metric_rows(dst) if r["step"] <= CHECKPOINT]
    (dst / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


@pytest.mark.slow
def test_resume_on_another_process_count_continues_the_same_stream(tmp_path):
    data = tmp_path / "data"
    write_shards(str(data), None)
    _train(data, tmp_path / "two", 2)
    _train(data, tmp_path / "one", 1)
    two, one = _losses(tmp_path / "two"), _losses(tmp_path / "one")
    assert len(two) == len(one) == STEPS
    # The stream has 2 virtual streams from a 2-process start, 1 from a 1-process start.
    assert max(abs(a - b) for a, b in zip(two, one)) > 1e-2  # another stream shows
    for first, then, ref in ((2, 1, two), (1, 2, one)):
        wd = _stopped_copy(tmp_path / {2: "two", 1: "one"}[first],
                           tmp_path / f"from{first}to{then}")
        _train(data, wd, then)
        np.testing.assert_allclose(_losses(wd, after=CHECKPOINT), ref[CHECKPOINT:],
                                   atol=1e-3, rtol=0, err_msg=f"{first} -> {then}")
