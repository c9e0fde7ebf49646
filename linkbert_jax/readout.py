"""Which keys each query sees and where a pooled head reads: padding masks, masks of
packed rows (several examples to a row, each attending to its own tokens), and
:class:`Readout`, the positions at which the last layer needs computing for a head on
[CLS]. Pure functions of arrays, used by ``linkbert_jax.model``."""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp


def at_positions(h_BxLxD, at_B):
    """Row ``b``'s position ``at_B[b]``: ``[B, 1, D]`` (every position when None)."""
    return h_BxLxD if at_B is None else jnp.take_along_axis(h_BxLxD, at_B[:, None, None], 1)


@flax.struct.dataclass
class Readout:
    """Where a pooled head reads the last layer: the encoder's rows are G groups of R
    rows; example ``e`` of group ``g`` is read in row ``rows[g, e]`` of its group at
    position ``at[g, e]``, its keys where ``mask[g, e]``. The last layer then computes
    those positions alone: ``[G * E, 1, D]``."""

    rows_GxE: jax.Array
    at_GxE: jax.Array
    mask_GxExL: jax.Array

    @classmethod
    def first(cls, mask_BxL):
        """Every row's first position ([CLS]), as ``BertModel`` pools."""
        zeros = jnp.zeros((mask_BxL.shape[0], 1), jnp.int32)
        return cls(zeros, zeros, mask_BxL[:, None, :].astype(bool))

    @classmethod
    def packed(cls, cls_GxE, segment_GxRxL):
        """Examples packed several to a row (``segment``: which example each token is
        of, 0 for padding) read at their [CLS] (``cls``: its index in the group's
        flattened ``[R * L]`` tokens)."""
        L = segment_GxRxL.shape[-1]
        rows, at = cls_GxE // L, cls_GxE % L
        seg_GxExL = jnp.take_along_axis(segment_GxRxL, rows[..., None], axis=1)
        own_GxEx1 = jnp.take_along_axis(seg_GxExL, at[..., None], axis=2)
        return cls(rows, at, (seg_GxExL == own_GxEx1) & (seg_GxExL > 0))

    def rows_of(self, h_NxLxD):
        """Each example's row, ``[G * E, L, D]`` (``N = G * R``)."""
        G, E = self.rows_GxE.shape
        h_GxRxLxD = h_NxLxD.reshape((G, -1) + h_NxLxD.shape[1:])
        rows = jnp.take_along_axis(h_GxRxLxD, self.rows_GxE[:, :, None, None], axis=1)
        return rows.reshape((G * E,) + h_NxLxD.shape[1:])

    def take(self, h_NxLxD):
        """The read positions of a whole last hidden state: ``[G * E, 1, D]``."""
        return at_positions(self.rows_of(h_NxLxD), self.at_GxE.reshape(-1))

    def args(self):
        """The last layer's mask ``[G * E, 1, 1, L]`` and positions ``[G * E]``."""
        L = self.mask_GxExL.shape[-1]
        return self.mask_GxExL.reshape(-1, 1, 1, L), self.at_GxE.reshape(-1)


def key_mask(mask_BxL=None, segment_BxL=None):
    """The keys each query sees: real tokens (``[B, 1, 1, L]``), or with ``segment``
    those of the query's own packed example (``[B, 1, L, L]``)."""
    if segment_BxL is None:
        return mask_BxL[:, None, None, :].astype(bool)
    same = segment_BxL[:, :, None] == segment_BxL[:, None, :]
    return (same & (segment_BxL[:, None, :] > 0))[:, None]
