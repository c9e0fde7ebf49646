"""Small synthetic TFRecord shards and their manifest for the input pipeline tests,
written with the builder's own writer (``linkbert_jax.data.writer``)."""
from __future__ import annotations

import json
import os

import numpy as np

from linkbert_jax.data import features, writer
from linkbert_jax.data import manifests

VOCAB = 1000
SPECIALS = {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
MAX_LEN = 64
TRAIN_COUNTS = (37, 41, 29, 45)
EVAL_COUNTS = (23, 18)


def _pairs(rng, n: int, first: int, records: list):
    """``n`` random pairs in the sampler's tuple form; appends (ids, a_length, relation)."""
    for k in range(first, first + n):
        a = int(rng.integers(1, 30))
        b = int(rng.integers(1, MAX_LEN - 3 - a + 1))
        body = rng.integers(104, VOCAB, size=a + b)
        body[rng.random(a + b) < 0.02] = SPECIALS["unk"]
        rel = int(rng.integers(0, features.NUM_RELATIONS))
        ids = [SPECIALS["cls"], *body[:a], SPECIALS["sep"], *body[a:], SPECIALS["sep"]]
        records.append((tuple(int(x) for x in ids), a, rel))
        yield body[:a], body[a:], rel, k, k + 1, 0, 1


def write_shards(data_dir, counts, *, split_counts=None, seed=0):
    """Writes TFRecord shards + manifest; returns {split: [(ids tuple, a_length, rel)]}."""
    rng = np.random.default_rng(seed)
    split_counts = split_counts or {"train": TRAIN_COUNTS, "eval": EVAL_COUNTS}
    os.makedirs(data_dir, exist_ok=True)
    records, files, k = {}, {}, 0
    for split, cs in split_counts.items():
        records[split], files[split] = [], []
        for i, n in enumerate(cs):
            path = os.path.join(data_dir, writer.shard_name(split, i, len(cs)))
            entry = writer.write_shard(path, _pairs(rng, n, k, records[split]),
                                       SPECIALS["cls"], SPECIALS["sep"])
            files[split].append({"name": entry["name"], "num_examples": n})
            k += n
    manifest = {"format_version": manifests.MANIFEST_VERSION, "max_seq_length": MAX_LEN,
                "vocab_size": VOCAB, "special_ids": SPECIALS, "files": files}
    with open(os.path.join(data_dir, manifests.MANIFEST_NAME), "w") as f:
        json.dump(manifest, f)
    return records
