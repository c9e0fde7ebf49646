"""Evaluation of the eval split: every example exactly once across processes (padding
rows and zero-weight batches where a process has fewer), statistics as sums and counts,
then means (``objectives.summarize``)."""
from __future__ import annotations

import jax
import numpy as np

from linkbert_jax import objectives, sharding


def eval_batch_size(config) -> int:
    """The global eval batch: ``config.eval_batch_size``, 0 meaning the training one."""
    return config.eval_batch_size or config.global_batch_size


def _padded(batch: dict, size: int) -> dict:
    n = len(batch["relation"])
    if n == size:
        return batch
    out = {k: np.concatenate([v, np.zeros((size - n,) + v.shape[1:], v.dtype)])
           for k, v in batch.items()}
    out["example_weight"][n:] = 0
    return out


def _any_process(flag: bool) -> bool:
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def evaluate(config, source, eval_fn, params, data_sh) -> dict:
    """The eval split, each example once (or ``eval_max_batches``); sums then means."""
    per_proc = eval_batch_size(config) // jax.process_count()
    it = source.batches(split=config.eval_split, batch_size=per_proc,
                        seq_length=config.seq_length, masking=config.masking,
                        seed=config.seed, process_index=jax.process_index(),
                        process_count=jax.process_count(), repeat=False, shuffle=False)
    totals, template, n = {}, None, 0
    while not config.eval_max_batches or n < config.eval_max_batches:
        batch = next(it, None)
        if not _any_process(batch is not None):
            break
        if batch is None:  # this process is done, others are not: a zero-weight batch
            batch = dict(template, example_weight=np.zeros_like(template["example_weight"]))
        batch = _padded(batch, per_proc)
        template = batch
        stats = jax.device_get(eval_fn(params, sharding.global_batch(batch, data_sh)))
        for k, v in stats.items():
            totals[k] = totals.get(k, 0.0) + float(v)
        n += 1
    if not totals:
        return {}
    out = {k: float(v) for k, v in objectives.summarize(totals, config.drp_weight).items()}
    out["examples"] = totals["examples"]
    return out
