"""TF-IDF links: each document's top-k most similar documents (``--link_source tfidf``).

The vectors are scikit-learn's ``TfidfVectorizer()`` with its defaults, over the text the
builder tokenizes (text fields joined by newline; Wikipedia: the plain text after wikitext
conversion; never the title): lower-cased word unigrams ``(?u)\\b\\w\\w+\\b``, raw term
counts, smooth idf ``ln((1 + n) / (1 + df)) + 1``, rows l2-normalised. Similarity is the
dot product of two rows (cosine); a document's neighbours are the k others with the highest
similarity, ties broken toward the lower document index; documents that share no term with
it have similarity 0 and fill up the list in index order. With k >= n - 1 every document
links to all others.

Both builders call the same functions, so they compute the same floats in the same order:
``weighted_row`` (one document's vector), ``Matrix`` (the rows, terms with df >= 2 only:
a term in one document never adds to the similarity of two), and ``block_links`` (the
neighbours of a range of rows). A row's similarities are scipy's CSR product of that row
with the transposed matrix, summed in the row's term order: they depend on the row and the
matrix only, never on the block it is computed in or the worker that computes it.

Cost: the product touches every pair of documents that share a term, sum over terms of
df^2, which with common words in the vocabulary is ~n^2: see docs/links.md.
"""
from __future__ import annotations

import collections
import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

TOKEN = re.compile(r"(?u)\b\w\w+\b")
BLOCK_PAIRS = 1 << 25  # similarities computed at once (rows x documents): ~400 MB peak


def term_counts(text: str) -> dict[str, int]:
    """Raw term counts of ``text`` as ``TfidfVectorizer()`` analyses it."""
    return dict(collections.Counter(TOKEN.findall(text.lower())))


@dataclass
class Model:
    """The vocabulary (sorted, as scikit-learn numbers its columns) and its idf."""
    col_of: dict
    idf: np.ndarray   # float64[vocabulary]
    shared: np.ndarray  # bool[vocabulary]: df >= 2
    num_docs: int

    @classmethod
    def from_df(cls, doc_freq, num_docs: int) -> "Model":
        """``doc_freq``: (term, number of documents holding it) pairs, any order."""
        pairs = sorted(doc_freq)
        df = np.array([d for _, d in pairs], np.float64)
        # scikit-learn: df += 1, n += 1 (smooth_idf), idf = log(n / df) + 1
        idf = np.log(float(num_docs + 1) / (df + 1.0)) + 1.0
        return cls({t: i for i, (t, _) in enumerate(pairs)}, idf, df >= 2, num_docs)


def weighted_row(counts: dict, model: Model) -> tuple[np.ndarray, np.ndarray]:
    """(columns int32, l2-normalised tf-idf weights float64) of one document, sorted by
    column, only the columns of terms shared with another document."""
    cols = np.fromiter((model.col_of[t] for t in counts), np.int64, len(counts))
    tf = np.fromiter(counts.values(), np.float64, len(counts))
    order = np.argsort(cols, kind="stable")
    cols, w = cols[order], tf[order] * model.idf[cols[order]]
    norm = np.sqrt(np.sum(w * w))
    keep = model.shared[cols]
    return cols[keep].astype(np.int32), (w[keep] / norm if norm > 0 else w[keep])


class Matrix:
    """All rows (``X``, documents x vocabulary, CSR) and their transpose (``XT``, CSR)."""

    def __init__(self, x: sp.csr_matrix, xt: sp.csr_matrix | None = None):
        self.X, self.XT = x, x.T.tocsr() if xt is None else xt
        self.num_docs = x.shape[0]

    @classmethod
    def from_rows(cls, rows, num_docs: int, vocab_size: int) -> "Matrix":
        """``rows``: (document index, columns, weights) for every document, any order."""
        rows = sorted(rows, key=lambda r: r[0])
        if [r[0] for r in rows] != list(range(num_docs)):
            raise ValueError(f"tf-idf rows do not cover documents 0..{num_docs - 1}")
        indptr = np.zeros(num_docs + 1, np.int64)
        indptr[1:] = np.cumsum([len(r[1]) for r in rows])
        cols = np.concatenate([r[1] for r in rows] or [np.zeros(0, np.int32)])
        vals = np.concatenate([r[2] for r in rows] or [np.zeros(0)])
        return cls(sp.csr_matrix((vals, cols.astype(np.int32), indptr),
                                 shape=(num_docs, vocab_size)))

    def arrays(self) -> dict:
        """The CSR arrays of ``X`` and ``XT`` (``from_arrays`` takes them back, memory-mapped
        or not)."""
        return {f"{name}_{part}": getattr(getattr(self, name), part)
                for name in ("X", "XT") for part in ("data", "indices", "indptr")}

    @classmethod
    def from_arrays(cls, a: dict) -> "Matrix":
        n, v = len(a["X_indptr"]) - 1, len(a["XT_indptr"]) - 1
        return cls(*(sp.csr_matrix((a[f"{m}_data"], a[f"{m}_indices"], a[f"{m}_indptr"]),
                                   shape=shape, copy=False)
                     for m, shape in (("X", (n, v)), ("XT", (v, n)))))


def block_rows(num_docs: int, pairs: int = BLOCK_PAIRS) -> int:
    """Rows per block, so that a block's similarities hold at most ~``pairs`` entries."""
    return max(1, pairs // max(num_docs, 1))


def _best(i: int, cols: np.ndarray, sims: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best of row ``i``'s non-zero similarities (self excluded), ties to the
    lower index, then documents of similarity 0 in index order."""
    keep = cols != i
    cols, sims = cols[keep], sims[keep]
    if len(sims) > k:
        cut = np.partition(sims, len(sims) - k)[len(sims) - k]
        keep = sims >= cut
        cols, sims = cols[keep], sims[keep]
    chosen = cols[np.lexsort((cols, -sims))[:k]].astype(np.int64)
    if len(chosen) < k:
        pool = np.arange(k + 1, dtype=np.int64)  # k + 1 > excluded (chosen + self)
        pool = pool[~np.isin(pool, chosen) & (pool != i)]
        chosen = np.concatenate([chosen, pool[:k - len(chosen)]])
    return chosen


def block_links(m: Matrix, start: int, stop: int, k: int) -> list[np.ndarray]:
    """Rows ``start``..``stop - 1``: each one's neighbours (int64, in rank order)."""
    k = min(k, m.num_docs - 1)
    sims = (m.X[start:stop] @ m.XT).tocsr()
    out = []
    for r in range(stop - start):
        a, b = sims.indptr[r], sims.indptr[r + 1]
        out.append(_best(start + r, sims.indices[a:b], sims.data[a:b], k))
    return out


def blocks(num_docs: int, pairs: int = BLOCK_PAIRS) -> list[tuple[int, int]]:
    step = block_rows(num_docs, pairs)
    return [(s, min(s + step, num_docs)) for s in range(0, num_docs, step)]
