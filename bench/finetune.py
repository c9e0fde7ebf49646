"""Fine-tuning throughput of our jitted task step (``linkbert_jax.finetune.train``, built
exactly as the fine-tuning command builds it) against Hugging Face PyTorch ``Trainer``
(``BertForSequenceClassification``, eager, ``trainer.train()``) in one process: same
architecture, batch and maximum sequence length, fp32, dropout 0.1 on both, AdamW with
linear decay and clipping on both, the same CPU threads. Two data sets:

- ``full``: random tokens filling every row to the sequence length: both sides do the
  same work. Each side is timed from the end of one optimizer step to the end of the
  next (data included), in rounds alternating ours and theirs; each round runs
  ``--block`` + 1 steps per side and drops the first (the hand-over from the other
  library; for the Trainer also its per-``train()`` set-up). Medians over timed steps.
- ``text``: real sentence pairs (consecutive sentences of the Wikipedia sample's
  articles, MiniLM's WordPiece tokenizer, ``max_seq_length`` 128; half the second
  sentences drawn from another article), as a sequence-classification task. Whole epochs,
  alternating four sides each round:
  - ours with the defaults: batches in random order, packed several examples to a row
    (``pack_examples``);
  - ours one example to a row (``--config.pack_examples=0``), with
    ``--config.group_by_length=True``: batches of similar lengths, cut to their longest
    row rounded up to a multiple of 32 tokens (128 / the default 4 ``length_buckets``);
  - the Trainer as LinkBERT's ``run_seqcls.py`` runs it: every row padded to
    ``max_seq_length`` (its ``pad_to_max_length`` default);
  - the Trainer at its best on CPU: ``DataCollatorWithPadding`` (each batch padded to its
    longest row) and ``group_by_length=True``.
  Every batch shape our epochs meet is compiled before timing; the compile time is printed.

    python bench/finetune.py [--data full,text] [--shapes base,small] [--rounds 5] [--block 3]

Shapes: BERT-base (L12/H768, vocabulary 30,522) at batch 16 and a small model (L4/H256)
at batch 32, seq 128, 2 labels. ``--quick`` shrinks everything (smoke test).

Useful MFU (``text``): the training FLOPs of the epoch's real tokens (each example's own
length; ``metrics_log.flops_per_sequence`` plus pooler and classifier) per second, over
the fp32 matmul peak (2048^3 in JAX) timed as a fifth side of the same rounds.

Last line: ``finetune ratio_full_base=... ratio_text_base=... peak_gflops_base=...
mfu_text_base=... ...`` (``ratio_text_*``: ours with the defaults against the Trainer as
LinkBERT runs it; ``ratio_text_vs_dynamic_*``: against the Trainer at its best).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
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
    p.add_argument("--data", default="full,text")
    p.add_argument("--shapes", default="base,small")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block", type=int, default=3)
    p.add_argument("--text_steps", type=int, default=12, help="steps per text epoch")
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


def text_rows(n: int, seq_length: int, seed: int = 0):
    """``(rows padded to seq_length, tokenizer)``: n sentence pairs of the Wikipedia
    sample, the second sentence the next one (label 1) or another article's (label 0)."""
    import random

    import numpy as np
    from transformers import AutoTokenizer

    from linkbert_jax.data.samples import minilm_dir, wikipedia_articles
    tok = AutoTokenizer.from_pretrained(minilm_dir())
    arts, rng, pairs = wikipedia_articles(), random.Random(seed), []
    while len(pairs) < n:
        _, sents, _ = rng.choice(arts)
        i = rng.randrange(len(sents) - 1)
        nxt = rng.random() < 0.5
        other = sents[i + 1] if nxt else rng.choice(rng.choice(arts)[1])
        pairs.append((sents[i], other, int(nxt)))
    enc = tok([a for a, _, _ in pairs], [b for _, b, _ in pairs], truncation=True,
              max_length=seq_length, padding="max_length", return_token_type_ids=True)
    rows = {k: np.asarray(enc[k], np.int32) for k in ("input_ids", "attention_mask",
                                                      "token_type_ids")}
    rows["labels"] = np.asarray([y for _, _, y in pairs], np.int32)
    return rows, tok


# ------------------------------------------------------------------------------- ours

