"""Acceptance 1: the small CPU config learns (synthetic pairs with learnable relations).

Overrides for speed on 2 shared cores: a 2,048-token vocabulary and 64-token sequences.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from linkbert_jax import trainer  # noqa: E402
from test_train_units import load  # noqa: E402
from train_synthetic import SyntheticSource  # noqa: E402


def test_cpu_small_learns_mlm_and_drp(tmp_path):
    c = load("cpu_small")
    c.model.vocab_size = 2048
    c.seq_length = 64
    c.eval_max_batches = 4
    trainer.train_and_evaluate(c, str(tmp_path), SyntheticSource(vocab_size=2048,
                                                                 eval_batches=4))
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    train = [r for r in rows if "loss" in r]
    ev = [r for r in rows if "eval_loss" in r][-1]
    assert train[-1]["step"] == c.num_train_steps
    first, last = train[0], train[-1]
    assert {"mlm_accuracy", "drp_accuracy_linked", "learning_rate", "grad_norm",
            "steps_per_sec", "tokens_per_sec", "mfu", "input_wait_fraction"} <= set(last)
    print(f"mlm {first['mlm_loss']:.2f} -> {last['mlm_loss']:.2f} (eval {ev['eval_mlm_loss']:.2f});"
          f" drp acc eval {ev['eval_drp_accuracy']:.2f}")
    assert ev["eval_mlm_loss"] < first["mlm_loss"] - 2.5
    assert ev["eval_drp_accuracy"] > 0.5  # chance is 1/3 (0.55 here, deterministic on CPU)
    assert ev["eval_examples"] == 4 * c.eval_batch_size
    assert (tmp_path / "checkpoints" / str(c.num_train_steps)).is_dir()
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tensorboard"))
