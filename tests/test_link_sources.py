"""Issue 21: the link-source ablation (``--link_source hyperlinks|tfidf|random``).

TF-IDF links are scikit-learn's ``TfidfVectorizer()`` + cosine top-k (self excluded, ties
to the lower index) on real text; they do not depend on block size or worker count; random
links are k distinct uniform others; both builders write the same bytes for each source.
"""
import hashlib
import json
import multiprocessing
import os
import random

import numpy as np
import pytest
from scipy import stats
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from helpers.corpora import run_build, write_jsonl
from helpers.outcomes import one_error_line
from linkbert_jax.data import build, link_sources, tfidf
from linkbert_jax.data.index import TERMS_FILE
from linkbert_jax.data.samples import minilm_dir, wikipedia_paragraphs

FALSE_FAILURE = 1e-6  # the chi-square tests' level (their seeds are fixed: no flakes)
TIE = 1e-12  # similarities this close are a tie whose order float rounding may decide


def sklearn_top_k(texts, k):
    """(neighbours in rank order, similarity matrix) as scikit-learn computes them."""
    s = cosine_similarity(TfidfVectorizer().fit_transform(texts))
    np.fill_diagonal(s, -np.inf)
    idx = np.arange(len(texts))
    return [np.lexsort((idx, -row))[:min(k, len(texts) - 1)] for row in s], s


def our_links(tmp_path, texts, k, pool=None, pairs=tfidf.BLOCK_PAIRS):
    """The local builder's stage on ``texts`` (its term file written as pass 1 writes it)."""
    work = tmp_path / f"work-{pairs}-{pool is not None}"
    os.makedirs(work)
    with open(work / TERMS_FILE, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(tfidf.term_counts(t), ensure_ascii=False) + "\n")
    return link_sources.tfidf_links(str(work), len(texts), k, pool, pairs)


def assert_same_neighbours(ours, ref, sims):
    """Equal lists, or (a float near-tie) lists whose similarities match within ``TIE``
    rank by rank: a wrong neighbour changes a similarity far more than that."""
    ambiguous = 0
    for i, (a, b) in enumerate(zip(ours, ref)):
        if list(a) != list(b):
            ambiguous += 1
            assert np.allclose(sims[i][a], sims[i][b], rtol=0, atol=TIE), (i, a, b)
    assert ambiguous <= len(ref) // 100, f"{ambiguous} rows differ"


def test_tfidf_links_equal_scikit_learn_on_real_paragraphs(tmp_path):
    texts = list(wikipedia_paragraphs())
    assert len(texts) >= 1000
    ref, sims = sklearn_top_k(texts, 5)
    assert_same_neighbours(our_links(tmp_path, texts, 5), ref, sims)


def test_tfidf_edge_cases_equal_scikit_learn(tmp_path):
    """Documents with no word of two characters, words no other document has, repeated
    texts (exact ties), and fewer documents than k + 1."""
    texts = list(wikipedia_paragraphs()[:40]) + ["a b c", "zyxqv qqwwee", "I. 1 2"] * 2
    texts += [texts[3], texts[3].upper()]
    for k in (5, 12):
        ref, sims = sklearn_top_k(texts, k)
        assert [list(r) for r in our_links(tmp_path / str(k), texts, k)] == \
            [list(r) for r in ref]
    few = texts[:4]
    assert [sorted(r) for r in our_links(tmp_path / "few", few, 5)] == \
        [[j for j in range(4) if j != i] for i in range(4)]


def test_tfidf_links_independent_of_block_size_and_workers(tmp_path):
    texts = list(wikipedia_paragraphs()[:700])
    base = our_links(tmp_path, texts, 5, pairs=len(texts))  # one row per block
    for pairs in (7 * len(texts), 10 ** 9):  # 7 rows; all rows in one block
        assert [list(r) for r in our_links(tmp_path, texts, 5, pairs=pairs)] == \
            [list(r) for r in base]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        two = our_links(tmp_path, texts, 5, pool=pool, pairs=13 * len(texts))
    assert [list(r) for r in two] == [list(r) for r in base]


# --- random links -------------------------------------------------------------------------

def test_random_links_are_k_distinct_others_keyed_by_document():
    n, k = 500, 7
    rows = link_sources.random_links(3, n, k, np.arange(n))
    for d, row in enumerate(rows):
        assert len(row) == k == len(set(row.tolist())) and d not in row
        assert list(row) == sorted(row) and row.min() >= 0 and row.max() < n
    alone = [link_sources.random_links(3, n, k, [d])[0] for d in (499, 0, 250)]
    assert [list(r) for r in alone] == [list(rows[d]) for d in (499, 0, 250)]
    other_seed = link_sources.random_links(4, n, k, np.arange(n))
    assert sum(list(a) != list(b) for a, b in zip(rows, other_seed)) > n * 0.9
    assert [list(r) for r in link_sources.random_links(0, 4, 5, np.arange(4))] == \
        [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]


def _chi_square_ok(observed) -> bool:
    observed = np.asarray(observed, np.float64)
    expected = observed.sum() / len(observed)
    chi2 = ((observed - expected) ** 2 / expected).sum()
    return chi2 < stats.chi2.isf(FALSE_FAILURE, len(observed) - 1)


