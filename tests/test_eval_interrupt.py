"""Issue 22, row 10: SIGTERM during a long pretraining eval. The eval stops at the next
batch, the step is saved within seconds (a preemption grace period, not the eval's
length), the partial eval is not logged, and the same command resumes after it."""
import re
import signal
import time

from helpers.training import (OVERRIDES, config_path, driver, metric_rows, result_of,
                              wait_for)
from linkbert_jax.checkpoint import checkpoints

SMALL_MODEL = {"model.hidden_size": 32, "model.num_hidden_layers": 1,
               "model.num_attention_heads": 2, "model.intermediate_size": 64,
               "model.vocab_size": 2048}
EVAL_BATCHES, BATCH_SECONDS = 300, 0.3  # an eval of 90 s, at least


def test_sigterm_during_a_long_eval_saves_within_seconds(tmp_path):
    over = {**OVERRIDES, **SMALL_MODEL, "num_train_steps": 500, "eval_every_steps": 3,
            "eval_max_batches": 0, "checkpoint_every_steps": 1000}
    spec = {"config": config_path("cpu_small"), "workdir": str(tmp_path), "overrides": over,
            "source": {"vocab_size": 2048, "max_seq_length": 32,
                       "step_sleep": BATCH_SECONDS, "eval_batches": EVAL_BATCHES}}
    proc = driver(spec, 1)
    wait_for(lambda: any(r.get("step", 0) >= 3 for r in metric_rows(tmp_path)), proc)
    time.sleep(6)  # the eval of step 3 is running (its compile, then 0.3 s a batch)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = result_of(proc, timeout=60)  # exit 0; a full eval would take 90 s
    elapsed = time.monotonic() - t0
    assert elapsed < 20, (elapsed, err[-3000:])
    done = re.search(r"eval at step 3 interrupted by a termination signal after (\d+) "
                     r"batches: not logged", err)
    assert done and 1 <= int(done.group(1)) < EVAL_BATCHES, err[-3000:]  # mid-eval
    assert checkpoints.latest_valid_step(str(tmp_path)) == 3  # saved after the signal
    rows = metric_rows(tmp_path)
    assert not [r for r in rows if "eval_loss" in r]  # the partial eval is no result
    assert max(r["step"] for r in rows if "loss" in r) == 3
    # A restart resumes at step 4 (the interrupted eval is not rerun).
    spec["overrides"].update(num_train_steps=4, eval_every_steps=0, eval_at_end=False)
    result_of(driver(spec, 1))
    assert [r["step"] for r in metric_rows(tmp_path) if "loss" in r] == [1, 2, 3, 4]
