"""Keyed random draws of the pair builder, shared by the local builder and the Beam pipeline.

Every random choice is a pure function of its key, never of processing order, so any
runner, worker count or batch composition gives the same examples:

* split of a document: ``(seed, "split", doc)``;
* partners of a split come from its *pool* (``pool_of``): training anchors pair with
  training documents only; eval anchors (the held-out documents) with any document of
  the corpus, so eval measures the relations of documents never seen in training;
* examples of an anchor segment: ``(seed, split, doc, seg, relation)`` draws how many
  (``floor(rate) + Bernoulli(frac(rate))``), and ``(seed, split, doc, seg, relation,
  copy)`` is the key ``h`` of each example, from which its partner document, partner
  segment, truncation sides, shard and order within the shard are drawn.

Hashes are SplitMix64 over unsigned 64-bit integers, and every choice uses integer
arithmetic only (no floating-point sums or transcendental functions whose last bits could
differ between machines). The functions take numpy arrays so the local builder runs them
over blocks of documents and Beam over one document at a time: results for a document
never depend on what else is in the batch. See docs/beam.md ("Determinism").
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from linkbert_jax.data.features import CONTIGUOUS, LINKED, NUM_RELATIONS, RANDOM, RELATIONS, SPLITS
from linkbert_jax.errors import DataError

log = logging.getLogger(__name__)
TRAIN, EVAL = 0, 1
POOL_ALL = 2  # the partner pool of the eval split: every document, ranked by its index
LINK_SAMPLINGS = ("inverse_in_degree", "uniform")  # --link_sampling
# Tags that keep the streams of different draws apart.
TAG_SPLIT, TAG_COUNT, TAG_PARTNER, TAG_SEGMENT, TAG_CUT, TAG_ORDER = 11, 12, 13, 14, 15, 16
WEIGHT_SCALE = 1 << 24  # linked targets: integer weight floor(2**24 / in-degree), >= 1
_GOLDEN, _M1, _M2 = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9),
                     np.uint64(0x94D049BB133111EB))


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def mix(*parts) -> np.ndarray:
    """uint64 hash of the key ``parts`` (non-negative ints or int arrays, broadcast)."""
    with np.errstate(over="ignore"):
        h = np.zeros((), np.uint64)
        for p in parts:
            h = _splitmix(h ^ np.asarray(p).astype(np.uint64))
    return h


def uniform(h: np.ndarray) -> np.ndarray:
    """Float64 in [0, 1) from the top 53 bits of ``h`` (exact)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def below(h: np.ndarray, n) -> np.ndarray:
    """Integer in [0, n) (n >= 1) from ``h`` (bias < n / 2**64)."""
    return (h % np.asarray(n).astype(np.uint64)).astype(np.int64)


# --- Split by document ------------------------------------------------------------------

def split_hash(seed: int, docs) -> np.ndarray:
    return mix(seed, TAG_SPLIT, docs)


def is_eval(seed: int, docs, eval_fraction: float) -> np.ndarray:
    """Documents whose keyed uniform falls below ``eval_fraction`` (before the fallback)."""
    return uniform(split_hash(seed, docs)) < eval_fraction


def fallback_eval_doc(num_docs: int, num_eval: int, eval_fraction: float,
                      min_hash_doc: int) -> int:
    """The document made eval when none fell below the fraction (-1: none needed).

    ``min_hash_doc`` is the document with the smallest ``split_hash`` (ties: lowest index).
    Raises ValueError when the fraction leaves no training document.
    """
    fallback = -1
    if eval_fraction > 0 and num_eval == 0 and num_docs >= 2:
        fallback, num_eval = min_hash_doc, 1
    if num_docs and num_eval >= num_docs:
        raise DataError(f"eval_fraction {eval_fraction} leaves no training documents "
                        f"({num_docs} documents)")
    return fallback


def assign_splits(num_docs: int, eval_fraction: float, seed: int) -> np.ndarray:
    """uint8 per document, 1 = eval (the local builder's whole-corpus form)."""
    docs = np.arange(num_docs, dtype=np.int64)
    split = is_eval(seed, docs, eval_fraction).astype(np.uint8)
    h = split_hash(seed, docs)
    first = int(np.argmin(h)) if num_docs else -1
    fb = fallback_eval_doc(num_docs, int(split.sum()), eval_fraction, first)
    if fb >= 0:
        split[fb] = 1
    return split


