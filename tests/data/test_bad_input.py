"""Acceptance 4: bad input is counted or a clear error; never a shard that looks complete."""
import json
import logging
import os
import random
import subprocess
import sys

import pytest

from helpers.corpora import run_build, synthetic_doc_text
from linkbert_jax.data import records, writer
from linkbert_jax.data.features import feature_spec
from linkbert_jax.data.records import serialize_example
from linkbert_jax.data.samples import minilm_dir, wikipedia_sample


def _write_bad_jsonl(path):
    rng = random.Random(0)
    good = [{"id": f"g{i}", "title": f"G {i}", "text": synthetic_doc_text(rng, 6),
             "links": [f"g{(i + 1) % 6}"]} for i in range(6)]
    lines = [json.dumps(r).encode() for r in good]
    lines.insert(2, b'{"id": "broken", "text": "no closing brace"')           # line 3
    lines.append(json.dumps({"id": "empty", "text": "  "}).encode())           # line 8
    lines.append(json.dumps({"id": "g0", "text": "duplicate id."}).encode())   # line 9
    lines.append(json.dumps({"id": "s", "text": "Self. Link.", "links": ["s", "nowhere"]}).encode())
    lines.append(b'{"id": "u", "text": "bad \xff\xfe bytes here."}')           # line 11
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_bad_records_are_counted_with_file_and_line(tmp_path, caplog):
    src = tmp_path / "bad.jsonl"
    _write_bad_jsonl(src)
    with caplog.at_level(logging.WARNING):
        m = run_build("--input", src, "--format", "jsonl", "--output_dir", tmp_path / "o",
                      "--tokenizer", minilm_dir(), "--max_seq_length", 64,
                      "--eval_fraction", 0)
    c = m["counters"]
    assert (c["malformed_records"], c["empty_documents"], c["duplicate_ids"],
            c["self_links"], c["dangling_links"], c["invalid_utf8"]) == (1, 1, 1, 1, 1, 1)
    assert m["num_documents"] == 8  # 6 good + self-linking + bad-utf8 (bytes replaced)
    text = caplog.text
    assert f"{src}:3: malformed JSON" in text and f"{src}:11: invalid UTF-8" in text
    assert f"{src}:9: duplicate id" in text and f"{src}:8:" in text


def test_truncated_bz2_is_a_counted_warning(tmp_path, caplog):
    data = open(wikipedia_sample(), "rb").read()
    cut = tmp_path / "cut.xml.bz2"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        m = run_build("--input", cut, "--format", "wikipedia", "--output_dir", tmp_path / "o",
                      "--tokenizer", minilm_dir(), "--max_seq_length", 64)
    assert m["counters"]["truncated_inputs"] == 1 and 0 < m["num_documents"] < 106
    assert str(cut) in caplog.text and "truncated" in caplog.text


def test_no_usable_documents_is_a_one_line_cli_error(tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_text('{"id": "a", "text": ""}\nnot json\n')
    p = subprocess.run([sys.executable, "-m", "linkbert_jax.data.build", "--input", str(src),
                        "--format", "jsonl", "--output_dir", str(tmp_path / "o"),
                        "--tokenizer", minilm_dir(), "--no_progress"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    errors = [l for l in p.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "no usable documents" in errors[0] and str(src) in errors[0]
    assert not os.path.exists(tmp_path / "o" / "manifest.json")


def test_crash_mid_shard_leaves_only_a_tmp_file_then_rebuild_succeeds(tmp_path, monkeypatch):
    src = tmp_path / "c.jsonl"
    _write_bad_jsonl(src)
    argv = ["--input", src, "--format", "jsonl", "--output_dir", tmp_path / "o",
            "--tokenizer", minilm_dir(), "--max_seq_length", 64, "--eval_fraction", 0]
    real = writer.records.frame
    calls = {"n": 0}

    def failing_frame(data):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated crash")
        return real(data)

    monkeypatch.setattr(writer.records, "frame", failing_frame)
    with pytest.raises(KeyboardInterrupt):
        run_build(*argv)
    names = os.listdir(tmp_path / "o")
    assert "manifest.json" not in names  # no manifest: the build is visibly unfinished
    assert any(n.endswith(".tfrecord.tmp") for n in names)
    done = [n for n in names if n.endswith(".tfrecord")]
    # Shards under their final name are complete and readable (a shard may hold no example).
    assert done and sum(sum(1 for _ in records.iterate_records(str(tmp_path / "o" / n)))
                        for n in done) > 0
    monkeypatch.setattr(writer.records, "frame", real)
    m = run_build(*argv)
    names = os.listdir(tmp_path / "o")
    assert not any(n.endswith(".tmp") for n in names) and m["num_examples"]["train"] > 0


def test_corrupt_record_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "x.tfrecord"
    path.write_bytes(records.frame(serialize_example([1, 2, 3], 1, 0, 0, 0, 0, 1))[:-3])
    with pytest.raises(records.RecordError, match="x.tfrecord"):
        list(records.iterate_examples(str(path)))


def test_serialized_examples_parse_with_feature_spec():
    import tensorflow as tf
    exs = [([101, 5, 6, 102, 7, 102], 2, 2, 3, 9, 0, 4),
           ([101, 130000, 102, 2**20, 102], 1, 1, 12345678, 1, 7, 0)]
    ser = [serialize_example(*e) for e in exs]
    parsed = tf.io.parse_example(tf.constant(ser), feature_spec())
    for i, (ids, a_len, rel, da, db, sa, sb) in enumerate(exs):
        assert parsed["input_ids"][i].numpy().tolist() == ids
        got = [int(parsed[k][i]) for k in ("a_length", "relation", "doc_a", "doc_b", "seg_a", "seg_b")]
        assert got == [a_len, rel, da, db, sa, sb]
        assert records.parse_example(ser[i])["input_ids"] == ids
        ref = tf.train.Example()
        ref.ParseFromString(ser[i])
        assert list(ref.features.feature["input_ids"].int64_list.value) == ids
