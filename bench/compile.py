"""Compile time of the train step for base and large, scanned and unscanned layers.

The step is the trainer's (``linkbert_jax.pretrain.recipe`` on the ``base`` and ``large``
configs: bf16 compute, seq 512, AdamW, clipping), lowered and compiled ahead of time from abstract
inputs (``jax.ShapeDtypeStruct`` with shardings), so no parameters are allocated. Times:
trace+lower, XLA compile, and their sum, and the compiled step's fused kernels (each one
generated code on CPU: what the compile time grows with); each case in a fresh subprocess
so that no cache is shared.

    python bench/compile.py [--archs base,large] [--batch 8] [--repeats 1]

Target: with scan over layers, large compiles in <= 1.5x base's time.
Last line: ``compile base_scan_s=.. large_scan_s=.. ratio_scan=.. base_unscan_s=..
large_unscan_s=.. ratio_unscan=..`` (seconds of trace+lower+compile).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import common  # bench/common.py (this script's directory is first on sys.path)


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="base,large")
    p.add_argument("--batch", type=int, default=8, help="global batch (compile shapes)")
    p.add_argument("--seq_length", type=int, default=512)
    p.add_argument("--repeats", type=int, default=1, help="fresh processes per case (median)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # "arch:scan" child mode
    return p.parse_args()


def compile_once(arch: str, scan: bool, batch: int, seq_length: int) -> dict:
    import jax
    import jax.numpy as jnp
    from linkbert_jax.config_defaults import load_config_file
    from linkbert_jax.pretrain import recipe

    c = load_config_file(arch,
                         {"global_batch_size": batch, "seq_length": seq_length,
                          "model.scan_layers": scan})
    # Configs that take the vocabulary from the data (vocab_size 0) get BERT's 30,522.
    built = recipe.build(c, {"vocab_size": c.model.vocab_size or 30522})
    # Warm up JAX itself (backend, tracing machinery) on a trivial jit, not timed.
    jax.jit(lambda x: x + 1).lower(jnp.zeros(2)).compile()

    t0 = time.perf_counter()
    train, _ = built.compile()
    lowered = train.lower(built.abstract_state, built.abstract_batch(), jax.random.key(0))
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return {"lower_s": t1 - t0, "compile_s": t2 - t1, "total_s": t2 - t0,
            "kernels": len(re.findall(r" fusion\(", compiled.as_text())),
            "layers": built.model_cfg.num_hidden_layers, "dtype": built.model_cfg.dtype}


def run_case(arch: str, scan: bool, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", f"{arch}:{int(scan)}",
           "--batch", str(args.batch), "--seq_length", str(args.seq_length)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    args = _args()
    if args.one:
        arch, scan = args.one.split(":")
        print(json.dumps(compile_once(arch, bool(int(scan)), args.batch, args.seq_length)))
        return 0
    print(f"{len(os.sched_getaffinity(0))} CPU threads, load {os.getloadavg()[0]:.2f}; "
          f"batch {args.batch} x seq {args.seq_length}, config <arch> (bf16)")
    archs = args.archs.split(",")
    res = {}
    for scan in (True, False):
        for arch in archs:
            runs = [run_case(arch, scan, args) for _ in range(args.repeats)]
            r = {k: statistics.median(x[k] for x in runs) for k in ("lower_s", "compile_s",
                                                                    "total_s")}
            res[(arch, scan)] = r
            print(f"{arch:6s} {'scan' if scan else 'unscan':6s} ({runs[0]['layers']} layers): "
                  f"trace+lower {r['lower_s']:.1f}s, compile {r['compile_s']:.1f}s, "
                  f"total {r['total_s']:.1f}s; {runs[0]['kernels']} fused kernels; "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    figures = {}
    for scan, tag in ((True, "scan"), (False, "unscan")):
        for arch in archs:
            figures[f"{arch}_{tag}_s"] = res[(arch, scan)]["total_s"]
        if len(archs) == 2:
            figures[f"ratio_{tag}"] = (res[(archs[1], scan)]["total_s"]
                                       / res[(archs[0], scan)]["total_s"])
    common.summary("compile", **figures)
    return 0


if __name__ == "__main__":
    common.setup()  # huge pages, as the trainer runs (re-executes once)
    sys.exit(main())
