"""The paper's ablations in one command: build, pretrain and fine-tune every arm and seed,
then print the comparison table (mean ± sd over seeds).

    python -m linkbert_jax.ablate --arms linkbert,no_diversity,tfidf,random,no_drp \
        --seeds 1,2,3 --workdir ablate/pydoc

Defaults are the CPU scale: the Python documentation (``make pydocs``), MiniLM's
tokenizer, sequences of 128, the ``cpu_small`` config. At paper scale pass the corpus
(``--input``, ``--format``), the tokenizer and ``--config tiny`` (or a row's config).

Layout of ``--workdir``: ``data/<link options>/`` (one build per distinct builder
options), ``task/`` (``linkbert_jax.ablate.linktask`` on the first build: the true
hyperlinks, so the same task for every arm), ``runs/<arm>/seed_<s>/`` (pretraining, its
generated ``config.py``), ``ft/<arm>/seed_<s>/{full,few_shot}/`` (fine-tuning), and
``summary.{md,json}``. Every stage is skipped when its output is complete, so a re-run
resumes. ``--dry_run`` prints the commands only.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time

from linkbert_jax.ablate import arms as arms_lib
from linkbert_jax.ablate import linktask, report
from linkbert_jax.data.readers import DataError


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m linkbert_jax.ablate",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", default=",".join(arms_lib.ARMS))
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--workdir", required=True)
    p.add_argument("--input", action="append", help="corpus (default: the Python docs)")
    p.add_argument("--format", default="sphinx_html")
    p.add_argument("--tokenizer", help="default: MiniLM's (linkbert_jax.samples)")
    p.add_argument("--build_args", default="--max_seq_length 128 --eval_fraction 0.05",
                   help="further builder flags, as one string")
    p.add_argument("--config", default="cpu_small", help="base pretraining config")
    p.add_argument("--pretrain", action="append", default=[], metavar="KEY=VALUE",
                   help="pretraining config override (repeat)")
    p.add_argument("--finetune", action="append", default=[], metavar="KEY=VALUE",
                   help="fine-tuning config override (repeat)")
    p.add_argument("--per_document", type=int, default=0, help="link task anchors per doc")
    p.add_argument("--test_fraction", type=float, default=0.2,
                   help="link task: anchor documents of its test split, whose accuracy "
                        "the table shows (dev selects the fine-tuning checkpoint)")
    p.add_argument("--dry_run", action="store_true")
    return p


def _overrides(items: list[str], flag: str, literal: bool) -> dict:
    """``KEY=VALUE`` items; with ``literal`` the values are Python literals where they
    parse as one (``1e-3``, ``True``), else strings."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
        if literal:
            try:
                out[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                pass
    return out


def _run(argv: list[str], dry: bool) -> None:
    print("$ " + " ".join(argv), flush=True)
    if not dry and subprocess.run(argv).returncode != 0:
        raise RuntimeError(f"failed: {' '.join(argv)}")


def _common_build_flags(args) -> list[str]:
    from linkbert_jax import samples
    inputs = args.input or [samples.python_docs()]
    tok = args.tokenizer or samples.minilm_dir()
    flags = [f for p in inputs for f in ("--input", p)]
    return flags + ["--format", args.format, "--tokenizer", tok, *args.build_args.split()]


def build_all(args, arms, dry: bool) -> dict:
    """``{build key: build dir}``, each built once."""
    common, dirs = _common_build_flags(args), {}
    for arm in arms:
        key = arm.build_key()
        if key not in dirs:
            dirs[key] = os.path.join(args.workdir, "data", key)
            _run(arms_lib.build_argv(arm, common, dirs[key]), dry)
    return dirs


def make_link_task(args, build_dir: str, dry: bool) -> str:
    task = os.path.join(args.workdir, "task")
    argv = ["--build", build_dir, "--output_dir", task, "--per_document",
            str(args.per_document), "--test_fraction", str(args.test_fraction)]
    print("$ python -m linkbert_jax.ablate.linktask " + " ".join(argv), flush=True)
    if not dry and not os.path.exists(os.path.join(task, linktask.TASK_META)):
        linktask.run(linktask.make_parser().parse_args(argv))
    return task


def run_arm(args, arm, seed: int, data_dir: str, task: str, dry: bool) -> dict:
    """Pretrains and fine-tunes one (arm, seed); its row of the table."""
    run = os.path.join(args.workdir, "runs", arm.name, f"seed_{seed}")
    cfg = os.path.join(run, "config.py")
    text = arms_lib.run_config(args.config, arm, seed, os.path.abspath(data_dir),
                               _overrides(args.pretrain, "--pretrain", True))
    if not dry:
        os.makedirs(run, exist_ok=True)
        with open(cfg + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(cfg + ".tmp", cfg)
    _run(arms_lib.pretrain_argv(cfg, run), dry)
    ft = os.path.join(args.workdir, "ft", arm.name, f"seed_{seed}")
    ft_over = _overrides(args.finetune, "--finetune", False)
    for kind, train in (("full", "train.jsonl"), ("few_shot", "train_few_shot.jsonl")):
        if report.finetune_accuracy(os.path.join(ft, kind), seed) is None:
            test = os.path.join(task, "test.jsonl") if args.test_fraction else None
            _run(arms_lib.finetune_argv(run, os.path.join(task, train),
                                        os.path.join(task, "dev.jsonl"), test,
                                        os.path.join(ft, kind), seed, ft_over), dry)
    return report.row(run, os.path.join(ft, "full"), os.path.join(ft, "few_shot"), seed,
                      arm.objective)


def ablate(args) -> str:
    t0 = time.time()
    arms = arms_lib.parse_arms(args.arms)
    seeds = arms_lib.parse_seeds(args.seeds)
    dry = args.dry_run
    builds = build_all(args, arms, dry)
    task = make_link_task(args, next(iter(builds.values())), dry)
    rows = {arm.name: [run_arm(args, arm, s, builds[arm.build_key()], task, dry)
                       for s in seeds] for arm in arms}
    if dry:
        return ""
    return report.write_summary(args.workdir, rows, seeds, time.time() - t0,
                                _baseline_note(task))


def _baseline_note(task: str) -> str:
    with open(os.path.join(task, linktask.TASK_META), encoding="utf-8") as f:
        base = json.load(f).get("tfidf_baseline_accuracy", {})
    return ("link task without a model (the ending most TF-IDF-similar to the anchor): " +
            ", ".join(f"{k} {v:.3f}" for k, v in sorted(base.items()))) if base else ""


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        print(ablate(args))
    except (DataError, ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
