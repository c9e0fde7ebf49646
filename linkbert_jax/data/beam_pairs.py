"""Beam builder, part 2: split by document, link weights in each split's pool, documents.

Each document is keyed by its index; joins bring it its split and rank within the split
(``dense_rank``), its out-links, and its out-links into its split's partner pool
(``keyed.pool_of``: training documents for training, every document for eval) weighted by
the targets' in-degree within that pool (``keyed.link_weights``). Document element layout
(``Doc``): ``(index, split, rank, id, title, tokens <i4 bytes, segment lengths <i4 bytes,
chars, out-links, [(target, target rank in the pool, weight)] sorted by target)``, a plain
tuple between steps (``Doc(*element)`` to read it).
"""
from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
import numpy as np

from linkbert_jax.data import keyed, writer
from linkbert_jax.data.beam_docs import count, dense_rank


class Doc(NamedTuple):
    index: int
    split: int
    rank: int
    id: str
    title: str
    tokens: bytes
    lengths: bytes
    chars: int
    links: list
    weighted: list

    def segments(self) -> list[np.ndarray]:
        toks = np.frombuffer(self.tokens, "<i4")
        ends = np.cumsum(np.frombuffer(self.lengths, "<i4"))
        return np.split(toks, ends[:-1]) if len(ends) else []


class SplitStats(beam.CombineFn):
    """(documents, documents below the eval fraction, (smallest split hash, its doc))."""

    def __init__(self, seed: int, eval_fraction: float):
        self.seed, self.eval_fraction = seed, eval_fraction

    def create_accumulator(self):
        return 0, 0, (1 << 64, -1)

    def add_input(self, acc, idx):
        h = int(keyed.split_hash(self.seed, idx))
        e = bool(keyed.is_eval(self.seed, idx, self.eval_fraction))
        return acc[0] + 1, acc[1] + e, min(acc[2], (h, idx))

    def merge_accumulators(self, accs):
        accs = list(accs)
        return (sum(a[0] for a in accs), sum(a[1] for a in accs), min(a[2] for a in accs))

    def extract_output(self, acc):
        return acc


def split_of(idx: int, seed: int, eval_fraction: float, fallback: int) -> int:
    return int(idx == fallback or bool(keyed.is_eval(seed, idx, eval_fraction)))


def _edges(item, seed, eval_fraction, fallback):
    """(target, (source, source split)) for every link."""
    src, targets = item
    s = split_of(src, seed, eval_fraction, fallback)
    for t in targets:
        yield t, (src, s)


def _weights(item, sampling: str):
    """A target's links into its sources' pools: (source, (target, rank in the pool,
    weight from the target's in-degree within that pool))."""
    target, joined = item
    srcs = list(joined["src"])
    if not srcs:
        return
    (split, rank), = joined["rank"]
    indeg = {pool: sum(bool(keyed.in_pool(s, pool)) for _, s in srcs)
             for pool in (keyed.TRAIN, keyed.POOL_ALL)}
    for src, s in srcs:
        pool = keyed.pool_of(s)
        if keyed.in_pool(split, pool):
            w = int(keyed.link_weights(indeg[pool], sampling))
            yield src, (target, keyed.pool_rank(pool, target, rank), w)


def _assemble(item):
    idx, j = item
    (doc_id, title, toks, lens, nchars), = j["content"]
    (split, rank), = j["rank"]
    links = next(iter(j["links"]), [])
    doc = (idx, split, rank, doc_id, title, toks, lens, nchars, links, sorted(j["weighted"]))
    nseg = len(lens) // 4
    count("num_documents")
    count("num_documents_eval", split)
    count("num_segments", nseg)
    count("num_tokens", len(toks) // 4)
    count("num_chars", nchars)
    count("num_links_resolved", len(links))
    return doc


def documents(content, out_links, seed: int, eval_fraction: float,
              sampling: str = "inverse_in_degree"):
    """content (index, (id, title, tokens, lengths, chars)) and out-links -> ``Doc``s."""
    idx = content | "Indices" >> beam.Keys()
    stats = idx | "SplitStats" >> beam.CombineGlobally(SplitStats(seed, eval_fraction))
    fallback = beam.pvalue.AsSingleton(stats | "Fallback" >> beam.Map(
        lambda s: keyed.fallback_eval_doc(s[0], s[1], eval_fraction, s[2][1])))
    ranked = dense_rank(idx | "Split" >> beam.Map(
        lambda i, fb: (split_of(i, seed, eval_fraction, fb), (i,), None), fallback), "SplitRank")
    rank = ranked | "RankByIndex" >> beam.MapTuple(lambda s, r, key, _: (key[0], (s, r)))
    edges = out_links | "Edges" >> beam.FlatMap(_edges, seed, eval_fraction, fallback)
    weighted = ({"src": edges, "rank": rank} | "JoinTargets" >> beam.CoGroupByKey()
                | "Weights" >> beam.FlatMap(_weights, sampling))
    return ({"content": content, "rank": rank, "links": out_links, "weighted": weighted}
            | "JoinDocument" >> beam.CoGroupByKey() | "Assemble" >> beam.Map(_assemble))


def _doc_anchor_counts(element):
    doc = Doc(*element)
    nseg = np.frombuffer(doc.lengths, "<i4")
    c = keyed.anchor_counts([len(nseg)], [len(doc.weighted)])
    return doc.split, (tuple(int(x) for x in c), 1)


class SplitCounts(beam.CombineFn):
    """{split: (anchor counts, documents)} over all documents."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, item):
        split, (c, n) = item
        old_c, old_n = acc.get(split, ((0, 0, 0), 0))
        acc[split] = (tuple(a + b for a, b in zip(old_c, c)), old_n + n)
        return acc

    def merge_accumulators(self, accs):
        out = {}
        for acc in accs:
            for split, v in acc.items():
                self.add_input(out, (split, v))
        return out

    def extract_output(self, acc):
        return acc


def split_counts(docs):
    return (docs | "AnchorCounts" >> beam.Map(_doc_anchor_counts)
            | "SplitCounts" >> beam.CombineGlobally(SplitCounts()))


def document_lines(docs, work_dir: str):
    """documents.jsonl in parts of 2**16 documents (``documents/NNNNNNNN.jsonl``)."""
    def line(element):
        doc = Doc(*element)
        nseg = len(doc.lengths) // 4
        return doc.index >> 16, (doc.index, writer.document_line(
            doc.index, doc.id, doc.title, doc.split, nseg, doc.links))

    def write(item):
        from linkbert_jax.data import files

        block, lines = item
        with files.open_raw(files.join(work_dir, "documents", f"{block:08d}.jsonl"), "wb") as f:
            f.write("".join(text for _, text in sorted(lines)).encode("utf-8"))

    return (docs | "DocumentLine" >> beam.Map(line) | "DocumentBlocks" >> beam.GroupByKey()
            | "WriteDocuments" >> beam.Map(write))
