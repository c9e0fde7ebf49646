"""Fine-tuning survives preemption: a seed's run is saved through the pretraining
checkpoint code (``linkbert_jax.checkpoint.checkpoints``: orbax, checksums, incomplete and damaged
steps skipped) and resumed from it, so that the same command run again continues where
it stopped and ends with the same bits as a run never stopped.

A seed's workdir (``WORKDIR``, or ``WORKDIR/seed_<s>`` with ``--seeds``)::

    checkpoints/<step>/   the latest one only; removed when the seed is finished
        params/           {"train": the trained parameters, "best": the best on dev}
        opt_state/        the optimizer state
        meta/             step (= batches consumed: the data position), rng, the best
                          dev metrics and their step, the train metrics not logged yet,
                          whether the evaluation at this step is still owed, the run
                          (its seed included)
    results.json          written last: the seed is finished (reused, not retrained)

"The run" is the flat record of what a seed's result depends on (the config, the
starting point, the files): a checkpoint or a finished seed written by another run is
refused in one line, never resumed or reused.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from linkbert_jax.checkpoint import checkpoints
from linkbert_jax.pretrain import steps
from linkbert_jax.errors import ConfigError
from linkbert_jax.finetune import packing

log = logging.getLogger("linkbert_jax")

RESULTS = "results.json"
RUN_KEY = "run"  # in a checkpoint's meta and in results.json
IGNORED = ("config.checkpoint_every_steps",)  # keys that do not change the result
# Keys added since runs were first recorded, with the value that earlier versions used:
# a run recorded without one resumes when it has that value.
ADDED = {"config.pack_shapes": packing.ROW_COUNTS}


def record(config, origin: dict) -> dict:
    """The run, flat: ``{"config.learning_rate": 5e-05, "train_file": PATH, ...}``."""
    tree = json.loads(json.dumps({"config": config.to_dict(), **origin}, default=str))
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): v
            for path, v in leaves}


def check_same_run(saved: dict, current: dict, where: str) -> None:
    """``ConfigError`` naming the first differences when ``saved`` is another run."""
    if not saved:
        raise ConfigError(f"{where} has no record of the run that wrote it (an older "
                          f"version?): use a new --workdir, or move it away to start over")
    saved = {**{k: v for k, v in ADDED.items() if k in current}, **saved}
    keys = sorted(k for k in set(saved) | set(current)
                  if saved.get(k) != current.get(k) and k not in IGNORED)
    if keys:
        changes = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys[:4])
        more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
        raise ConfigError(f"{where} was written by another run ({changes}{more}): run the "
                          f"same command to resume or reuse it, or use a new --workdir")


def finished(workdir: str, run: dict) -> Optional[dict]:
    """The results of a seed finished by this same run, else None."""
    path = os.path.join(workdir, RESULTS)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        results = json.load(f)
    check_same_run(results.pop(RUN_KEY, {}), run, path)
    return results


def manager(workdir: str):
    return checkpoints.manager(workdir, max_to_keep=1)


@dataclasses.dataclass
class Resumed:
    """What a checkpoint holds beyond the train state (``meta``, decoded)."""
    state: steps.TrainState
    step: int
    rng: jax.Array
    best: Optional[dict]  # {"score", "step", "metrics"}; None before the first eval
    best_params: Optional[dict]  # on host
    pending: list  # [(step, {metric: float})]: train metrics since the last log row
    eval_owed: bool  # the evaluation at ``step`` was interrupted


def save(mgr, step: int, state, rng, best, best_params, pending: list, eval_owed: bool,
         run: dict, *, force: bool = False) -> None:
    """Save a seed's run at ``step`` (``best_params``: sharded like ``state.params``)."""
    rows = jax.device_get([m for _, m in pending])
    meta = {"step": int(step),  # = batches consumed: the data position
            "rng": np.asarray(jax.random.key_data(rng)).tolist(), "best": best,
            "pending": [[int(s), {k: float(v) for k, v in m.items()}]
                        for (s, _), m in zip(pending, rows)],
            "eval_owed": bool(eval_owed), RUN_KEY: run}
    params = {"train": state.params,
              "best": state.params if best_params is None else best_params}
    checkpoints.save(mgr, step, params, state.opt_state, meta, force=force)


def _target(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)


def restore(mgr, state, run: dict) -> Optional[Resumed]:
    """The latest complete and valid checkpoint into the shapes and shardings of
    ``state`` (a fresh one), or None; another run's checkpoint is a ``ConfigError``."""
    params_target = jax.tree_util.tree_map(_target, state.params)
    restored = checkpoints.restore_latest_valid(
        mgr, {"train": params_target, "best": params_target},
        jax.tree_util.tree_map(_target, state.opt_state))
    if restored is None:
        return None
    step, params, opt_state, meta = restored
    check_same_run(meta.get(RUN_KEY, {}), run, f"checkpoint {mgr.directory}/{step}")
    best = meta.get("best")
    st = jax.device_put(jnp.asarray(meta["step"], jnp.int32), state.step.sharding)
    return Resumed(
        state=steps.TrainState(step=st, params=params["train"], opt_state=opt_state),
        step=int(meta["step"]), rng=jax.random.wrap_key_data(np.asarray(meta["rng"], np.uint32)),
        best=best, best_params=None if best is None else
        jax.tree_util.tree_map(np.asarray, jax.device_get(params["best"])),
        pending=[(s, m) for s, m in meta["pending"]], eval_owed=bool(meta["eval_owed"]))


def discard(mgr, workdir: str) -> None:
    """A finished seed's checkpoints (its results and model are written): its steps
    removed, then the directory if nothing else is in it."""
    mgr.wait_until_finished()
    for step in mgr.all_steps():
        mgr.delete(step)
    mgr.close()
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("finished seed")
    if jax.process_index() == 0:
        try:
            os.rmdir(checkpoints.checkpoint_dir(workdir))
        except OSError:  # a file of someone else's: left there
            pass


class NeverStop:
    """The stop signal of a run that installs no handler (a library call)."""
    requested = False

    @staticmethod
    def should_stop(step: int) -> bool:  # noqa: ARG004
        return False
