"""Where our train step's time goes: a ``jax.profiler`` trace of the step that
``bench/train_step.py`` times, summed per kind of XLA:CPU thunk.

    python bench/profile_step.py [--shape base] [--steps 3] [--trace_dir /tmp/linkbert_trace]
        [--batch B --seq L --dtype bfloat16 --attention cudnn --gather_grad dot]

On a GPU (or TPU) it sums the device's kernels instead (events of the trace's
``/device:`` processes), e.g. issue 23's shape: ``--batch 32 --seq 512 --dtype bfloat16``.

XLA:CPU runs one thunk at a time and parallelises inside it (YNNPACK dots, sliced loops),
so the summed thunk times add up to the step's wall time (plus the tracer's overhead).
Kinds are thunk names without their numeric suffix: ``ynn_fusion`` are the matrix
multiplies (with whatever elementwise work YNNPACK fused into them), ``dot`` are dots
XLA kept for itself, ``*_fusion`` are elementwise/reduce loops, ``copy*``/``transpose*``
are layout changes. The last line is a key=value summary; the trace directory opens in
Perfetto or TensorBoard's profile plugin for a per-op timeline.
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import time

import common  # bench/common.py (this script's directory is first on sys.path)
import train_step

# Trace events that are not thunks: the executor's own spans, Python, pool waits and the
# host's wait for a result (np.asarray).
NOT_THUNKS = ("ThunkExecutor", "$", "SlinkyThreadPool", "PjitFunction", "np.asarray")
# Matrix-multiply kinds: YNNPACK and XLA dots on CPU; cuBLAS (nvjet, xmma, cutlass) and
# Triton GEMM fusions on GPU; cuDNN's fused attention (its products).
MATMULS = re.compile(r"^ynn_fusion$|^dot$|nvjet|gemm|cublas|xmma|cutlass|cudnn|fmha|flash")


def thunk_times(trace_dir: str, device_only: bool = False) -> collections.Counter:
    """Microseconds per thunk kind (name without its numeric suffix) or, ``device_only``,
    per device kernel (its name: each is a kernel of its own), summed over the traced
    steps."""
    paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True))
    if not paths:
        raise SystemExit(f"no *.trace.json.gz under {trace_dir}: the profiler wrote no trace")
    with gzip.open(paths[-1]) as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    devices = {e["pid"] for e in events if e.get("ph") == "M" and e.get("name") ==
               "process_name" and "/device:" in e.get("args", {}).get("name", "")}
    out = collections.Counter()
    for e in events:
        if device_only and e.get("pid") not in devices:
            continue
        if e.get("ph") == "X" and "dur" in e and not e["name"].startswith(NOT_THUNKS):
            out[e["name"] if device_only else re.sub(r"[.\d]+$", "", e["name"])] += e["dur"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="base", choices=sorted(train_step.SHAPES))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--trace_dir", default="/tmp/linkbert_trace")
    ap.add_argument("--batch", type=int, default=0, help="default: the shape's")
    ap.add_argument("--seq", type=int, default=0, help="default: the shape's")
    for field in ("dtype", "attention", "gather_grad"):
        ap.add_argument(f"--{field}", default=None, help="a ModelConfig numerics field")
    ap.add_argument("--scan_layers", action="store_true")
    args = ap.parse_args()
    import jax

    arch, L, B = train_step.SHAPES[args.shape]
    L, B = args.seq or L, args.batch or B
    numerics = {k: getattr(args, k) for k in ("dtype", "attention", "gather_grad")
                if getattr(args, k)}
    numerics.update({"scan_layers": True} if args.scan_layers else {})
    batch = train_step.make_batch(B, L, num_predictions=max(1, round(0.156 * L)))
    fn, built = train_step.our_step(arch, L, batch, **numerics)
    for _ in range(3):  # compile and warm up
        fn()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        fn()
    wall = (time.perf_counter() - t0) / args.steps
    run_dir = os.path.join(args.trace_dir, time.strftime("%Y%m%d-%H%M%S"))
    jax.profiler.start_trace(run_dir, create_perfetto_trace=True)
    for _ in range(args.steps):
        fn()
    jax.profiler.stop_trace()

    on_device = jax.default_backend() != "cpu"
    per_step = {k: v / args.steps / 1e3 for k, v in thunk_times(run_dir, on_device).items()}
    total = sum(per_step.values())
    gflop = built.flops_per_step / 1e9
    print(f"[{args.shape} {B}x{L} {numerics}] step {wall * 1e3:.0f} ms untraced; "
          f"{'device kernels' if on_device else 'thunks'} {total:.0f} ms/step "
          f"traced; {gflop:.1f} useful GFLOP/step; host memory: {common.host_memory()}")
    for kind, ms in sorted(per_step.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {ms:8.1f} ms  {100 * ms / total:5.1f}%  {kind}")
    dots = sum(v for k, v in per_step.items() if MATMULS.search(k))
    layout = sum(v for k, v in per_step.items() if k.startswith(("copy", "transpose")))
    print(f"trace: {run_dir}")
    print(f"profile_step shape={args.shape} step_ms={wall * 1e3:.0f} "
          f"dot_share={dots / total:.3f} layout_share={layout / total:.3f} "
          f"other_share={(total - dots - layout) / total:.3f} "
          f"dot_gflops={gflop / (dots / 1e3):.0f}")


if __name__ == "__main__":
    common.setup()  # huge pages, as the trainer runs (re-executes once)
    main()
