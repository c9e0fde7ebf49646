"""Gathers whose gradients are matrix products, not scatter-adds.

The gradient of ``table[ids]`` is a scatter-add of the output's gradient into the rows
of ``table``. On a GPU, XLA computes it with atomic adds, and rows that many tokens
share ([MASK], [PAD], [CLS], [SEP]; the two rows of the token-type table) serialise
them: in a profile of the base step on an H200 (issue 23), two such scatters took 60% of
the step. A one-hot product computes the same sums on the matrix units, and exactly:
every term is a value times 1 or 0, summed in float32. On a CPU the scatter is cheap and
the product over a 30k-row vocabulary is not, hence the choice (``ModelConfig.gather_grad``).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# One-hot products are exact only where float32 operands are not rounded (TPUs take one
# bfloat16 pass at the default precision; GPUs may take TF32).
EXACT = jax.lax.Precision.HIGHEST


def small_table_rows(table_TxD, ids, dtype):
    """``table[ids]`` in ``dtype`` for a table of a few rows (token types), as a one-hot
    product both ways: cheap on every backend, and no scatter in its gradient."""
    one_hot = jax.nn.one_hot(ids, table_TxD.shape[0], dtype=dtype)
    return jnp.einsum("...t,td->...d", one_hot, table_TxD.astype(dtype), precision=EXACT)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def rows_by_dot(table_VxD, ids, dtype):
    """``table[ids]`` in ``dtype`` (a gather) whose gradient for ``table`` is
    ``one_hot(ids)^T @ g``: ``dtype`` operands, float32 sums, in ``table``'s dtype."""
    return jnp.take(table_VxD, ids, axis=0).astype(dtype)


def _rows_by_dot_fwd(table_VxD, ids, dtype):
    return rows_by_dot(table_VxD, ids, dtype), (table_VxD, ids)


def _rows_by_dot_bwd(dtype, residuals, g):
    table_VxD, ids = residuals
    one_hot_NxV = jax.nn.one_hot(ids.reshape(-1), table_VxD.shape[0], dtype=dtype)
    g_NxD = g.reshape(-1, g.shape[-1]).astype(dtype)
    grad_VxD = jnp.einsum("nv,nd->vd", one_hot_NxV, g_NxD,
                          preferred_element_type=jnp.float32, precision=EXACT)
    return grad_VxD.astype(table_VxD.dtype), None


rows_by_dot.defvjp(_rows_by_dot_fwd, _rows_by_dot_bwd)


def positions_by_dot(h_BxLxD, pos_BxP):
    """``h[b, pos[b, p]]`` as a one-hot product (``[B, P, D]``): its gradient is one too."""
    one_hot_BxPxL = jax.nn.one_hot(pos_BxP, h_BxLxD.shape[1], dtype=h_BxLxD.dtype)
    return jnp.einsum("bpl,bld->bpd", one_hot_BxPxL, h_BxLxD, precision=EXACT)
