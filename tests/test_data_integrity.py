"""Issue 11, cases 4, 6 and 10 (data): the files are checked against the manifest at
start-up (a shard cut at a record boundary, a corrupt eval shard), a corrupt record is
one line and exit 2, the data's vocabulary must be the weights' one, and a finished run
re-runs its final eval."""
import json
import os
import random
import shutil

import pytest

from helpers.corpora import synthetic_doc_text, write_jsonl
from helpers.outcomes import one_error_line
from helpers.training import small_config
from linkbert_jax import main
from linkbert_jax.pretrain import input_pipeline
from linkbert_jax.data import build, records, tokenizer
from linkbert_jax.data.samples import minilm_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small real build: 2 train shards, 1 eval shard, MiniLM's vocabulary."""
    root = tmp_path_factory.mktemp("built")
    rng = random.Random(0)
    n = 30
    write_jsonl(root / "c.jsonl", [{"id": f"d{i}", "title": f"Doc {i}",
                                    "text": synthetic_doc_text(rng, 8),
                                    "links": [f"d{(i + 1) % n}"]} for i in range(n)])
    argv = ["--input", root / "c.jsonl", "--format", "jsonl", "--output_dir", root / "data",
            "--tokenizer", minilm_dir(), "--max_seq_length", 64, "--num_shards", 2,
            "--eval_fraction", 0.2, "--no_progress"]
    assert build.main([str(a) for a in argv]) == 0
    return root / "data"


@pytest.fixture
def data(built, tmp_path):
    shutil.copytree(built, tmp_path / "data")
    return tmp_path / "data"


def _config(data_dir, **kw):
    kw = {"seq_length": 64, "num_train_steps": 1, "eval_at_end": False,
          "eval_batch_size": 8, **kw}
    c = small_config(data_dir=str(data_dir), **kw)
    c.model.vocab_size = 0  # the data's
    return c


def _record_ends(path) -> list[int]:
    ends, pos = [], 0
    for rec in records.iterate_records(str(path)):
        pos += 12 + len(rec) + 4
        ends.append(pos)
    return ends


def _flip_in_record(path, k: int) -> None:
    """Flip bytes inside the data of record ``k`` (its CRC no longer matches)."""
    start = ([0] + _record_ends(path))[k] + 12
    data = bytearray(path.read_bytes())
    for i in range(start + 2, start + 10):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_shard_cut_at_a_record_boundary_stops_at_start_up(data, tmp_path, capsys):
    shard = data / "train-00001-of-00002.tfrecord"
    ends = _record_ends(shard)
    keep = len(ends) // 2
    os.truncate(shard, ends[keep - 1])  # a valid TFRecord file of the first `keep` records
    rc = main.run(_config(data), str(tmp_path / "wd"))
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2 and str(shard) in line and "where the manifest says" in line
    assert not (tmp_path / "wd" / "checkpoints").exists()  # nothing trained
    manifest = json.load(open(data / "manifest.json"))
    for entry in manifest["files"]["train"]:  # a manifest written before sizes existed
        del entry["bytes"]
    with pytest.raises(input_pipeline.CorruptShardError,
                       match=f"{shard}: {keep} records where the manifest says "
                             f"{len(ends)}"):
        input_pipeline.check_files(str(data), manifest, "train")


def test_corrupt_eval_shard_stops_at_start_up_not_after_training(data, tmp_path, capsys):
    shard = data / "eval-00000-of-00001.tfrecord"
    _flip_in_record(shard, 1)
    rc = main.run(_config(data, eval_at_end=True), str(tmp_path / "wd"))
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2 and f"{shard}: CRC mismatch in record 1" in line
    assert not os.path.exists(tmp_path / "wd" / "metrics.jsonl")  # before any training


def test_corrupt_train_record_is_one_line_exit_2(data, tmp_path, capsys):
    shard = data / "train-00000-of-00002.tfrecord"
    _flip_in_record(shard, 3)  # same size: only reading it finds the damage
    rc = main.run(_config(data), str(tmp_path / "wd"))
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2 and f"corrupt or truncated TFRecord shard {shard}" in line


def test_data_of_another_vocabulary_than_the_weights(data, tmp_path, capsys):
    other = tmp_path / "other_bert"
    tokenizer.train_wordpiece([synthetic_doc_text(random.Random(1), 20)] * 5, 120,
                              str(other))
    rc = main.run(_config(data, init_from_hf=str(other)), str(tmp_path / "wd"))
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2 and f"vocabulary mismatch: init_from_hf {other} (vocabulary " in line
    assert f"vs the data {data}/manifest.json (vocabulary " in line
