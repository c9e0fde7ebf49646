"""Shared helpers for the benchmarks: set-up, timing, matmul peak, a summary line.

The scripts import it as a sibling module (``python bench/x.py`` puts ``bench/`` first on
``sys.path``) and ``linkbert_jax`` as the installed package (``make install``).
"""
from __future__ import annotations

import statistics
import time

from linkbert_jax.infra import hostmem, runtime


def setup() -> None:
    """What the trainer's entry point does, so both sides of every comparison run with
    transparent huge pages for host buffers (PyTorch's CPU allocator uses the same
    malloc): re-executes the script once (logged). ``LINKBERT_HUGEPAGES=0`` measures
    without."""
    runtime.setup_environment(tensorflow=False)


def host_memory() -> str:
    """One phrase for the report: how host memory is paged in this process."""
    return ("glibc.malloc.hugetlb=1 (transparent huge pages)" if hostmem.active()
            else "default malloc paging (4 KiB faults)")


def environment(*notes: str) -> int:
    """Prints the benchmark's first line (jax and its device, the CPU threads this process
    may use, the load, ``notes``, host memory paging); returns the thread count, which
    both sides of a comparison get."""
    import os

    import jax
    threads = len(os.sched_getaffinity(0))
    print("; ".join([f"jax {jax.__version__} {jax.devices()[0].device_kind}, {threads} CPU "
                     f"threads", f"load {os.getloadavg()[0]:.2f}", *notes,
                     f"host memory: {host_memory()}"]), flush=True)
    return threads


def median_time(fn, *, warmup: int = 2, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` (which must block until done) after warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def alternate(fns: dict, *, warmup: int = 2, rounds: int = 5, block: int = 1) -> dict:
    """Median seconds per call of each ``fn``, interleaved round by round so that every
    side sees the same machine conditions. With ``block > 1`` each round calls each ``fn``
    ``block + 1`` times in a row and times the last ``block``: the first call after
    another library ran absorbs the hand-over (its threads winding down, caches and
    allocator state), which would otherwise be charged to whichever side runs second."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            if block > 1:
                fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_peak_fn(n: int = 2048, dtype: str = "float32", reps: int = 4):
    """``(fn, flops)``: ``fn()`` runs ``reps`` large square matmuls in JAX, to put into
    :func:`alternate` beside the timed work so the peak sees the same machine load."""
    import jax

    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    f = jax.jit(lambda x, y: x @ y)

    def fn():
        for _ in range(reps):
            out = f(a, b)
        out.block_until_ready()

    return fn, 2.0 * n ** 3 * reps


def summary(name: str, **figures) -> str:
    parts = []
    for k, v in figures.items():
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    line = f"{name} " + " ".join(parts)
    print(line, flush=True)
    return line
