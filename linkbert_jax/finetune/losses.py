"""Task losses as sums and counts (like ``linkbert_jax.objectives``), each the loss of
the matching ``transformers`` head: ``loss = sum / count`` over the real rows of a batch.

A ``Loss`` is two pure functions of float32 arrays:
``total(logits, labels, weight_B)`` is the weighted sum of per-element losses and
``count(labels, weight_B)`` its denominator, known before the forward pass, so that
microbatches can be scaled by the global batch's count and summed. Rows with weight 0
(padding of a last, partial batch) contribute nothing to either.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

IGNORE = -100  # token labels that carry no loss (special tokens, later sub-tokens)


class Loss(NamedTuple):
    total: Callable
    count: Callable


def _nll(logits, labels):
    """-log softmax(logits)[label] along the last axis (labels clipped to a valid id)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    safe = jnp.clip(labels, 0, logits.shape[-1] - 1)
    return -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]


def _rows(labels, w_B):
    return jnp.sum(w_B)


# BertForSequenceClassification (single label) and BertForMultipleChoice: CrossEntropy.
CROSS_ENTROPY = Loss(lambda x_BxK, y_B, w_B: jnp.sum(_nll(x_BxK, y_B) * w_B), _rows)


def _token_mask(y_BxL, w_B):
    return (y_BxL != IGNORE) * w_B[:, None]


# BertForTokenClassification: CrossEntropy over the labelled tokens (ignore_index -100).
TOKEN_CROSS_ENTROPY = Loss(
    lambda x_BxLxK, y_BxL, w_B: jnp.sum(_nll(x_BxLxK, y_BxL) * _token_mask(y_BxL, w_B)),
    lambda y_BxL, w_B: jnp.sum(_token_mask(y_BxL, w_B)))


def _bce(x_BxK, y_BxK):
    """BCEWithLogits, the stable form: max(x, 0) - x*y + log(1 + exp(-|x|))."""
    x_BxK = x_BxK.astype(jnp.float32)
    return jnp.maximum(x_BxK, 0) - x_BxK * y_BxK + jnp.log1p(jnp.exp(-jnp.abs(x_BxK)))


# Multi-label: BCEWithLogitsLoss, the mean over rows x labels.
BINARY_CROSS_ENTROPY = Loss(
    lambda x_BxK, y_BxK, w_B: jnp.sum(_bce(x_BxK, y_BxK) * w_B[:, None]),
    lambda y_BxK, w_B: jnp.sum(w_B) * y_BxK.shape[-1])

# Regression (one output): MSELoss.
SQUARED_ERROR = Loss(
    lambda x_Bx1, y_B, w_B: jnp.sum((x_Bx1[:, 0].astype(jnp.float32) - y_B) ** 2 * w_B),
    _rows)


def _span_total(x_BxLx2, y_Bx2, w_B):
    """BertForQuestionAnswering: (CE(start) + CE(end)) / 2 over positions."""
    start = _nll(x_BxLx2[..., 0], y_Bx2[:, 0])
    end = _nll(x_BxLx2[..., 1], y_Bx2[:, 1])
    return jnp.sum((start + end) / 2 * w_B)


SPAN_CROSS_ENTROPY = Loss(_span_total, _rows)
