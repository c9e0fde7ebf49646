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

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from linkbert_jax import runtime
from linkbert_jax.errors import ConfigError

_DEFAULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.py")

_TASK = flags.DEFINE_string("task", None, "task family (sets the default config)")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "config file[:task]; default: the family defaults of --task")
_INIT = flags.DEFINE_string("init", None, "pretraining workdir or Hugging Face BERT directory")
_STEP = flags.DEFINE_integer("step", None, "checkpoint step of a workdir (default: latest)")
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "tokenizer directory (default: --init's)")
_TRAIN = flags.DEFINE_string("train_file", None, "training split (JSON lines)")
_VALIDATION = flags.DEFINE_string("validation_file", None, "dev split (JSON lines)")
_TEST = flags.DEFINE_string("test_file", None, "test split (JSON lines, labels optional)")
_WORKDIR = flags.DEFINE_string("workdir", None, "output directory")
_SEEDS = flags.DEFINE_list("seeds", None, "run once per seed and report mean ± std")
_CACHE = flags.DEFINE_string("cache_dir", None, "tokenized data cache (default WORKDIR/cache)")
_COORDINATOR, _NUM_PROCESSES, _PROCESS_ID = runtime.define_distributed_flags()
_TAKE_OVER = runtime.define_take_over_lock_flag()
flags.mark_flags_as_required(["init", "train_file", "validation_file", "workdir"])


def with_default_config(argv: list) -> list:
    """``--task X`` without ``--config``: the family defaults, ``config.py:X``."""
    if any(a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    task = next((a.split("=", 1)[1] for a in argv if a.startswith("--task=")), None)
    if task is None and "--task" in argv and argv.index("--task") + 1 < len(argv):
        task = argv[argv.index("--task") + 1]
    return argv[:1] + [f"--config={_DEFAULTS}:{task or 'seqcls'}"] + argv[1:]


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from linkbert_jax.finetune import run
    config = _CONFIG.value
    if _TASK.value and _TASK.value != config.task:
        raise ConfigError(f"--task {_TASK.value} but the config's task is {config.task}")
    files = {"train": _TRAIN.value, "validation": _VALIDATION.value, "test": _TEST.value}
    try:
        seeds = [int(s) for s in _SEEDS.value] if _SEEDS.value else None
    except ValueError:
        raise ConfigError(f"--seeds {','.join(_SEEDS.value)}: expected integers "
                          f"separated by commas") from None
    return run.run(config, init=_INIT.value, files=files, workdir=_WORKDIR.value,
                   seeds=seeds, step=_STEP.value, tokenizer=_TOKENIZER.value,
                   cache_dir=_CACHE.value, take_over_lock=_TAKE_OVER.value,
                   coordinator=_COORDINATOR.value,
                   num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)


def cli() -> None:
    """The entry point (``python -m linkbert_jax.finetune``, console script
    ``linkbert-finetune``)."""
    from linkbert_jax.config_defaults import with_config_files
    runtime.setup_environment(tensorflow=False)  # huge pages (re-executes once)
    runtime.run_absl(main, with_config_files(with_default_config(sys.argv)))


if __name__ == "__main__":
    cli()
