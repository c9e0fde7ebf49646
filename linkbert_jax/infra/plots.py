"""Training curves from ``WORKDIR/metrics.jsonl`` as one PNG (matplotlib, headless).

Train rows carry ``loss``, ``mlm_accuracy``, ``drp_accuracy_<relation>``...; eval rows
the same keys prefixed with ``eval_``.
"""
from __future__ import annotations

import json
import os

from linkbert_jax.data import files
from linkbert_jax.data.features import RELATIONS


def read_metrics(path: str) -> list[dict]:
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a crash mid-write
                    continue
    return rows


def _series(rows, key):
    pts = sorted((r["step"], r[key]) for r in rows if key in r and "step" in r)
    dedup = {}
    for s, v in pts:  # a resumed run may log a step twice; keep the last
        dedup[s] = v
    return list(dedup.keys()), list(dedup.values())


def _smooth(ys, weight: float = 0.9):
    """Exponential moving average (as TensorBoard's smoothing slider), bias-corrected."""
    out, acc, norm = [], 0.0, 0.0
    for y in ys:
        acc, norm = weight * acc + (1 - weight) * y, weight * norm + (1 - weight)
        out.append(acc / norm)
    return out


PANELS = (
    ("MLM loss", [("mlm_loss", "MLM")]),
    ("MLM accuracy", [("mlm_accuracy", "MLM")]),
    ("DRP loss", [("drp_loss", "DRP")]),
    ("DRP accuracy (per relation)",
     [("drp_accuracy", "all")] + [(f"drp_accuracy_{r}", r) for r in RELATIONS]),
)


def plot_training_curves(workdir: str, out_path: str | None = None) -> str:
    """MLM/DRP loss and accuracy (DRP overall and per relation): train curves smoothed
    (raw values faint), eval points joined by dashed lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    out_path = out_path or os.path.join(workdir, "training_curves.png")

    fig, axes = plt.subplots(1, len(PANELS), figsize=(20, 4.8))
    for ax, (title, keys) in zip(axes, PANELS):
        for i, (key, label) in enumerate(keys):
            color = f"C{i}"
            xs, ys = _series(rows, key)
            if xs:
                ax.plot(xs, ys, "-", color=color, alpha=0.15, lw=0.8)
                ax.plot(xs, _smooth(ys), "-", color=color, lw=1.6, label=f"{label} (train)")
            xs, ys = _series(rows, "eval_" + key)
            if xs:
                ax.plot(xs, ys, "o--", color=color, markersize=5, label=f"{label} (eval)")
        if title.startswith("DRP accuracy"):
            ax.axhline(1 / 3, color="grey", lw=0.8, ls=":", label="chance (1/3)")
            ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"LinkBERT pretraining: {os.path.abspath(workdir)}")
    fig.tight_layout()
    with files.atomic_write(out_path, "wb", suffix=".tmp.png") as f:
        fig.savefig(f, dpi=100, format="png")
    plt.close(fig)
    return out_path
