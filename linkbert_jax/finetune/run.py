"""The whole fine-tuning program as a function: load the starting point and the data
(tokenized once), run every seed, and end with the mean ± std table over seeds.

With one seed and no ``--seeds`` the run writes into ``WORKDIR``; with ``--seeds 1,2,3``
each seed has ``WORKDIR/seed_<s>/`` and ``WORKDIR/summary.{json,md}`` hold the table.
"""
from __future__ import annotations

import json
import logging
import os
import re
from typing import Optional, Sequence

import numpy as np

from linkbert_jax.data.files import write_text
from linkbert_jax.errors import run_cli

log = logging.getLogger("linkbert_jax")


def summary(results: Sequence[dict]) -> dict:
    """``{"dev_<metric>": (mean, std, n), "test_<metric>": ...}`` over seeds (std: the
    sample standard deviation, 0 for one seed)."""
    out = {}
    for split in ("dev", "test"):
        keys = [k for k in results[0].get(split, {}) if all(k in r.get(split, {})
                                                           for r in results)]
        for k in keys:
            x = np.asarray([r[split][k] for r in results], np.float64)
            out[f"{split}_{k}"] = (float(x.mean()), float(x.std(ddof=1)) if len(x) > 1
                                   else 0.0, len(x))
    return out


def table(title: str, results: Sequence[dict]) -> str:
    seeds = ",".join(str(r["seed"]) for r in results)
    lines = [f"| {title} (seeds {seeds}) | mean ± std |", "|---|---|"]
    for k, (mean, std, _) in summary(results).items():
        lines.append(f"| {k} | {mean:.4f} ± {std:.4f} |")
    return "\n".join(lines)


def _write_summary(workdir: str, title: str, results: Sequence[dict]) -> str:
    text = table(title, results)
    rows = list(results)
    for name, content in (("summary.md", text + "\n"),
                          ("summary.json", json.dumps({"title": title, "runs": rows,
                                                       "summary": summary(results)},
                                                      indent=2))):
        write_text(os.path.join(workdir, name), content)
    return text


def _origin(init: str, pre, files: dict) -> dict:
    """Where a run's inputs come from, in absolute paths (with a workdir's step, read
    from ``pretrained.load``'s description: ``workdir PATH at step N``)."""
    at_step = re.search(r" at step (\d+)$", pre.source)
    return {"init": os.path.abspath(init), "init_step": at_step and int(at_step.group(1)),
            "tokenizer": os.path.abspath(pre.tokenizer_dir),
            **{f"{k}_file": os.path.abspath(v) for k, v in files.items() if v}}


def finetune(config, *, init: str, files: dict, workdir: str,
             seeds: Optional[Sequence[int]] = None, step: Optional[int] = None,
             tokenizer: Optional[str] = None, cache_dir: Optional[str] = None,
             take_over_lock: bool = False) -> list:
    """Run every seed (resuming a stopped one, reusing finished ones); returns their
    results, or [] when a signal stopped the run (saved: the same call resumes it). One
    run per workdir (:mod:`linkbert_jax.infra.workdir_lock`): a second one is refused."""
    from linkbert_jax.infra import workdir_lock
    from linkbert_jax.infra.preemption import StopSignal
    with workdir_lock.lock_run(workdir, take_over=take_over_lock, what="fine-tuning run"):
        stop = StopSignal()
        try:
            return _finetune(config, stop, init=init, files=files, workdir=workdir,
                             seeds=seeds, step=step, tokenizer=tokenizer, cache_dir=cache_dir)
        finally:
            stop.restore()


def _finetune(config, stop, *, init, files, workdir, seeds, step, tokenizer,
              cache_dir) -> list:
    import jax
    from linkbert_jax.finetune import export, loop, pretrained, tasks, train

    export.check_model_dirs(workdir, seeds, init, tokenizer)
    pre = pretrained.load(init, step=step, tokenizer=tokenizer, numerics=dict(config.model))
    tok = pretrained.load_tokenizer(pre.tokenizer_dir)
    log.info("init: %s (L%d/H%d), tokenizer %s", pre.source, pre.config.num_hidden_layers,
             pre.config.hidden_size, pre.tokenizer_dir)
    task_data = tasks.load(tasks.get_task(config.task), files, tok, config,
                           cache_dir or os.path.join(workdir, "cache"))
    steps_given = config.num_train_steps > 0
    config = train.resolve_steps(config, len(task_data.splits["train"]))
    train.validate(config, pre.config, tok)
    log.info("%s: %s; %d steps (%s of %d examples, batch %d) on %d devices",
             config.task, ", ".join(f"{k} {len(v)}" for k, v in task_data.splits.items()),
             config.num_train_steps, "num_train_steps" if steps_given else
             f"{config.num_train_epochs} epochs", len(task_data.splits["train"]),
             config.batch_size, jax.device_count())
    setup = train.build(config, pre, task_data)
    compiled = train.compile_steps(setup, task_data.task.loss, config)
    results = []
    for seed in seeds or [config.seed]:
        seed_config = config.copy_and_resolve_references()  # one run's config, a copy
        seed_config.seed = int(seed)
        out = workdir if not seeds else os.path.join(workdir, f"seed_{seed}")
        if stop.should_stop(0):  # between seeds: nothing to save
            log.warning("stopped after a termination signal, before seed %d", seed)
            return []
        result = loop.run_seed(seed_config, pre, task_data, setup, compiled, out, stop=stop,
                               origin=_origin(init, pre, files))
        if result is None:  # stopped by a signal, saved
            return []
        results.append(result)
    if jax.process_index() == 0:
        title = f"{config.task} from {init}"
        text = _write_summary(workdir, title, results)
        print(text, flush=True)
    return results


def run(config, *, coordinator=None, num_processes=None, process_id=None, **kwargs) -> int:
    """``finetune`` with errors as one line (``errors.run_cli``): 2 for bad input, config
    or checkpoints, 3 for a NaN."""
    from linkbert_jax.infra import runtime
    runtime.setup_logging("datasets")
    runtime.init_distributed(coordinator, num_processes, process_id)
    return run_cli(lambda: finetune(config, **kwargs))
