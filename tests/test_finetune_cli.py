"""The fine-tuning command end to end: 8 CPU devices (a data x fsdp mesh) give the same
losses and dev metrics as 1 device; its outputs (metrics, predictions, the exported HF
model, the seeds table) are complete."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import finetune_data

pytestmark = pytest.mark.slow


def _finetune(tmp_path, name, devices, *args):
    env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices), HF_HUB_OFFLINE="1")
    out = tmp_path / name
    p = subprocess.run([sys.executable, "-m", "linkbert_jax.finetune", *args, "--workdir",
                        str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, p.stderr


def _rows(path):
    return [json.loads(line) for line in open(path)]


def test_eight_devices_match_one_and_outputs_are_complete(tmp_path):
    tiny = finetune_data.tiny_bert(tmp_path / "tiny")
    files = finetune_data.real_task("tokcls", tmp_path / "data", n_train=64, n_dev=32)
    args = ["--task", "tokcls", "--init", tiny, "--train_file", files["train"],
            "--validation_file", files["validation"], "--test_file", files["test"],
            "--config.max_seq_length=32", "--config.batch_size=16",
            "--config.eval_batch_size=16", "--config.learning_rate=1e-3",
            "--config.num_train_epochs=2", "--config.log_every_steps=1"]
    one, _ = _finetune(tmp_path, "one", 1, *args)
    eight, log = _finetune(tmp_path, "eight", 8, *args, "--config.mesh.data=4",
                           "--config.mesh.fsdp=2", "--seeds", "42")
    eight = eight / "seed_42"
    assert "on 8 devices" in log and "eta" in log and "ex/s" in log

    loss = [[r["loss"] for r in _rows(d / "metrics.jsonl") if "loss" in r] for d in (one, eight)]
    assert len(loss[0]) == 8
    np.testing.assert_allclose(loss[0], loss[1], rtol=1e-4)
    res = [json.load(open(d / "results.json")) for d in (one, eight)]
    assert res[0]["best_step"] == res[1]["best_step"]
    for k, v in res[0]["dev"].items():
        assert abs(v - res[1]["dev"][k]) <= 1e-6, (k, res)

    preds = _rows(one / "predictions.jsonl")
    assert [p["id"] for p in preds] == [r["id"] for r in _rows(files["test"])]
    assert all(isinstance(p["prediction"], list) for p in preds)
    cfg = json.load(open(one / "model" / "config.json"))
    assert cfg["architectures"] == ["BertForTokenClassification"]
    assert set(cfg["label2id"]) == {"B-ENT", "I-ENT", "O"}
    table = open(tmp_path / "eight" / "summary.md").read()
    assert "| dev_f1 |" in table and "(seeds 42)" in table


def _packed_runs(tmp_path, name, dropout, batch, *eight_args, pack=32):
    """multiple choice (4 sequences an example, packed) on 1 and on 8 devices; row counts
    in at most 2 shapes (``pack_shapes``: fewer compiles, 98 s instead of 121 s alone)."""
    tiny = finetune_data.tiny_bert(tmp_path / f"tiny_{name}", dropout=dropout)
    files = finetune_data.real_task("mc", tmp_path / f"data_{name}", n_train=2 * batch,
                                    n_dev=32)
    args = ["--task", "mc", "--init", tiny, "--train_file", files["train"],
            "--validation_file", files["validation"], "--config.max_seq_length=64",
            f"--config.batch_size={batch}", "--config.eval_batch_size=16",
            f"--config.classifier_dropout={dropout}", "--config.learning_rate=1e-3",
            "--config.num_train_epochs=2", "--config.log_every_steps=1",
            f"--config.pack_examples={pack}", "--config.pack_shapes=2"]
    runs = [_finetune(tmp_path, f"{name}_{n}", n, *args, *extra)[0]
            for n, extra in ((1, ()), (8, ("--config.mesh.data=4", "--config.mesh.fsdp=2",
                                           *eight_args)))]
    loss = [[r["loss"] for r in _rows(d / "metrics.jsonl") if "loss" in r] for d in runs]
    assert len(loss[0]) == 4
    np.testing.assert_allclose(loss[0], loss[1], rtol=1e-4)
    res = [json.load(open(d / "results.json")) for d in runs]
    for k, v in res[0]["dev"].items():
        assert abs(v - res[1]["dev"][k]) <= 1e-6, (k, res)


def test_packed_batches_on_eight_devices_match_one_device(tmp_path):
    """Packed rows lie per device shard and microbatch with their labels: 8 devices in 2
    microbatches (groups of 2 examples) give one device's losses (groups of 32), dropout
    off. With dropout on, where the groups are the same (16 examples per device and
    microbatch, ``pack_examples`` 16), so are the rows and the dropout masks drawn over
    them."""
    _packed_runs(tmp_path, "layout", 0.0, 32, "--config.microbatches=2")
    _packed_runs(tmp_path, "dropout", 0.1, 128, pack=16)