def pool_of(split: int) -> int:
    """The documents a split's random and linked partners come from: the training
    documents (``TRAIN``) for training; every document (``POOL_ALL``, where a document's
    rank is its index) for eval. A link serves an anchor of the split when its target is
    in the pool; a target's in-degree counts the links whose two ends are in the pool."""
    return TRAIN if split == TRAIN else POOL_ALL


def pool_rank(pool: int, index: int, split_rank: int) -> int:
    """A document's rank within ``pool`` (it must belong to it), from its index and its
    rank within its split."""
    return split_rank if pool == TRAIN else index


def in_pool(split, pool: int):
    """Whether documents of ``split`` (int or array) belong to partner pool ``pool``."""
    return np.logical_or(pool == POOL_ALL, np.asarray(split) == pool)


# --- Relation rates -----------------------------------------------------------------------

def anchor_counts(nseg, out_degree) -> np.ndarray:
    """Anchor segments of these documents with a next segment, in all, and in documents
    with an out-link into the split's pool (sums over documents add up: Beam combines
    them)."""
    nseg = np.asarray(nseg, dtype=np.int64)
    return np.array([int(np.maximum(nseg - 1, 0).sum()), int(nseg.sum()),
                     int(nseg[np.asarray(out_degree) > 0].sum())], dtype=np.int64)


def relation_rates(counts, pool_size: int, probs, examples_per_segment: float,
                   split: int) -> np.ndarray:
    """Examples per eligible anchor for each relation: ``n p_r / eligible_r``.

    ``counts`` is ``anchor_counts`` of the split's documents; random partners need at least
    two documents in the split's pool (``pool_size`` documents). ``n =
    examples_per_segment * segments``. A relation no anchor can serve has its probability
    spread over the others (with a warning), so the mix is kept.
    """
    eligible = np.asarray(counts, np.int64).copy()
    if pool_size < 2:
        eligible[RANDOM] = 0
    p = np.asarray(probs, dtype=np.float64).copy()
    for r in range(NUM_RELATIONS):
        if p[r] > 0 and eligible[r] == 0:
            log.warning("%s split: no anchor can serve relation '%s'; its probability "
                        "%.3f is spread over the others", SPLITS[split], RELATIONS[r], p[r])
            p[r] = 0.0
    n = examples_per_segment * int(counts[1])
    if p.sum() == 0:
        if n > 0:
            raise DataError(f"{SPLITS[split]} split: no relation can be sampled")
        return np.zeros(NUM_RELATIONS)
    p = p / p.sum()
    return np.array([n * p[r] / eligible[r] if eligible[r] else 0.0
                     for r in range(NUM_RELATIONS)])


