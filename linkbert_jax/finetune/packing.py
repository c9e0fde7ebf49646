"""Packed batches for the pooled heads: several short examples to a row, so that a step
computes (almost) no padding, with the same logits as one example to a row.

A batch of B examples (each C sequences: 1, or the choices of multiple choice) is cut
into G groups of E consecutive examples; a group is packed on its own, so that it can
lie whole on one device and in one microbatch, as its labels do (per-example arrays
become ``[G, E, ...]``: ``linkbert_jax.pretrain.steps`` splits microbatches and the batch sharding
splits devices along G for both). Within a group, sequences are placed first-fit,
longest first, into R rows of the split's length L (R the most any group needs, rounded
up to a multiple of ``row_multiple`` so that a step compiles for few shapes). Each token
carries its position within its own sequence and a segment id (which sequence of its
group it belongs to, from 1; 0 for padding): attention stays within a sequence
(``linkbert_jax.readout``), and the head reads each sequence at its [CLS]
(``cls_index``: its index in the group's ``R * L`` tokens), in example order.

A packed batch: ``input_ids``, ``token_type_ids``, ``position_ids``, ``segment_ids``
``[G, R, L]``; ``cls_index`` ``[G, E]`` (``[G, E, C]`` for choices); ``labels`` and
``example_weight`` ``[G, E, ...]`` (:func:`examples` flattens them for the loss).
"""
from __future__ import annotations

import numpy as np

TOKENS = ("input_ids", "token_type_ids")
# A group of n sequences takes a multiple of ceil(n / ROW_COUNTS) rows by default
# (``pack_shapes`` in the fine-tuning config): at most this many shapes to compile (2-5
# occur on real sentence pairs: the totals vary little).
ROW_COUNTS = 16
INPUTS = ("position_ids", "segment_ids", "cls_index")  # what packing adds to the inputs


def first_fit(lengths: np.ndarray, width: int):
    """Places sequences of ``lengths`` into rows of ``width``, longest first, each in the
    first row with room: (row, offset) per sequence and the number of rows."""
    rows, offsets, free = np.zeros(len(lengths), int), np.zeros(len(lengths), int), []
    for i in np.argsort(-lengths, kind="stable"):
        r = next((r for r, f in enumerate(free) if f >= lengths[i]), len(free))
        if r == len(free):
            free.append(width)
        rows[i], offsets[i] = r, width - free[r]
        free[r] -= lengths[i]
    return rows, offsets, len(free)


def pack(batch: dict, group: int, row_multiple: int | None = None,
         row_counts: int = ROW_COUNTS) -> dict:
    """A batch of rows (``INPUTS`` ``[B, L]`` or ``[B, C, L]``, right-padded) packed in
    groups of ``group`` consecutive examples; the per-example arrays ``[G, E, ...]``.
    ``row_multiple``: by default a group's sequences / ``row_counts``, rounded up (so at
    most ``row_counts`` row counts occur)."""
    mask = batch["attention_mask"]
    B, L = len(mask), mask.shape[-1]
    if B % group:
        raise ValueError(f"a batch of {B} does not split into groups of {group}")
    seqs = {k: batch[k].reshape(-1, L) for k in TOKENS}  # [B * C, L]
    G, C = B // group, len(seqs["input_ids"]) // B
    per_group = group * C
    row_multiple = row_multiple or -(-per_group // row_counts)
    lengths = np.maximum(mask.reshape(B * C, L).sum(-1), 1)  # an empty (padding) row: 1
    placed = [first_fit(lengths[g * per_group:(g + 1) * per_group], L) for g in range(G)]
    R = min(per_group, -(-max(p[2] for p in placed) // row_multiple) * row_multiple)
    out = {k: np.zeros((G, R, L), np.int32) for k in TOKENS + ("position_ids", "segment_ids")}
    cls = np.zeros((G, per_group), np.int32)
    for g, (rows, offsets, _) in enumerate(placed):
        for i, s in enumerate(range(g * per_group, (g + 1) * per_group)):
            r, o, n = rows[i], offsets[i], lengths[s]
            for k in TOKENS:
                out[k][g, r, o:o + n] = seqs[k][s, :n]
            out["position_ids"][g, r, o:o + n] = np.arange(n)
            out["segment_ids"][g, r, o:o + n] = i + 1  # unique within the group
            cls[g, i] = r * L + o
    out["cls_index"] = cls.reshape((G, group) + ((C,) if mask.ndim == 3 else ()))
    rest = {k: v.reshape((G, group) + v.shape[1:]) for k, v in batch.items()
            if k not in TOKENS + ("attention_mask",)}
    return {**rest, **out}


def examples(batch: dict) -> dict:
    """A packed batch's per-example arrays ``[G, E, ...]`` as ``[G * E, ...]``, the
    order of the head's outputs (any other batch as it is)."""
    if "cls_index" not in batch:
        return batch
    return {k: v if k in TOKENS + INPUTS else v.reshape((-1,) + v.shape[2:])
            for k, v in batch.items()}


def group_size(batch_size: int, parts: int, most: int) -> int:
    """The largest group of at most ``most`` examples that splits the ``batch_size /
    parts`` examples of each device shard and microbatch (``parts`` of them) evenly. The
    same for every mesh where that is ``most`` itself: packed rows, and so the dropout
    masks drawn over them, are then the mesh's to shard and not its to shape."""
    per_part = batch_size // parts
    return max(e for e in range(1, max(1, min(most, per_part)) + 1) if per_part % e == 0)
