"""AdamW with warmup + linear decay, clipping, and no weight decay on LayerNorm/biases."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax


def warmup_steps(config) -> int:
    """Warmup in steps: ``warmup_fraction * num_train_steps`` if set, else ``warmup_steps``;
    never more than the run."""
    n = config.num_train_steps
    w = round(config.warmup_fraction * n) if config.warmup_fraction > 0 else config.warmup_steps
    return int(max(0, min(w, n)))


def schedule_numbers(config) -> np.ndarray:
    """The schedule's numbers, ``[peak, end, warmup steps, decay steps]`` (float32): the
    jitted train steps take them as an argument, so runs that differ only in learning
    rate or length share one compiled program (and its persistent-cache entry)."""
    w = warmup_steps(config)
    return np.asarray([config.learning_rate, config.end_learning_rate, w,
                       max(1, config.num_train_steps - w)], np.float32)


def learning_rate_schedule(config, numbers=None) -> optax.Schedule:
    """Linear warmup from 0 to the peak over ``warmup_steps``, then linear decay to the
    end rate: ``optax.join_schedules`` of two ``optax.linear_schedule``s, written out so
    that its ``numbers`` (default: :func:`schedule_numbers`) may be traced values."""
    peak, end, w, decay = (schedule_numbers(config) if numbers is None else numbers)

    def linear(count, start, stop, steps):  # optax.linear_schedule's formula
        frac = 1 - jnp.clip(count, 0, steps) / steps
        return (start - stop) * frac + stop

    def schedule(count):
        return jnp.where(count < w, linear(count, 0.0, peak, jnp.maximum(w, 1)),
                         linear(count - w, peak, end, decay))
    return schedule


def _decays(path, _) -> bool:
    """Weight decay on matrices and embeddings, not on LayerNorm parameters or biases."""
    names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
    return not (names[-1] == "bias" or any("LayerNorm" in n for n in names))


def weight_decay_mask(params):
    return jax.tree_util.tree_map_with_path(_decays, params)


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """``optax.clip_by_global_norm``, with each gradient multiplied by one scalar factor
    instead of divided by the norm element by element: XLA then fuses the clipping into
    AdamW's two moment updates rather than writing the clipped gradients out first, one
    kernel and two passes over the gradients fewer per parameter (docs/performance.md).
    Below the threshold the gradients pass unchanged (times exactly 1)."""
    def update(updates, state, params=None):
        del params
        norm = optax.tree.norm(updates)
        factor = jnp.where(norm < max_norm, 1.0, max_norm / norm)
        return jax.tree_util.tree_map(lambda g: g * factor.astype(g.dtype), updates), state
    return optax.GradientTransformation(optax.init_empty_state, update)


def make_optimizer(config, numbers=None) -> optax.GradientTransformation:
    """AdamW (clipped first) on :func:`learning_rate_schedule` of ``numbers``."""
    tx = optax.adamw(learning_rate_schedule(config, numbers), b1=config.adam_b1,
                     b2=config.adam_b2, eps=config.adam_eps, weight_decay=config.weight_decay,
                     mask=weight_decay_mask)
    if config.grad_clip_norm and config.grad_clip_norm > 0:
        tx = optax.chain(clip_by_global_norm(config.grad_clip_norm), tx)
    return tx


def with_numbers(config, numbers) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """``(optimizer, schedule)`` of ``config`` on the schedule ``numbers``, for a train
    step that takes them as an argument (:func:`schedule_numbers`)."""
    return make_optimizer(config, numbers), learning_rate_schedule(config, numbers)
