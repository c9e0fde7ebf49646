"""Acceptance 1: the small CPU config learns, on synthetic pairs with learnable relations
and on the real Wikipedia sample through the corpus builder and the CLI.

Overrides for speed on 2 shared cores: a 2,048-token vocabulary and 64-token sequences.
"""
import json
import os
import subprocess
import sys

import pytest

from helpers.synthetic import SyntheticSource
from helpers.training import config_path, load
from linkbert_jax.pretrain import trainer
from linkbert_jax.data.samples import wikipedia_sample

pytestmark = pytest.mark.slow


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


def test_cpu_small_learns_on_real_wikipedia(tmp_path):
    """Acceptance 1 on real data: builder output of the gensim Wikipedia sample (106
    articles, real links), the CLI with the small CPU config: 1,000 steps of 64 pairs at a
    learning rate of 3e-3 (until session 17: 1,500 steps at 2e-3, similar margins), 154 s
    alone on 2 cores (session 21). Shorter schedules miss the floors (docs/test_time.md)."""
    wiki = wikipedia_sample()
    data, work = tmp_path / "data", tmp_path / "train"
    subprocess.run([sys.executable, "-m", "linkbert_jax.data.build", "--input", wiki,
                    "--format", "wikipedia", "--output_dir", str(data),
                    "--train_vocab_size", "2000", "--max_seq_length", "64",
                    "--num_shards", "2", "--eval_fraction", "0.1", "--workers", "2",
                    "--no_progress"], check=True, cwd=tmp_path, capture_output=True)
    subprocess.run([sys.executable, "-m", "linkbert_jax.main",
                    "--config", config_path("cpu_small"),
                    "--workdir", str(work), f"--config.data_dir={data}",
                    "--config.seq_length=64", "--config.global_batch_size=64",
                    "--config.num_train_steps=1000", "--config.learning_rate=3e-3",
                    "--config.warmup_steps=100", "--config.checkpoint_every_steps=1000",
                    "--config.log_every_steps=50", "--config.eval_max_batches=0"],
                   check=True, cwd=tmp_path, capture_output=True)
    rows = [json.loads(line) for line in open(work / "metrics.jsonl")]
    train = [r for r in rows if "loss" in r]
    ev = [r for r in rows if "eval_loss" in r][-1]
    late = train[-3:]  # the last 150 steps x 64 pairs
    drp_train = sum(r["drp_accuracy"] for r in late) / len(late)
    print(f"mlm {train[0]['mlm_loss']:.2f} -> eval {ev['eval_mlm_loss']:.2f}; drp acc train "
          f"{drp_train:.3f}, eval {ev['eval_drp_accuracy']:.3f} on {ev['eval_examples']:.0f}")
    assert ev["eval_examples"] > 1500  # the whole eval split, each pair once
    assert ev["eval_mlm_loss"] < train[0]["mlm_loss"] - 1.5  # measured: 7.63 -> 5.93
    # Chance is 1/3. Train: 9,600 pairs, sd ~0.005; measured 0.426 in session 22 (the
    # factor clip), 0.418 in session 21 (twice, the same bits), 0.449 in session 17
    # (0.43-0.49 with the earlier 1,500 steps at 2e-3).
    # The relation head is mid-way through its rise at this length (at chance until step
    # ~700): 800 steps at 3e-3 reached 0.400, and 5e-3 did not learn it.
    assert drp_train > 0.40
    # Held-out anchor documents (partners from all documents since issue 21): sd ~0.008
    # over ~3,200 pairs at chance; measured 0.411 in session 22, 0.403 in session 21,
    # 0.408 in session 17 (0.413 with the earlier 1,500 steps).
    assert ev["eval_drp_accuracy"] > 0.38
