"""Training throughput of our jitted train step (MLM at masked positions + 3-way DRP,
AdamW, built by ``linkbert_jax.pretrain.recipe`` exactly as the trainer builds it) against Hugging
Face PyTorch ``BertForPreTraining`` (eager, seq_relationship replaced by a 3-way Linear;
forward, loss, backward, clip, ``torch.optim.AdamW`` step, zero_grad) in one process:
same architecture, same batch, fp32, dropout 0.1 on both, the same number of CPU threads.
Calls alternate ours/theirs round by round, in blocks (``--block`` timed calls after one
untimed hand-over call per side and round); medians after warm-up.

    python bench/train_step.py [--shapes base,small] [--rounds 5] [--warmup 2] [--block 3]

Shapes: BERT-base (L12/H768, vocab 28,996) at seq 128 x batch 8 and a small model
(L4/H256) at seq 128 x batch 32; 20 masked positions per sequence (15.6%). ``tiny``
(L2/H64, seq 32 x 4) is the smoke test's: it checks that the script runs.

FLOPs (for MFU) come from ``linkbert_jax.infra.metrics_log.flops_per_sequence``: useful FLOPs
only (MLM head at the masked positions). Hugging Face computes the vocabulary projection
at every position; that is not credited to either side, so the MFU is ours only and the
tokens/s ratio includes our smaller head. Peak = measured FLOP/s of 2048^3 fp32 matmuls
in JAX, timed in the same alternating rounds (the machine is shared, its load varies).

Last line: ``train_step ratio_base=... ratio_small=... mfu_base=...``.
"""
from __future__ import annotations

import argparse
import os
import sys

import common  # bench/common.py (this script's directory is first on sys.path)

SHAPES = {
    # name: (architecture overrides, seq length, batch)
    "base": (dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072), 128, 8),
    "small": (dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                   intermediate_size=1024), 128, 32),
    # the smoke test's (tests/test_bench_scripts.py): the script runs, no figure to keep
    "tiny": (dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=128), 32, 4),
}
VOCAB = 28996
NUM_PREDICTIONS = 20


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="base,small")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--block", type=int, default=3,
                   help="timed calls per side per round, after one untimed hand-over call")
    p.add_argument("--scan_layers", action="store_true")
    p.add_argument("--attention", default="xla", help="xla | fused | cudnn")
    return p.parse_args()


