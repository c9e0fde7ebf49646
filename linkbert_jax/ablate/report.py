"""The comparison table: each arm's held-out MLM accuracy and DRP accuracy per relation
(all arms on the common eval split: the hyperlinks build's unseen anchor documents) and
link-task accuracy (full and few-shot), as mean ± sd over seeds."""
from __future__ import annotations

import json
import math
import os

from linkbert_jax.data import files

HELDOUT = "heldout_eval.json"  # written by stages.pretrain_and_eval

RELATIONS = ("contiguous", "random", "linked")
COLUMNS = (("mlm", "MLM acc", "mlm_accuracy"),
           *((f"drp_{r}", f"DRP {r}", f"drp_accuracy_{r}") for r in RELATIONS),
           ("task_full", "link task", None), ("task_few", "link task 10%", None))


def heldout(run_dir: str) -> dict:
    """A pretraining run's scores on the common eval split ({} if not measured yet)."""
    path = os.path.join(run_dir, HELDOUT)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def finetune_accuracy(workdir: str, seed: int) -> float | None:
    """Accuracy of a fine-tuning run (``--seeds seed``: ``WORKDIR/seed_<s>``) on its test
    split if it had one (dev selected its checkpoint), else on dev."""
    for path in (os.path.join(workdir, f"seed_{seed}", "results.json"),
                 os.path.join(workdir, "results.json")):
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                res = json.load(f)
            return (res.get("test") or res.get("dev") or {}).get("accuracy")
    return None


def row(pretrain_dir: str, full_dir: str, few_dir: str, seed: int, objective: str) -> dict:
    """One (arm, seed)'s figures; DRP is absent for an MLM-only arm."""
    ev = heldout(pretrain_dir)
    out = {"seed": seed}
    for key, _, metric in COLUMNS:
        if metric and not (key.startswith("drp_") and objective == "mlm"):
            out[key] = ev.get(metric)
    out["task_full"] = finetune_accuracy(full_dir, seed)
    out["task_few"] = finetune_accuracy(few_dir, seed)
    return out


def mean_sd(values) -> tuple[float, float, int] | None:
    x = [v for v in values if v is not None and math.isfinite(v)]
    if not x:
        return None
    m = sum(x) / len(x)
    sd = math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1)) if len(x) > 1 else 0.0
    return m, sd, len(x)


def summarize(rows: dict) -> dict:
    """``{arm: {column: (mean, sd, n) or None}}`` from ``{arm: [row per seed]}``."""
    return {arm: {key: mean_sd(r.get(key) for r in rs) for key, _, _ in COLUMNS}
            for arm, rs in rows.items()}


def table(summary: dict, seeds: list[int], wall_s: float | None = None,
          note: str = "") -> str:
    head = "| arm | " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 1) + "|"]
    for arm, cols in summary.items():
        cells = []
        for key, _, _ in COLUMNS:
            v = cols[key]
            cells.append("n/a" if v is None else
                         f"{v[0]:.3f} ± {v[1]:.3f}" + (f" (n={v[2]})" if v[2] != len(seeds)
                                                       else ""))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    foot = f"mean ± sd (sample) over seeds {','.join(map(str, seeds))}"
    if wall_s is not None:
        foot += f"; wall time {wall_s / 60:.1f} min"
    return "\n".join(lines + ["", foot] + ([note] if note else []))


def write_summary(out_dir: str, rows: dict, seeds: list[int], wall_s: float,
                  note: str = "") -> str:
    """``summary.md`` and ``summary.json`` (temporary name, then renamed); the table."""
    summary = summarize(rows)
    text = table(summary, seeds, wall_s, note)
    for name, content in (("summary.md", text + "\n"),
                          ("summary.json", json.dumps({"seeds": seeds, "wall_s": wall_s,
                                                       "runs": rows, "summary": summary},
                                                      indent=1))):
        files.write_text(os.path.join(out_dir, name), content)
    return text