def our_step(arch: dict, rows: dict, batch_size: int, **config):
    """``fn()``: one fine-tuning step (next batch, device put, jitted step, loss read);
    ``fn.compile(epochs)`` compiles the step for each batch shape of the first ``epochs``
    epochs (``fn.shapes`` of them); ``fn.epoch_batches(epoch)``: the host batches of an
    epoch, as the step gets them. ``config``: fine-tuning config keys."""
    import jax
    from linkbert_jax import sharding
    from linkbert_jax.pretrain import steps
    from linkbert_jax.finetune import config as ft_config
    from linkbert_jax.finetune import data, pretrained, seqcls, tasks, train
    from linkbert_jax.model import ModelConfig, init_params

    cfg = ModelConfig(vocab_size=VOCAB, **arch)
    split = data.Split("synthetic", None, rows, True)
    task_data = tasks.TaskData(seqcls.SingleLabel(), list(range(LABELS)), {"train": split},
                               None)
    L = rows["input_ids"].shape[1]
    c = ft_config.get_config("seqcls", batch_size=batch_size, num_train_epochs=1000.0,
                             max_seq_length=L, **config)
    c = train.resolve_steps(c, len(split))
    pre = pretrained.Pretrained(cfg, init_params(cfg, jax.random.key(0)), "", "random")
    setup = train.build(c, pre, task_data)
    train_fn, _ = train.compile_steps(setup, task_data.task.loss, c)
    params = train.initial_params(setup, pre, split, 0)
    lengths = train.batch_lengths(setup, task_data.task, c, training=True)
    box = {"state": steps.state_from_params(params, setup.tx, setup.state_sh), "it": None,
           "epoch": 0}
    rng = jax.random.key(1)

    def step(batch):
        box["state"], m = train_fn(box["state"], sharding.global_batch(batch, setup.data_sh),
                                   rng)
        return float(m["loss"])

    def epoch_batches(epoch: int):
        return data.train_batches(split, batch_size, 0, epoch, lengths=lengths)

    def fn():
        batch = next(box["it"], None) if box["it"] else None
        if batch is None:
            box["it"] = epoch_batches(box["epoch"])
            box["epoch"] += 1
            batch = next(box["it"])
        return step(batch)

    def compile_all(epochs: int):
        seen = set()
        for epoch in range(epochs):
            for batch in epoch_batches(epoch):
                if batch["input_ids"].shape not in seen:
                    seen.add(batch["input_ids"].shape)
                    step(batch)
        fn.shapes = len(seen)

    fn.compile, fn.epoch_batches = compile_all, epoch_batches
    return fn


# ------------------------------------------------------------------------------ theirs

def hf_trainer(arch: dict, rows: dict, batch_size: int, threads: int, out_dir: str,
               tokenizer=None):
    """``run(k) -> [seconds per step]``: ``Trainer.train()`` for k steps, the first timed
    from the start of the epoch (batch loading included), each other from the end of the
    step before. With a ``tokenizer``: rows unpadded, ``DataCollatorWithPadding`` and
    ``group_by_length`` (the Trainer's own way to pad less); else rows as given."""
    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=VOCAB, num_labels=LABELS,
                                                     **arch))
    real = rows["attention_mask"].sum(1) if tokenizer else [None] * len(rows["labels"])
    data = [{k: torch.tensor(rows[k][i][:real[i]] if rows[k].ndim == 2 else rows[k][i],
                             dtype=torch.long) for k in rows}
            for i in range(len(rows["labels"]))]
    ends: list = []

    class Clock(transformers.TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kw):
            ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())

    def run(k: int) -> list:
        args = transformers.TrainingArguments(
            output_dir=out_dir, per_device_train_batch_size=batch_size, max_steps=k,
            learning_rate=5e-5, use_cpu=True, report_to=[], save_strategy="no",
            logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
            train_sampling_strategy="group_by_length" if tokenizer else "random")
        ends.clear()
        trainer = transformers.Trainer(
            model=model, args=args, train_dataset=data, callbacks=[Clock()],
            data_collator=transformers.DataCollatorWithPadding(tokenizer) if tokenizer
            else None)
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
        trainer.train()
        return [b - a for a, b in zip(ends, ends[1:])]

    return run


# ------------------------------------------------------------------------------ timing

def alternate(ours, theirs, rounds: int, block: int) -> dict:
    """Median seconds per step of each side (``full``)."""
    times = {"ours": [], "theirs": []}
    ours(), theirs(2)  # warm-up: compile / first allocations
    for _ in range(rounds):
        ours()
        for _ in range(block):
            t0 = time.perf_counter()
            ours()
            times["ours"].append(time.perf_counter() - t0)
        times["theirs"] += theirs(block + 1)[1:]
    return {k: statistics.median(v) for k, v in times.items()}


def _epoch_of(fn):
    """Our side as the Trainer's ``run(k)``: seconds of each of k steps."""
    def run(k: int) -> list:
        out, t0 = [], time.perf_counter()
        for _ in range(k):
            fn()
            out.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
        return out
    return run


def epochs(sides: dict, rounds: int, steps: int) -> dict:
    """Median seconds per whole epoch of ``steps`` steps of each side (``text``)."""
    times = {k: [] for k in sides}
    for run in sides.values():
        run(2)  # warm-up: first allocations
    for _ in range(rounds):
        for k, run in sides.items():
            times[k].append(sum(run(steps)))
    return {k: statistics.median(v) for k, v in times.items()}


