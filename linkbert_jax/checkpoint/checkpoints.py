"""Checkpoint layout of a training workdir, in one place.

::

    WORKDIR/
      config.json               the full training config (``model`` holds ModelConfig fields)
      command_history.jsonl     the command line of each start / resume of the run
      checkpoints/<step>/       orbax CheckpointManager step directory with items
          params/               model parameters (StandardSave pytree)
          opt_state/            optimizer state (StandardSave pytree)
          meta/                 JSON: step, rng key data, data position (batches consumed),
                                the data's vocab_sha256 (linkbert_jax.hf.vocabulary)
      metrics.jsonl, tensorboard/

Orbax writes each step under a temporary name and renames it when complete, so a step
directory interrupted mid-save is never listed (and is cleaned up) on restore. On top of
that, ``latest_complete_step`` skips a step directory whose item files are missing (a
copy or filesystem that broke the rename guarantee) and falls back to the previous one.

Integrity: ``save`` stores a checksum of every array (``linkbert_jax.checkpoint.checksums``) in the
step's ``meta`` and refuses to save non-finite values; ``restore_latest_valid`` (training)
and ``load_params`` (export) verify them after reading. A step that fails to restore or
to verify is named in one line and skipped for the previous complete one; training moves
it to ``WORKDIR/unusable_checkpoints/<step>`` (kept for inspection, out of the way of the
step being saved again).
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from linkbert_jax.checkpoint import checksums, orbax_faults, tree_diff
from linkbert_jax.errors import (ConfigError, CorruptDataError, IntegrityError,
                                 NoValidCheckpointError, NonFiniteLossError)
from linkbert_jax.model import ModelConfig

log = logging.getLogger("linkbert_jax")

CONFIG_NAME = "config.json"
COMMANDS_NAME = "command_history.jsonl"
CHECKPOINT_DIR = "checkpoints"
ITEMS = ("params", "opt_state", "meta")
CHECKSUMS = "checksums"  # meta key: {item: {array path: checksum}}
UNUSABLE_DIR = "unusable_checkpoints"




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


def item_checksums(item: str, tree, step: int) -> dict[str, str]:
    """``{array path: checksum}`` of ``tree``; non-finite values raise (never saved)."""
    sums = checksums.fingerprints(tree)
    bad = [path for path, (_, finite) in sums.items() if not finite]
    if bad:
        raise NonFiniteLossError(f"{_which(item, bad)} hold NaN/Inf after step {step}: not saved; the last good "
                                 f"checkpoint is kept")
    return {path: h for path, (h, _) in sums.items()}


def save(mgr: ocp.CheckpointManager, step: int, params, opt_state, meta: dict,
         *, force: bool = False) -> bool:
    """Save one step (async when the manager is); ``meta`` gains the arrays' checksums."""
    meta = {**meta, CHECKSUMS: {"params": item_checksums("params", params, step),
                                "opt_state": item_checksums("opt_state", opt_state, step)}}
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


def complete_steps(mgr: ocp.CheckpointManager, *, discard: bool = False) -> list[int]:
    """Steps whose directory is complete, newest first; incomplete ones are named and
    skipped (and, with ``discard``, deleted so that the step can be saved again)."""
    out = []
    for step in sorted(mgr.all_steps(), reverse=True):
        step_dir = os.path.join(str(mgr.directory), str(step))
        if is_complete(step_dir):
            out.append(step)
            continue
        log.warning("checkpoint %s is incomplete (interrupted save?): skipped", step_dir)
        if discard:
            mgr.delete(step)
    return out


def latest_complete_step(mgr: ocp.CheckpointManager, *, discard: bool = False
                         ) -> Optional[int]:
    """The newest complete step (see ``complete_steps``), or None."""
    return next(iter(complete_steps(mgr, discard=discard)), None)


def _which(item: str, paths: list[str]) -> str:
    more = f" and {len(paths) - 1} more arrays" if len(paths) > 1 else ""
    return f"{item}{paths[0]}{more}"


