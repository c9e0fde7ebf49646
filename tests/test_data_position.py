"""Issue 22, rows 5-7 and item 4: the data position is kept in examples over virtual
streams (``linkbert_jax.pretrain.example_stream``), so the global batches do not depend on the
process count and a resume with another batch size continues at the same example; the
manifest's counts are checked against the files, and its names stay inside the data dir.
"""
import json
import os
import shutil
import types

import numpy as np
import pytest

from helpers.outcomes import one_error_line
from helpers.shards import MAX_LEN, write_shards
from helpers.training import small_config
from linkbert_jax import main
from linkbert_jax.pretrain import data_position, example_stream, input_pipeline
from linkbert_jax.errors import ConfigError

MASKING = input_pipeline.MaskingConfig(max_predictions=8)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("shards"))
    write_shards(d, None)  # train files of 37, 41, 29, 45 examples
    return d


def _take(data_dir, n, *, examples, streams, batch, rows):
    pos = data_position.Position(0, examples, streams, batch)
    ds = example_stream.make_dataset(data_dir, split="train", position=pos,
                                     global_batch_size=batch, rows=rows,
                                     seq_length=MAX_LEN, masking=MASKING, seed=3)
    return [b for _, b in zip(range(n), ds.as_numpy_iterator())]


def _cat(parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@pytest.mark.parametrize("layout", [
    [[(0, 4)], [(4, 8)]],  # 2 processes, one stream each
    [[(0, 2)], [(2, 4)], [(4, 6)], [(6, 8)]],  # 4 processes: 2 share each stream
    [[(0, 1), (5, 8)], [(1, 5)]],  # rows that straddle streams, not in one range
])
def test_global_batches_do_not_depend_on_the_process_layout(shards, layout):
    # Streams of 37+29 and 41+45 examples, 4 per batch from each: 20 batches cross an
    # epoch boundary of both.
    whole = _take(shards, 20, examples=0, streams=2, batch=8, rows=[(0, 8)])
    per_process = [_take(shards, 20, examples=0, streams=2, batch=8, rows=rows)
                   for rows in layout]
    for k, batch in enumerate(whole):
        order = np.concatenate([np.arange(lo, hi) for rows in layout for lo, hi in rows])
        joined = _cat([p[k] for p in per_process])
        for key in batch:
            np.testing.assert_array_equal(joined[key], batch[key][order], err_msg=key)


def _stream_rows(batches, v, m):
    """The examples (all fields) of stream ``v`` in ``batches`` of ``m`` rows per stream."""
    return _cat([{k: x[v * m:(v + 1) * m] for k, x in b.items()} for b in batches])


def _unmasked(b):
    ids = b["input_ids"].copy()
    w = b["masked_weights"] > 0
    rows = np.broadcast_to(np.arange(ids.shape[0])[:, None], w.shape)
    ids[rows[w], b["masked_positions"][w]] = b["masked_ids"][w]
    return {"input_ids": ids, **{k: b[k] for k in ("attention_mask", "token_type_ids",
                                                    "relation", "example_weight")}}


def test_resume_with_another_batch_size_continues_at_the_same_example(shards):
    """Row 5: 3 batches of 8, then batches of 16 from example 24: each stream continues
    at its example 12 (the examples; their masks are drawn per block of the new size)."""
    straight = _take(shards, 12, examples=0, streams=2, batch=8, rows=[(0, 8)])
    resumed = _take(shards, 3, examples=24, streams=2, batch=16, rows=[(0, 16)])
    for v in range(2):
        want = _stream_rows([_unmasked(b) for b in straight], v, 4)
        got = _stream_rows([_unmasked(b) for b in resumed], v, 8)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key][12:36], err_msg=key)


def test_one_stream_per_process_is_the_per_process_stream(shards):
    """``input_pipeline.batches`` (process i of P reads files[i::P]) is the stream with
    V = P; its resume at batch k is example k * B of it."""
    kw = dict(split="train", batch_size=4, seq_length=MAX_LEN, masking=MASKING, seed=3)
    for i in range(2):
        old = [b for _, b in zip(range(5), input_pipeline.batches(
            shards, process_index=i, process_count=2, start_batch=2, **kw))]
        new = _take(shards, 5, examples=16, streams=2, batch=8, rows=[(4 * i, 4 * i + 4)])
        for a, b in zip(old, new):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])


def _config(**kw):
    return types.SimpleNamespace(global_batch_size=kw.pop("global_batch_size", 8),
                                 get=lambda k, d=None: kw.get(k, d))


