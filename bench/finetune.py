"""Fine-tuning throughput of our jitted task step (``linkbert_jax.finetune.train``, built
exactly as the fine-tuning command builds it) against Hugging Face PyTorch ``Trainer``
(``BertForSequenceClassification``, eager, ``trainer.train()``) in one process: same
architecture, batch and sequence length, fp32, dropout 0.1 on both, AdamW with linear
decay and clipping on both, the same CPU threads.

Each side is timed from the end of one optimizer step to the end of the next (its data
loading/collation included), in rounds that alternate ours and theirs; each round runs
``--block`` + 1 steps per side and drops the first (the hand-over from the other library;
for the Trainer also its per-``train()`` set-up). Medians over all timed steps.

    python bench/finetune.py [--shapes base,small] [--rounds 5] [--block 3]

Shapes: BERT-base (L12/H768, vocabulary 30,522) at seq 128 x batch 16 and a small model
(L4/H256) at seq 128 x batch 32, 2 labels. ``--quick`` shrinks everything (smoke test).

Last line: ``finetune ratio_base=... ex_s_ours_base=... ex_s_theirs_base=...``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import common  # bench/common.py (this script's directory is first on sys.path)
import train_step  # the architectures of the pretraining bench

# name: (architecture, seq length, batch); base and small are train_step.py's models.
SHAPES = {
    "base": (train_step.SHAPES["base"][0], 128, 16),
    "small": (train_step.SHAPES["small"][0], 128, 32),
    "quick": (dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=128), 32, 8),
}
VOCAB, LABELS = 30522, 2


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="base,small")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="tiny shape, one round (smoke test)")
    return p.parse_args()


def make_rows(n: int, seq_length: int, seed: int = 0) -> dict:
    """Full-length single sentences [CLS] ... [SEP] with random labels."""
    import numpy as np
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, VOCAB, size=(n, seq_length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 101, 102
    return {"input_ids": ids, "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
            "labels": rng.integers(0, LABELS, n).astype(np.int32)}


# ------------------------------------------------------------------------------- ours

def our_step(arch: dict, rows: dict, batch_size: int):
    """``fn()``: one fine-tuning step (next batch, device put, jitted step, loss read)."""
    import jax
    from linkbert_jax import sharding, steps
    from linkbert_jax.finetune import config as ft_config
    from linkbert_jax.finetune import data, pretrained, seqcls, tasks, train
    from linkbert_jax.model import ModelConfig, init_params

    cfg = ModelConfig(vocab_size=VOCAB, **arch)
    split = data.Split("synthetic", None, rows, True)
    task_data = tasks.TaskData(seqcls.SingleLabel(), list(range(LABELS)), {"train": split},
                               None)
    c = ft_config.get_config("seqcls", batch_size=batch_size, num_train_epochs=1000.0,
                             max_seq_length=rows["input_ids"].shape[1])
    train.resolve_steps(c, len(split))
    pre = pretrained.Pretrained(cfg, init_params(cfg, jax.random.key(0)), "", "random")
    setup = train.build(c, pre, task_data)
    train_fn, _ = train.compile_steps(setup, task_data.task.loss, c)
    params = train.initial_params(setup, pre, split, 0)
    box = {"state": steps.state_from_params(params, setup.tx, setup.state_sh), "it": None,
           "epoch": 0}
    rng = jax.random.key(1)

    def fn():
        batch = next(box["it"], None) if box["it"] else None
        if batch is None:
            box["it"] = data.train_batches(split, batch_size, 0, box["epoch"])
            box["epoch"] += 1
            batch = next(box["it"])
        box["state"], m = train_fn(box["state"], sharding.global_batch(batch, setup.data_sh),
                                   rng)
        return float(m["loss"])

    return fn


# ------------------------------------------------------------------------------ theirs

def hf_trainer(arch: dict, rows: dict, batch_size: int, threads: int, out_dir: str):
    """``run(k) -> [seconds per step]``: ``Trainer.train()`` for k steps, timed between
    consecutive step ends (the first step, with the set-up, is not in the list)."""
    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=VOCAB, num_labels=LABELS,
                                                     **arch))
    data = [{k: torch.tensor(rows[k][i], dtype=torch.long) for k in rows}
            for i in range(len(rows["labels"]))]
    ends: list = []

    class Clock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())

    def run(k: int) -> list:
        args = transformers.TrainingArguments(
            output_dir=out_dir, per_device_train_batch_size=batch_size, max_steps=k,
            learning_rate=5e-5, use_cpu=True, report_to=[], save_strategy="no",
            logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0)
        ends.clear()
        trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                       callbacks=[Clock()])
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
        trainer.train()
        return [b - a for a, b in zip(ends, ends[1:])]

    return run


def alternate(ours, theirs, rounds: int, block: int) -> dict:
    times = {"ours": [], "theirs": []}
    ours(), theirs(2)  # warm-up: compile / first allocations
    for _ in range(rounds):
        ours()
        for _ in range(block):
            t0 = time.perf_counter()
            ours()
            times["ours"].append(time.perf_counter() - t0)
        times["theirs"] += theirs(block + 1)
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    args = _args()
    import tempfile

    import jax
    threads = len(os.sched_getaffinity(0))
    print(f"jax {jax.__version__} {jax.devices()[0].device_kind}, {threads} CPU threads; "
          f"load {os.getloadavg()[0]:.2f}; host memory: {common.host_memory()}")
    shapes = ["quick"] if args.quick else args.shapes.split(",")
    rounds, figures = (1 if args.quick else args.rounds), {}
    for name in shapes:
        arch, L, B = SHAPES[name]
        rows = make_rows(4 * B, L)
        ours = our_step(arch, rows, B)
        with tempfile.TemporaryDirectory() as out:
            theirs = hf_trainer(arch, rows, B, threads, out)
            sec = alternate(ours, theirs, rounds, args.block)
        ex = {k: B / v for k, v in sec.items()}
        ratio = ex["ours"] / ex["theirs"]
        print(f"[{name}] L{arch['num_hidden_layers']}/H{arch['hidden_size']} seq {L} x batch "
              f"{B}: ours {sec['ours'] * 1e3:.0f} ms/step {ex['ours']:.1f} ex/s | Trainer "
              f"{sec['theirs'] * 1e3:.0f} ms/step {ex['theirs']:.1f} ex/s | ratio "
              f"{ratio:.2f}; load {os.getloadavg()[0]:.2f}", flush=True)
        figures.update({f"ratio_{name}": ratio, f"ex_s_ours_{name}": ex["ours"],
                        f"ex_s_theirs_{name}": ex["theirs"]})
    common.summary("finetune", **figures)


if __name__ == "__main__":
    common.setup()  # huge pages, as the trainer runs (re-executes once)
    sys.exit(main())
