"""Where the fine-tuning step's time goes: a ``jax.profiler`` trace of the packed
sequence-classification step that ``bench/finetune.py --data text`` times (the same
model, real sentence pairs, batches packed by default), summed per kind of XLA:CPU thunk
as ``bench/profile_step.py`` sums them, with how full the packed rows are.

    python bench/profile_finetune.py [--shape small] [--epochs 1]

The fill (real tokens over the packed rows' positions) bounds the useful MFU that
``bench/finetune.py`` reports: padding left in packed rows is computed and not credited.
The thunk times are summed over XLA's executor threads (the step's wall time is about
half their sum on 2 threads). The last line is a key=value summary.
"""
from __future__ import annotations

import argparse
import os
import time

import common  # bench/common.py (this script's directory is first on sys.path)
import finetune
import profile_step


def packed_fill(fn) -> tuple[float, list]:
    """Real tokens over the positions of the batches of the first epoch, as the step gets
    them (``segment_ids`` 0 is padding), and the batch shapes."""
    real, slots, shapes = 0, 0, set()
    for batch in fn.epoch_batches(0):
        real += int((batch["segment_ids"] > 0).sum())
        slots += batch["segment_ids"].size
        shapes.add(batch["input_ids"].shape)
    return real / slots, sorted(shapes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="small", choices=sorted(finetune.SHAPES))
    ap.add_argument("--epochs", type=int, default=1, help="epochs of 12 steps traced")
    ap.add_argument("--trace_dir", default="/tmp/linkbert_finetune_trace")
    args = ap.parse_args()
    import jax

    arch, L, B = finetune.SHAPES[args.shape]
    steps = 12 * args.epochs
    rows, _ = finetune.text_rows(12 * B, L)
    fn = finetune.our_step(arch, rows, B)
    fill, shapes = packed_fill(fn)
    fn.compile(1 + 2 * args.epochs)  # every shape of the epochs run below
    for _ in range(12):  # warm up: one epoch
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    wall = (time.perf_counter() - t0) / steps
    run_dir = os.path.join(args.trace_dir, time.strftime("%Y%m%d-%H%M%S"))
    jax.profiler.start_trace(run_dir, create_perfetto_trace=True)
    for _ in range(steps):
        fn()
    jax.profiler.stop_trace()

    per_step = {k: v / steps / 1e3 for k, v in profile_step.thunk_times(run_dir).items()}
    total = sum(per_step.values())
    print(f"[{args.shape}] L{arch['num_hidden_layers']}/H{arch['hidden_size']} seq {L} x "
          f"batch {B}, packed {shapes}: fill {fill:.3f}; step {wall * 1e3:.0f} ms "
          f"untraced; thunks {total:.0f} thread-ms/step traced")
    for kind, ms in sorted(per_step.items(), key=lambda kv: -kv[1])[:16]:
        print(f"  {ms:8.1f} ms  {100 * ms / total:5.1f}%  {kind}")
    dots = sum(v for k, v in per_step.items() if profile_step.MATMULS.search(k))
    layout = sum(v for k, v in per_step.items() if k.startswith(("copy", "transpose")))
    print(f"trace: {run_dir}")
    print(f"profile_finetune shape={args.shape} step_ms={wall * 1e3:.0f} fill={fill:.3f} "
          f"dot_share={dots / total:.3f} layout_share={layout / total:.3f} "
          f"other_share={(total - dots - layout) / total:.3f}")


if __name__ == "__main__":
    common.setup()  # huge pages, as the fine-tuning command runs (re-executes once)
    main()
