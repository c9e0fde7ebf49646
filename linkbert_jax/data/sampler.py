"""Seeded 3-way pair sampler: (anchor A, relation, partner B) per example.

For each example a relation is drawn with the requested probabilities, then the anchor is
drawn uniformly among the segments that can serve it, so documents without links (or
single-segment documents) never shift the label mix:

* contiguous: anchors are segments with a next segment; B = that next segment.
* random: anchors are all segments; B = a segment of a uniformly drawn *other* document.
* linked: anchors are segments of documents with at least one in-split out-link; B's
  document is drawn among those links with probability ∝ 1 / in-degree (in-degree within
  the split), then a segment of it uniformly.

Train and eval are sampled separately, each only from its own documents. Randomness comes
from ``default_rng([seed, split, shard, block])`` so any worker can produce any shard and
the output does not depend on the number of workers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from linkbert_jax.data.features import CONTIGUOUS, RANDOM, RELATIONS

log = logging.getLogger(__name__)
BLOCK = 1024


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
class SplitPlan:
    split: int
    docs: np.ndarray          # sorted doc indices of the split
    seg_doc: np.ndarray       # int32[num_segments]: document of every segment
    anchors: tuple            # per relation: eligible anchor segment ids
    probs: np.ndarray         # relation probabilities after dropping impossible ones
    out_offsets: np.ndarray   # per doc, in-split out-links (CSR over all docs)
    out_targets: np.ndarray
    out_weights: np.ndarray   # 1 / in-degree(target) within the split
    num_examples: int


def make_plan(c: Corpus, split: int, probs, examples_per_segment: float) -> SplitPlan:
    num_docs = c.num_docs
    in_split = np.asarray(c.doc_split) == split
    docs = np.flatnonzero(in_split)
    nseg = np.diff(c.doc_seg_start)
    seg_doc = np.repeat(np.arange(num_docs, dtype=np.int32), nseg)
    segs = np.flatnonzero(in_split[seg_doc])
    has_next = segs + 1 < c.doc_seg_start[seg_doc[segs] + 1]
    src = np.repeat(np.arange(num_docs, dtype=np.int64), np.diff(c.link_offsets))
    tgt = np.asarray(c.link_targets, dtype=np.int64)
    keep = in_split[src] & in_split[tgt]
    src, tgt = src[keep], tgt[keep]
    indeg = np.bincount(tgt, minlength=num_docs)
    out_deg = np.bincount(src, minlength=num_docs)
    out_offsets = np.concatenate([[0], np.cumsum(out_deg)])
    weights = 1.0 / indeg[tgt] if len(tgt) else np.zeros(0)
    anchors = (segs[has_next], segs if len(docs) >= 2 else segs[:0],
               segs[out_deg[seg_doc[segs]] > 0])
    p = np.asarray(probs, dtype=np.float64)
    for r, a in enumerate(anchors):
        if p[r] > 0 and len(a) == 0:
            log.warning("%s split: no anchor can serve relation '%s'; its probability "
                        "%.3f is spread over the others", ("train", "eval")[split],
                        RELATIONS[r], p[r])
            p[r] = 0.0
    n = int(round(examples_per_segment * len(segs)))
    if p.sum() == 0 and n > 0:
        raise ValueError(f"{('train', 'eval')[split]} split: no relation can be sampled")
    p = p / p.sum() if p.sum() > 0 else p
    return SplitPlan(split, docs, seg_doc, anchors, p, out_offsets, tgt.astype(np.int32),
                     weights, n)


def shard_range(num_examples: int, num_shards: int, shard: int) -> tuple[int, int]:
    return num_examples * shard // num_shards, num_examples * (shard + 1) // num_shards


def truncate_pair(a: np.ndarray, b: np.ndarray, max_tokens: int, u_a: float, u_b: float):
    """BERT's longest-first pair truncation; each side cut at the front or back (random)."""
    la, lb = len(a), len(b)
    while la + lb > max_tokens:
        if la > lb:
            la -= 1
        else:
            lb -= 1
    a = a[len(a) - la:] if u_a < 0.5 else a[:la]
    b = b[len(b) - lb:] if u_b < 0.5 else b[:lb]
    return a, b


def sample_pairs(c: Corpus, plan: SplitPlan, seed: int, shard: int, num_shards: int,
                 max_seq_length: int):
    """Yields ``(a_ids, b_ids, relation, doc_a, doc_b, seg_a, seg_b)`` for one shard."""
    lo, hi = shard_range(plan.num_examples, num_shards, shard)
    max_tokens = max_seq_length - 3
    docs, seg_doc, dstart = plan.docs, plan.seg_doc, c.doc_seg_start
    for block, start in enumerate(range(lo, hi, BLOCK)):
        n = min(BLOCK, hi - start)
        rng = np.random.default_rng([seed, plan.split, shard, block])
        rels = rng.choice(3, size=n, p=plan.probs)
        u = rng.random((n, 5))
        for i in range(n):
            r = int(rels[i])
            cand = plan.anchors[r]
            a = int(cand[min(int(u[i, 0] * len(cand)), len(cand) - 1)])
            da = int(seg_doc[a])
            if r == CONTIGUOUS:
                b, db = a + 1, da
            else:
                if r == RANDOM:
                    k = int(u[i, 1] * (len(docs) - 1))
                    pos = int(np.searchsorted(docs, da))
                    db = int(docs[k + (k >= pos)])
                else:
                    o0, o1 = plan.out_offsets[da], plan.out_offsets[da + 1]
                    cum = np.cumsum(plan.out_weights[o0:o1])
                    j = min(int(np.searchsorted(cum, u[i, 1] * cum[-1], side="right")),
                            o1 - o0 - 1)
                    db = int(plan.out_targets[o0 + j])
                s0, s1 = int(dstart[db]), int(dstart[db + 1])
                b = s0 + min(int(u[i, 2] * (s1 - s0)), s1 - s0 - 1)
            ta = c.tokens[c.seg_offsets[a]:c.seg_offsets[a + 1]]
            tb = c.tokens[c.seg_offsets[b]:c.seg_offsets[b + 1]]
            if len(ta) + len(tb) > max_tokens:
                ta, tb = truncate_pair(ta, tb, max_tokens, u[i, 3], u[i, 4])
            yield (ta, tb, r, da, db, a - int(dstart[da]), b - int(dstart[db]))