def link_weights(in_degree, sampling: str = "inverse_in_degree") -> np.ndarray:
    """Integer weight of each link for the linked draw, from its target's in-degree (in
    the pool): ``floor(2**24 / in-degree)`` (∝ 1 / in-degree, the paper's diversity
    adjustment) or, with ``sampling="uniform"``, 1 (every out-link alike)."""
    if sampling not in LINK_SAMPLINGS:
        raise DataError(f"unknown link sampling {sampling!r} (one of "
                        f"{', '.join(LINK_SAMPLINGS)})")
    in_degree = np.asarray(in_degree, np.int64)
    if sampling == "uniform":
        return np.ones(in_degree.shape, np.int64)
    return np.maximum(WEIGHT_SCALE // np.maximum(in_degree, 1), 1)


# --- Examples of anchor documents ---------------------------------------------------------

@dataclass
class Anchors:
    """A batch of documents of one split, with their out-links into its pool (CSR)."""
    doc: np.ndarray           # int64[d] document indices
    rank: np.ndarray          # int64[d] rank of each document within the split's pool
    nseg: np.ndarray          # int64[d] segments per document
    link_offsets: np.ndarray  # int64[d + 1]
    link_docs: np.ndarray     # int64[L] target documents
    link_ranks: np.ndarray    # int64[L] their ranks within the pool
    link_weights: np.ndarray  # int64[L] from ``link_weights(in-degree within the pool)``


def _anchor_counts(seed, split, doc, seg, eligible, rates) -> np.ndarray:
    counts = np.zeros((len(doc), NUM_RELATIONS), np.int64)
    for r in range(NUM_RELATIONS):
        whole, frac = divmod(float(rates[r]), 1.0)
        extra = uniform(mix(seed, split, doc, seg, r, TAG_COUNT)) < frac
        counts[:, r] = np.where(eligible[:, r], int(whole) + extra, 0)
    return counts


def draw_examples(seed: int, split: int, a: Anchors, rates, pool_size: int) -> dict:
    """All examples anchored in the documents of ``a``, as arrays (one entry each);
    random partners are drawn among the ``pool_size`` documents of the split's pool.

    Returns ``row`` (index into ``a``), ``seg_a``, ``rel``, ``copy``, ``h`` (the example
    key), ``doc_b`` (-1 for random partners), ``rank_b`` and ``seg_b`` (-1 unless
    contiguous: drawn with :func:`pick_segment` once the partner's length is known).
    """
    nseg = np.asarray(a.nseg, np.int64)
    anchor_row = np.repeat(np.arange(len(nseg)), nseg)
    first = np.concatenate([[0], np.cumsum(nseg)[:-1]]).astype(np.int64)
    seg = np.arange(len(anchor_row), dtype=np.int64) - np.repeat(first, nseg)
    doc = np.asarray(a.doc, np.int64)[anchor_row]
    out_deg = np.diff(a.link_offsets)
    eligible = np.stack([seg + 1 < nseg[anchor_row],
                         np.full(len(seg), pool_size >= 2),
                         out_deg[anchor_row] > 0], axis=1)
    counts = _anchor_counts(seed, split, doc, seg, eligible, rates).ravel()
    cell = np.repeat(np.arange(len(counts)), counts)  # (anchor, relation) cell per example
    cell_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    copy = np.arange(len(cell), dtype=np.int64) - np.repeat(cell_start, counts)
    anchor, rel = cell // 3, cell % 3
    row, seg_a = anchor_row[anchor], seg[anchor]
    h = mix(seed, split, doc[anchor], seg_a, rel, copy).reshape(-1)
    out = {"row": row, "seg_a": seg_a, "rel": rel, "copy": copy, "h": h,
           "doc_b": np.asarray(a.doc, np.int64)[row].copy(),
           "rank_b": np.asarray(a.rank, np.int64)[row].copy(),
           "seg_b": np.where(rel == CONTIGUOUS, seg_a + 1, -1)}
    _random_partners(out, a, pool_size)
    _linked_partners(out, a)
    return out


def _random_partners(out: dict, a: Anchors, pool_size: int) -> None:
    m = out["rel"] == RANDOM
    if not m.any():
        return
    own = np.asarray(a.rank, np.int64)[out["row"][m]]
    k = below(mix(out["h"][m], TAG_PARTNER), pool_size - 1)
    out["rank_b"][m] = k + (k >= own)
    out["doc_b"][m] = -1


def _linked_partners(out: dict, a: Anchors) -> None:
    """Target ∝ weight: integer inverse CDF over the anchor document's out-links."""
    m = out["rel"] == LINKED
    if not m.any():
        return
    cum = np.cumsum(np.asarray(a.link_weights, np.int64))
    before = np.concatenate([[0], cum])[np.asarray(a.link_offsets, np.int64)]
    row = out["row"][m]
    lo, hi = before[row], before[row + 1]
    x = below(mix(out["h"][m], TAG_PARTNER), hi - lo)
    pos = np.searchsorted(cum, lo + x, side="right")
    out["doc_b"][m] = np.asarray(a.link_docs, np.int64)[pos]
    out["rank_b"][m] = np.asarray(a.link_ranks, np.int64)[pos]


def pick_segment(h, nseg_b) -> np.ndarray:
    """Partner segment of a random/linked example, uniform over the partner's segments."""
    return below(mix(h, TAG_SEGMENT), nseg_b)


def cut_fronts(h) -> tuple[np.ndarray, np.ndarray]:
    """Whether truncation removes tokens from the front of A, of B (else the back)."""
    c = mix(h, TAG_CUT)
    return (c & np.uint64(1)).astype(bool), (c & np.uint64(2)).astype(bool)


def order_key(h) -> np.ndarray:
    """Position key of an example: its shard is ``key % num_shards``; shards are sorted by
    ``(key, doc_a, seg_a, relation, copy)``."""
    return mix(h, TAG_ORDER)


def shard_of(key, num_shards: int) -> np.ndarray:
    return below(key, num_shards)
