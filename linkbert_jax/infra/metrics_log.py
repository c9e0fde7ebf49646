"""Training metrics: FLOPs/MFU model, TensorBoard + ``metrics.jsonl`` writer, console line.

FLOPs per sequence (forward + backward = 3x forward):
``6 * N_layers * L + 12 * layers * L^2 * D + 6 * P * (D^2 + D * V)``, i.e. the dense
weights of the encoder layers over every token, attention scores and context, and the
MLM head (transform + tied decoder) over the P predicted positions only.
"""
from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from linkbert_jax.data import files
from linkbert_jax.infra import chips
from linkbert_jax.model import ModelConfig


def measured_matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large fp32 square matmul on the default device (the fastest of
    ``repeats`` after a warm-up: a peak, so a moment of load from other processes does not
    lower it): the peak for CPUs, which have no table entry."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / min(times)


def peak_flops_per_device(device_kind: str, override: float = 0.0) -> float:
    """Peak FLOP/s: the override, else the table (``linkbert_jax.infra.chips``), else (CPUs) a
    measured large matmul."""
    if override and override > 0:
        return float(override)
    chip = chips.for_device_kind(device_kind)
    if chip is not None:
        return chip.bf16_flops
    if device_kind.lower() == "cpu":  # one device spans all cores: measure it (a second)
        return measured_matmul_flops()
    return float("nan")


def peak_flops_total(devices, override: float = 0.0) -> float:
    """Peak FLOP/s of the whole mesh. CPU "devices" (``JAX_NUM_CPU_DEVICES``) share the
    same cores, which the measured matmul already uses, so they count once."""
    kind = devices[0].device_kind
    per_device = peak_flops_per_device(kind, override)
    return per_device if kind.lower() == "cpu" else per_device * len(devices)


def flops_per_sequence(cfg: ModelConfig, seq_length: int, num_predictions: int) -> float:
    d, f, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    layer_params = 4 * d * d + 2 * d * f  # q, k, v, o + the two MLP matrices
    dense = 6.0 * n * layer_params * seq_length
    attention = 12.0 * n * seq_length ** 2 * d
    head = 6.0 * num_predictions * (d * d + d * cfg.vocab_size)
    return dense + attention + head


def _to_python(x):
    x = np.asarray(x)
    return x.item() if x.ndim == 0 else x.tolist()


def drop_rows_after(workdir: str, step: int) -> int:
    """Keep the rows of ``WORKDIR/metrics.jsonl`` up to ``step`` (a run resumed at
    ``step`` writes the later ones again) and drop a line cut short by a kill; the file is
    rewritten under a temporary name. Returns the number of rows dropped."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            pass  # a line cut short by a kill
    if len(kept) < len(lines):
        with files.atomic_write(path) as f:
            f.writelines(kept)
    return len(lines) - len(kept)


class MetricsWriter:
    """Writes on process 0 only: ``WORKDIR/metrics.jsonl`` and TensorBoard event files."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self._jsonl = self._tb = None
        if enabled:
            os.makedirs(workdir, exist_ok=True)
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            try:
                from tensorboardX import SummaryWriter
                self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            except ImportError:  # metrics.jsonl still has everything
                self._tb = None

    def write(self, step: int, metrics: dict, prefix: str = "") -> None:
        if not self.enabled:
            return
        row = {"step": int(step)}
        row.update({f"{prefix}{k}": _to_python(v) for k, v in metrics.items()})
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


class Throughput:
    """Wall-clock accounting between log points: steps/s, tokens/s, MFU, input wait."""

    def __init__(self, flops_per_step: float, tokens_per_step: int, peak_flops: float,
                 start_step: int, total_steps: int):
        self.flops_per_step, self.tokens_per_step = flops_per_step, tokens_per_step
        self.peak, self.total = peak_flops, total_steps
        self.reset(start_step)

    def reset(self, step: int) -> None:
        self.t0, self.step0, self.input_wait = time.perf_counter(), step, 0.0

    def add_input_wait(self, seconds: float) -> None:
        self.input_wait += seconds

    def measure(self, step: int) -> dict:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        steps = max(step - self.step0, 1)
        sps = steps / dt
        out = {"steps_per_sec": sps, "tokens_per_sec": sps * self.tokens_per_step,
               "mfu": sps * self.flops_per_step / self.peak,
               "input_wait_fraction": self.input_wait / dt,
               "eta_sec": (self.total - step) / sps}
        self.reset(step)
        return out


def console_line(step: int, total: int, m: dict) -> str:
    eta = m.get("eta_sec", float("nan"))
    eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
    drp = (f"drp {m['drp_loss']:.3f} ({m['drp_accuracy']:.3f})  " if "drp_loss" in m
           else "")  # objective mlm: no relation head
    return (f"step {step}/{total}  loss {m['loss']:.4f}  mlm {m['mlm_loss']:.3f} "
            f"({m['mlm_accuracy']:.3f})  {drp}"
            f"lr {m['learning_rate']:.2e}  |g| {m['grad_norm']:.2f}  "
            f"{m['steps_per_sec']:.2f} st/s  {m['tokens_per_sec']:.0f} tok/s  "
            f"mfu {m['mfu']:.1%}  input {m['input_wait_fraction']:.0%}  eta {eta_s}")


def mean_of(rows: list[dict]) -> dict:
    keys = rows[0].keys()
    return {k: float(np.mean([np.asarray(r[k], np.float64) for r in rows])) for k in keys}
