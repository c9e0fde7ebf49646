"""AdamW with warmup + linear decay, clipping, and no weight decay on LayerNorm/biases."""
from __future__ import annotations

import jax
import optax


def warmup_steps(config) -> int:
    """Warmup in steps: ``warmup_fraction * num_train_steps`` if set, else ``warmup_steps``;
    never more than the run."""
    n = config.num_train_steps
    w = round(config.warmup_fraction * n) if config.warmup_fraction > 0 else config.warmup_steps
    return int(max(0, min(w, n)))


def learning_rate_schedule(config) -> optax.Schedule:
    w = warmup_steps(config)
    decay = max(1, config.num_train_steps - w)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, config.learning_rate, max(1, w)),
         optax.linear_schedule(config.learning_rate, config.end_learning_rate, decay)],
        boundaries=[w])


def _decays(path, _) -> bool:
    """Weight decay on matrices and embeddings, not on LayerNorm parameters or biases."""
    names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
    return not (names[-1] == "bias" or any("LayerNorm" in n for n in names))


def weight_decay_mask(params):
    return jax.tree_util.tree_map_with_path(_decays, params)


def make_optimizer(config) -> optax.GradientTransformation:
    tx = optax.adamw(learning_rate_schedule(config), b1=config.adam_b1, b2=config.adam_b2,
                     eps=config.adam_eps, weight_decay=config.weight_decay,
                     mask=weight_decay_mask)
    if config.grad_clip_norm and config.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
    return tx
