"""Our pretraining step against Hugging Face PyTorch on the same accelerator (issue 23).

Ours is ``bench/train_step.py``'s step (built by ``linkbert_jax.pretrain.recipe`` as the
trainer builds it: MLM at the masked positions + 3-way DRP, AdamW, clip 1.0, dropout
0.1) in bfloat16, once per ``--ours`` variant (``ATTENTION[/GATHER_GRAD]``). Theirs is
``BertForPreTraining`` with a 3-way relation head on the same batch, bf16 autocast, SDPA
attention, fused AdamW, clip 1.0: eager and ``torch.compile``d (``--hf``). The bf16
matmul peak (8192^3 in JAX) is timed in the same alternating rounds. Imports no
TensorFlow (the GPU machine has none).

    python bench/gpu_step.py [--shapes base,large] [--batch 32] [--seq 512]
        [--ours xla,cudnn] [--hf eager,compile] [--rounds 5] [--out FILE.jsonl]

Before timing, ``--check`` (default on) compares the cuDNN attention with the XLA path
on a padded batch, at the real positions, and prints the largest difference.

Every figure is one JSON line (also appended to ``--out``): tokens/s, ms/step, compile
seconds, useful MFU against the measured peak and the datasheet's dense bf16 peak, and
the ratios to both Hugging Face sides. Useful FLOPs count the MLM head at the masked
positions only (Hugging Face projects every position; that is not credited).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import common  # bench/common.py
import train_step
from linkbert_jax.architectures import ARCHITECTURES

# The seed architectures (their vocabulary is the bench's, VOCAB): tiny, base, large.
SHAPES = {name: {k: v for k, v in ARCHITECTURES[name].items() if k != "vocab_size"}
          for name in ("tiny", "base", "large")}
# Dense bf16 tensor-core peaks from NVIDIA's datasheets (SXM parts): H100 and H200
# 989.4 TFLOP/s ("1,979 teraFLOPS" with 2:4 sparsity), A100 312 TFLOP/s.
DATASHEET_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="base,large")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--ours", default="xla,cudnn",
                   help="comma list of ATTENTION[/GATHER_GRAD] (gather_grad auto if left out)")
    p.add_argument("--hf", default="eager,compile", help="eager,compile, or '' for none")
    p.add_argument("--scan_layers", action="store_true")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--block", type=int, default=3)
    p.add_argument("--peak_n", type=int, default=8192)
    p.add_argument("--no_check", dest="check", action="store_false")
    p.add_argument("--out", default="")
    return p.parse_args()


def emit(out: str, **record) -> None:
    line = json.dumps(record, sort_keys=True)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def attention_check(arch: dict, seq: int) -> dict:
    """The model in bf16 with cuDNN attention against the XLA path, on rows padded to
    different lengths: the largest difference at real positions (hidden states, DRP)."""
    import jax
    import numpy as np
    from linkbert_jax.model import LinkBert, ModelConfig, init_params

    cfg = ModelConfig(vocab_size=train_step.VOCAB, dtype="bfloat16", **arch)
    params = init_params(cfg, jax.random.key(0))
    batch = train_step.make_batch(4, seq)
    mask = np.ones((4, seq), np.int32)
    for row, length in enumerate((seq, seq // 2 + 3, 17, 1)):
        mask[row, length:] = 0
    out = {a: jax.jit(lambda p, c=cfg.replace(attention=a): LinkBert(c).apply(
        {"params": p}, batch["input_ids"], mask, batch["token_type_ids"]))(params)
        for a in ("xla", "cudnn")}
    real = mask.astype(bool)
    hidden = [np.asarray(out[a].last_hidden_state, np.float32)[real] for a in out]
    drp = [np.asarray(out[a].drp_logits, np.float32) for a in out]
    return {"max_abs_diff_hidden": float(np.max(np.abs(hidden[0] - hidden[1]))),
            "max_abs_diff_drp": float(np.max(np.abs(drp[0] - drp[1]))),
            "hidden_scale": float(np.max(np.abs(hidden[0])))}


def sides(args, arch: dict, batch: dict) -> tuple[dict, dict, float]:
    """``({name: fn}, {name: compile seconds}, useful FLOPs a step)`` of ours and theirs."""
    import torch

    fns, compiled, flops = {}, {}, 0.0
    for variant in filter(None, args.ours.split(",")):
        attention, _, gather_grad = variant.partition("/")
        fn, built = train_step.our_step(arch, args.seq, batch, dtype="bfloat16",
                                        attention=attention,
                                        gather_grad=gather_grad or "auto",
                                        scan_layers=args.scan_layers)
        fns[f"ours_{variant}"], compiled[f"ours_{variant}"] = fn, fn.compile_seconds
        flops = built.flops_per_step
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for kind in filter(None, args.hf.split(",")):
        fn, _ = train_step.hf_step(arch, args.seq, batch, torch.get_num_threads(),
                                   device=device, autocast=torch.bfloat16,
                                   compile_model=kind == "compile")
        t0 = time.perf_counter()
        fn()  # eager: warm-up; compiled: the compile
        fns[f"hf_{kind}"], compiled[f"hf_{kind}"] = fn, time.perf_counter() - t0
    return fns, compiled, flops


def versions() -> dict:
    import jax
    import torch
    import transformers
    return {"device": jax.devices()[0].device_kind, "jax": jax.__version__,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "cuda_torch": torch.version.cuda, "cudnn_torch": torch.backends.cudnn.version(),
            "load": os.getloadavg()[0]}


def measure(args, name: str, peak: tuple, datasheet) -> dict:
    """One shape: every side timed in alternating rounds beside the matmul peak."""
    arch = SHAPES[name]
    batch = train_step.make_batch(args.batch, args.seq, num_predictions=round(0.156 * args.seq))
    fns, compiled, flops = sides(args, arch, batch)
    sec = common.alternate({**fns, "peak": peak[0]}, warmup=args.warmup,
                           rounds=args.rounds, block=args.block)
    measured_peak = peak[1] / sec.pop("peak")
    tokens = args.batch * args.seq
    record = {"shape": name, "batch": args.batch, "seq": args.seq,
              "useful_gflop_per_step": flops / 1e9, "peak_tflops_measured": measured_peak / 1e12,
              "peak_tflops_datasheet": datasheet and datasheet / 1e12, **versions()}
    for side, s in sec.items():
        record[f"{side}_ms"] = s * 1e3
        record[f"{side}_tok_s"] = tokens / s
        record[f"{side}_compile_s"] = compiled[side]
        if side.startswith("ours_"):
            record[f"{side}_mfu_measured"] = flops / s / measured_peak
            record[f"{side}_mfu_datasheet"] = datasheet and flops / s / datasheet
            for hf in (k for k in sec if k.startswith("hf_")):
                record[f"{side}_vs_{hf}"] = sec[hf] / s
    return record


def main() -> int:
    args = _args()
    common.environment(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    import jax
    kind = jax.devices()[0].device_kind
    datasheet = next((v for k, v in DATASHEET_BF16.items() if k in kind), None)
    peak = common.matmul_peak_fn(args.peak_n, "bfloat16")
    figures = {}
    for name in args.shapes.split(","):
        if args.check and jax.default_backend() == "gpu":
            emit(args.out, shape=name, check="cudnn_vs_xla", **attention_check(
                SHAPES[name], args.seq))
        record = measure(args, name, peak, datasheet)
        emit(args.out, **record)
        figures.update({f"{k}_{name}": v for k, v in record.items() if k.startswith("ours_")
                        and k.endswith(("_tok_s", "_mfu_measured", "_compile_s"))
                        or "_vs_hf_" in k})
    assert "tensorflow" not in sys.modules, "the GPU bench must not import TensorFlow"
    common.summary("gpu_step", **figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
