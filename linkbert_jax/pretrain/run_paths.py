"""What training saves about paths and where it may save: called by
``trainer.setup_run`` before anything is read or written.

- Relative paths of the config (``data_dir``, ``init_from_hf``) become absolute, so the
  ``config.json`` that the export, the model card and fine-tuning's ``--init WORKDIR``
  read names the same directories from any working directory.
- A workdir whose ``config.json`` training did not write (a Hugging Face model
  directory, say) is refused: training would replace that file.
"""
from __future__ import annotations

import json
import os

from linkbert_jax.checkpoint.checkpoints import CONFIG_NAME
from linkbert_jax.errors import ConfigError

PATH_KEYS = ("data_dir", "init_from_hf")


def make_absolute(config) -> None:
    """Each of ``PATH_KEYS`` set in ``config`` made absolute (against the current
    directory), in place."""
    for key in PATH_KEYS:
        value = config.get(key)
        if value and not os.path.isabs(value):
            config[key] = os.path.abspath(value)


def check_workdir(workdir: str) -> None:
    """Refuse a workdir holding a ``config.json`` that is not a training config."""
    path = os.path.join(workdir, CONFIG_NAME)
    if not os.path.isfile(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        saved = None
    if not (isinstance(saved, dict) and isinstance(saved.get("model"), dict)):
        kind = (" (a Hugging Face model's config)" if isinstance(saved, dict)
                and "model_type" in saved else "")
        raise ConfigError(f"--workdir {workdir}: its {CONFIG_NAME} was not written by "
                          f"training{kind} and training would replace it; choose a new "
                          f"or empty --workdir")


def prepare(config, workdir: str) -> None:
    check_workdir(workdir)
    make_absolute(config)
