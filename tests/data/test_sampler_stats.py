"""Acceptance 2: realised relation mix, linked targets ∝ 1/in-degree (or uniform), and the
split: eval anchors are held-out documents paired with the whole corpus (issue 21)."""
import json
import random
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from helpers.corpora import run_build, synthetic_doc_text, write_jsonl
from linkbert_jax.data import records
from linkbert_jax.data.features import LINKED, RANDOM
from linkbert_jax.data.samples import minilm_dir


def _corpus(path, n_docs=200, n_hubs=10, n_linking=150):
    """Hubs 0-9 have no out-links; docs 10..149 link to hubs 0 and 1 (in-degree 140) and
    to one of hubs 2-9 (in-degree ~17.5); docs >= 150 have no links at all."""
    rng = random.Random(0)
    recs = []
    for i in range(n_docs):
        links = []
        if n_hubs <= i < n_linking:
            links = ["d0", "Doc 1", f"d{2 + i % 8}"]  # by id and by title
        recs.append({"id": f"d{i}", "title": f"Doc {i}", "links": links,
                     "text": synthetic_doc_text(rng, rng.randint(3, 14))})
    write_jsonl(path, recs)


def _build(d, *extra):
    """Every example of a build of the 200-document corpus, with its documents.jsonl."""
    _corpus(d / "c.jsonl")
    out = d / "out"
    m = run_build("--input", d / "c.jsonl", "--format", "jsonl", "--output_dir", out,
                  "--tokenizer", minilm_dir(), "--max_seq_length", 64, *extra)
    exs = {s: [e for f in m["files"][s] for e in records.iterate_examples(out / f["name"])]
           for s in ("train", "eval")}
    with open(out / "documents.jsonl") as f:
        docs = [json.loads(l) for l in f]
    return m, exs, docs


SYNTH = ("--relation_probs", "0.2,0.3,0.5", "--examples_per_segment", 8, "--num_shards", 3,
         "--eval_fraction", 0.0, "--seed", 1)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    m, exs, docs = _build(tmp_path_factory.mktemp("synth"), *SYNTH)
    return m, exs["train"], docs


@pytest.fixture(scope="module")
def synth_uniform(tmp_path_factory):
    m, exs, docs = _build(tmp_path_factory.mktemp("synth_u"), *SYNTH,
                          "--link_sampling", "uniform")
    return m, exs["train"], docs


def test_realised_relation_mix_matches_request(synth):
    m, exs, _ = synth
    n = len(exs)
    counts = Counter(e["relation"] for e in exs)
    assert [counts[r] for r in range(3)] == list(m["relations"].values())
    for r, p in enumerate((0.2, 0.3, 0.5)):  # within 4 binomial standard deviations
        assert abs(counts[r] - n * p) < 4 * np.sqrt(n * p * (1 - p)), (r, counts)


def _linked_p_value(exs, docs, weight) -> float:
    """Chi-square p-value of the linked partners against draws ∝ ``weight(in-degree)``
    over each anchor's out-links (anchors pooled by their links: large expected cells)."""
    indeg = Counter(t for d in docs for t in d["links"])
    obs = Counter((e["doc_a"], e["doc_b"]) for e in exs if e["relation"] == LINKED)
    per_anchor = Counter(e["doc_a"] for e in exs if e["relation"] == LINKED)
    groups = {}
    for a, n_a in per_anchor.items():
        links = docs[a]["links"]
        w = np.array([weight(indeg[t]) for t in links])
        o, e = groups.setdefault(tuple(links), (np.zeros(len(links)), np.zeros(len(links))))
        o += [obs[(a, t)] for t in links]
        e += n_a * w / w.sum()
    chi2 = sum(((o - e) ** 2 / e).sum() for o, e in groups.values())
    dof = sum(len(o) - 1 for o, _ in groups.values())
    return stats.chi2.sf(chi2, dof)


def test_linked_targets_proportional_to_inverse_in_degree(synth):
    m, exs, docs = synth
    assert m["options"]["link_sampling"] == "inverse_in_degree"
    assert _linked_p_value(exs, docs, lambda d: 1.0 / d) > 1e-6
    assert _linked_p_value(exs, docs, lambda d: 1.0) < 1e-6
    # The rare hub (in-degree ~17.5 against 140) gets most of the mass.
    linked = [e for e in exs if e["relation"] == LINKED]
    assert sum(e["doc_b"] >= 2 for e in linked) / len(linked) > 0.7


