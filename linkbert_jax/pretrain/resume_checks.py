"""What a resume would refuse, found before the run writes anything to the workdir (its
``config.json``) or compiles: the latest complete checkpoint was saved by another model
or optimizer (``checkpoints.check_shapes``) or trained on another vocabulary
(``linkbert_jax.hf.vocabulary``). A checkpoint too damaged to tell is left to the restore,
which names it and falls back to the previous one."""
from __future__ import annotations

import logging
import os

from linkbert_jax.checkpoint import checkpoints, orbax_faults
from linkbert_jax.hf import vocabulary
from linkbert_jax.errors import ConfigError

log = logging.getLogger("linkbert_jax")


def check(workdir: str, data_dir: str, manifest: dict, abstract_state) -> None:
    """``ConfigError`` naming the first difference; nothing for a fresh workdir."""
    if not os.path.isdir(checkpoints.checkpoint_dir(workdir)):
        return
    with orbax_faults.quiet_read_only():
        mgr = checkpoints.manager(workdir, read_only=True, async_save=False)
    try:
        step = checkpoints.latest_complete_step(mgr)
        if step is None:
            return
        try:
            with orbax_faults.quiet_failed_reads():
                checkpoints.check_shapes(mgr, step, {"params": abstract_state.params,
                                                     "opt_state": abstract_state.opt_state})
                saved = vocabulary.in_checkpoint(mgr, step)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001  damage: the restore names it and falls back
            log.info("checkpoint %d not checked before the restore (%s)", step,
                     orbax_faults.one_line(e))
            return
    finally:
        mgr.close()
    vocabulary.check(saved, vocabulary.of_manifest(data_dir, manifest), vocabulary.RESUME_FIX)
