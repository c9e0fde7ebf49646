"""Dropout from 16 random bits an element.

``flax.linen.Dropout`` draws 32 random bits for each element (a uniform float compared
with the keep probability). The model's dropout sites need far less: :class:`Dropout`
draws one 32-bit word for every two elements and compares each 16-bit half with
``round(rate * 65536)``, so it generates half the random bits; the threefry hash that
makes them is the costly part of dropout on a CPU (the base train step: ~8% of it for all
of its dropout, docs/performance.md). The rate is then a multiple of 1/65536 (0.1 drops
with probability 0.100006) and the kept values are scaled by the exact ``1/keep``, so the
expected output is the input, as with flax. A last axis of odd size falls back to flax's.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

LEVELS = 1 << 16  # 16-bit draws


def threshold(rate: float) -> int:
    """Draws below this are dropped: ``rate`` rounded to a multiple of 1/65536."""
    return min(LEVELS, max(0, round(rate * LEVELS)))


def keep_mask(rng, shape, rate: float):
    """A boolean mask of ``shape`` (last axis even) keeping each element with probability
    ``1 - threshold(rate) / 65536``, from ``prod(shape) / 2`` 32-bit words."""
    words = jax.random.bits(rng, shape[:-1] + (shape[-1] // 2,), jnp.uint32)
    halves = lax.bitcast_convert_type(words, jnp.uint16).reshape(shape)
    return halves >= threshold(rate)


class Dropout(nn.Module):
    """``flax.linen.Dropout``'s interface (``rate``; ``__call__(x, deterministic)``, rng
    collection "dropout") with :func:`keep_mask`'s 16-bit draws."""

    rate: float

    @nn.compact
    def __call__(self, x, deterministic: bool):
        if deterministic or self.rate == 0.0:
            return x
        rng = self.make_rng("dropout")
        if threshold(self.rate) >= LEVELS:  # a rate of 1 (to 16 bits): all dropped
            return jnp.zeros_like(x)
        if x.ndim == 0 or x.shape[-1] % 2:  # flax's draws
            keep, scale = jax.random.bernoulli(rng, 1.0 - self.rate, x.shape), 1 / (1 - self.rate)
        else:
            keep = keep_mask(rng, x.shape, self.rate)
            scale = LEVELS / (LEVELS - threshold(self.rate))
        return jnp.where(keep, x * jnp.asarray(scale, x.dtype), jnp.zeros_like(x))
