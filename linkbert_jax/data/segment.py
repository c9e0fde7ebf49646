"""Text -> token-id segments of at most ``S`` tokens, cut at sentence boundaries.

Each document is tokenized whole (one ``encode_batch`` input, as fast as the bare
tokenizer); sentence starts found in the text are mapped to token positions with
``Encoding.char_to_token``, and whole sentences are packed greedily into segments.
"""
from __future__ import annotations

import re

import numpy as np

# A sentence starts after ".!?" (+ closing quotes/brackets) and whitespace before a
# capital/digit, or after a line break.
_RE_SENTENCE_START = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*")


def sentence_starts(text: str) -> list[int]:
    """Character offsets where sentences (after the first) begin."""
    return [m.end() for m in _RE_SENTENCE_START.finditer(text) if m.end() < len(text)]


def pack_lengths(sentence_lengths, max_len: int) -> list[int]:
    """Greedy packing of whole sentences into segments of <= ``max_len`` tokens.

    A sentence longer than ``max_len`` starts a new segment and is cut into pieces.
    Returns segment lengths (summing to the total number of tokens).
    """
    segs: list[int] = []
    cur = 0
    for n in sentence_lengths:
        if n <= 0:
            continue
        if cur + n <= max_len:
            cur += n
            continue
        if cur:
            segs.append(cur)
            cur = 0
        while n > max_len:
            segs.append(max_len)
            n -= max_len
        cur = n
    if cur:
        segs.append(cur)
    return segs


def _token_at(enc, pos: int, limit: int) -> int | None:
    for p in range(pos, min(pos + 8, limit)):  # skip chars the normalizer dropped
        t = enc.char_to_token(p)
        if t is not None:
            return t
    return None


def sentence_token_lengths(text: str, enc) -> list[int]:
    n = len(enc.ids)
    cuts = [0]
    for pos in sentence_starts(text):
        t = _token_at(enc, pos, len(text))
        if t is not None and cuts[-1] < t < n:
            cuts.append(t)
    cuts.append(n)
    return [b - a for a, b in zip(cuts, cuts[1:])]


def tokenize_documents(tokenizer, texts: list[str], max_len: int):
    """Per text: (token ids int32, segment lengths int32), one ``encode_batch`` for all."""
    encs = tokenizer.encode_batch(texts, add_special_tokens=False) if texts else []
    out = []
    for text, enc in zip(texts, encs):
        toks = np.asarray(enc.ids, dtype=np.int32)
        lens = pack_lengths(sentence_token_lengths(text, enc), max_len) if len(toks) else []
        out.append((toks, np.asarray(lens, dtype=np.int32)))
    return out
