"""The downstream link task (linkbert_jax.ablate.linktask) on a small generated build:
held-out anchors, the right ending from a true hyperlink, the rest from unlinked
documents, split by anchor document, a 10% few-shot subset, deterministic bytes."""
import json

import pytest

from helpers.corpora import random_link_corpus, run_build
from linkbert_jax.ablate import linktask
from linkbert_jax.finetune import data as ft_data
from linkbert_jax.finetune import tasks
from linkbert_jax.data.samples import minilm_dir

N_DOCS = 60


def squash(text: str) -> str:
    return "".join(text.lower().split())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("linktask")
    records = random_link_corpus(tmp / "corpus.jsonl", N_DOCS, min_links=0)
    out = tmp / "build"
    run_build("--input", tmp / "corpus.jsonl", "--format", "jsonl", "--output_dir", out,
              "--tokenizer", minilm_dir(), "--max_seq_length", 40, "--eval_fraction", 0.4,
              "--seed", 2)
    return tmp, out, {r["id"]: r for r in records}


def make(build_dir, out, *extra):
    args = linktask.make_parser().parse_args(
        ["--build", str(build_dir), "--output_dir", str(out), "--seed", "7", *extra])
    return linktask.run(args)


def load(out):
    return {name: [json.loads(line) for line in open(out / name)]
            for name in linktask.TASK_FILES}


def test_examples_come_from_held_out_documents_and_true_links(built):
    tmp, build_dir, records = built
    meta = make(build_dir, tmp / "task")
    files = load(tmp / "task")
    docs = [json.loads(line) for line in open(build_dir / "documents.jsonl")]
    anchors = [d for d in docs if d["split"] == "eval" and records[d["id"]]["links"]]
    assert sum(d["num_segments"] for d in anchors) == \
        len(files["train.jsonl"]) + len(files["dev.jsonl"]) > 40
    for rec in files["train.jsonl"] + files["dev.jsonl"]:
        anchor = docs[rec["doc"]]
        assert anchor["split"] == "eval" and rec["id"] == f"{anchor['id']}@{rec['segment']}"
        true_links = set(records[anchor["id"]]["links"])
        cands = [docs[c]["id"] for c in rec["candidate_docs"]]
        assert cands[rec["label"]] in true_links
        wrong = cands[:rec["label"]] + cands[rec["label"] + 1:]
        assert len(set(wrong)) == 3 and not (set(wrong) & (true_links | {anchor["id"]}))
        assert squash(rec["sent1"]) in squash(records[anchor["id"]]["text"])
        for i, c in enumerate(cands):
            assert squash(rec[f"ending{i}"]) in squash(records[c]["text"])
    train_docs = {r["doc"] for r in files["train.jsonl"]}
    dev_docs = {r["doc"] for r in files["dev.jsonl"]}
    assert train_docs and dev_docs and not train_docs & dev_docs
    assert meta["anchor_documents"] == {"train": len(train_docs), "dev": len(dev_docs)}
    assert meta["tfidf_baseline_accuracy"]["dev"] == \
        linktask.lexical_baseline(files["train.jsonl"], files["dev.jsonl"], 4)
    assert len(dev_docs) == round(0.2 * len(anchors))
    assert {r["label"] for r in files["train.jsonl"]} == {0, 1, 2, 3}
    few, train = files["train_few_shot.jsonl"], files["train.jsonl"]
    assert len(few) == round(0.1 * len(train)) and all(r in train for r in few)


def test_same_bytes_whatever_links_the_build_recorded(built):
    """A tfidf or random build records other links in documents.jsonl: the task keeps the
    corpus's hyperlinks, so it does not change; the same seed gives the same bytes."""
    tmp, build_dir, _ = built
    make(build_dir, tmp / "a")
    path = build_dir / "documents.jsonl"
    original = path.read_text()
    docs = [json.loads(line) for line in original.splitlines()]
    try:
        with open(path, "w") as f:
            for d in docs:
                d["links"] = [(d["index"] + 1) % len(docs)]
                f.write(json.dumps(d) + "\n")
        make(build_dir, tmp / "b")
    finally:
        path.write_text(original)
    for name in linktask.TASK_FILES:
        assert (tmp / "a" / name).read_bytes() == (tmp / "b" / name).read_bytes()
    make(build_dir, tmp / "c", "--seed", "8")
    assert (tmp / "c" / "dev.jsonl").read_bytes() != (tmp / "a" / "dev.jsonl").read_bytes()


