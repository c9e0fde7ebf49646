"""3-way pair sampler of the local builder: (anchor A, relation, partner B) per example.

Every anchor segment of a split gets, for each relation it can serve, ``rate_r`` examples
in expectation (``keyed.relation_rates``), so documents without links (or single-segment
documents) never shift the label mix:

* contiguous: anchors are segments with a next segment; B = that next segment.
* random: anchors are all segments; B = a segment of a uniformly drawn *other* document of
  the split's pool.
* linked: anchors are segments of documents with at least one out-link into the split's
  pool; B's document is drawn among those links with probability ∝ 1 / in-degree (in-degree
  within the pool; uniformly with ``--link_sampling uniform``), then a segment of it
  uniformly.

Anchors are the split's documents. Partners come from the split's pool
(``keyed.pool_of``): training pairs use training documents only; eval anchors are the
held-out documents and their random and linked partners come from the whole corpus, so
eval measures relations of documents never seen in training, over many document pairs
(docs/data.md, "Train and eval"). All draws are keyed (``keyed.py``, shared with the Beam
pipeline): the examples, their shard and their order within the shard depend on the seed
and the corpus only, not on the worker count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linkbert_jax.data import keyed
from linkbert_jax.data.features import CONTIGUOUS, RANDOM

DOC_BLOCK = 1 << 16  # documents per vectorised draw
PLAN_DTYPE = np.dtype([("key", "<u8"), ("doc_a", "<i8"), ("seg_a", "<i4"), ("rel", "i1"),
                       ("copy", "<i4"), ("doc_b", "<i8"), ("seg_b", "<i4"), ("cut", "u1")])


@dataclass
class Corpus:
    """The segment index (all arrays may be memory-mapped)."""
    tokens: np.ndarray         # int32[num_tokens], all segments back to back
    seg_offsets: np.ndarray    # int64[num_segments + 1] into tokens
    doc_seg_start: np.ndarray  # int64[num_docs + 1] into segments
    link_offsets: np.ndarray   # int64[num_docs + 1] into link_targets
    link_targets: np.ndarray   # int32[num_links]
    doc_split: np.ndarray      # uint8[num_docs]: 0 train, 1 eval

    @property
    def num_docs(self) -> int:
        return len(self.doc_seg_start) - 1


@dataclass
class SplitTables:
    """One split's documents, the ranks of its pool and its out-links into the pool with
    linked-draw weights."""
    split: int
    docs: np.ndarray          # sorted document indices of the split (the anchors)
    pool: np.ndarray          # sorted document indices of the partner pool
    rank: np.ndarray          # int64[num_docs]: rank within the pool (-1 elsewhere)
    nseg: np.ndarray          # int64[num_docs]
    out_offsets: np.ndarray   # int64[num_docs + 1] (CSR over all documents)
    out_targets: np.ndarray   # int64[links from the split into the pool]
    out_weights: np.ndarray   # int64, keyed.link_weights(in-degree within the pool)
    rates: np.ndarray         # examples per eligible anchor, per relation


def split_tables(c: Corpus, split: int, probs, examples_per_segment: float,
                 link_sampling: str = "inverse_in_degree") -> SplitTables:
    num_docs = c.num_docs
    in_split = np.asarray(c.doc_split) == split
    in_pool = np.broadcast_to(keyed.in_pool(c.doc_split, keyed.pool_of(split)), (num_docs,))
    docs, pool = np.flatnonzero(in_split), np.flatnonzero(in_pool)
    rank = np.full(num_docs, -1, np.int64)
    rank[pool] = np.arange(len(pool))
    nseg = np.diff(np.asarray(c.doc_seg_start)).astype(np.int64)
    src = np.repeat(np.arange(num_docs, dtype=np.int64), np.diff(c.link_offsets))
    tgt = np.asarray(c.link_targets, dtype=np.int64)
    in_pool_edge = in_pool[src] & in_pool[tgt]
    indeg = np.bincount(tgt[in_pool_edge], minlength=num_docs)
    keep = in_split[src] & in_pool[tgt]
    src, tgt = src[keep], tgt[keep]
    out_deg = np.bincount(src, minlength=num_docs)
    counts = keyed.anchor_counts(nseg[docs], out_deg[docs])
    rates = keyed.relation_rates(counts, len(pool), probs, examples_per_segment, split)
    return SplitTables(split, docs, pool, rank, nseg,
                       np.concatenate([[0], np.cumsum(out_deg)]), tgt,
                       keyed.link_weights(indeg[tgt], link_sampling), rates)


def _anchors(t: SplitTables, docs: np.ndarray) -> keyed.Anchors:
    lo, hi = t.out_offsets[docs], t.out_offsets[docs + 1]
    deg = hi - lo
    pos = np.repeat(lo - np.concatenate([[0], np.cumsum(deg)[:-1]]), deg) + np.arange(deg.sum())
    targets = t.out_targets[pos]
    return keyed.Anchors(doc=docs, rank=t.rank[docs], nseg=t.nseg[docs],
                         link_offsets=np.concatenate([[0], np.cumsum(deg)]),
                         link_docs=targets, link_ranks=t.rank[targets],
                         link_weights=t.out_weights[pos])


def plan_block(t: SplitTables, docs: np.ndarray, seed: int) -> np.ndarray:
    """The examples anchored in ``docs`` (of split ``t``), as PLAN_DTYPE records."""
    ex = keyed.draw_examples(seed, t.split, _anchors(t, docs), t.rates, len(t.pool))
    rand = ex["rel"] == RANDOM
    ex["doc_b"][rand] = t.pool[ex["rank_b"][rand]]
    other = ex["rel"] != CONTIGUOUS
    ex["seg_b"][other] = keyed.pick_segment(ex["h"][other], t.nseg[ex["doc_b"][other]])
    rec = np.empty(len(ex["h"]), PLAN_DTYPE)
    rec["key"] = keyed.order_key(ex["h"])
    rec["doc_a"], rec["seg_a"], rec["rel"] = docs[ex["row"]], ex["seg_a"], ex["rel"]
    rec["copy"], rec["doc_b"], rec["seg_b"] = ex["copy"], ex["doc_b"], ex["seg_b"]
    rec["cut"] = cut_bits(ex["h"])
    return rec


def plan_split(t: SplitTables, seed: int, num_shards: int, sink) -> None:
    """Calls ``sink(shard, records)`` for the examples of every block of documents."""
    for start in range(0, len(t.docs), DOC_BLOCK):
        rec = plan_block(t, t.docs[start:start + DOC_BLOCK], seed)
        shard = keyed.shard_of(rec["key"], num_shards)
        order = np.argsort(shard, kind="stable")
        bounds = np.searchsorted(shard[order], np.arange(num_shards + 1))
        for k in range(num_shards):
            if bounds[k + 1] > bounds[k]:
                sink(k, rec[order[bounds[k]:bounds[k + 1]]])


def sort_plan(rec: np.ndarray) -> np.ndarray:
    """Canonical order within a shard: (key, doc_a, seg_a, rel, copy)."""
    return rec[np.lexsort((rec["copy"], rec["rel"], rec["seg_a"], rec["doc_a"], rec["key"]))]


def truncate_pair(a: np.ndarray, b: np.ndarray, max_tokens: int, front_a: bool, front_b: bool):
    """BERT's longest-first pair truncation; each side cut at its front or its back."""
    la, lb = len(a), len(b)
    while la + lb > max_tokens:
        if la > lb:
            la -= 1
        else:
            lb -= 1
    a = a[len(a) - la:] if front_a else a[:la]
    b = b[len(b) - lb:] if front_b else b[:lb]
    return a, b


