"""Shard writing (temporary name, renamed when complete) and the manifest."""
from __future__ import annotations

import json
import os

import numpy as np

from linkbert_jax.data import files, records, sampler
from linkbert_jax.data.features import NUM_RELATIONS, SPLITS
from linkbert_jax.data.manifests import DOCUMENTS_NAME
from linkbert_jax.data.records import serialize_example



def shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def encode_pair(pair, cls_id: int, sep_id: int) -> tuple[bytes, int]:
    """One framed TFRecord ``[CLS] A [SEP] B [SEP]`` and its length in tokens."""
    ta, tb, rel, da, db, sa, sb = pair
    ids = [cls_id] + ta.tolist() + [sep_id] + tb.tolist() + [sep_id]
    return records.frame(serialize_example(ids, len(ta), rel, da, db, sa, sb)), len(ids)


class ShardStats:
    """Examples, tokens and relation counts of one shard (its manifest entry)."""

    def __init__(self):
        self.num_examples, self.num_tokens, self.relations = 0, 0, [0] * NUM_RELATIONS
        self.num_bytes = 0

    def add(self, relation: int, num_tokens: int, num_bytes: int) -> None:
        """One example of ``num_tokens`` tokens, ``num_bytes`` framed bytes in the file."""
        self.num_examples += 1
        self.num_tokens += num_tokens
        self.relations[relation] += 1
        self.num_bytes += num_bytes

    def as_dict(self, name: str) -> dict:
        """The shard's manifest entry (``bytes``: the file's size, checked at read time)."""
        return {"name": name, "num_examples": self.num_examples,
                "num_tokens": self.num_tokens, "relations": self.relations,
                "bytes": self.num_bytes}


def write_shard(path: str, pairs, cls_id: int, sep_id: int) -> dict:
    """Writes ``pairs`` (from ``sampler.materialize``) to ``path`` via ``path.tmp``."""
    stats = ShardStats()
    with files.atomic_write(path, "wb", fsync=True) as f:
        buf = []
        for pair in pairs:
            data, n = encode_pair(pair, cls_id, sep_id)
            buf.append(data)
            stats.add(pair[2], n, len(data))
            if len(buf) >= 256:
                f.write(b"".join(buf))
                buf = []
        f.write(b"".join(buf))
    return stats.as_dict(os.path.basename(path))


def document_line(index: int, doc_id: str, title: str, split: int, num_segments: int,
                  links: list[int]) -> str:
    """One line of ``documents.jsonl``."""
    return json.dumps({"index": index, "id": doc_id, "title": title, "split": SPLITS[split],
                       "num_segments": num_segments, "links": links}, ensure_ascii=False) + "\n"




def write_documents(out_dir: str, work_dir: str, corpus: sampler.Corpus) -> None:
    """``documents.jsonl`` of the local build, from its work dir's ``meta.jsonl``."""
    nseg = np.diff(corpus.doc_seg_start)
    path = os.path.join(out_dir, DOCUMENTS_NAME)
    with open(os.path.join(work_dir, "meta.jsonl"), encoding="utf-8") as meta, \
            files.atomic_write(path, encoding="utf-8") as f:
        for i, line in enumerate(meta):
            doc_id, title = json.loads(line)
            links = corpus.link_targets[corpus.link_offsets[i]:corpus.link_offsets[i + 1]]
            f.write(document_line(i, doc_id, title, int(corpus.doc_split[i]),
                                  int(nseg[i]), links.tolist()))


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
