"""Pass 1: documents -> tokenized segments in an on-disk store, plus the document index.

Wikitext conversion and tokenization run in worker processes over fixed-size chunks whose
results are consumed in submission order, so the store is identical for any worker count.
Memory holds the id/title maps and the segment index, never the text of the corpus.
"""
from __future__ import annotations

import collections
import json
import os
from array import array
from dataclasses import dataclass, field

import numpy as np

from linkbert_jax.data import graph, segment, tfidf, tokenizer as tokenizer_lib, wikipedia

CHUNK_DOCS = 64
TERMS_FILE = "terms.jsonl"
# Warnings shared with the Beam builder (beam_docs.py): (counter, message % (source, id)).
NO_TEXT = ("empty_documents", "%s: document %r has no text, skipped")
NO_TOKENS = ("empty_documents", "%s: document %r has no tokens, skipped")
DUPLICATE = ("duplicate_ids", "%s: duplicate id %r, skipped")
_STATE: dict = {}


def init_worker(tokenizer_dir: str, segment_length: int, parser: str, extra_prefixes,
                terms: bool = False) -> None:
    _STATE.update(tok=tokenizer_lib.load_fast(tokenizer_dir), max_len=segment_length,
                  parser=parser, prefixes=frozenset(extra_prefixes), terms=terms)


def to_plain(text: str, is_wikitext: bool, parser: str, prefixes) -> tuple[str, list | None]:
    if not is_wikitext:
        return text, None
    fn = wikipedia.wikitext_to_text_mwparser if parser == "mwparserfromhell" \
        else wikipedia.wikitext_to_text
    return fn(text, prefixes)


def process_texts(tok, max_len: int, parser: str, prefixes, items: list[tuple[str, bool]],
                  terms: bool = False):
    """[(text, is_wikitext)] -> [(links or None, token ids, segment lengths, chars, term
    counts of the plain text (tfidf.term_counts) or None)]."""
    plain = [to_plain(t, w, parser, prefixes) for t, w in items]
    segs = segment.tokenize_documents(tok, [p for p, _ in plain], max_len)
    return [(links, toks, lens, len(text), tfidf.term_counts(text) if terms else None)
            for (text, links), (toks, lens) in zip(plain, segs)]


def process_chunk(items: list[tuple[str, bool]]):
    """Worker: ``process_texts`` with the tokenizer and options of ``init_worker``."""
    st = _STATE
    return process_texts(st["tok"], st["max_len"], st["parser"], st["prefixes"], items,
                         st["terms"])


@dataclass
class IndexResult:
    num_docs: int = 0
    num_segments: int = 0
    num_tokens: int = 0
    num_chars: int = 0
    ids: dict = field(default_factory=dict)
    titles: dict = field(default_factory=dict)


def _chunks(docs, counters):
    chunk = []
    for doc in docs:
        if not doc.text.strip():
            counters.warn(*NO_TEXT, doc.source, doc.id)
            continue
        chunk.append(doc)
        if len(chunk) == CHUNK_DOCS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ordered_results(chunks, pool, window: int):
    """(chunk, result) in submission order, at most ``window`` chunks in flight."""
    if pool is None:
        for chunk in chunks:
            yield chunk, process_chunk([(d.text, d.wikitext) for d in chunk])
        return
    pending = collections.deque()
    for chunk in chunks:
        pending.append((chunk, pool.apply_async(process_chunk,
                                                ([(d.text, d.wikitext) for d in chunk],))))
        for d in chunk:
            d.text = ""  # the worker has it now
        while len(pending) >= window:
            c, r = pending.popleft()
            yield c, r.get()
    while pending:
        c, r = pending.popleft()
        yield c, r.get()


def build_index(docs, work_dir: str, counters, pool=None, window: int = 8,
                progress=None) -> IndexResult:
    """Consumes ``docs`` (RawDoc); writes tokens.i32, seg_offsets/doc_seg_start .npy,
    links.jsonl (raw names per document), meta.jsonl (id, title per document) and, when
    the workers count terms, terms.jsonl (term counts per document)."""
    res = IndexResult()
    seg_lens = array("q", [0])
    doc_nseg = array("q", [0])
    with open(os.path.join(work_dir, "tokens.i32"), "wb") as tok_f, \
            open(os.path.join(work_dir, "links.jsonl"), "w", encoding="utf-8") as link_f, \
            open(os.path.join(work_dir, "meta.jsonl"), "w", encoding="utf-8") as meta_f, \
            open(os.path.join(work_dir, TERMS_FILE), "w", encoding="utf-8") as terms_f:
        for chunk, results in _ordered_results(_chunks(docs, counters), pool, window):
            for doc, (links, toks, lens, nchars, terms) in zip(chunk, results):
                if progress is not None:
                    progress.update(1)
                if len(toks) == 0:
                    counters.warn(*NO_TOKENS, doc.source, doc.id)
                    continue
                key_title = wikipedia.normalize_title(doc.title) if doc.title else ""
                if doc.id in res.ids or (doc.wikitext and key_title in res.titles):
                    counters.warn(*DUPLICATE, doc.source, doc.id)
                    # The first record of an id wins even when it is itself dropped as a
                    # duplicate title (the Beam builder's two-stage dedup, beam_docs.py).
                    res.ids.setdefault(doc.id, graph.NOT_A_DOCUMENT)
                    continue
                idx = res.num_docs
                res.ids[doc.id] = idx
                if key_title and key_title not in res.titles:
                    res.titles[key_title] = idx
                tok_f.write(toks.tobytes())
                seg_lens.extend(lens.tolist())
                doc_nseg.append(len(lens))
                link_f.write(json.dumps(doc.links if links is None else links,
                                        ensure_ascii=False) + "\n")
                meta_f.write(json.dumps([doc.id, doc.title], ensure_ascii=False) + "\n")
                if terms is not None:
                    terms_f.write(json.dumps(terms, ensure_ascii=False) + "\n")
                res.num_docs += 1
                res.num_segments += len(lens)
                res.num_tokens += len(toks)
                res.num_chars += nchars
    np.save(os.path.join(work_dir, "seg_offsets.npy"), np.cumsum(np.frombuffer(seg_lens, np.int64)))
    np.save(os.path.join(work_dir, "doc_seg_start.npy"),
            np.cumsum(np.frombuffer(doc_nseg, np.int64)))
    return res
