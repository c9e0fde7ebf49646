"""Dynamic MLM masking of a whole batch, in TensorFlow, with counter-based random numbers.

Applied after batching (one vectorised pass per batch, not one per example), but each
row draws its random numbers from its own key: the masking of an example is a pure
function of ``(seed, stream, position)`` (``row_keys``; see ``example_stream``) and the
example, whatever the batch it lands in, the batch size, the process count, the
threading, and after a resume.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """BERT's masking recipe. Token ids (``[MASK]``, specials, vocab) come from the manifest.

    mask_prob: fraction of the maskable tokens (not special, not pad) chosen for prediction,
      rounded to nearest, at least 1 and at most ``max_predictions`` per sequence.
    max_predictions: P, the width of ``masked_positions`` (20 for seq 128; 76-80 for 512).
    mask_token_prob / random_token_prob: of the chosen tokens, the share replaced by
      ``[MASK]`` and by a random non-special token; the rest are left unchanged.
    """
    mask_prob: float = 0.15
    max_predictions: int = 20
    mask_token_prob: float = 0.8
    random_token_prob: float = 0.1

    def __post_init__(self):
        if not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in (0, 1], got {self.mask_prob}")
        if self.max_predictions < 1:
            raise ValueError(f"max_predictions must be >= 1, got {self.max_predictions}")
        if (self.mask_token_prob < 0 or self.random_token_prob < 0
                or self.mask_token_prob + self.random_token_prob > 1.0 + 1e-9):
            raise ValueError("mask_token_prob and random_token_prob must be >= 0 and sum "
                             f"to <= 1, got {self.mask_token_prob}, {self.random_token_prob}")


def random_token_table(vocab_size: int, special_ids) -> np.ndarray:
    """The ids a random replacement may take: the vocabulary minus the special ids."""
    allowed = np.setdiff1d(np.arange(vocab_size, dtype=np.int32),
                           np.asarray(sorted(set(special_ids)), dtype=np.int32))
    if allowed.size == 0:
        raise ValueError("no non-special token ids to draw random replacements from")
    return allowed


_GOLDEN = 0x9E3779B9


def _u32(x) -> tf.Tensor:
    return tf.constant(x & 0xFFFFFFFF, tf.uint32) if isinstance(x, int) else x


def _mix(x):
    """A bijective 32-bit integer hash (lowbias32: xor-shift-multiply, full avalanche)."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(16)))
    x = x * _u32(0x7FEB352D)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(15)))
    x = x * _u32(0x846CA68B)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u32(16)))


def _absorb(h, word):
    return _mix(tf.bitwise.bitwise_xor(h, _mix(word + _u32(_GOLDEN))))


def row_keys(seed: int, stream_B, position_B) -> tf.Tensor:
    """uint32 key of each row: a hash of (seed, its stream, its position in the stream,
    int64), the only input of its random numbers."""
    position_B = tf.cast(position_B, tf.int64)
    lo = tf.cast(tf.bitwise.bitwise_and(position_B, 0xFFFFFFFF), tf.uint32)
    hi = tf.cast(tf.bitwise.right_shift(position_B, 32), tf.uint32)
    h = _mix(_u32(seed) + _u32(_GOLDEN))
    for word in (_u32(seed >> 32), tf.cast(stream_B, tf.uint32), lo, hi):
        h = _absorb(h, word)
    return h


def row_uniform(keys_B, n, salt: int) -> tf.Tensor:
    """float32 [B, n] in [0, 1): draw ``salt`` of each row, a function of its key only."""
    cols_n = _mix(tf.cast(tf.range(n), tf.uint32) + _u32(salt * _GOLDEN + 1))
    bits = _mix(tf.bitwise.bitwise_xor(keys_B[:, None], cols_n[None, :]) + _u32(salt))
    return tf.cast(tf.bitwise.right_shift(bits, _u32(8)), tf.float32) * (1.0 / (1 << 24))


def mask_batch(ids_BxL, lengths_B, keys_B, *, config: MaskingConfig, mask_id: int,
               special_ids, random_ids):
    """Masks a padded batch.

    Args:
      ids_BxL: int32 token ids, padded (positions >= length are padding).
      lengths_B: int32 number of real tokens per row.
      keys_B: uint32 key of each row (``row_keys``), the only source of randomness.
      special_ids: ids never chosen for prediction ([CLS], [SEP], [PAD], [MASK], ...).
      random_ids: 1-D array of ids a random replacement is drawn from.

    Returns:
      (masked ids_BxL, positions_BxP int32 ascending then 0-padded, original ids_BxP,
      weights_BxP float32).
    """
    P = config.max_predictions
    B, L = tf.shape(ids_BxL)[0], tf.shape(ids_BxL)[1]

    pos_L = tf.range(L)
    cand_BxL = pos_L[None, :] < lengths_B[:, None]
    for s in sorted(set(int(i) for i in special_ids)):
        cand_BxL &= tf.not_equal(ids_BxL, s)
    n_cand_B = tf.reduce_sum(tf.cast(cand_BxL, tf.int32), axis=1)
    n_mask_B = tf.cast(tf.floor(tf.cast(n_cand_B, tf.float32) * config.mask_prob + 0.5),
                       tf.int32)
    n_mask_B = tf.minimum(tf.maximum(n_mask_B, 1), tf.minimum(n_cand_B, P))

    # The n_mask candidates with the highest random score are chosen.
    scores_BxL = tf.where(cand_BxL, row_uniform(keys_B, L, 0), -1.0)
    _, top_BxP = tf.math.top_k(scores_BxL, k=P, sorted=True)
    take_BxP = tf.range(P)[None, :] < n_mask_B[:, None]
    key_BxP = tf.sort(tf.where(take_BxP, top_BxP, L), axis=1)
    weights_BxP = key_BxP < L
    positions_BxP = tf.where(weights_BxP, key_BxP, 0)
    orig_BxP = tf.gather(ids_BxL, positions_BxP, batch_dims=1)

    u_BxP = row_uniform(keys_B, P, 1)
    draw_BxP = tf.cast(row_uniform(keys_B, P, 2) * len(random_ids), tf.int32)
    rand_BxP = tf.gather(tf.constant(random_ids, tf.int32),
                         tf.minimum(draw_BxP, len(random_ids) - 1))
    new_BxP = tf.where(
        u_BxP < config.mask_token_prob, tf.constant(mask_id, tf.int32),
        tf.where(u_BxP < config.mask_token_prob + config.random_token_prob,
                 rand_BxP, orig_BxP))
    # Add a delta (0 in padding slots) so duplicate padding indices cannot collide.
    delta_BxP = tf.where(weights_BxP, new_BxP - orig_BxP, 0)
    rows_BxP = tf.broadcast_to(tf.range(B)[:, None], [B, P])
    ids_BxL = tf.tensor_scatter_nd_add(
        ids_BxL, tf.stack([rows_BxP, positions_BxP], axis=-1), delta_BxP)
    return ids_BxL, positions_BxP, orig_BxP, tf.cast(weights_BxP, tf.float32)
