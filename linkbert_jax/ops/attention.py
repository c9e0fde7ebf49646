"""Attention, by ``ModelConfig.attention``:

- ``"xla"``: explicit softmax, computed as Hugging Face does (fp32 scores and softmax),
  with attention-probability dropout. The reference.
- ``"fused"``: ``jax.nn.dot_product_attention`` with JAX's own choice of implementation
  (XLA today); ``"cudnn"``: the same call asking for cuDNN's fused flash attention (GPU
  only). Neither applies attention-probability dropout.

cuDNN takes padding as sequence lengths; a mask or bias must have a row per query (it
refuses the ``[B, 1, 1, L]`` padding mask: "Bias must have same seq length as QKV").
So :func:`fused` gives the padding as the key lengths of the rows, and a mask per query
(packed rows, a pooled head's readout) as the mask itself.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from linkbert_jax.ops import dropout

# what jax.nn.dot_product_attention is asked for, by ModelConfig.attention
IMPLEMENTATIONS = {"fused": None, "cudnn": "cudnn"}


def explicit(q, k, v, mask_Bx1xQxL, dropout_rate: float, deterministic: bool):
    """``softmax(q k^T / sqrt(H)) v`` where ``mask`` (``[B, Q|1, N, H]`` operands)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    s_BxNxQxL = jnp.einsum("bqnh,bknh->bnqk", q, k).astype(jnp.float32) * scale
    s_BxNxQxL = jnp.where(mask_Bx1xQxL, s_BxNxQxL, jnp.finfo(jnp.float32).min)
    p_BxNxQxL = jax.nn.softmax(s_BxNxQxL, axis=-1).astype(q.dtype)
    if dropout_rate > 0.0 and not deterministic:
        p_BxNxQxL = dropout.Dropout(dropout_rate)(p_BxNxQxL, deterministic=False)
    return jnp.einsum("bnqk,bknh->bqnh", p_BxNxQxL, v)


def fused(q, k, v, mask_Bx1xQxL, implementation):
    """``jax.nn.dot_product_attention`` of ``q, k, v`` (``[B, Q|L, N, H]``) where
    ``mask``, by :func:`mask_arguments`."""
    return jax.nn.dot_product_attention(q, k, v, implementation=implementation,
                                        **mask_arguments(mask_Bx1xQxL, q.shape[1]))


def mask_arguments(mask_Bx1xQxL, num_queries: int) -> dict:
    """``mask`` as the fused kernels take it, for ``num_queries`` queries a row.

    A mask with a row per query is passed as it is. The attention mask's padding
    (``[B, 1, 1, L]`` for more queries) becomes each row's key count,
    ``key_value_seq_lengths``: the keys of a row must then be a prefix of ones, as
    tokenizers and our records pad (on the right). A row of padding only counts one key,
    not 0, so that a kernel that skips empty rows cannot give it NaN; its outputs are
    never read.
    """
    if mask_Bx1xQxL.shape[2] == num_queries:
        return {"mask": mask_Bx1xQxL}
    lengths_B = jnp.sum(mask_Bx1xQxL[:, 0, 0, :], axis=-1, dtype=jnp.int32)
    return {"key_value_seq_lengths": jnp.maximum(lengths_B, 1)}
