"""Issue 11, cases 1-3 and 10 (builder): the builder touches only files it wrote, notices
a changed input, and a field name that matches nothing is a one-line error (rc 2)."""
import json
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers.corpora import synthetic_doc_text, write_jsonl
from helpers.outcomes import one_error_line, tree_hashes
from linkbert_jax.data import build, outdir
from linkbert_jax.data.samples import minilm_dir


def _corpus(path, n=8, seed=0):
    rng = random.Random(seed)
    write_jsonl(path, [{"id": f"d{i}", "title": f"Doc {i}", "text": synthetic_doc_text(rng, 5),
                        "links": [f"d{(i + 1) % n}"]} for i in range(n)])


def _argv(src, out, *extra):
    return ["--input", str(src), "--format", "jsonl", "--output_dir", str(out),
            "--tokenizer", minilm_dir(), "--max_seq_length", "64", "--eval_fraction",
            "0", "--num_shards", "2", "--no_progress", *map(str, extra)]


def _error(capsys) -> str:
    """The one error line of a failed run (and that it is the only output on stderr)."""
    return one_error_line(capsys.readouterr().err)


@pytest.fixture
def user_dir(tmp_path):
    """A plain directory holding a user's files with names the builder also uses."""
    d = tmp_path / "out"
    (d / "tokenizer").mkdir(parents=True)
    (d / "tokenizer" / "vocab.txt").write_text("mine\n")
    (d / "mine.tfrecord").write_bytes(b"user data")
    (d / "documents.jsonl").write_text('{"mine": 1}\n')
    return d


def test_non_empty_dir_not_written_by_builder_is_refused(tmp_path, user_dir, capsys):
    _corpus(tmp_path / "c.jsonl")
    before = tree_hashes(user_dir)
    assert build.main(_argv(tmp_path / "c.jsonl", user_dir)) == 2
    line = _error(capsys)
    assert str(user_dir) in line and "not written by the builder" in line and "--overwrite" in line
    assert build.main(_argv(tmp_path / "c.jsonl", user_dir, "--overwrite")) == 2
    line = _error(capsys)
    assert str(user_dir / "documents.jsonl") in line and "move it away" in line
    assert tree_hashes(user_dir) == before  # nothing of the user's touched


def test_overwrite_builds_next_to_user_files_and_removes_only_its_own(tmp_path, capsys):
    _corpus(tmp_path / "c.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.tfrecord").write_bytes(b"user data")
    assert build.main(_argv(tmp_path / "c.jsonl", out, "--overwrite")) == 0
    (out / "notes.txt").write_text("added after the build")
    _corpus(tmp_path / "c.jsonl", seed=1)
    argv = _argv(tmp_path / "c.jsonl", out, "--overwrite", "--num_shards", 1,
                 "--tokenizer", out / "tokenizer")  # the build's own tokenizer as input
    assert build.main(argv) == 0, capsys.readouterr().err
    assert (out / "mine.tfrecord").read_bytes() == b"user data"
    assert (out / "notes.txt").read_text() == "added after the build"
    names = set(os.listdir(out))
    assert "train-00000-of-00002.tfrecord" not in names  # the old build's own shards went
    assert "train-00000-of-00001.tfrecord" in names and "manifest.json" in names
    owner = json.load(open(out / outdir.OWNER_NAME))["names"]
    assert "mine.tfrecord" not in owner and "notes.txt" not in owner


def test_changed_input_is_not_reused(tmp_path, capsys):
    src, out = tmp_path / "c.jsonl", tmp_path / "out"
    _corpus(src)
    assert build.main(_argv(src, out)) == 0
    assert build.main(_argv(src, out)) == 0  # unchanged: reused
    assert "reusing it" in capsys.readouterr().out
    before = tree_hashes(out)
    with open(src, "a") as f:
        f.write(json.dumps({"id": "new", "text": "An added document."}) + "\n")
    assert build.main(_argv(src, out)) == 2
    line = _error(capsys)
    assert f"{src} changed (size" in line and "rebuild with --overwrite" in line
    assert tree_hashes(out) == before  # the earlier build is kept
    assert build.main(_argv(src, out, "--overwrite")) == 0
    assert json.load(open(out / "manifest.json"))["num_documents"] == 9


def _parquet(path):
    rng = random.Random(0)
    rows = [{"pmid": 100 + i, "title": f"Paper {i}", "abstract": synthetic_doc_text(rng, 5),
             "references": [str(100 + (i + 1) % 6)]} for i in range(6)]
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("flags, missing", [
    (["--links_field", "refs"], "'refs' (--links_field)"),
    (["--text_fields", "title,abstrct"], "'abstrct' (--text_fields)"),
    (["--id_field", "pmid_x"], "'pmid_x' (--id_field)"),
])
def test_parquet_field_that_does_not_exist_is_named(tmp_path, capsys, flags, missing):
    _parquet(tmp_path / "c.parquet")
    base = ["--id_field", "pmid", "--text_fields", "title,abstract",
            "--links_field", "references"]
    argv = ["--input", tmp_path / "c.parquet", "--format", "parquet", "--output_dir",
            tmp_path / "out", "--train_vocab_size", 200, "--no_progress", *base, *flags]
    assert build.main([str(a) for a in argv]) == 2
    line = _error(capsys)
    assert f"{tmp_path / 'c.parquet'}: no field {missing}" in line
    assert "fields: abstract, pmid, references, title" in line
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_jsonl_field_never_seen_is_named_and_default_links_only_warned(tmp_path, capsys,
                                                                       caplog):
    src = tmp_path / "c.jsonl"
    _corpus(src)
    assert build.main(_argv(src, tmp_path / "o1", "--links_field", "refs")) == 2
    line = _error(capsys)
    assert f"{src}: no field 'refs' (--links_field) seen in its first 1000 records" in line
    assert "fields: id, links, text, title" in line
    write_jsonl(src, [{"id": f"d{i}", "text": "Plain text. No links here."} for i in range(4)])
    assert build.main(_argv(src, tmp_path / "o2")) == 0  # a corpus without links is fine
    assert f"{src}: no field 'links'" in caplog.text


@pytest.mark.parametrize("flags, message", [
    (["--max_seq_length", 4], "--max_seq_length 4 is too small"),
    (["--segment_length", 100], "--segment_length 100 is too long for --max_seq_length 64"),
    (["--segment_length", -1], "--segment_length must be at least 1, got -1"),
])
def test_length_options_say_which_is_wrong(tmp_path, capsys, flags, message):
    _corpus(tmp_path / "c.jsonl")
    assert build.main(_argv(tmp_path / "c.jsonl", tmp_path / "out", *flags)) == 2
    assert message in _error(capsys)


def test_rebuild_reads_its_own_tokenizer_but_not_its_own_files(tmp_path, capsys):
    """A --tokenizer inside the output dir is read from a copy taken before the build
    replaces the dir; an --input among the build's own files is refused, nothing changed."""
    _corpus(tmp_path / "c.jsonl")
    out = tmp_path / "out"
    assert build.main(_argv(tmp_path / "c.jsonl", out)) == 0
    argv = _argv(tmp_path / "c.jsonl", out, "--seed", "9", "--overwrite")
    argv[argv.index("--tokenizer") + 1] = str(out / "tokenizer")
    assert build.main(argv) == 0, capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text())["num_documents"] == 8
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    before = tree_hashes(out)
    assert build.main(_argv(out / "documents.jsonl", out, "--overwrite", "--text_fields",
                            "title")) == 2
    assert "is a file of the build in" in _error(capsys)
    assert tree_hashes(out) == before
