"""The paper's ablations in one command: build, pretrain and fine-tune every arm and seed,
then print the comparison table (mean ± sd over seeds).

    python -m linkbert_jax.ablate --arms linkbert,no_diversity,tfidf,random,no_drp \
        --seeds 1,2,3 --workdir ablate/pydoc

Defaults are the CPU scale: the Python documentation (``make pydocs``), MiniLM's
tokenizer, pairs of 64 tokens, every arm continuing MiniLM-L6 (``cpu_minilm``); each
stage's budget in steps or epochs (``--pretrain num_train_steps=N``, ``--finetune
num_train_epochs=E``). At paper scale pass the corpus (``--input``, ``--format``), the
tokenizer, ``--config tiny`` and ``--build_args`` of its sequence length.

Everything runs in this one process (the builder, the trainer and fine-tuning through
their Python entry points), with JAX's persistent compilation cache in
``WORKDIR/jax_cache``. Layout of ``--workdir``: ``data/<link options>/`` (one build per
distinct builder flags; ``data/hyperlinks`` is the common one), ``task/`` (the link task,
made from the common build), ``runs/<arm>/seed_<s>/`` (pretraining;
``heldout_eval.json``: its scores on the common build's eval split), ``ft/<arm>/seed_<s>/
{full,few_shot}/`` and ``summary.{md,json}``. A stage whose result exists is skipped, so
a re-run resumes. ``--dry_run`` prints the plan only.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time

from linkbert_jax.ablate import arms as arms_lib
from linkbert_jax.ablate import linktask, report, stages
from linkbert_jax.configs import ablations
from linkbert_jax import errors
from linkbert_jax.errors import ConfigError, run_cli


def make_parser() -> argparse.ArgumentParser:
    p = errors.ArgumentParser(prog="python -m linkbert_jax.ablate",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", default=",".join(arms_lib.DEFAULT_ARMS))
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--workdir", required=True)
    p.add_argument("--input", action="append", help="corpus (default: the Python docs)")
    p.add_argument("--format", default="sphinx_html")
    p.add_argument("--tokenizer", help="default: MiniLM's (linkbert_jax.data.samples)")
    p.add_argument("--build_args", default="--max_seq_length 64 --eval_fraction 0.05",
                   help="further builder flags, as one string")
    p.add_argument("--config", default="cpu_minilm", help="base pretraining config")
    p.add_argument("--init_from_hf", default=None,
                   help="BERT directory every arm continues from (default: MiniLM's for "
                        "--config cpu_minilm, else the config's; '' = from scratch)")
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


def overrides(items: list[str], flag: str) -> dict:
    """``KEY=VALUE`` items, the values Python literals where they parse as one (``1e-3``,
    ``True``), else strings."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def build_argv(args, arm: str, out_dir: str) -> list[str]:
    """The builder's arguments for ``arm``'s data (its flags from ``ablations``)."""
    from linkbert_jax.data import samples
    inputs = args.input or [samples.python_docs()]
    tok = args.tokenizer or samples.minilm_dir()
    return [*(f for p in inputs for f in ("--input", p)), "--format", args.format,
            "--tokenizer", tok, *args.build_args.split(), *ablations.build_flags(arm),
            "--output_dir", out_dir, "--no_progress"]


def build_all(args, arms: list[str]) -> dict:
    """``{build key: build dir}``: the common build and each arm's, each built once (the
    builder reuses a finished build of the same options), all with the common split."""
    from linkbert_jax.data import build
    dirs = {}
    for arm in [arms_lib.COMMON, *arms]:
        key = arms_lib.build_key(arm)
        if key in dirs:
            continue
        dirs[key] = os.path.join(args.workdir, "data", key)
        argv = build_argv(args, arm, dirs[key])
        print("$ python -m linkbert_jax.data.build " + " ".join(argv), flush=True)
        if not args.dry_run:  # its errors (k <= 0, a dir holding other options) raise
            build.build(build.parse_args(argv))
            stages.check_same_split(dirs[arms_lib.COMMON_BUILD], dirs[key])
    return dirs


def make_link_task(args, build_dir: str) -> str:
    task = os.path.join(args.workdir, "task")
    argv = ["--build", build_dir, "--output_dir", task, "--per_document",
            str(args.per_document), "--test_fraction", str(args.test_fraction)]
    print("$ python -m linkbert_jax.ablate.linktask " + " ".join(argv), flush=True)
    if not args.dry_run and not os.path.exists(os.path.join(task, linktask.TASK_META)):
        linktask.run(linktask.make_parser().parse_args(argv))
    return task


class Progress:
    """One line per stage: what ran and its time; after each (arm, seed) of 3 stages, the
    rate so far and the ETA (from the (arm, seed)s this process ran; skipped ones and the
    builds before the first are not counted)."""

    def __init__(self, total: int):
        self.total, self.done, self.ran, self.t0 = total, 0, 0, None

    def stage(self, what: str, started: float | None) -> None:
        self.done += 1
        line = f"[ablate] {self.done}/{self.total} {what}"
        if started is None:
            line += ": done before, skipped"
        else:
            self.ran += 1
            self.t0 = self.t0 or started
            line += f": {time.time() - started:.0f} s"
            if self.done % 3 == 0:
                per = (time.time() - self.t0) / (self.ran / 3)
                line += (f"; {per / 60:.1f} min per (arm, seed), "
                         f"ETA {per * (self.total - self.done) / 3 / 60:.1f} min")
        print(line, flush=True)


