"""Issue 16: the Beam builder on the local runner writes the local builder's output.

Both draw every example with the same keyed functions (keyed.py) and order shards the same
way, so the comparison is byte for byte: shards, documents.jsonl and manifest.json.
"""
import gzip
import hashlib
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter

import pytest

from helpers.corpora import run_build, synthetic_doc_text
from linkbert_jax.data import beam_build, records
from linkbert_jax.data.samples import minilm_dir, wikipedia_sample

MULTI = ("--direct_num_workers=2", "--direct_running_mode=multi_processing")
KEYS = ("a_length", "relation", "doc_a", "doc_b", "seg_a", "seg_b")


def run_beam(*argv) -> dict:
    return beam_build.run(*beam_build.parse_args([str(a) for a in argv]))


def _hashes(out) -> dict:
    return {n: hashlib.sha256(open(os.path.join(out, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(out)) if os.path.isfile(os.path.join(out, n))}


def _multisets(out, manifest) -> dict:
    """Acceptance 1's comparison: per split, the multiset of example tuples."""
    return {split: Counter((tuple(e["input_ids"]),) + tuple(e[k] for k in KEYS)
                           for f in manifest["files"][split]
                           for e in records.iterate_examples(os.path.join(out, f["name"])))
            for split in ("train", "eval")}


def _with_output(argv, out):
    argv = [str(a) for a in argv]
    argv[argv.index("--output_dir") + 1] = str(out)
    return argv


def test_wikipedia_sample_same_as_local(wiki_build, tmp_path, capsys):
    out, m, argv = wiki_build
    beam_out = tmp_path / "beam"
    mb = run_beam(*_with_output(argv, beam_out))
    assert mb == m and m["num_links_resolved"] > 50 and m["counters"]["redirects"] >= 99
    assert _hashes(beam_out) == _hashes(out)
    assert _multisets(beam_out, mb) == _multisets(out, m)
    assert run_beam(*_with_output(argv, beam_out)) == m  # finished output is reused
    assert "already built" in capsys.readouterr().out


def _jsonl_corpus(d):
    """300 linked documents over three files (one gzipped), with every kind of bad input."""
    rng = random.Random(1)
    lines = []
    for i in range(300):
        links = [f"d{rng.randrange(300)}" for _ in range(rng.randint(0, 5))]
        links += [f"doc {rng.randrange(300)}", "Nowhere"] if i % 5 == 0 else []  # by title
        lines.append(json.dumps({"id": f"d{i}", "title": f"Doc {i}", "links": links,
                                 "text": synthetic_doc_text(rng, rng.randint(1, 16))}).encode())
    lines[7] = b'{"id": "broken", "text": "no closing brace"'
    lines[50] = json.dumps({"id": "d49", "text": "A duplicate id."}).encode()
    lines[51] = json.dumps({"id": "blank", "text": "   "}).encode()
    lines[120] = b'{"id": "u", "text": "bad \xff bytes. Here."}'
    lines[200] = json.dumps({"id": "self", "text": "Me. Again.", "links": ["self"]}).encode()
    os.makedirs(d)
    (d / "a.jsonl").write_bytes(b"\n".join(lines[:100]) + b"\n")
    (d / "b.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines[100:200]) + b"\n"))
    (d / "c.jsonl").write_bytes(b"\n".join(lines[200:]) + b"\n")


def test_jsonl_corpus_same_as_local_at_two_parallelism_settings(tmp_path, monkeypatch):
    _jsonl_corpus(tmp_path / "in")
    # The system temp directory, watched: nothing is left there (Beam's DirectRunner left
    # a directory from its Prism download attempt and two more behind each run).
    system_tmp = tmp_path / "system_tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    argv = ["--input", tmp_path / "in", "--format", "jsonl", "--output_dir", tmp_path / "local",
            "--tokenizer", minilm_dir(), "--max_seq_length", 64, "--eval_fraction", 0.1,
            "--num_shards", 3, "--num_eval_shards", 2, "--examples_per_segment", 2,
            "--seed", 11]
    m = run_build(*argv)
    c = m["counters"]
    assert (c["malformed_records"], c["duplicate_ids"], c["empty_documents"],
            c["invalid_utf8"], c["self_links"]) == (1, 1, 1, 1, 1)
    assert c["dangling_links"] >= 60 and c["duplicate_links"] > 0 and min(m["relations"].values())
    one = run_beam(*_with_output(argv, tmp_path / "beam1"), "--direct_num_workers=1")
    two = run_beam(*_with_output(argv, tmp_path / "beam2"), *MULTI)
    assert one == m and two == m
    assert os.listdir(system_tmp) == []
    assert _hashes(tmp_path / "beam1") == _hashes(tmp_path / "local") == \
        _hashes(tmp_path / "beam2")
    uniform = argv + ["--link_sampling", "uniform"]  # issue 21: the diversity switch
    mu = run_build(*_with_output(uniform, tmp_path / "local_u"))
    assert run_beam(*_with_output(uniform, tmp_path / "beam_u"), "--direct_num_workers=1") == mu
    assert _hashes(tmp_path / "beam_u") == _hashes(tmp_path / "local_u")
    shard = m["files"]["train"][0]["name"]
    assert _hashes(tmp_path / "local_u")[shard] != _hashes(tmp_path / "local")[shard]
    _trains_on(tmp_path / "beam2", tmp_path / "train")


def _trains_on(data, work):
    """The trainer's CLI runs two steps (and its eval) on the Beam builder's output."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.run([sys.executable, "-m", "linkbert_jax.main", "--config", "tiny",
                        "--workdir", str(work), f"--config.data_dir={data}",
                        "--config.seq_length=64", "--config.masking.max_predictions=10",
                        "--config.num_train_steps=2",
                        "--config.global_batch_size=8", "--config.checkpoint_every_steps=2",
                        "--config.mesh.data=-1", "--config.mesh.fsdp=1",
                        "--config.mesh.tensor=1"], cwd=root, capture_output=True, text=True,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [json.loads(x) for x in open(work / "metrics.jsonl")]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert any("eval_drp_accuracy" in r for r in rows)


def test_truncated_bz2_counted_and_named_like_local(tmp_path, caplog):
    data = open(wikipedia_sample(), "rb").read()
    cut = tmp_path / "cut.xml.bz2"
    cut.write_bytes(data[: len(data) // 2])
    argv = ["--input", cut, "--format", "wikipedia", "--output_dir", tmp_path / "local",
            "--tokenizer", minilm_dir(), "--max_seq_length", 64]
    m = run_build(*argv)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        mb = run_beam(*_with_output(argv, tmp_path / "beam"))
    assert mb == m and m["counters"]["truncated_inputs"] == 1
    assert str(cut) in caplog.text and "truncated" in caplog.text
    assert _hashes(tmp_path / "beam") == _hashes(tmp_path / "local")


def test_corrupt_parquet_is_one_line_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    rc = beam_build.main(["--input", str(bad), "--format", "parquet", "--output_dir",
                          str(tmp_path / "o"), "--tokenizer", minilm_dir()])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: ") and str(bad) in err[-1], err[-3:]
    assert not os.path.exists(tmp_path / "o" / "manifest.json")


@pytest.mark.parametrize("argv, message", [
    (["--train_vocab_size", "100"], "--train_vocab_size needs the whole corpus"),
    (["--format", "hf"], "--format hf is local only")])
def test_unsupported_options_are_one_line_errors(tmp_path, capsys, argv, message):
    base = ["--input", str(tmp_path), "--format", "jsonl", "--output_dir", str(tmp_path / "o"),
            "--tokenizer", minilm_dir()]
    if argv[0] == "--train_vocab_size":
        base = base[:-2]
    assert beam_build.main(base + argv) == 2
    assert message in capsys.readouterr().err


def test_the_local_runner_is_named_unless_the_user_names_one():
    """No run-time download: Beam's default runner first fetches its Prism binary (the
    JSONL test above checks that nothing of that attempt is left)."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    options = beam_build.pipeline_options(["--direct_num_workers=2"])
    assert options.view_as(StandardOptions).runner == "FnApiRunner"
    assert options.view_as(DirectOptions).direct_num_workers == 2
    for named, runner in ((["--runner", "DataflowRunner"], "DataflowRunner"),
                          (["--runner=DirectRunner"], "DirectRunner")):
        assert beam_build.pipeline_options(named).view_as(StandardOptions).runner == runner


def test_training_input_reads_a_remote_data_dir(wiki_build):
    """Output on a bucket feeds training as is: the input pipeline and the trainer's checks
    go through tf.io.gfile for ``scheme://`` paths (TF's ram:// stands in for gs://)."""
    import tensorflow as tf

    from linkbert_jax.pretrain import input_pipeline
    from linkbert_jax.pretrain.masking import MaskingConfig

    out, m, _ = wiki_build
    remote = "ram://beam_test_data"
    tf.io.gfile.makedirs(remote)
    for name in ("manifest.json", *(f["name"] for f in m["files"]["eval"])):
        tf.io.gfile.copy(os.path.join(out, name), f"{remote}/{name}", overwrite=True)
    assert input_pipeline.is_data_dir(remote) and not input_pipeline.is_data_dir(remote + "x")
    input_pipeline.check_files(remote, m, "eval", read_all=True)  # the trainer's start-up check
    seen = sum(int(b["example_weight"].sum()) for b in input_pipeline.batches(
        remote, split="eval", batch_size=64, seq_length=128, seed=0, repeat=False,
        shuffle=False, masking=MaskingConfig(max_predictions=20)))
    assert seen == m["num_examples"]["eval"] > 0