def make_batch(batch_size: int, seq_length: int, seed: int = 0,
               num_predictions: int = NUM_PREDICTIONS) -> dict:
    """Full-length pairs [CLS] A [SEP] B [SEP], ``num_predictions`` masked positions each
    (all real)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    B, L, P = batch_size, seq_length, num_predictions
    ids = rng.integers(999, VOCAB, size=(B, L)).astype(np.int32)
    a = L // 2
    ids[:, 0], ids[:, a], ids[:, L - 1] = 101, 102, 102
    types = np.zeros((B, L), np.int32)
    types[:, a + 1:] = 1
    cand = np.array([i for i in range(1, L - 1) if i != a])
    pos = np.sort(np.stack([rng.choice(cand, P, replace=False) for _ in range(B)]), axis=1)
    masked_ids = np.take_along_axis(ids, pos, axis=1).copy()
    np.put_along_axis(ids, pos, 103, axis=1)
    return {"input_ids": ids, "attention_mask": np.ones((B, L), np.int32),
            "token_type_ids": types, "masked_positions": pos.astype(np.int32),
            "masked_ids": masked_ids, "masked_weights": np.ones((B, P), np.float32),
            "relation": rng.integers(0, 3, B).astype(np.int32),
            "example_weight": np.ones((B,), np.float32)}


# ------------------------------------------------------------------------------- ours

def our_step(arch: dict, seq_length: int, batch_np: dict, **numerics):
    """``fn()`` running one real train step (state donated and carried), and its recipe.
    ``numerics``: ``ModelConfig`` numerics fields (float32 and XLA attention unless given).
    The seconds that lowering and compiling took are ``fn.compile_seconds``."""
    import time

    import jax
    from linkbert_jax import config_defaults, sharding
    from linkbert_jax.pretrain import recipe, steps

    c = config_defaults.get_config("base", seq_length=seq_length,
                                   global_batch_size=batch_np["input_ids"].shape[0],
                                   num_train_steps=1000, warmup_steps=10)
    c.model.update(vocab_size=VOCAB, **{"dtype": "float32", "attention": "xla", **numerics},
                   **arch)
    c.masking.max_predictions = batch_np["masked_positions"].shape[1]
    built = recipe.build(c)
    box = {"state": built.init_state(jax.random.key(0))}
    batch = sharding.global_batch(batch_np, built.data_sharding)
    rng = jax.random.key(1)
    t0 = time.perf_counter()
    train = steps.with_schedule(built.compile()[0].lower(box["state"], batch, rng).compile(), c)
    compile_seconds = time.perf_counter() - t0

    def fn():
        box["state"], metrics = train(box["state"], batch, rng)
        jax.block_until_ready(metrics["loss"])
        return metrics

    fn.compile_seconds = compile_seconds
    return fn, built


# ------------------------------------------------------------------------------ theirs

def hf_step(arch: dict, seq_length: int, batch_np: dict, threads: int, *,
            device: str = "cpu", autocast=None, compile_model: bool = False):
    """``fn()``: one PyTorch training step of ``BertForPreTraining`` with a 3-way relation
    head; AdamW (0.9, 0.98), no decay on LayerNorm/biases, clip 1.0, as ours. Eager on
    ``device``, in ``autocast`` (a torch dtype) if given, ``torch.compile``d if asked."""
    import contextlib

    import torch
    from transformers import BertConfig, BertForPreTraining

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=VOCAB, max_position_embeddings=512, type_vocab_size=2,
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, **arch)
    model = BertForPreTraining(cfg)
    model.cls.seq_relationship = torch.nn.Linear(cfg.hidden_size, 3)
    model.to(device).train()
    forward = torch.compile(model) if compile_model else model
    decay = [p for n, p in model.named_parameters() if not ("LayerNorm" in n or n.endswith("bias"))]
    no_decay = [p for n, p in model.named_parameters() if "LayerNorm" in n or n.endswith("bias")]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.98), eps=1e-6, fused=True)
        kind = "fused"
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
        kind = "foreach"
    t = {k: torch.from_numpy(v).long().to(device) for k, v in batch_np.items()
         if k in ("input_ids", "attention_mask", "token_type_ids", "relation")}
    labels = torch.full(t["input_ids"].shape, -100, dtype=torch.long)
    labels.scatter_(1, torch.from_numpy(batch_np["masked_positions"]).long(),
                    torch.from_numpy(batch_np["masked_ids"]).long())
    labels = labels.to(device)
    ce = torch.nn.functional.cross_entropy
    cast = (torch.autocast(device_type=device.split(":")[0], dtype=autocast) if autocast
            else contextlib.nullcontext())

    def fn():
        with cast:
            out = forward(input_ids=t["input_ids"], attention_mask=t["attention_mask"],
                          token_type_ids=t["token_type_ids"])
            logits = out.prediction_logits.float().view(-1, VOCAB)
            mlm = ce(logits, labels.view(-1), ignore_index=-100)
            loss = mlm + ce(out.seq_relationship_logits.float(), t["relation"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return fn, f"AdamW {kind}, attn {model.config._attn_implementation}"


def main():
    args = _args()
    threads = common.environment(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    peak_fn, peak_flops = common.matmul_peak_fn(2048)
    figures = {}
    for name in args.shapes.split(","):
        arch, L, B = SHAPES[name]
        batch = make_batch(B, L)
        ours, built = our_step(arch, L, batch, scan_layers=args.scan_layers,
                                   attention=args.attention)
        theirs, what = hf_step(arch, L, batch, threads)
        loss0 = float(ours()["loss"]), theirs()
        model_cfg = built.model_cfg
        print(f"[{name}] L{model_cfg.num_hidden_layers}/H{model_cfg.hidden_size} seq {L} "
              f"x batch {B}; first losses ours {loss0[0]:.3f}, theirs {loss0[1]:.3f} ({what})")
        sec = common.alternate({"ours": ours, "theirs": theirs, "peak": peak_fn},
                               warmup=args.warmup, rounds=args.rounds, block=args.block)
        peak = peak_flops / sec.pop("peak")
        flops = built.flops_per_step
        tok = {k: B * L / v for k, v in sec.items()}
        ratio = tok["ours"] / tok["theirs"]
        mfu = flops / sec["ours"] / peak
        print(f"[{name}] ours {sec['ours'] * 1e3:.0f} ms/step {tok['ours']:,.0f} tokens/s | "
              f"theirs {sec['theirs'] * 1e3:.0f} ms/step {tok['theirs']:,.0f} tokens/s | "
              f"ratio {ratio:.2f} | useful {flops / 1e9:.1f} GFLOP/step, ours "
              f"{flops / sec['ours'] / 1e9:.1f} GFLOP/s = MFU {mfu:.2f} of the matmul peak "
              f"{peak / 1e9:.0f} GFLOP/s measured in the same rounds; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        figures.update({f"ratio_{name}": ratio, f"mfu_{name}": mfu,
                        f"tok_s_ours_{name}": tok["ours"],
                        f"tok_s_theirs_{name}": tok["theirs"],
                        f"peak_gflops_{name}": peak / 1e9})
    common.summary("train_step", **figures)


if __name__ == "__main__":
    common.setup()  # huge pages, as the trainer runs (re-executes once)
    sys.exit(main())
