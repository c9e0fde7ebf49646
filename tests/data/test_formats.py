"""Citation-style field maps (Parquet), and a WordPiece vocabulary trained on the corpus."""
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq

from helpers.corpora import run_build, synthetic_doc_text


def test_parquet_citation_corpus_with_trained_vocab(tmp_path):
    rng = random.Random(0)
    rows = [{"pmid": 100 + i, "title": f"Paper {i}", "abstract": synthetic_doc_text(rng, 8),
             "references": [str(100 + (i + 1) % 30), f"Paper {(i + 2) % 30}", "999"]} for i in range(30)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    out = tmp_path / "o"
    m = run_build("--input", tmp_path / "c.parquet", "--format", "parquet", "--output_dir", out,
                  "--train_vocab_size", 300, "--max_seq_length", 64, "--eval_fraction", 0,
                  "--id_field", "pmid", "--text_fields", "title,abstract",
                  "--links_field", "references")
    assert m["num_documents"] == 30 and m["num_links_resolved"] == 60
    assert m["counters"]["dangling_links"] == 30
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out / "tokenizer")
    assert len(tok) == m["vocab_size"] <= 300 and tok.cls_token_id == m["special_ids"]["cls"]
    docs = [json.loads(l) for l in open(out / "documents.jsonl")]
    assert docs[0]["id"] == "100" and docs[0]["links"] == [1, 2]



def test_trained_vocab_is_numbered_canonically(tmp_path):
    """The WordPiece trainer numbers its vocabulary in hash-map order (different every
    run, so shards of the same corpus differed); the builder renumbers it: specials first,
    then the tokens sorted. (On tiny corpora the trainer's tie-breaking can still change
    which tokens it keeps; with a given --tokenizer builds are byte-identical.)"""
    from linkbert_jax.data.tokenizer import SPECIALS, train_wordpiece
    from transformers import AutoTokenizer

    rng = random.Random(1)
    texts = [synthetic_doc_text(rng, 10) for _ in range(40)]
    train_wordpiece(texts, 400, str(tmp_path / "tok"))
    vocab = AutoTokenizer.from_pretrained(tmp_path / "tok").get_vocab()
    order = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    assert order[:len(SPECIALS)] == list(SPECIALS)
    assert order[len(SPECIALS):] == sorted(order[len(SPECIALS):])
    assert sorted(vocab.values()) == list(range(len(vocab)))


def test_hf_datasets_directory_splits_and_fields(tmp_path):
    """``--format hf``: a saved ``DatasetDict`` is read split by split (sorted) and its
    schemas checked per split, a lone ``Dataset`` as one input; any other directory is one
    ``DataError`` line, whether checked or read."""
    import datasets
    import pytest

    from linkbert_jax.data import readers

    rows = {"id": ["a", "b"], "title": ["A", "B"], "text": ["x y", "z"], "links": [["b"], []]}
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                               "dev": datasets.Dataset.from_dict({"id": ["c"], "text": ["w"]})})
    dd.save_to_disk(str(tmp_path / "dd"))
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "one"))
    fields = readers.FieldMap()
    warnings = readers.check_fields([str(tmp_path / "dd")], "hf", fields)
    assert len(warnings) == 1 and warnings[0].startswith(f"{tmp_path / 'dd'}:dev: no field 'links'")
    assert readers.check_fields([str(tmp_path / "one")], "hf", fields) == []
    docs = list(readers.read_documents([str(tmp_path / "dd"), str(tmp_path / "one")], "hf",
                                       fields, readers.Counters(), {}))
    assert [(d.id, d.links) for d in docs] == [("c", []), ("a", ["b"]), ("b", []),
                                               ("a", ["b"]), ("b", [])]
    assert docs[0].source == f"{tmp_path / 'dd'}:dev/row 1"
    assert docs[3].source == f"{tmp_path / 'one'}:row 1"
    (tmp_path / "plain").mkdir()
    for check in (lambda p: readers.check_fields([p], "hf", fields),
                  lambda p: list(readers.read_file(p, "hf", fields, readers.Counters(), {}))):
        with pytest.raises(readers.DataError, match="not a Hugging Face datasets directory"):
            check(str(tmp_path / "plain"))
