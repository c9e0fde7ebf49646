"""Shard writing (temporary name, renamed when complete) and the manifest."""
from __future__ import annotations

import json
import os

import numpy as np

from linkbert_jax.data import records, sampler
from linkbert_jax.data.features import MANIFEST_NAME, serialize_example

SPLITS = ("train", "eval")
TMP_SUFFIX = ".tmp"


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def write_shard(path: str, pairs, cls_id: int, sep_id: int) -> dict:
    """Writes ``pairs`` (from ``sampler.sample_pairs``) to ``path`` via ``path.tmp``."""
    counts = [0, 0, 0]
    n = tokens = 0
    cls, sep = [cls_id], [sep_id]
    tmp = path + TMP_SUFFIX
    with open(tmp, "wb") as f:
        buf = []
        for ta, tb, rel, da, db, sa, sb in pairs:
            ids = cls + ta.tolist() + sep + tb.tolist() + sep
            buf.append(records.frame(serialize_example(ids, len(ta), rel, da, db, sa, sb)))
            counts[rel] += 1
            n += 1
            tokens += len(ids)
            if len(buf) >= 256:
                f.write(b"".join(buf))
                buf = []
        f.write(b"".join(buf))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return {"name": os.path.basename(path), "num_examples": n, "num_tokens": tokens,
            "relations": counts}


def write_json_atomic(path: str, obj) -> None:
    tmp = path + TMP_SUFFIX
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def load_manifest(output_dir: str) -> dict | None:
    path = os.path.join(output_dir, MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def open_corpus(work_dir: str) -> sampler.Corpus:
    """The segment index saved by the build (memory-mapped)."""
    def load(name):
        return np.load(os.path.join(work_dir, name + ".npy"), mmap_mode="r")

    tokens_path = os.path.join(work_dir, "tokens.i32")
    size = os.path.getsize(tokens_path)
    tokens = np.memmap(tokens_path, dtype=np.int32, mode="r") if size else np.zeros(0, np.int32)
    return sampler.Corpus(tokens=tokens, seg_offsets=load("seg_offsets"),
                          doc_seg_start=load("doc_seg_start"),
                          link_offsets=load("link_offsets"), link_targets=load("link_targets"),
                          doc_split=load("doc_split"))
