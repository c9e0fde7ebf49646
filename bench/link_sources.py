"""TF-IDF links (``--link_source tfidf``): time and peak memory of the top-k by corpus size.

    python bench/link_sources.py [--sizes 5000,10000,20000,40000] [--sampled 1000000]
        [--query_rows 1024] [--full_max 40000] [--length_scale 1]

Documents are synthesised from real text: the term frequencies and the document lengths
(in terms) of the gensim Wikipedia sample's 5,618 paragraphs (``samples.
wikipedia_paragraphs``); each document draws its terms independently from that unigram
distribution, so common words are as common as in real text (they set the cost), while
topical structure, which does not change the cost of an exact top-k, is absent. Each size
runs in its own process (its peak RSS is reported) through the builder's functions
(``tfidf.Model``, ``weighted_row``, ``Matrix``, ``block_links``) on one core; the top-k is
timed in CPU seconds of that process (``ms/row``, the basis of the totals), with wall time
beside it (a busy machine inflates wall time, not CPU time):

* up to ``--full_max`` documents the top-k of every document is computed;
* beyond, the matrix of all documents is built, and ``--query_rows`` rows (blocks spread
  over the corpus) are computed against it; the total is rows x (time per row), which is
  exact in expectation because every row's work is independent of the others.

It also times ``tfidf.term_counts`` on the real paragraphs (the linear, text-reading part).
The cost model: every pair of documents sharing a term is touched once per shared term,
sum over terms of df^2, ~n^2 once common words are in the vocabulary; the matrix and
vocabulary grow ~n; a block's similarities are bounded by ``tfidf.BLOCK_PAIRS``.
The last line is a key=value summary.
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import resource
import subprocess
import sys
import time

import numpy as np

from linkbert_jax.data import tfidf
from linkbert_jax.data.samples import wikipedia_paragraphs

K = 5
CHUNK = 50_000


@functools.lru_cache(maxsize=1)
def real_distribution():
    """(terms, probabilities, document lengths in terms) of the sample's paragraphs."""
    texts = wikipedia_paragraphs()
    freq, lengths = collections.Counter(), []
    for t in texts:
        toks = tfidf.TOKEN.findall(t.lower())
        freq.update(toks)
        lengths.append(len(toks))
    terms = sorted(freq)
    p = np.array([freq[t] for t in terms], np.float64)
    return terms, p / p.sum(), np.array(lengths)


def synth_chunks(n: int, scale: int, seed: int = 0):
    """Term-count dicts of ``n`` synthetic documents, ``scale`` x a real paragraph's
    length, in chunks (the same draws every call)."""
    terms, p, lengths = real_distribution()
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        lens = scale * rng.choice(lengths, min(CHUNK, n - start))
        ids = rng.choice(len(terms), int(lens.sum()), p=p)
        out = []
        for doc in np.split(ids, np.cumsum(lens)[:-1]):
            u, c = np.unique(doc, return_counts=True)
            out.append({terms[i]: int(x) for i, x in zip(u, c)})
        yield out


def build_matrix(n: int, scale: int) -> tfidf.Matrix:
    df = collections.Counter()
    for chunk in synth_chunks(n, scale):
        for counts in chunk:
            df.update(counts.keys())
    model = tfidf.Model.from_df(df.items(), n)
    rows, i = [], 0
    for chunk in synth_chunks(n, scale):
        for counts in chunk:
            rows.append((i,) + tfidf.weighted_row(counts, model))
            i += 1
    return tfidf.Matrix.from_rows(rows, n, len(model.idf))