def test_random_link_sets_are_uniform():
    """Each document's k-set is uniform over the C(n-1, k) sets of others (chi-square over
    all 35 sets, 2,000 seeds x 8 documents), and every other document is equally likely
    to be a target (chi-square over 1,000 targets); a draw biased by one in 35 fails."""
    n, k = 8, 3
    sets = {}
    for seed in range(2000):
        for d, row in enumerate(link_sources.random_links(seed, n, k, np.arange(n))):
            assert d not in row and len(set(row.tolist())) == k
            rel = tuple(int(j - (j > d)) for j in row)  # others renumbered 0..n-2
            sets[rel] = sets.get(rel, 0) + 1
    assert len(sets) == 35 and _chi_square_ok(list(sets.values()))
    biased = list(sets.values()) + [0]
    biased[0] += 2000 * n // 35
    assert not _chi_square_ok(biased)  # the test can fail
    n, k = 1000, 5
    hits = np.zeros(n, np.int64)
    for seed in range(20):
        for row in link_sources.random_links(seed, n, k, np.arange(n)):
            hits[row] += 1
    assert hits.sum() == 20 * n * k and _chi_square_ok(hits)


# --- the builders ---------------------------------------------------------------------------

def _corpus(path, n=60):
    """``n`` documents of real paragraphs in two text fields, with a few hyperlinks, and
    two records the builder drops (a repeated id, an empty text): the texts it keeps."""
    paras, rng = wikipedia_paragraphs(), random.Random(5)
    records = [{"id": f"d{i}", "title": f"Doc {i}", "abstract": paras[2 * i],
                "body": paras[2 * i + 1], "links": [f"d{rng.randrange(n)}" for _ in range(i % 3)]}
               for i in range(n)]
    records.insert(10, {"id": "empty", "abstract": " ", "body": ""})
    records.insert(20, {"id": "d3", "abstract": paras[-1], "body": paras[-2]})
    write_jsonl(path, records)
    return ["\n".join(paras[2 * i:2 * i + 2]) for i in range(n)]


def _hashes(out) -> dict:
    return {n: hashlib.sha256(open(os.path.join(out, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(out)) if os.path.isfile(os.path.join(out, n))}


def _links(out) -> list:
    return [json.loads(x)["links"] for x in open(os.path.join(out, "documents.jsonl"))]


@pytest.mark.parametrize("source", ["tfidf", "random"])
def test_local_and_beam_builders_write_the_same_bytes(tmp_path, source):
    texts = _corpus(tmp_path / "in.jsonl")
    argv = ["--input", tmp_path / "in.jsonl", "--format", "jsonl", "--tokenizer", minilm_dir(),
            "--text_fields", "abstract,body", "--max_seq_length", 64, "--num_shards", 2,
            "--eval_fraction", 0.2, "--seed", 9, "--link_source", source, "--link_k", 4]
    m = run_build(*argv, "--output_dir", tmp_path / "local", "--workers", 2)
    hyper = run_build(*argv[:-4], "--output_dir", tmp_path / "hyper")
    links = _links(tmp_path / "local")
    if source == "tfidf":
        assert links == [sorted(r.tolist()) for r in sklearn_top_k(texts, 4)[0]]
    else:
        assert links == [r.tolist() for r in link_sources.random_links(9, 60, 4, range(60))]
    assert m["options"]["link_source"] == source and m["options"]["link_k"] == 4
    assert m["num_links_used"] == 60 * 4 and m["relations"]["linked"] > 0
    assert m["num_links_resolved"] == hyper["num_links_resolved"] == sum(map(len, _links(
        tmp_path / "hyper"))) > 0 and "num_links_used" not in hyper
    assert m["counters"] == hyper["counters"]
    assert (m["counters"]["duplicate_ids"], m["counters"]["empty_documents"]) == (1, 1)
    from linkbert_jax.data import beam_build

    mb = beam_build.run(*beam_build.parse_args([str(a) for a in argv] + [
        "--output_dir", str(tmp_path / "beam")]))
    assert mb == m and _hashes(tmp_path / "beam") == _hashes(tmp_path / "local")


@pytest.mark.parametrize("k", ["0", "-2"])
def test_link_k_below_one_is_a_one_line_error(tmp_path, capsys, k):
    argv = ["--input", str(tmp_path / "none.jsonl"), "--format", "jsonl", "--output_dir",
            str(tmp_path / "out"), "--tokenizer", minilm_dir(), "--link_source", "tfidf",
            "--link_k", k]
    assert build.main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"error: --link_k must be at least 1, got {k}\n"
    assert not os.path.exists(tmp_path / "out")


def test_unknown_link_source_is_refused(tmp_path, capsys):
    status = build.main(["--input", "x", "--format", "jsonl", "--output_dir", "o",
                         "--train_vocab_size", "10", "--link_source", "cosine"])
    err = capsys.readouterr().err
    assert status == 2 and "invalid choice: 'cosine'" in one_error_line(err), err
    assert "usage:" not in err
