r"""Fine-tune and evaluate a linkbert-jax workdir or any Hugging Face BERT directory.

    python -m linkbert_jax.finetune --task seqcls --init runs/base \
        --train_file train.json --validation_file dev.json [--test_file test.json] \
        --workdir ft/mytask [--seeds 1,2,3] [--config.learning_rate=3e-5 ...]

``--task`` is a family (seqcls, multilabel, regression; the defaults of
``linkbert_jax/finetune/config.py``) or ``--config finetune/<file>:<task>`` a
task of the LinkBERT paper with its run scripts' hyperparameters; ``--config.key=value``
overrides either. ``--init`` is a pretraining workdir (latest complete checkpoint, or
``--step``) or a Hugging Face BERT directory.
"""
from __future__ import annotations

import functools
import os
import sys
import types

from absl import flags
from ml_collections import config_flags

from linkbert_jax.errors import ConfigError
from linkbert_jax.infra import runtime

_DEFAULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.py")


@functools.cache
def define_flags() -> types.SimpleNamespace:
    """The command's absl flags, defined when it starts (``cli``), not at import: any
    module of the package imports next to any other (training's ``--config`` too)."""
    coordinator, num_processes, process_id = runtime.define_distributed_flags()
    f = types.SimpleNamespace(
        task=flags.DEFINE_string("task", None, "task family (sets the default config)"),
        config=config_flags.DEFINE_config_file(
            "config", None, "config file[:task]; default: the family defaults of --task"),
        init=flags.DEFINE_string("init", None,
                                 "pretraining workdir or Hugging Face BERT directory"),
        step=flags.DEFINE_integer("step", None,
                                  "checkpoint step of a workdir (default: latest)"),
        tokenizer=flags.DEFINE_string("tokenizer", None,
                                      "tokenizer directory (default: --init's)"),
        train=flags.DEFINE_string("train_file", None, "training split (JSON lines)"),
        validation=flags.DEFINE_string("validation_file", None, "dev split (JSON lines)"),
        test=flags.DEFINE_string("test_file", None,
                                 "test split (JSON lines, labels optional)"),
        workdir=flags.DEFINE_string("workdir", None, "output directory"),
        seeds=flags.DEFINE_list("seeds", None, "run once per seed and report mean ± std"),
        cache=flags.DEFINE_string("cache_dir", None,
                                  "tokenized data cache (default WORKDIR/cache)"),
        coordinator=coordinator, num_processes=num_processes, process_id=process_id,
        take_over=runtime.define_take_over_lock_flag())
    flags.mark_flags_as_required(["init", "train_file", "validation_file", "workdir"])
    return f


def with_default_config(argv: list) -> list:
    """``--task X`` without ``--config``: the family defaults, ``config.py:X``."""
    if any(a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    task = next((a.split("=", 1)[1] for a in argv if a.startswith("--task=")), None)
    if task is None and "--task" in argv and argv.index("--task") + 1 < len(argv):
        task = argv[argv.index("--task") + 1]
    return argv[:1] + [f"--config={_DEFAULTS}:{task or 'seqcls'}"] + argv[1:]


def main(argv) -> int:
    from linkbert_jax.finetune import run
    f = define_flags()
    config = f.config.value
    if f.task.value and f.task.value != config.task:
        raise ConfigError(f"--task {f.task.value} but the config's task is {config.task}")
    files = {"train": f.train.value, "validation": f.validation.value, "test": f.test.value}
    try:
        seeds = [int(s) for s in f.seeds.value] if f.seeds.value else None
    except ValueError:
        raise ConfigError(f"--seeds {','.join(f.seeds.value)}: expected integers "
                          f"separated by commas") from None
    return run.run(config, init=f.init.value, files=files, workdir=f.workdir.value,
                   seeds=seeds, step=f.step.value, tokenizer=f.tokenizer.value,
                   cache_dir=f.cache.value, take_over_lock=f.take_over.value,
                   coordinator=f.coordinator.value, num_processes=f.num_processes.value,
                   process_id=f.process_id.value)


def cli() -> None:
    """The entry point (``python -m linkbert_jax.finetune``, console script
    ``linkbert-finetune``)."""
    runtime.setup_environment(tensorflow=False)  # huge pages (re-executes once)
    from linkbert_jax.config_defaults import with_config_files  # imports JAX: after it
    define_flags()
    runtime.run_absl(main, with_config_files(with_default_config(sys.argv)))


if __name__ == "__main__":
    cli()