def one(n: int, full: bool, query_rows: int, scale: int) -> dict:
    real_distribution()
    t0 = time.perf_counter()
    m = build_matrix(n, scale)
    t_matrix = time.perf_counter() - t0
    matrix_mb = sum(a.nbytes for a in m.arrays().values()) / 2 ** 20
    blocks = tfidf.blocks(n)
    if not full:  # blocks spread evenly over the corpus, about query_rows rows in all
        step = max(1, len(blocks) * blocks[0][1] // query_rows)
        blocks = blocks[::step][:max(1, query_rows // blocks[0][1])]
    t0, c0 = time.perf_counter(), time.process_time()
    rows = sum(len(tfidf.block_links(m, s, e, K)) for s, e in blocks)
    t_rows, c_rows = time.perf_counter() - t0, time.process_time() - c0
    return {"n": n, "matrix_s": t_matrix, "matrix_mb": matrix_mb, "nnz": int(m.X.nnz),
            "rows_timed": rows, "ms_per_row": 1e3 * c_rows / rows,
            "wall_ms_per_row": 1e3 * t_rows / rows,
            "topk_s": c_rows * n / rows, "measured_all": full,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_one(n: int, full: bool, query_rows: int, scale: int) -> dict:
    p = subprocess.run([sys.executable, __file__, "--one", str(n), "--query_rows",
                        str(query_rows), "--length_scale", str(scale)]
                       + (["--all"] if full else []),
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def text_rate() -> float:
    texts = wikipedia_paragraphs()
    t0 = time.perf_counter()
    for t in texts:
        tfidf.term_counts(t)
    return sum(map(len, texts)) / (time.perf_counter() - t0) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5000,10000,20000,40000")
    ap.add_argument("--sampled", default="1000000", help="sizes timed on --query_rows rows")
    ap.add_argument("--query_rows", type=int, default=1024)
    ap.add_argument("--full_max", type=int, default=40000)
    ap.add_argument("--length_scale", type=int, default=1,
                    help="documents this many times a real paragraph's length (8: about "
                         "an average English Wikipedia article, ~600 words)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--all", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.all, a.query_rows, a.length_scale)))
        return
    sizes = [int(x) for x in a.sizes.split(",") if x] + \
        [int(x) for x in a.sampled.split(",") if x]
    print(f"term counting on real text: {text_rate():.1f} MB/s per core; documents "
          f"{a.length_scale} x a paragraph's length")
    print(f"{'docs':>9} {'matrix s':>9} {'matrix MB':>10} {'nnz/doc':>8} {'ms/row':>8} "
          f"{'wall ms/row':>11} {'top-k s':>10} {'peak RSS MB':>12}")
    res = []
    for n in sizes:
        r = run_one(n, n <= a.full_max, a.query_rows, a.length_scale)
        res.append(r)
        how = "" if r["measured_all"] else f"  (from {r['rows_timed']} rows)"
        print(f"{n:>9} {r['matrix_s']:>9.1f} {r['matrix_mb']:>10.0f} {r['nnz'] / n:>8.1f} "
              f"{r['ms_per_row']:>8.2f} {r['wall_ms_per_row']:>11.2f} {r['topk_s']:>10.0f} "
              f"{r['peak_rss_mb']:>12.0f}{how}", flush=True)
    summary(res)


def summary(res: list) -> None:
    """Fit top-k time = c n^2 on the largest size; extrapolate to 1M and 6M documents."""
    big = res[-1]
    c = big["topk_s"] / big["n"] ** 2
    mb_per_doc = big["matrix_mb"] / big["n"]
    for n in (1_000_000, 6_000_000):
        print(f"{n:>9} documents: top-k ~{c * n * n / 3600:,.0f} core-hours (c n^2, "
              f"c = {c:.3g} s), matrix ~{mb_per_doc * n / 1024:.1f} GB")
    print("link_sources " + " ".join(
        [f"ms_per_row_{r['n']}={r['ms_per_row']:.3f}" for r in res]
        + [f"rss_mb_{r['n']}={r['peak_rss_mb']:.0f}" for r in res]
        + [f"core_hours_1m={c * 1e12 / 3600:.1f}", f"core_hours_6m={c * 36e12 / 3600:.1f}"]))


if __name__ == "__main__":
    main()
