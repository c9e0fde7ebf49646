"""Synthetic LinkBERT batches with learnable structure (until real builder output lands).

Topics own blocks of the vocabulary; a segment is an arithmetic run of its topic's
tokens (so a masked token is predictable from its neighbours). Relation of (A, B):
contiguous = same topic, run continues; linked = topic t+1; random = any other topic.
The stream is a pure function of (seed, batch index): process ``i`` of ``n`` gets rows
``[i*b, (i+1)*b)`` of global batch ``k`` (size ``n*b``), so a 2-process run sees exactly
the batches of a 1-process run with the global batch size.
"""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np

from linkbert_jax.data import features

CLS, SEP, MASK, FIRST = 101, 102, 103, 1000
NUM_TOPICS, BLOCK = 4, 16


def _pair(rng: np.random.Generator, seq_length: int, num_topics: int, block: int):
    la = int(rng.integers(seq_length // 4, seq_length // 2 - 2))
    lb = int(rng.integers(seq_length // 4, seq_length - la - 3))
    t = int(rng.integers(num_topics))
    start = int(rng.integers(block))
    rel = int(rng.integers(features.NUM_RELATIONS))
    a = FIRST + t * block + (start + np.arange(la)) % block
    if rel == features.CONTIGUOUS:
        tb, sb = t, start + la
    elif rel == features.LINKED:
        tb, sb = (t + 1) % num_topics, int(rng.integers(block))
    else:
        tb = (t + int(rng.integers(2, num_topics))) % num_topics
        sb = int(rng.integers(block))
    b = FIRST + tb * block + (sb + np.arange(lb)) % block
    ids = np.concatenate([[CLS], a, [SEP], b, [SEP]])
    return ids, features.token_types(np.arange(len(ids)), la), rel


def make_batch(seed: int, index: int, batch_size: int, seq_length: int, max_predictions: int,
               vocab_size: int, mask_prob: float = 0.15, num_topics: int = NUM_TOPICS,
               block: int = BLOCK) -> dict:
    rng = np.random.default_rng([seed, index])
    out = {k: np.zeros((batch_size, seq_length), np.int32)
           for k in ("input_ids", "attention_mask", "token_type_ids")}
    out.update(masked_positions=np.zeros((batch_size, max_predictions), np.int32),
               masked_ids=np.zeros((batch_size, max_predictions), np.int32),
               masked_weights=np.zeros((batch_size, max_predictions), np.float32),
               relation=np.zeros((batch_size,), np.int32),
               example_weight=np.ones((batch_size,), np.float32))
    for i in range(batch_size):
        ids, types, rel = _pair(rng, seq_length, num_topics, block)
        n = len(ids)
        cand = np.flatnonzero((ids != CLS) & (ids != SEP))
        k = min(max_predictions, max(1, int(round(n * mask_prob))))
        pos = np.sort(rng.choice(cand, size=k, replace=False))
        out["masked_positions"][i, :k] = pos
        out["masked_ids"][i, :k] = ids[pos]
        out["masked_weights"][i, :k] = 1.0
        ids = ids.copy()
        u = rng.random(k)
        ids[pos[u < 0.8]] = MASK
        rand = pos[(u >= 0.8) & (u < 0.9)]
        ids[rand] = rng.integers(FIRST, FIRST + num_topics * block, len(rand))
        out["input_ids"][i, :n] = ids
        out["attention_mask"][i, :n] = 1
        out["token_type_ids"][i, :n] = types
        out["relation"][i] = rel
    return out


class SyntheticSource:
    """Stands in for ``linkbert_jax.pretrain.input_pipeline.TFRecordSource`` (same two methods)."""

    def __init__(self, vocab_size: int = 28996, max_seq_length: int | None = None,
                 eval_batches: int = 3, step_sleep: float = 0.0):
        self.vocab_size, self.max_seq_length = vocab_size, max_seq_length
        self.eval_batches, self.step_sleep = eval_batches, step_sleep

    def manifest(self) -> dict:
        """``max_seq_length`` only when given: the batches fit any ``seq_length``."""
        out = {"vocab_size": self.vocab_size}
        if self.max_seq_length is not None:
            out["max_seq_length"] = self.max_seq_length
        return out

    def batches(self, *, split, batch_size, seq_length, masking, seed, process_index=0,
                process_count=1, start_batch=0, repeat=True, shuffle=True) -> Iterator[dict]:
        seed = seed + (1_000_003 if split != "train" else 0)
        k = start_batch
        while repeat or k < self.eval_batches:
            g = make_batch(seed, k, batch_size * process_count, seq_length,
                           masking.max_predictions, self.vocab_size, masking.mask_prob)
            sl = slice(process_index * batch_size, (process_index + 1) * batch_size)
            if self.step_sleep:
                time.sleep(self.step_sleep)
            yield {key: v[sl] for key, v in g.items()}
            k += 1