def cut_bits(h) -> np.ndarray:
    """``keyed.cut_fronts`` packed in one byte (bit 0: A, bit 1: B)."""
    front_a, front_b = keyed.cut_fronts(h)
    return front_a.astype(np.uint8) | (front_b.astype(np.uint8) << 1)


def make_pair(ta, tb, max_seq_length: int, cut: int, rel, da, db, sa, sb) -> tuple:
    """``(a_ids, b_ids, relation, doc_a, doc_b, seg_a, seg_b)``, truncated to fit."""
    max_tokens = max_seq_length - 3
    if len(ta) + len(tb) > max_tokens:
        ta, tb = truncate_pair(ta, tb, max_tokens, bool(cut & 1), bool(cut & 2))
    return ta, tb, rel, da, db, sa, sb


def materialize(c: Corpus, rec: np.ndarray, max_seq_length: int):
    """Yields the pair of every (sorted) plan record."""
    dstart, offs, tokens = c.doc_seg_start, c.seg_offsets, c.tokens
    for r in rec.tolist():
        _, da, sa, rel, _, db, sb, cut = r
        a, b = int(dstart[da]) + sa, int(dstart[db]) + sb
        yield make_pair(tokens[offs[a]:offs[a + 1]], tokens[offs[b]:offs[b + 1]],
                        max_seq_length, cut, rel, da, db, sa, sb)