def verify(meta: dict, item: str, tree) -> bool:
    """Raise ``IntegrityError`` unless every array of ``tree`` matches the checksum saved
    in ``meta`` and is finite; False when the step has no checksums (an older save)."""
    saved = (meta.get(CHECKSUMS) or {}).get(item)
    # Matching checksums prove the arrays are the ones saved, which were finite (``save``
    # refuses others): the finiteness pass is needed only without checksums.
    sums = checksums.fingerprints(tree, check_finite=saved is None)
    if saved is not None:
        wrong = [path for path, (h, _) in sums.items() if saved.get(path) != h]
        if wrong:
            raise IntegrityError(f"{_which(item, wrong)} do not match the saved checksums: "
                                 f"the files changed after the save")
        if len(saved) != len(sums):
            raise IntegrityError(f"{item} has {len(sums)} arrays, its checksums "
                                 f"{len(saved)}")
    bad = [path for path, (_, finite) in sums.items() if not finite]
    if bad:
        raise IntegrityError(f"{_which(item, bad)} hold NaN/Inf after reading")
    return saved is not None


def check_shapes(mgr: ocp.CheckpointManager, step: int, targets: dict) -> None:
    """A step saved with other array shapes means the config changed, not corruption:
    ``ConfigError`` (never a silent fall back). Unreadable metadata raises ValueError."""
    saved = mgr.item_metadata(step)
    for item, target in targets.items():  # params first: the opt_state follows them
        where = tree_diff.first_mismatch(item, tree_diff.leaves(saved[item]),
                                         tree_diff.leaves(target))
        if where:
            raise ConfigError(f"checkpoint {step} in {mgr.directory} was saved by another "
                              f"model or optimizer ({where}); use a new --workdir or the "
                              f"config it was trained with")


def _set_aside(mgr: ocp.CheckpointManager, step: int) -> str:
    """Move a step out of the manager's way (kept for inspection); the new path."""
    src = os.path.join(str(mgr.directory), str(step))
    root = os.path.join(os.path.dirname(str(mgr.directory)), UNUSABLE_DIR)
    dst, n = os.path.join(root, str(step)), 1
    while os.path.exists(dst):
        dst, n = os.path.join(root, f"{step}-{n}"), n + 1
    if jax.process_index() == 0:
        os.makedirs(root, exist_ok=True)
        os.replace(src, dst)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
    mgr.reload()
    return dst


# Errors that are bugs, not damage: never taken for a damaged checkpoint.
_BUGS = (ConfigError, TypeError, AttributeError, NameError, ImportError, MemoryError)


def _restore_verified(mgr, step, params_target, opt_state_target):
    check_shapes(mgr, step, {"params": params_target, "opt_state": opt_state_target})
    params, opt_state, meta = restore(mgr, step, params_target, opt_state_target)
    checked = verify(meta, "params", params)
    checked = verify(meta, "opt_state", opt_state) and checked
    if not checked:
        log.warning("checkpoint %s/%d has no checksums (saved by an older version): "
                    "restored unverified", mgr.directory, step)
    return params, opt_state, meta


def restore_latest_valid(mgr: ocp.CheckpointManager, params_target, opt_state_target):
    """``(step, params, opt_state, meta)`` of the newest step that is complete, restores
    and verifies; None when there is no complete step.

    Newer unusable steps (damaged files, checksum mismatch, NaN/Inf) are then moved to
    ``WORKDIR/unusable_checkpoints/`` and named in one line each. When every complete step
    is unusable, ``IntegrityError`` (nothing is moved: the run never restarts from scratch
    on its own). A step of other shapes is a ``ConfigError``.
    """
    bad = []
    for step in complete_steps(mgr, discard=True):
        try:
            with orbax_faults.quiet_failed_reads():
                params, opt_state, meta = _restore_verified(mgr, step, params_target,
                                                            opt_state_target)
        except _BUGS:
            raise
        except Exception as e:  # noqa: BLE001  orbax raises bare Exceptions
            bad.append((step, orbax_faults.one_line(e)))
            continue
        for s, why in bad:
            moved = _set_aside(mgr, s)
            log.warning("checkpoint %s/%d is unusable (%s): moved to %s; resuming from step "
                        "%d", mgr.directory, s, why, moved, step)
        return step, params, opt_state, meta
    if bad:
        raise IntegrityError(f"no checkpoint in {mgr.directory} can be restored: " + "; ".join(
            f"step {s}: {why}" for s, why in bad) + ". Move them away to start over")
    return None


