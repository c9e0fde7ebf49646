"""Small synthetic TFRecord shards and their manifest, written with TensorFlow (an
independent writer: the builder's own writer is tested against the same reader)."""
from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from linkbert_jax.data import features

VOCAB = 1000
SPECIALS = {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
MAX_LEN = 64
TRAIN_COUNTS = (37, 41, 29, 45)
EVAL_COUNTS = (23, 18)


def _example(ids, a_length, relation, k):
    i64 = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
    feats = {"input_ids": i64(ids), "a_length": i64([a_length]), "relation": i64([relation]),
             "doc_a": i64([k]), "doc_b": i64([k + 1]), "seg_a": i64([0]), "seg_b": i64([1])}
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def write_shards(data_dir, counts, *, split_counts=None, seed=0):
    """Writes TFRecord shards + manifest; returns {split: [(ids tuple, a_length, rel)]}."""
    rng = np.random.default_rng(seed)
    split_counts = split_counts or {"train": TRAIN_COUNTS, "eval": EVAL_COUNTS}
    os.makedirs(data_dir, exist_ok=True)
    records, files, k = {}, {}, 0
    for split, cs in split_counts.items():
        records[split], files[split] = [], []
        for i, n in enumerate(cs):
            name = f"{split}-{i:05d}-of-{len(cs):05d}.tfrecord"
            with tf.io.TFRecordWriter(os.path.join(data_dir, name)) as w:
                for _ in range(n):
                    a = int(rng.integers(1, 30))
                    b = int(rng.integers(1, MAX_LEN - 3 - a + 1))
                    body = rng.integers(104, VOCAB, size=a + b)
                    body[rng.random(a + b) < 0.02] = SPECIALS["unk"]
                    ids = [101, *body[:a], 102, *body[a:], 102]
                    rel = int(rng.integers(0, 3))
                    w.write(_example(ids, a, rel, k))
                    records[split].append((tuple(int(x) for x in ids), a, rel))
                    k += 1
            files[split].append({"name": name, "num_examples": n})
    manifest = {"max_seq_length": MAX_LEN, "vocab_size": VOCAB,
                "special_ids": {f"{k}_id": v for k, v in SPECIALS.items()}, "files": files}
    with open(os.path.join(data_dir, features.MANIFEST_NAME), "w") as f:
        json.dump(manifest, f)
    return records
