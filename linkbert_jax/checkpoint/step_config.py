"""The config each checkpoint was trained with, recorded with that checkpoint.

``WORKDIR/config.json`` is the config of the latest start of a run; a later start with
another config (a resume with another learning rate that saved nothing yet, or a run
that only found the work done) rewrites it. The weights of a step were trained with the
config of the run that saved them, so the trainer stores that config, and the command
lines that led to it, in the step's ``meta`` item (``META_KEY``): written by orbax with
the step, atomically (a step is renamed into place when complete). Export and its model
card read them from the step (``read``), never from the workdir's current config.json.
"""
from __future__ import annotations

import json
import logging
import os

from linkbert_jax.checkpoint import checkpoints
from linkbert_jax.model import ModelConfig

log = logging.getLogger("linkbert_jax")

META_KEY = "trained_with"  # meta: {"config": resolved config, "commands": [argv, ...]}
_META_FILE = os.path.join("meta", "metadata")  # the JSON orbax writes for the meta item


def record(resolved_config: dict, workdir: str) -> dict:
    """What ``_save`` puts under ``META_KEY``: the run's resolved config (as JSON, the way
    config.json holds it) and the command lines recorded in the workdir so far."""
    return {"config": json.loads(json.dumps(resolved_config, default=str)),
            "commands": checkpoints.read_commands(workdir)}


def read(workdir: str, step: int) -> dict:
    """``{"config": ..., "commands": [...]}`` that ``step`` was trained with. A step saved
    before configs were recorded: the workdir's config.json and command history, with a
    warning (they describe the latest start, which may not be the one that saved it)."""
    path = os.path.join(checkpoints.checkpoint_dir(workdir), str(step), _META_FILE)
    with open(path) as f:
        meta = json.load(f)
    saved = meta.get(META_KEY)
    if isinstance(saved, dict) and isinstance(saved.get("config"), dict):
        return {"config": saved["config"], "commands": saved.get("commands") or []}
    log.warning("checkpoint %s records no training config (saved by an older version): "
                "using %s, the config of the workdir's latest start", os.path.dirname(
                    os.path.dirname(path)), os.path.join(workdir, checkpoints.CONFIG_NAME))
    return {"config": checkpoints.read_config(workdir),
            "commands": checkpoints.read_commands(workdir)}


def model_config(trained_with: dict) -> ModelConfig:
    """The model config of a ``read`` result."""
    return ModelConfig.from_dict(trained_with["config"]["model"])