def raise_if_save_failed(mgr: ocp.CheckpointManager, failures: orbax_faults.SaveFailures,
                         wait: bool = False) -> None:
    """``CheckpointWriteError`` naming the cause if a (background) save failed since the
    last call; with ``wait``, after the saves in flight are done."""
    if wait:
        orbax_faults.drain(mgr, failures)
    if not failures.errors:
        return
    orbax_faults.drain(mgr, failures)  # then the last complete step is the one on disk
    cause = orbax_faults.one_line(failures.errors[0])
    failures.errors.clear()
    orbax_faults.quiet_after_failed_write()
    raise orbax_faults.CheckpointWriteError(
        f"a checkpoint could not be written to {mgr.directory} ({cause}); the last "
        f"complete checkpoint (step {latest_complete_step(mgr)}) is kept")


def latest_checkpoint(workdir: str) -> Optional[int]:
    """The newest complete checkpoint step of a workdir, read-only; None if there is none."""
    if not os.path.isdir(checkpoint_dir(workdir)):
        return None
    mgr = manager(workdir, read_only=True, async_save=False)
    try:
        return latest_complete_step(mgr)
    finally:
        mgr.close()


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


def read_config(workdir: str) -> dict:
    """The workdir's saved training config (``config.json``) as a dict."""
    path = os.path.join(workdir, CONFIG_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no training config; is {workdir!r} a workdir?")
    with open(path) as f:
        try:
            cfg = json.load(f)
        except ValueError as e:  # JSON or UTF-8
            raise CorruptDataError(f"{path}: not a training config ({e})") from None
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise ConfigError(f"{path}: no 'model' section")
    return cfg


def read_model_config(workdir: str) -> ModelConfig:
    return ModelConfig.from_dict(read_config(workdir)["model"])


def record_command(workdir: str, argv: list) -> None:
    """Append the command line that (re)started a run, and the directory its relative
    paths are relative to, to ``COMMANDS_NAME`` (the model card quotes it)."""
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, COMMANDS_NAME), "a") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "cwd": os.getcwd(), "argv": list(argv)}) + "\n")


def read_commands(workdir: str) -> list[list[str]]:
    """The recorded command lines, oldest first ([] for a workdir without a history)."""
    path = os.path.join(workdir, COMMANDS_NAME)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line)["argv"] for line in f if line.strip()]


def _restore_params_on_host(mgr: ocp.CheckpointManager, step: int):
    """A step's params on one local device (whatever topology saved them), verified,
    as numpy arrays."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    saved = mgr.item_metadata(step)["params"]
    target = jax.tree_util.tree_map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)
    out = mgr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target),
                                                    meta=ocp.args.JsonRestore()))
    verify(out["meta"], "params", out["params"])
    return jax.tree_util.tree_map(np.asarray, out["params"])


def load_params(workdir: str, step: Optional[int] = None) -> tuple[ModelConfig, Any, int]:
    """Parameters of a workdir's checkpoint on host: ``(model_config, params, step)``.

    Without ``step``: the latest checkpoint that is complete and *valid* (restores and
    matches its checksums); the ones skipped are named in one line each. With ``step``:
    that one, or ``IntegrityError``/``ConfigError`` naming what is wrong with it.
    """
    model_config = read_model_config(workdir)
    mgr = manager(workdir, read_only=True, async_save=False)
    try:
        steps = sorted(mgr.all_steps(), reverse=True)
        if step is not None and step not in steps:
            raise ConfigError(f"{checkpoint_dir(workdir)}: no checkpoint at step {step}; "
                              f"available: {sorted(steps)}")
        for s in [step] if step is not None else steps:
            step_dir = os.path.join(checkpoint_dir(workdir), str(s))
            try:
                if not is_complete(step_dir):
                    raise IntegrityError("incomplete (interrupted save?)")
                with orbax_faults.quiet_failed_reads():
                    return model_config, _restore_params_on_host(mgr, s), s
            except _BUGS:
                raise
            except Exception as e:  # noqa: BLE001  orbax raises bare Exceptions
                if step is not None:
                    raise IntegrityError(f"checkpoint {step_dir} is unusable: "
                                         f"{orbax_faults.one_line(e)}") from None
                log.warning("checkpoint %s is unusable (%s): skipped", step_dir,
                            orbax_faults.one_line(e))
        raise NoValidCheckpointError(f"{checkpoint_dir(workdir)}: no complete and valid "
                                     f"checkpoint")
    finally:
        mgr.close()


def latest_valid_step(workdir: str) -> Optional[int]:
    """The step ``load_params(workdir)`` would export (restored and verified), or None.
    (To export, call ``load_params`` directly: it returns the params it verified.)"""
    try:
        return load_params(workdir)[2]
    except NoValidCheckpointError:
        return None