def test_files_are_what_finetune_mc_reads(built):
    tmp, build_dir, _ = built
    make(build_dir, tmp / "ft", "--per_document", "1")
    task = tasks.get_task("mc")
    for name in linktask.TASK_FILES:
        ds = ft_data.load_split(str(tmp / "ft" / name))
        task.check(ds, name, True)
    assert task.label_list(ft_data.load_split(str(tmp / "ft" / "train.jsonl")), "t") == \
        [0, 1, 2, 3]
    files = load(tmp / "ft")
    assert len({r["doc"] for r in files["train.jsonl"]}) == len(files["train.jsonl"])


def test_test_split_takes_other_anchor_documents(built):
    tmp, build_dir, _ = built
    meta = make(build_dir, tmp / "t", "--test_fraction", "0.2")
    files = load(tmp / "t")
    files["test.jsonl"] = [json.loads(line) for line in open(tmp / "t" / "test.jsonl")]
    docs = {name: {r["doc"] for r in files[name]}
            for name in ("train.jsonl", "dev.jsonl", "test.jsonl")}
    assert all(docs.values()) and sum(map(len, docs.values())) == \
        len(set().union(*docs.values()))
    assert meta["anchor_documents"] == {n.split(".")[0]: len(d) for n, d in docs.items()}
    make(build_dir, tmp / "no_test")
    dev_without_test = {json.loads(line)["doc"] for line in open(tmp / "no_test" / "dev.jsonl")}
    assert docs["dev.jsonl"] == dev_without_test  # a test split leaves dev as it was


def test_lexical_baseline_picks_the_most_similar_ending():
    train = [{"sent1": "river mountain stone", "ending0": "city music", "ending1": "paper cell",
              "ending2": "war king", "ending3": "light water", "label": 0}]
    rec = {"sent1": "river mountain", "ending0": "city music", "ending1": "river stone",
           "ending2": "paper cell", "ending3": "war king"}
    assert linktask.lexical_baseline(train, [dict(rec, label=1)], 4) == 1.0
    assert linktask.lexical_baseline(train, [dict(rec, label=0), dict(rec, label=1)], 4) == 0.5


def test_bad_input_is_one_line(built, tmp_path, capsys):
    tmp, build_dir, _ = built
    assert linktask.main(["--build", str(tmp_path), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a finished build" in err[0]
    corpus = tmp / "corpus.jsonl"
    original = corpus.read_text()
    try:
        corpus.write_text(original + json.dumps({"id": "new", "text": "New text."}) + "\n")
        rc = linktask.main(["--build", str(build_dir), "--output_dir", str(tmp_path / "o")])
    finally:
        corpus.write_text(original)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not the one given" in err[0]


def _tiny_corpus(num_docs, links):
    import numpy as np
    offs = np.cumsum([0] + [len(links.get(d, [])) for d in range(num_docs)])
    tgts = np.array([t for d in range(num_docs) for t in sorted(links.get(d, []))], np.int32)
    return linktask.Corpus(ids=[f"d{i}" for i in range(num_docs)],
                           is_eval=np.ones(num_docs, bool), tokens=np.zeros(0, np.int32),
                           seg_offsets=np.zeros(1, np.int64),
                           doc_seg_start=np.zeros(num_docs + 1, np.int64),
                           link_offsets=offs, link_targets=tgts, decode=str)


def test_negatives_are_uniform_over_unlinked_documents(monkeypatch):
    from scipy.stats import chisquare

    corpus = _tiny_corpus(12, {0: [1, 2, 3]})
    counts = [0] * 12
    for seg in range(3000):
        negs = linktask.negatives(corpus, 0, 0, seg, 3)
        assert len(set(negs)) == 3 and not set(negs) & {0, 1, 2, 3}
        for d in negs:
            counts[d] += 1
    assert chisquare(counts[4:]).pvalue > 0.001  # 8 unlinked documents, equally often
    assert linktask.negatives(corpus, 0, 0, 0, 9) is None  # only 8 to draw from
    monkeypatch.setattr(linktask, "MAX_REJECTIONS", 0)  # the list fallback (hub documents)
    negs = linktask.negatives(corpus, 0, 0, 0, 8)
    assert sorted(negs) == list(range(4, 12))