def test_position_from_a_checkpoint():
    meta = {"step": 4, "data_examples": 32, "data_streams": 2, "data_batch_size": 8}
    pos = data_position.start_position(_config(global_batch_size=16), meta, 4)
    assert (pos.examples, pos.streams, pos.batch_size) == (32, 2, 16)
    assert pos.at(6).meta() == {"data_examples": 64, "data_streams": 2,
                                "data_batch_size": 16, "data_position": 6}
    old = {"step": 4, "data_position": 4, "process_count": 2}  # before examples were saved
    assert data_position.start_position(_config(), old, 4).examples == 32
    with pytest.raises(ConfigError, match="global_batch_size 6 does not divide over the "
                                          "4 data streams"):
        data_position.start_position(_config(global_batch_size=6),
                                     {**meta, "data_streams": 4}, 4)
    with pytest.raises(ConfigError, match="data_streams 4: this workdir's data stream "
                                          "was fixed at 2 streams"):
        data_position.start_position(_config(data_streams=4), meta, 4)


# --- the trainer, end to end (in-process, rc and the one error line) -----------------

def _run(data_dir, workdir, capsys, **kw):
    c = small_config(data_dir=str(data_dir), seq_length=MAX_LEN, eval_at_end=False,
                     checkpoint_every_steps=2, async_checkpointing=False, **kw)
    c.model.vocab_size = 0
    c.masking.max_predictions = 8
    rc = main.run(c, str(workdir))
    return rc, capsys.readouterr().err


def _meta(workdir, step):
    with open(os.path.join(workdir, "checkpoints", str(step), "meta", "metadata")) as f:
        return json.load(f)


def test_batch_size_change_resumes_at_the_example_or_is_refused(shards, tmp_path, capsys):
    """Row 5 through the trainer: the position saved is in examples; a batch size that
    the streams divide continues there, another one is refused with one line."""
    wd = tmp_path / "wd"
    rc, _ = _run(shards, wd, capsys, num_train_steps=2, global_batch_size=8, data_streams=4)
    assert rc == 0 and _meta(wd, 2)["data_examples"] == 16
    rc, err = _run(shards, wd, capsys, num_train_steps=4, global_batch_size=4)
    assert rc == 0, err[-3000:]
    assert "global_batch_size 8 -> 4: the data stream continues at example 16" in err
    meta = _meta(wd, 4)
    assert (meta["data_examples"], meta["data_streams"]) == (16 + 2 * 4, 4)
    rc, err = _run(shards, wd, capsys, num_train_steps=6, global_batch_size=6)
    line = one_error_line(err)
    assert rc == 2 and "global_batch_size 6 does not divide over the 4 data streams" in line
    assert sorted(os.listdir(wd / "checkpoints")) == ["2", "4"]


def _edit_manifest(data_dir, edit):
    path = os.path.join(data_dir, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    edit(manifest)
    with open(path, "w") as f:
        json.dump(manifest, f)


def test_edited_train_count_is_refused_at_start_up(shards, tmp_path, capsys):
    """Row 6: a per-file count edited, the sizes (``bytes``) unchanged."""
    data = tmp_path / "data"
    shutil.copytree(shards, data)

    def edit(m):
        for e in m["files"]["train"]:
            e["bytes"] = os.path.getsize(data / e["name"])
        m["files"]["train"][1]["num_examples"] += 3

    _edit_manifest(data, edit)
    rc, err = _run(data, tmp_path / "wd", capsys, num_train_steps=1)
    line = one_error_line(err)
    shard = data / "train-00001-of-00004.tfrecord"
    assert rc == 2 and f"{shard}: 41 records where the manifest says 44" in line
    assert not (tmp_path / "wd" / "checkpoints").exists()


@pytest.mark.parametrize("name", ["../elsewhere/train-00000-of-00004.tfrecord",
                                  "/tmp/train-00000-of-00004.tfrecord",
                                  "sub/../../train-00000-of-00004.tfrecord"])
def test_shard_names_outside_the_data_dir_are_refused(shards, tmp_path, capsys, name):
    """Row 7: a manifest name with ``..`` or an absolute path."""
    data = tmp_path / "data"
    data.mkdir()
    data.joinpath("manifest.json").write_bytes(
        open(os.path.join(shards, "manifest.json"), "rb").read())
    _edit_manifest(data, lambda m: m["files"]["train"][0].update(name=name))
    rc, err = _run(data, tmp_path / "wd", capsys, num_train_steps=1)
    line = one_error_line(err)
    assert rc == 2 and f"file {name!r} of split 'train' is not inside the data directory" \
        in line
