"""Checkpoint layout of a training workdir, in one place.

::

    WORKDIR/
      config.json               the full training config (``model`` holds ModelConfig fields)
      checkpoints/<step>/       orbax CheckpointManager step directory with items
          params/               model parameters (StandardSave pytree)
          opt_state/            optimizer state (StandardSave pytree)
          meta/                 JSON: step, rng key data, data position (batches consumed)
      metrics.jsonl, tensorboard/

Orbax writes each step under a temporary name and renames it when complete, so a step
directory interrupted mid-save is never listed (and is cleaned up) on restore. On top of
that, ``latest_complete_step`` skips a step directory whose item files are missing (a
copy or filesystem that broke the rename guarantee) and falls back to the previous one.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional

import orbax.checkpoint as ocp

from linkbert_jax.model import ModelConfig

log = logging.getLogger("linkbert_jax")

CONFIG_NAME = "config.json"
CHECKPOINT_DIR = "checkpoints"
ITEMS = ("params", "opt_state", "meta")


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)


def manager(workdir: str, *, max_to_keep: Optional[int] = 3, async_save: bool = True,
            read_only: bool = False) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
        enable_async_checkpointing=async_save, cleanup_tmp_directories=not read_only)
    handlers = {"params": ocp.StandardCheckpointHandler(),
                "opt_state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                                 item_handlers=handlers)


def save(mgr: ocp.CheckpointManager, step: int, params, opt_state, meta: dict,
         *, force: bool = False) -> bool:
    return mgr.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(opt_state),
        meta=ocp.args.JsonSave(meta)), force=force)


def restore(mgr: ocp.CheckpointManager, step: int, params_target, opt_state_target):
    """Restore (params, opt_state, meta) into the given abstract/sharded targets."""
    out = mgr.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(params_target),
        opt_state=ocp.args.StandardRestore(opt_state_target),
        meta=ocp.args.JsonRestore()))
    return out["params"], out["opt_state"], out["meta"]


# Files orbax writes last in a step (and in each item) once the save is complete.
_STEP_MARKER = "_CHECKPOINT_METADATA"
_ITEM_MARKERS = {"params": "_METADATA", "opt_state": "_METADATA", "meta": "metadata"}


def is_complete(step_dir: str) -> bool:
    """Whether a step directory holds every item with its metadata written."""
    return os.path.isfile(os.path.join(step_dir, _STEP_MARKER)) and all(
        os.path.isfile(os.path.join(step_dir, item, marker))
        for item, marker in _ITEM_MARKERS.items())


def latest_complete_step(mgr: ocp.CheckpointManager, *, discard: bool = False
                         ) -> Optional[int]:
    """The newest step whose directory is complete; incomplete ones are named and skipped
    (and, with ``discard``, deleted so that the step can be saved again)."""
    for step in sorted(mgr.all_steps(), reverse=True):
        step_dir = os.path.join(str(mgr.directory), str(step))
        if is_complete(step_dir):
            return step
        log.warning("checkpoint %s is incomplete (interrupted save?): skipped", step_dir)
        if discard:
            mgr.delete(step)
    return None


def write_config(workdir: str, config_dict: dict) -> None:
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, CONFIG_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config_dict, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_changes(workdir: str, config_dict: dict, ignore=()) -> list[str]:
    """``"key: saved -> new"`` for every (dotted) key whose value differs between the
    workdir's saved ``config.json`` and ``config_dict``; [] when there is none saved.
    Keys starting with an entry of ``ignore`` are left out."""
    path = os.path.join(workdir, CONFIG_NAME)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        old = _flatten(json.load(f))
    new = _flatten(json.loads(json.dumps(config_dict, default=str)))
    keys = sorted(k for k in set(old) | set(new)
                  if old.get(k) != new.get(k) and not k.startswith(tuple(ignore)))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys]


def read_model_config(workdir: str) -> ModelConfig:
    path = os.path.join(workdir, CONFIG_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no training config; is {workdir!r} a workdir?")
    with open(path) as f:
        cfg = json.load(f)
    if "model" not in cfg:
        raise ValueError(f"{path}: no 'model' section")
    return ModelConfig.from_dict(cfg["model"])


def load_params(workdir: str, step: Optional[int] = None) -> tuple[ModelConfig, Any, int]:
    """Parameters of a workdir's checkpoint (latest complete one, or ``step``) on host.

    Returns ``(model_config, params, step)``; params as numpy arrays.
    """
    model_config = read_model_config(workdir)
    mgr = manager(workdir, read_only=True, async_save=False)
    steps = mgr.all_steps()
    if not steps:
        raise FileNotFoundError(f"{checkpoint_dir(workdir)}: no complete checkpoint")
    if step is None:
        step = max(steps)
    elif step not in steps:
        raise ValueError(f"{checkpoint_dir(workdir)}: no checkpoint at step {step}; "
                         f"available: {sorted(steps)}")
    # Restore onto one local device whatever topology saved it, then to host numpy.
    import jax
    import numpy as np
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    saved = mgr.item_metadata(step)["params"]
    target = jax.tree_util.tree_map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)
    out = mgr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target)))
    mgr.close()
    return model_config, jax.tree_util.tree_map(np.asarray, out["params"]), step


# A standalone parameters directory (e.g. imported from Hugging Face) that training can
# start from:  PARAMS_DIR/params/ (orbax StandardSave pytree) + PARAMS_DIR/model_config.json
PARAMS_ITEM = "params"
PARAMS_CONFIG_NAME = "model_config.json"


def save_params(path: str, params, config: Optional[ModelConfig] = None) -> str:
    """Write ``params`` (and the ModelConfig, when given) as a standalone directory."""
    path = os.path.abspath(path)
    item = os.path.join(path, PARAMS_ITEM)
    if os.path.exists(item):
        raise FileExistsError(f"{item}: already exists; choose an empty output directory")
    os.makedirs(path, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(item, params)
        ckptr.wait_until_finished()
    if config is not None:
        with open(os.path.join(path, PARAMS_CONFIG_NAME), "w") as f:
            json.dump(config.to_dict(), f, indent=2, sort_keys=True)
    return path


def load_params_dir(path: str, target=None) -> tuple[Optional[ModelConfig], Any]:
    """Read a :func:`save_params` directory: ``(ModelConfig or None, params)``.

    Without ``target`` the params come back as host numpy arrays; pass an abstract or
    sharded pytree (``jax.ShapeDtypeStruct`` with shardings) to restore onto devices.
    """
    path = os.path.abspath(path)
    item = os.path.join(path, PARAMS_ITEM)
    if not os.path.isdir(item):
        raise FileNotFoundError(f"{item}: no params checkpoint (written by save_params)")
    config = None
    cfg_path = os.path.join(path, PARAMS_CONFIG_NAME)
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            config = ModelConfig.from_dict(json.load(f))
    with ocp.StandardCheckpointer() as ckptr:
        params = ckptr.restore(item, target)
    return config, params