def pretrain_overrides(args) -> dict:
    """``--pretrain`` items, with ``init_from_hf`` (MiniLM's for ``cpu_minilm``)."""
    out = overrides(args.pretrain, "--pretrain")
    init = args.init_from_hf
    if init is None and args.config == "cpu_minilm" and "init_from_hf" not in out:
        from linkbert_jax.data import samples
        init = samples.minilm_dir()
    return {**out, "init_from_hf": init} if init is not None else out


def ft_files(task: str, kind: str, test: bool) -> dict:
    train = "train.jsonl" if kind == "full" else "train_few_shot.jsonl"
    return {"train": os.path.join(task, train), "validation": os.path.join(task, "dev.jsonl"),
            "test": os.path.join(task, "test.jsonl") if test else None}


def run_arm(args, arm: str, seed: int, dirs: dict, task: str, progress: Progress) -> dict:
    """Pretrains, evaluates and fine-tunes one (arm, seed); its row of the table."""
    run = os.path.join(args.workdir, "runs", arm, f"seed_{seed}")
    data = os.path.abspath(dirs[arms_lib.build_key(arm)])
    config = arms_lib.arm_config(args.config, arm, seed, data, pretrain_overrides(args))
    t = None if os.path.exists(os.path.join(run, report.HELDOUT)) else time.time()
    if not args.dry_run:
        stages.pretrain_and_eval(config, run, os.path.abspath(dirs[arms_lib.COMMON_BUILD]))
    progress.stage(f"{arm} seed {seed}: pretrain + held-out eval", t)
    ft = os.path.join(args.workdir, "ft", arm, f"seed_{seed}")
    ft_config = None
    for kind in ("full", "few_shot"):
        t = None if report.finetune_accuracy(os.path.join(ft, kind), seed) is not None \
            else time.time()
        if t is not None and not args.dry_run:
            from linkbert_jax.config_defaults import load_config_file
            from linkbert_jax.finetune import __file__ as ft_init
            ft_config = ft_config if ft_config is not None else load_config_file(
                os.path.join(os.path.dirname(ft_init), "config.py") + ":mc",
                overrides(args.finetune, "--finetune"))
            stages.finetune(ft_config, run, ft_files(task, kind, args.test_fraction > 0),
                            os.path.join(ft, kind), seed,
                            os.path.join(args.workdir, "ft_cache"))
        progress.stage(f"{arm} seed {seed}: fine-tune ({kind})", t)
    return report.row(run, os.path.join(ft, "full"), os.path.join(ft, "few_shot"), seed,
                      ablations.arm_spec(arm)[1])


def use_compilation_cache(workdir: str) -> None:
    """JAX's persistent compilation cache in ``WORKDIR/jax_cache`` (every compile kept):
    arms of one config compile the same steps, and a resumed run finds them."""
    import jax
    jax.config.update("jax_compilation_cache_dir",
                      os.path.abspath(os.path.join(workdir, "jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def ablate(args) -> str:
    t0 = time.time()
    arms = arms_lib.parse_arms(args.arms)
    seeds = arms_lib.parse_seeds(args.seeds)
    pretrain_overrides(args), overrides(args.finetune, "--finetune")
    if not args.dry_run:
        from linkbert_jax.infra import runtime
        runtime.setup_logging("datasets")
        os.makedirs(args.workdir, exist_ok=True)
        use_compilation_cache(args.workdir)
    dirs = build_all(args, arms)
    task = make_link_task(args, dirs[arms_lib.COMMON_BUILD])
    progress = Progress(3 * len(arms) * len(seeds))
    rows = {arm: [] for arm in arms}
    text = ""
    for i, seed in enumerate(seeds):  # seed-major: each finished seed is a whole table
        for arm in arms:
            rows[arm].append(run_arm(args, arm, seed, dirs, task, progress))
        if not args.dry_run:
            text = report.write_summary(args.workdir, rows, seeds[:i + 1],
                                        time.time() - t0, _notes(dirs[arms_lib.COMMON_BUILD], task))
    return text


def _notes(common: str, task: str) -> str:
    """The table's footnotes: what the held-out columns were measured on, the task's
    reference without a model."""
    with open(os.path.join(common, "manifest.json"), encoding="utf-8") as f:
        counts = json.load(f).get("relations_eval", {})
    scored = [report.heldout(os.path.join(run, "seed_" + seed))
              for run in (os.path.join(os.path.dirname(os.path.dirname(common)), "runs", a)
                          for a in arms_lib.ARMS) if os.path.isdir(run)
              for seed in sorted(d[5:] for d in os.listdir(run) if d.startswith("seed_"))]
    weights = next((ev for ev in scored if "drp_weight_linked" in ev), None)
    if weights:  # the pairs scored (all, or the first eval_max_batches batches)
        counts = {k: int(weights.get(f"drp_weight_{k}", 0)) for k in counts}
    split = ("held-out MLM and DRP: every arm on the common eval split (" +
             ", ".join(f"{k} n={v}" for k, v in counts.items()) +
             f" pairs; anchors: the unseen documents of {common})")
    return "\n".join(x for x in (split, _baseline_note(task)) if x)


def _baseline_note(task: str) -> str:
    with open(os.path.join(task, linktask.TASK_META), encoding="utf-8") as f:
        base = json.load(f).get("tfidf_baseline_accuracy", {})
    return ("link task without a model (the ending most TF-IDF-similar to the anchor): " +
            ", ".join(f"{k} {v:.3f}" for k, v in sorted(base.items()))) if base else ""


def main(argv=None) -> int:
    return run_cli(lambda: print(ablate(make_parser().parse_args(argv))))


def cli() -> None:
    from linkbert_jax.infra import runtime
    runtime.setup_environment()  # huge pages (re-executes once), TF off accelerators
    sys.exit(main())


if __name__ == "__main__":
    cli()
