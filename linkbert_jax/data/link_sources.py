"""Where the builder's links come from (``--link_source``, ``--link_k``): the paper's
link-source ablation (LinkBERT, Table 5).

* ``hyperlinks``: the corpus's own links (graph.py), as before;
* ``tfidf``: each document linked to its ``link_k`` most similar documents (tfidf.py);
* ``random``: each document linked to ``link_k`` distinct others drawn uniformly, keyed
  by ``(seed, document, attempt)`` (keyed.py's SplitMix hashes), so any builder, worker
  count or runner draws the same ones.

With fewer than ``link_k + 1`` documents, tfidf and random link each document to all the
others. Hyperlinks are resolved (and counted) whatever the source; for tfidf and random
the manifest's ``num_links_resolved`` stays the hyperlinks resolved and ``num_links_used``
is the number of computed links (the ones in documents.jsonl and used for pairs).
"""
from __future__ import annotations

import collections
import json
import os
import shutil

import numpy as np

from linkbert_jax.data import keyed, tfidf
from linkbert_jax.data.index import TERMS_FILE
from linkbert_jax.errors import DataError

SOURCES = ("hyperlinks", "tfidf", "random")
DEFAULT_K = 5
TAG_RANDOM_LINK = 41  # keeps random links' stream apart from keyed.py's tags (11..)


def add_options(p) -> None:
    p.add_argument("--link_source", default="hyperlinks", choices=SOURCES,
                   help="links between documents: the corpus's hyperlinks, each document's "
                        "top --link_k TF-IDF neighbours, or --link_k random others")
    p.add_argument("--link_k", type=int, default=DEFAULT_K,
                   help="links per document for --link_source tfidf|random (default 5)")


def check(args) -> None:
    if args.link_k <= 0:
        raise DataError(f"--link_k must be at least 1, got {args.link_k}")


def wants_terms(args) -> bool:
    return args.link_source == "tfidf"


# --- random ------------------------------------------------------------------------------

def random_links(seed: int, num_docs: int, k: int, docs) -> list[np.ndarray]:
    """Each of ``docs``: ``min(k, num_docs - 1)`` distinct other documents, uniformly drawn
    (rejection of repeats, one keyed attempt per round), sorted."""
    docs = np.asarray(docs, np.int64).reshape(-1)
    k = min(k, num_docs - 1)
    if k == num_docs - 1:
        every = np.arange(num_docs, dtype=np.int64)
        return [every[every != d] for d in docs]
    out = np.full((len(docs), k), -1, np.int64)
    filled = np.zeros(len(docs), np.int64)
    attempt = np.zeros(len(docs), np.int64)
    active = np.arange(len(docs)) if k > 0 else np.zeros(0, np.int64)
    while active.size:
        d = docs[active]
        j = keyed.below(keyed.mix(seed, TAG_RANDOM_LINK, d, attempt[active]), num_docs - 1)
        j = j + (j >= d)  # skip the document itself
        attempt[active] += 1
        new = ~(out[active] == j[:, None]).any(axis=1)
        took = active[new]
        out[took, filled[took]] = j[new]
        filled[took] += 1
        active = active[filled[active] < k]
    return [np.sort(row) for row in out]


# --- the local builder's stage ------------------------------------------------------------

def _csr(lists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(lists) + 1, np.int64)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    targets = np.concatenate([np.sort(x) for x in lists] or [np.zeros(0)]).astype(np.int32)
    return offsets, targets


def tfidf_matrix(terms_path: str, num_docs: int) -> tfidf.Matrix:
    """The matrix of pass 1's term counts (one JSON object per document, index order)."""
    df = collections.Counter()
    with open(terms_path, encoding="utf-8") as f:
        for line in f:
            df.update(json.loads(line).keys())
    model = tfidf.Model.from_df(df.items(), num_docs)
    del df
    with open(terms_path, encoding="utf-8") as f:
        rows = [(i,) + tfidf.weighted_row(json.loads(line), model) for i, line in enumerate(f)]
    return tfidf.Matrix.from_rows(rows, num_docs, len(model.idf))


_MATRICES: dict = {}  # worker cache: the saved matrix of a work dir


def _matrix_dir(work: str) -> str:
    return os.path.join(work, "tfidf")


def _block_task(task):
    """Worker: one block's links, against the matrix saved in ``work`` (memory-mapped)."""
    work, start, stop, k = task
    d = _matrix_dir(work)
    key = (d, os.stat(d).st_ino, os.stat(d).st_mtime_ns)
    if key not in _MATRICES:
        _MATRICES.clear()
        _MATRICES[key] = tfidf.Matrix.from_arrays(
            {name[:-4]: np.load(os.path.join(d, name), mmap_mode="r")
             for name in os.listdir(d)})
    return tfidf.block_links(_MATRICES[key], start, stop, k)


def tfidf_links(work: str, num_docs: int, k: int, pool=None,
                pairs: int = tfidf.BLOCK_PAIRS) -> list[np.ndarray]:
    """Every document's top-k neighbours, blocks of rows spread over ``pool``."""
    m = tfidf_matrix(os.path.join(work, TERMS_FILE), num_docs)
    os.makedirs(_matrix_dir(work))
    for name, a in m.arrays().items():
        np.save(os.path.join(_matrix_dir(work), name + ".npy"), a)
    del m
    tasks = [(work, s, e, k) for s, e in tfidf.blocks(num_docs, pairs)]
    results = pool.imap(_block_task, tasks) if pool else map(_block_task, tasks)
    out = [row for block in results for row in block]
    _MATRICES.clear()
    shutil.rmtree(_matrix_dir(work))
    return out


def choose(args, work: str, num_docs: int, offsets, targets, pool=None):
    """The link graph the build uses: ``(offsets, targets)`` as graph.resolve_links's."""
    if args.link_source == "hyperlinks":
        return offsets, targets
    if args.link_source == "random":
        return _csr(random_links(args.seed, num_docs, args.link_k, np.arange(num_docs)))
    return _csr(tfidf_links(work, num_docs, args.link_k, pool))


def link_stats(stats: dict, source: str, hyperlinks: int) -> dict:
    """Corpus stats whose ``num_links_resolved`` counted the links used: for a computed
    source it becomes ``num_links_used``, and the hyperlinks take its place."""
    if source == "hyperlinks":
        return stats
    out = dict(stats)
    out["num_links_resolved"] = hyperlinks
    out["num_links_used"] = stats["num_links_resolved"]
    return out


def summary(manifest: dict) -> str:
    """The build summary's words on the links used (empty for hyperlinks)."""
    if "num_links_used" not in manifest:
        return ""
    opts = manifest["options"]
    return (f", links used {manifest['num_links_used']} ({opts['link_source']}, "
            f"k={opts['link_k']})")
