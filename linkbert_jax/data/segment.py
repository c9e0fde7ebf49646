"""Text -> token-id segments of at most ``S`` tokens, cut at sentence boundaries."""
from __future__ import annotations

import re

import numpy as np

_RE_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Lines, then sentence ends (``.!?`` followed by space and a capital/digit)."""
    out = []
    for line in text.split("\n"):
        line = line.strip()
        if line:
            out.extend(s for s in _RE_SENTENCE.split(line) if s.strip())
    return out


def pack_segments(sentences: list[list[int]], max_len: int) -> list[list[int]]:
    """Greedy packing of whole sentences into segments of <= ``max_len`` tokens.

    A sentence longer than ``max_len`` starts a new segment and is cut into pieces.
    """
    segments: list[list[int]] = []
    cur: list[int] = []
    for ids in sentences:
        if not ids:
            continue
        if len(cur) + len(ids) <= max_len:
            cur.extend(ids)
            continue
        if cur:
            segments.append(cur)
            cur = []
        while len(ids) > max_len:
            segments.append(ids[:max_len])
            ids = ids[max_len:]
        cur = list(ids)
    if cur:
        segments.append(cur)
    return segments


def tokenize_documents(tokenizer, texts: list[str], max_len: int):
    """Per text: (token ids int32, segment lengths int32), one ``encode_batch`` for all."""
    sents = [split_sentences(t) for t in texts]
    flat = [s for ss in sents for s in ss]
    encs = tokenizer.encode_batch(flat, add_special_tokens=False) if flat else []
    out, k = [], 0
    for ss in sents:
        ids = [encs[k + i].ids for i in range(len(ss))]
        k += len(ss)
        segs = pack_segments(ids, max_len)
        lens = np.fromiter((len(s) for s in segs), dtype=np.int32, count=len(segs))
        toks = np.fromiter((t for s in segs for t in s), dtype=np.int32, count=int(lens.sum()))
        out.append((toks, lens))
    return out
