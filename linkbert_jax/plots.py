"""Training curves from ``WORKDIR/metrics.jsonl`` as one PNG (matplotlib, headless).

Train rows carry ``loss``, ``mlm_accuracy``, ``drp_accuracy_<relation>``...; eval rows
the same keys prefixed with ``eval_``.
"""
from __future__ import annotations

import json
import os

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


def plot_training_curves(workdir: str, out_path: str | None = None) -> str:
    """Loss, MLM accuracy and DRP accuracy (overall and per relation), train and eval."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    out_path = out_path or os.path.join(workdir, "training_curves.png")

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    panels = [
        ("loss", [("loss", "total"), ("mlm_loss", "MLM"), ("drp_loss", "DRP")]),
        ("MLM accuracy", [("mlm_accuracy", "MLM accuracy")]),
        ("DRP accuracy", [("drp_accuracy", "all")]
         + [(f"drp_accuracy_{r}", r) for r in RELATIONS]),
    ]
    for ax, (title, keys) in zip(axes, panels):
        for key, label in keys:
            for prefix, style, tag in (("", "-", "train"), ("eval_", "o--", "eval")):
                xs, ys = _series(rows, prefix + key)
                if xs:
                    ax.plot(xs, ys, style, label=f"{label} ({tag})", markersize=4)
        if title == "DRP accuracy":
            ax.axhline(1 / 3, color="grey", lw=0.8, ls=":", label="chance (1/3)")
            ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"LinkBERT pretraining: {os.path.basename(os.path.abspath(workdir))}")
    fig.tight_layout()
    tmp = out_path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out_path)
    return out_path
