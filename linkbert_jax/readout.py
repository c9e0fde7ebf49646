"""Which keys each query sees and where a pooled head reads: padding masks, masks of
packed rows (several examples to a row, each attending to its own tokens), and
:class:`Readout`, the positions at which the last layer needs computing for a head on
[CLS]. Pure functions of arrays, used by ``linkbert_jax.model``."""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp


def at_positions(h_BxLxD, at_BxQ):
    """Row ``b``'s positions ``at_BxQ[b]``: ``[B, Q, D]``."""
    return jnp.take_along_axis(h_BxLxD, at_BxQ[..., None], 1)


@flax.struct.dataclass
class Readout:
    """Where a pooled head reads the last layer. The encoder's rows are G groups of R
    rows; the last layer sees a group's ``K = R * L`` tokens as one sequence, computes
    its queries (and MLP) at ``at[g, e]`` alone (E per group) with keys where
    ``mask[g, e]``, and returns ``[G * E, 1, D]``. Keys and values are projected once
    per token, as in every other layer."""

    at_GxE: jax.Array
    mask_GxExK: jax.Array

    @classmethod
    def first(cls, mask_BxL):
        """Every row's first position ([CLS]), as ``BertModel`` pools (a group a row)."""
        return cls(jnp.zeros((mask_BxL.shape[0], 1), jnp.int32),
                   mask_BxL[:, None, :].astype(bool))

    @classmethod
    def packed(cls, cls_GxE, segment_GxRxL):
        """Examples packed several to a row, ``segment`` telling which example of its
        group each token is of (unique within a group; 0 for padding), each read at its
        [CLS] (``cls``: its index in the group's ``R * L`` tokens)."""
        seg_GxK = segment_GxRxL.reshape(segment_GxRxL.shape[0], -1)
        own_GxE = jnp.take_along_axis(seg_GxK, cls_GxE, axis=1)
        return cls(cls_GxE, seg_GxK[:, None, :] == own_GxE[:, :, None])

    def groups(self, h_NxLxD):
        """The last hidden state as G sequences of ``R * L`` tokens (a reshape)."""
        return h_NxLxD.reshape(self.at_GxE.shape[0], -1, h_NxLxD.shape[-1])

    def queries(self, h_GxKxD):
        """The read positions of each group: ``[G, E, D]`` (the last layer's queries)."""
        return at_positions(h_GxKxD, self.at_GxE)

    def key_mask(self):
        """The keys each read position sees: ``[G, 1, E, K]``."""
        return self.mask_GxExK[:, None]

    def take(self, h_NxLxD):
        """The read positions of a whole last hidden state: ``[G * E, 1, D]``."""
        return flat(self.queries(self.groups(h_NxLxD)))


def flat(h_GxExD):
    """A readout's ``[G, E, D]`` as ``[G * E, 1, D]`` (one position a row, for pooling)."""
    return h_GxExD.reshape(-1, 1, h_GxExD.shape[-1])


def key_mask(mask_BxL=None, segment_BxL=None):
    """The keys each query sees: real tokens (``[B, 1, 1, L]``), or with ``segment``
    those of the query's own packed example (``[B, 1, L, L]``)."""
    if segment_BxL is None:
        return mask_BxL[:, None, None, :].astype(bool)
    return (segment_BxL[:, :, None] == segment_BxL[:, None, :])[:, None]
