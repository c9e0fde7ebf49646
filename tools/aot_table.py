r"""Regenerate the ahead-of-time table (README, docs/aot.md): every seed config at the
paper's batch on the slices a user would book, one ``python -m linkbert_jax.aot ...
--suggest`` run per row, each in its own process.

    python tools/aot_table.py [--out aot_runs] [--rows base:v4-64,large:v4-128]
    python tools/aot_table.py --ablations    # each arm of configs/ablations.py on its slice
    python tools/aot_table.py --render       # the markdown table from the runs so far

A row already in ``--out`` is not run again (delete its JSON to redo it), so the script
can be stopped and resumed; each JSON also records the command, its wall time and the
load average. Last line: ``aot_table rows=.. fit=.. missing=..``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

from linkbert_jax.data import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ("base", "large", "bio_base", "bio_large")
SLICES = ("v4-32", "v4-64", "v4-128", "v5p-64", "v5p-128", "v5litepod-64", "v5litepod-256")


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "aot_runs"))
    p.add_argument("--rows", default="", help="config:slice,... (default: all)")
    p.add_argument("--render", action="store_true", help="only print the table")
    p.add_argument("--ablations", action="store_true",
                   help="the paper's ablation arms (ablations:ARM) on their slices")
    return p.parse_args()


def ablation_rows(arms: str = "") -> list[tuple[str, str]]:
    """``(ablations:ARM, its slice)`` for ``arms`` (comma-separated; default: all)."""
    from linkbert_jax.configs import ablations
    return [(f"ablations:{a}", ablations.slice_of(a))
            for a in (arms.split(",") if arms else ablations.ARMS)]


def command(config: str, slice_: str, json_path: str) -> list[str]:
    return [sys.executable, "-m", "linkbert_jax.aot", "--config", config,
            "--topology", slice_, "--suggest", "--json", json_path]


def row_path(out: str, config: str, slice_: str) -> str:
    return os.path.join(out, f"{config.replace(':', '-')}_{slice_}.json")


def run_row(config: str, slice_: str, out: str) -> dict:
    path = row_path(out, config, slice_)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    cmd = command(config, slice_, path + ".run")
    load0, t0 = os.getloadavg(), time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    if p.returncode not in (0, 1) or not os.path.exists(path + ".run"):
        raise SystemExit(f"{config} on {slice_} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    with open(path + ".run") as f:
        record = json.load(f)
    os.remove(path + ".run")
    shown = " ".join(c if i > 1 else os.path.basename(c) for i, c in enumerate(cmd[:-2]))
    record["meta"] = {"command": shown.replace(sys.executable, "python"), "wall_s": wall,
                      "user_s": user,
                      "load_before": load0, "load_after": os.getloadavg(),
                      "report": p.stdout}
    files.write_json(path, record, indent=1, default=float)
    return record


def _cells(record: dict) -> list[str]:
    r0 = record["result"]
    final = record.get("suggestion") or {"result": r0, "roofline": record["roofline"],
                                         "estimate": record.get("estimate")}
    if not r0["fits"] and not record.get("suggestion"):
        return ["no", f"needs {r0['needed_bytes'] / 2 ** 30:.1f} GiB"] + [""] * 8
    r, rf, s = final["result"], final["roofline"], final["result"]["settings"]
    sizes = [s["mesh"][a] for a in ("data", "fsdp", "tensor")]
    rest = r["devices"] // -math.prod(sizes)  # the -1 axis takes the remaining devices
    mesh = "x".join(str(rest if n == -1 else n) for n in sizes)
    how = "yes" if r0["fits"] else "with " + " ".join(
        f"{k}={v}" for k, v in record["suggestion"]["overrides"].items()
        if (k, v) != ("model.remat", s["remat"]) or s["remat"] != r0["settings"]["remat"])
    return [how, f"mesh {mesh} (data x fsdp x tensor), microbatches {s['microbatches']}, "
            f"remat {s['remat']}, scan {s['scan_layers']}",
            f"{r['needed_bytes'] / 2 ** 30:.1f} of {r['usable_bytes'] / 2 ** 30:.1f} GiB "
            f"({r['headroom']:.0%} free)", f"{r['traced_flops'] / r['analytic_flops']:.2f}",
            f"{rf['step_s'] * 1e3:.0f} ms", f"{rf['mfu_bound']:.0%}",
            f"{rf['train_hours']:.1f} h"] + _estimate_cells(final.get("estimate") or {})


def _estimate_cells(e: dict) -> list[str]:
    """est. step (with its collective term), est. MFU, days to the config's steps."""
    if not e:
        return ["not run", "", ""]
    coll = e.get("collective_s")
    return [f"{e['step_s'] * 1e3:.0f} ms" + (f" ({coll * 1e3:.1f} ms ICI)" if coll else ""),
            f"{e['mfu']:.0%}", f"{e['train_days']:.2f} d"]


def render(records: list[tuple[str, str, dict]]) -> str:
    head = ("| config | slice | fits | settings | memory / device | FLOP ratio | step >= "
            "| MFU <= | train >= | est. step | est. MFU | days to paper steps "
            "| run: wall (load), CPU |")
    rows = [head, "|" + "---|" * 13]
    for config, slice_, rec in records:
        meta = rec.get("meta", {})
        load = meta.get("load_before", [float("nan")])[0]
        cpu = meta.get("user_s")
        rows.append(f"| {config} | {slice_} | " + " | ".join(_cells(rec)) +
                    f" | {meta.get('wall_s', float('nan')):.0f} s ({load:.1f})"
                    + (f", {cpu:.0f} s |" if cpu else " |"))
    return "\n".join(rows)


def main():
    args = _args()
    os.makedirs(args.out, exist_ok=True)
    rows = ([tuple(r.rsplit(":", 1)) for r in args.rows.split(",")] if args.rows else
            ablation_rows() if args.ablations else [(c, s) for c in CONFIGS for s in SLICES])
    done = []
    for config, slice_ in rows:
        path = row_path(args.out, config, slice_)
        if args.render and not os.path.exists(path):
            continue
        t0 = time.perf_counter()
        done.append((config, slice_, run_row(config, slice_, args.out)))
        if not args.render:
            print(f"{config} on {slice_}: {time.perf_counter() - t0:.0f} s, load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    print(render(done))
    fit = sum(1 for *_, r in done if r["result"]["fits"] or r.get("suggestion"))
    print(f"aot_table rows={len(done)} fit={fit} missing={len(rows) - len(done)}")


if __name__ == "__main__":
    main()
