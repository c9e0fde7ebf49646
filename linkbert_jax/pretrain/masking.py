"""Dynamic MLM masking of a whole batch, in TensorFlow, with stateless random ops.

Applied after batching (one vectorised pass per batch, not one per example). The random
numbers come by blocks (``block_draws``): a block of a stream's examples is masked from
its own seed (``example_stream``: the stream and the block's first position), the same
whichever process builds it, whatever the threading, and after a resume.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from linkbert_jax.errors import ConfigError


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
            raise ConfigError(f"mask_prob must be in (0, 1], got {self.mask_prob}")
        if self.max_predictions < 1:
            raise ConfigError(f"max_predictions must be >= 1, got {self.max_predictions}")
        if (self.mask_token_prob < 0 or self.random_token_prob < 0
                or self.mask_token_prob + self.random_token_prob > 1.0 + 1e-9):
            raise ConfigError("mask_token_prob and random_token_prob must be >= 0 and sum "
                              f"to <= 1, got {self.mask_token_prob}, {self.random_token_prob}")


def random_token_table(vocab_size: int, special_ids) -> np.ndarray:
    """The ids a random replacement may take: the vocabulary minus the special ids."""
    allowed = np.setdiff1d(np.arange(vocab_size, dtype=np.int32),
                           np.asarray(sorted(set(special_ids)), dtype=np.int32))
    if allowed.size == 0:
        raise ValueError("no non-special token ids to draw random replacements from")
    return allowed


def block_draws(seeds, spans, block: int):
    """``draw(n, salt)``: float32 ``[R, n]`` uniforms in [0, 1) for a batch assembled
    from pieces of blocks: piece ``i`` is rows ``spans[i]`` of a ``[block, n]``
    stateless draw seeded by ``seeds[i]`` (an int64 ``[2]`` seed) and ``salt``. So a
    row's numbers depend on its block's seed and its place in the block only, not on the
    other pieces of its batch."""
    def draw(n, salt: int):
        return tf.concat([tf.random.stateless_uniform(
            [block, n], tf.random.experimental.stateless_fold_in(seed, salt))[a:b]
            for seed, (a, b) in zip(seeds, spans)], axis=0)
    return draw


def mask_batch(ids_BxL, lengths_B, draw, *, config: MaskingConfig, mask_id: int,
               special_ids, random_ids):
    """Masks a padded batch.

    Args:
      ids_BxL: int32 token ids, padded (positions >= length are padding).
      lengths_B: int32 number of real tokens per row.
      draw: ``draw(n, salt)`` -> float32 [B, n] uniforms (``block_draws``), the only
        source of randomness.
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
    scores_BxL = tf.where(cand_BxL, draw(L, 0), -1.0)
    _, top_BxP = tf.math.top_k(scores_BxL, k=P, sorted=True)
    take_BxP = tf.range(P)[None, :] < n_mask_B[:, None]
    key_BxP = tf.sort(tf.where(take_BxP, top_BxP, L), axis=1)
    weights_BxP = key_BxP < L
    positions_BxP = tf.where(weights_BxP, key_BxP, 0)
    orig_BxP = tf.gather(ids_BxL, positions_BxP, batch_dims=1)

    u_BxP = draw(P, 1)
    draw_BxP = tf.cast(draw(P, 2) * len(random_ids), tf.int32)
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