def test_uniform_link_sampling_is_uniform_over_out_links(synth_uniform):
    m, exs, docs = synth_uniform
    assert m["options"]["link_sampling"] == "uniform"
    assert _linked_p_value(exs, docs, lambda d: 1.0) > 1e-6
    assert _linked_p_value(exs, docs, lambda d: 1.0 / d) < 1e-6


def test_link_resolution_by_id_and_title(synth):
    m, _, docs = synth
    assert docs[20]["links"] == [0, 1, 2 + 20 % 8]
    assert m["num_links_resolved"] == 140 * 3 and m["counters"]["dangling_links"] == 0


def test_eval_anchors_are_unseen_documents_paired_with_the_whole_corpus(tmp_path):
    """Eval: anchors are the held-out documents, partners any document; no training
    example holds a held-out document; linked eval pairs span many document pairs."""
    m, exs, docs = _build(tmp_path, "--eval_fraction", 0.25, "--num_eval_shards", 2,
                          "--examples_per_segment", 4, "--seed", 5)
    split = {d["index"]: d["split"] for d in docs}
    n_eval = sum(s == "eval" for s in split.values())  # keyed per document: Binomial(200, 1/4)
    assert abs(n_eval - 50) < 4 * np.sqrt(200 * 0.25 * 0.75), n_eval
    assert all(split[e["doc_a"]] == split[e["doc_b"]] == "train" for e in exs["train"])
    assert all(split[e["doc_a"]] == "eval" for e in exs["eval"])
    partners = {r: Counter(split[e["doc_b"]] for e in exs["eval"] if e["relation"] == r)
                for r in (RANDOM, LINKED)}
    for r in (RANDOM, LINKED):  # from the whole corpus: both splits, mostly training
        assert partners[r]["train"] > partners[r]["eval"] > 0, partners
    linked = [e for e in exs["eval"] if e["relation"] == LINKED]
    assert all(e["doc_b"] in docs[e["doc_a"]]["links"] for e in linked)
    pairs = Counter((e["doc_a"], e["doc_b"]) for e in linked)
    assert len(pairs) >= 40 and max(pairs.values()) < len(linked) / 10, pairs
    assert len(m["files"]["eval"]) == 2


def test_keyed_split_keeps_one_eval_document_and_some_training():
    from linkbert_jax.data import keyed

    split = keyed.assign_splits(50, 1e-6, seed=4)  # no document falls below the fraction
    assert split.sum() == 1 and split[np.argmin(keyed.split_hash(4, np.arange(50)))] == 1
    assert keyed.assign_splits(50, 0.0, seed=4).sum() == 0
    with pytest.raises(ValueError, match="no training documents"):
        keyed.assign_splits(3, 0.999999, seed=0)


def test_keyed_draws_of_a_document_do_not_depend_on_its_batch():
    """What lets Beam draw one document at a time and the local builder 65,536 at once."""
    from linkbert_jax.data import keyed

    rng = np.random.default_rng(0)
    n = 40
    nseg = rng.integers(1, 6, n)
    deg = rng.integers(0, 4, n)
    targets = rng.integers(0, n, deg.sum())
    weights = keyed.link_weights(rng.integers(1, 50, deg.sum()))
    offsets = np.concatenate([[0], np.cumsum(deg)])

    def anchors(docs):
        pos = np.concatenate([np.arange(offsets[d], offsets[d + 1]) for d in docs])
        pos = pos.astype(np.int64)
        return keyed.Anchors(doc=docs, rank=docs, nseg=nseg[docs],
                             link_offsets=np.concatenate([[0], np.cumsum(deg[docs])]),
                             link_docs=targets[pos], link_ranks=targets[pos],
                             link_weights=weights[pos])

    rates = np.array([1.3, 0.7, 2.5])
    whole = keyed.draw_examples(5, 0, anchors(np.arange(n)), rates, n)
    parts = [keyed.draw_examples(5, 0, anchors(np.array([d])), rates, n) for d in range(n)]
    for k in ("seg_a", "rel", "copy", "h", "doc_b", "rank_b", "seg_b"):
        assert np.array_equal(whole[k], np.concatenate([p[k] for p in parts])), k
    linked = whole["rel"] == 2
    assert linked.any() and all(  # linked partners are among the anchor's out-links
        b in targets[offsets[d]:offsets[d + 1]]
        for d, b in zip(whole["row"][linked], whole["doc_b"][linked]))