def bench_full(name, threads, rounds, block) -> dict:
    arch, L, B = SHAPES[name]
    rows = make_rows(4 * B, L)
    ours = our_step(arch, rows, B)
    with tempfile.TemporaryDirectory() as out:
        sec = alternate(ours, hf_trainer(arch, rows, B, threads, out), rounds, block)
    ex = {k: B / v for k, v in sec.items()}
    ratio = ex["ours"] / ex["theirs"]
    print(f"[full {name}] L{arch['num_hidden_layers']}/H{arch['hidden_size']} seq {L} x batch "
          f"{B}: ours {sec['ours'] * 1e3:.0f} ms/step {ex['ours']:.1f} ex/s | Trainer "
          f"{sec['theirs'] * 1e3:.0f} ms/step {ex['theirs']:.1f} ex/s | ratio {ratio:.2f}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    return {f"ratio_full_{name}": ratio, f"ex_s_ours_full_{name}": ex["ours"],
            f"ex_s_theirs_full_{name}": ex["theirs"]}


def useful_flops(arch: dict, rows: dict) -> float:
    """Training FLOPs of one epoch at the real tokens only (each example's own length,
    attention within it), with the pooler and the classifier; padding is not credited."""
    from linkbert_jax.infra import metrics_log
    from linkbert_jax.model import ModelConfig
    cfg = ModelConfig(vocab_size=VOCAB, **arch)
    d = cfg.hidden_size
    head = 6.0 * (d * d + d * LABELS)
    return sum(metrics_log.flops_per_sequence(cfg, int(n), 0) + head
               for n in rows["attention_mask"].sum(axis=1))


def _peak_side(calls: int = 3):
    """The matmul peak as a side of :func:`epochs` (``calls`` timed calls whatever the
    epoch's steps) and the FLOPs of one round of it."""
    fn, flops = common.matmul_peak_fn(2048)
    fn()  # compile

    def run(k: int) -> list:
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out
    return run, calls * flops


def bench_text(name, threads, rounds, steps) -> dict:
    arch, L, B = SHAPES[name]
    rows, tok = text_rows(steps * B, L)
    peak_run, peak_flops = _peak_side()
    packed = our_step(arch, rows, B)
    grouped = our_step(arch, rows, B, pack_examples=0, group_by_length=True)
    t0 = time.perf_counter()
    for fn in (packed, grouped):  # the epochs the warm-up and rounds run
        fn.compile(rounds + 2)
    compile_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        sides = {"ours": _epoch_of(packed), "ours_cut_grouped": _epoch_of(grouped),
                 "trainer_padded": hf_trainer(arch, rows, B, threads, out),
                 "trainer_dynamic": hf_trainer(arch, rows, B, threads, out, tok),
                 "peak": peak_run}
        sec = epochs(sides, rounds, steps)
    peak = peak_flops / sec.pop("peak")
    flops = useful_flops(arch, rows)
    mfu = {k: flops / sec[k] / peak for k in ("ours", "trainer_dynamic")}
    ex = {k: steps * B / v for k, v in sec.items()}
    real = rows["attention_mask"].sum() / rows["attention_mask"].size
    print(f"[text {name}] L{arch['num_hidden_layers']}/H{arch['hidden_size']} max seq {L} x "
          f"batch {B}, {steps} steps an epoch, {real:.0%} of the padded tokens real; ex/s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in ex.items())
          + f"; ours compiled {packed.shapes} packed + {grouped.shapes} cut shapes in "
          f"{compile_s:.0f} s; load {os.getloadavg()[0]:.2f}", flush=True)
    ratios = {"ratio_text": ex["ours"] / ex["trainer_padded"],
              "ratio_text_cut_grouped": ex["ours_cut_grouped"] / ex["trainer_padded"],
              "ratio_text_vs_dynamic": ex["ours"] / ex["trainer_dynamic"]}
    print(f"[text {name}] ours (packed) / Trainer padded {ratios['ratio_text']:.2f}; ours "
          f"cut + grouped / Trainer padded {ratios['ratio_text_cut_grouped']:.2f}; ours "
          f"(packed) / Trainer dynamic + grouped {ratios['ratio_text_vs_dynamic']:.2f}",
          flush=True)
    print(f"[text {name}] useful {flops / steps / 1e9:.1f} GFLOP/step (real tokens only); "
          f"MFU ours (packed) {mfu['ours']:.2f}, Trainer dynamic + grouped "
          f"{mfu['trainer_dynamic']:.2f} of the matmul peak {peak / 1e9:.0f} GFLOP/s "
          f"measured in the same rounds", flush=True)
    return {**{f"{k}_{name}": v for k, v in ratios.items()},
            f"peak_gflops_{name}": peak / 1e9, f"mfu_text_{name}": mfu["ours"],
            f"mfu_text_dynamic_{name}": mfu["trainer_dynamic"],
            **{f"ex_s_{k}_text_{name}": v for k, v in ex.items()}}


def main():
    args = _args()
    threads = common.environment()
    shapes = ["quick"] if args.quick else args.shapes.split(",")
    rounds, steps = (1, 3) if args.quick else (args.rounds, args.text_steps)
    figures = {}
    for name in shapes:
        if "full" in args.data:
            figures.update(bench_full(name, threads, rounds, args.block))
        if "text" in args.data:
            figures.update(bench_text(name, threads, rounds, steps))
    common.summary("finetune", **figures)


if __name__ == "__main__":
    common.setup()  # huge pages, as the trainer runs (re-executes once)
    sys.exit(main())
