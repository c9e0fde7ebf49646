"""Tests of linkbert_jax.pretrain.input_pipeline on small synthetic shards written here."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from helpers.shards import MAX_LEN, SPECIALS, write_shards
from linkbert_jax.pretrain import input_pipeline as ip
from linkbert_jax.data import features
from linkbert_jax.data import manifests

MASKING = ip.MaskingConfig(max_predictions=12)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data"))
    return d, write_shards(d, None)


def _take(data_dir, n, **kw):
    kw = {"split": "train", "batch_size": 32, "seq_length": MAX_LEN, "masking": MASKING,
          "seed": 7, **kw}
    out = []
    for i, b in enumerate(ip.batches(data_dir, **kw)):
        if i == n:
            break
        out.append(b)
    return out


def _unmask(b):
    ids = b["input_ids"].copy()
    rows = np.arange(ids.shape[0])[:, None]
    w = b["masked_weights"] > 0
    ids[np.broadcast_to(rows, w.shape)[w], b["masked_positions"][w]] = b["masked_ids"][w]
    return ids


def _originals(b):
    """Original id tuples of the real rows of a batch."""
    ids, lens = _unmask(b), b["attention_mask"].sum(1)
    return [tuple(ids[r, :lens[r]].tolist()) for r in range(ids.shape[0])
            if b["example_weight"][r] > 0]


def test_shapes_dtypes(data):
    d, _ = data
    (b,) = _take(d, 1, seq_length=80)
    P = MASKING.max_predictions
    want = {"input_ids": ((32, 80), np.int32), "attention_mask": ((32, 80), np.int32),
            "token_type_ids": ((32, 80), np.int32), "masked_positions": ((32, P), np.int32),
            "masked_ids": ((32, P), np.int32), "masked_weights": ((32, P), np.float32),
            "relation": ((32,), np.int32), "example_weight": ((32,), np.float32)}
    assert set(b) == set(want)
    for k, (shape, dtype) in want.items():
        assert b[k].shape == shape and b[k].dtype == dtype, k
    assert (b["example_weight"] == 1).all()


def test_token_types_attention_and_content(data):
    d, records = data
    table = {ids: (a, rel) for ids, a, rel in records["train"]}
    for b in _take(d, 6):
        for r, ids in enumerate(_originals(b)):
            a, rel = table[ids]  # every row is a written record, unmasked exactly
            n = len(ids)
            assert b["attention_mask"][r].tolist() == [1] * n + [0] * (MAX_LEN - n)
            assert b["token_type_ids"][r].tolist() == (
                features.token_type_ids(n, a) + [0] * (MAX_LEN - n))
            assert b["relation"][r] == rel
            assert (b["input_ids"][r, n:] == SPECIALS["pad"]).all()


def test_masking_statistics(data):
    d, _ = data
    specials = set(SPECIALS.values())
    n_pred = n_mask = n_rand = n_keep = 0
    for b in _take(d, 60):
        orig = _unmask(b)
        w = b["masked_weights"] > 0
        for r in range(orig.shape[0]):
            n = b["attention_mask"][r].sum()
            cand = [t not in specials for t in orig[r, :n]]
            want = min(MASKING.max_predictions, max(1, int(np.floor(sum(cand) * .15 + .5))))
            pos = b["masked_positions"][r][w[r]]
            assert len(pos) == want
            assert (np.diff(pos) > 0).all() and (pos < n).all()
            assert all(cand[p] for p in pos)  # never a special or pad
            assert (b["masked_ids"][r][w[r]] == orig[r, pos]).all()
            assert (b["masked_positions"][r][~w[r]] == 0).all()
            unmasked = np.ones(MAX_LEN, bool)
            unmasked[pos] = False
            assert (b["input_ids"][r][unmasked] == orig[r][unmasked]).all()
            new = b["input_ids"][r, pos]
            n_pred += len(pos)
            n_mask += (new == SPECIALS["mask"]).sum()
            changed = (new != SPECIALS["mask"]) & (new != orig[r, pos])
            assert not any(int(t) in specials for t in new[changed])
            n_rand += changed.sum()
            n_keep += (new == orig[r, pos]).sum()
    assert n_pred > 10_000
    assert abs(n_mask / n_pred - 0.8) < 0.02
    # Random replacements equal to the original (p ~ 1/900) count as kept.
    assert abs(n_rand / n_pred - 0.1) < 0.015
    assert abs(n_keep / n_pred - 0.1) < 0.015


def test_process_split_disjoint_and_covering(data):
    d, records = data
    manifest = ip.read_manifest(d)
    for pc in (1, 2, 3, 4):
        parts = [ip.process_files(d, manifest, "train", i, pc) for i in range(pc)]
        names = [p for part in parts for p, _ in part]
        assert sorted(names) == sorted(os.path.join(d, f["name"])
                                       for f in manifest["files"]["train"])
        assert parts[0][0][0].endswith("train-00000-of-00004.tfrecord")
    with pytest.raises(ValueError, match="fewer than the 5 processes"):
        ip.process_files(d, manifest, "train", 0, 5)
    # The streams of 2 processes, one pass each, are disjoint and cover the split.
    seen = []
    for i in range(2):
        for b in _take(d, 100, process_index=i, process_count=2, repeat=False):
            seen += _originals(b)
    assert sorted(seen) == sorted(ids for ids, _, _ in records["train"])


@pytest.mark.parametrize("process_count", [1, 2])
def test_eval_exact_once(data, process_count):
    d, records = data
    seen, n_batches = [], 0
    for i in range(process_count):
        for b in _take(d, 100, split="eval", batch_size=16, repeat=False, shuffle=False,
                       process_index=i, process_count=process_count):
            n_batches += 1
            pad = b["example_weight"] == 0
            assert (b["masked_weights"][pad] == 0).all()
            assert (b["attention_mask"][pad] == 0).all()
            seen += _originals(b)
    assert sorted(seen) == sorted(ids for ids, _, _ in records["eval"])
    assert n_batches == (3 if process_count == 1 else 2 + 2)


def test_resume_exact(data):
    d, _ = data
    full = _take(d, 12)  # 152 examples / 32: epoch boundaries inside batches 4 and 9
    assert len(full) == 12
    for start in (5, 3, 10):
        resumed = _take(d, 12 - start, start_batch=start)
        for a, b in zip(full[start:], resumed, strict=True):
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # Small shuffle blocks: resume skips whole blocks before shuffling.
    full = _take(d, 12, shuffle_buffer=50)
    for start in (5, 3):
        resumed = _take(d, 12 - start, start_batch=start, shuffle_buffer=50)
        for a, b in zip(full[start:], resumed, strict=True):
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # Epochs differ (fresh file order, shuffle and masks), the stream is seeded.
    assert not np.array_equal(full[0]["input_ids"], full[5]["input_ids"])
    other = _take(d, 1, seed=8)
    assert not np.array_equal(full[0]["input_ids"], other[0]["input_ids"])


def test_stream_ignores_tf_global_seed(data):
    d, _ = data
    a = _take(d, 1)[0]
    tf.random.set_seed(1234)
    try:
        b = _take(d, 1)[0]
    finally:
        tf.random.set_seed(None)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_one_pass_same_batch_count_on_every_process(data):
    d, records = data
    # Process examples with 3 processes: 37 + 45, 41, 29 -> 6, 3, 2 batches of 16.
    seen = []
    for i in range(3):
        for start in (0, 4):
            got = _take(d, 100, batch_size=16, repeat=False, process_index=i,
                        process_count=3, start_batch=start)
            assert len(got) == 6 - start
            if start == 0:
                seen += [ids for b in got for ids in _originals(b)]
    assert sorted(seen) == sorted(ids for ids, _, _ in records["train"])


def test_resume_without_repeat(data):
    d, _ = data
    full = _take(d, 100, split="eval", batch_size=8, repeat=False)
    resumed = _take(d, 100, split="eval", batch_size=8, repeat=False, start_batch=2)
    assert len(resumed) == len(full) - 2
    for a, b in zip(full[2:], resumed):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_shard_named(data, tmp_path, damage):
    d, _ = data
    bad_dir = str(tmp_path / "bad")
    shutil.copytree(d, bad_dir)
    path = os.path.join(bad_dir, "train-00002-of-00004.tfrecord")
    raw = bytearray(open(path, "rb").read())
    if damage == "truncate":
        raw = raw[:-7]
    else:
        for i in range(len(raw) // 2, len(raw) // 2 + 4):
            raw[i] ^= 0xFF
    open(path, "wb").write(bytes(raw))
    with pytest.raises(ip.CorruptShardError, match="train-00002-of-00004.tfrecord"):
        _take(bad_dir, 100, repeat=False)
    with pytest.raises(ip.CorruptShardError, match="train-00002-of-00004.tfrecord"):
        _take(bad_dir, 20)


def test_short_shard_detected_in_one_pass(data, tmp_path):
    d, _ = data
    bad_dir = str(tmp_path / "short")
    shutil.copytree(d, bad_dir)
    m = json.load(open(os.path.join(bad_dir, manifests.MANIFEST_NAME)))
    m["files"]["eval"][1]["num_examples"] += 1
    json.dump(m, open(os.path.join(bad_dir, manifests.MANIFEST_NAME), "w"))
    with pytest.raises(ip.CorruptShardError, match="promises 42"):
        _take(bad_dir, 100, split="eval", repeat=False)


def test_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "manifest.json")):
        ip.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt manifest .*manifest.json"):
        ip.read_manifest(tmp_path)


def test_special_id_key_spellings(tmp_path):
    """One spelling (the builder's); older manifests load through manifests.upgrade_manifest."""
    base = {"max_seq_length": 8, "vocab_size": 10, "files": {}}
    want = {"cls": 1, "sep": 2, "pad": 0, "mask": 3}
    current = {**base, "format_version": manifests.MANIFEST_VERSION, "special_ids": want}
    assert manifests.upgrade_manifest(current) is current
    assert ip.special_ids(current) == want
    for m in ({"special_ids": {"cls": 1, "sep": 2, "pad": 0, "mask": 3}},
              {"special_token_ids": {"[CLS]": 1, "[SEP]": 2, "[PAD]": 0, "[MASK]": 3}},
              {"special_tokens": {"cls_token_id": 1, "sep_token_id": 2, "pad_token_id": 0,
                                  "mask_token_id": 3}},
              {"cls_id": 1, "sep_id": 2, "pad_id": 0, "mask_id": 3}):
        (tmp_path / manifests.MANIFEST_NAME).write_text(json.dumps({**base, **m}))
        upgraded = ip.read_manifest(tmp_path)
        assert upgraded["format_version"] == manifests.MANIFEST_VERSION
        assert ip.special_ids(upgraded) == want
    with pytest.raises(ValueError, match="lacks special ids"):  # only through the upgrade
        ip.special_ids({**base, "format_version": manifests.MANIFEST_VERSION,
                        "special_tokens": {"cls_id": 1, "sep_id": 2, "pad_id": 0, "mask_id": 3}})
    with pytest.raises(ValueError, match="mask"):
        ip.special_ids(manifests.upgrade_manifest(
            {**base, "special_ids": {"cls": 1, "sep": 2, "pad": 0}}))
