"""Beam builder, part 1: input files -> documents with indices -> resolved link graph.

The same rules as the local builder (readers.py, index.py, graph.py), as joins:

* each input file is read whole by one worker (its records keep their position
  ``(file index, record number)``, which orders documents exactly as the local builder);
* empty documents are dropped, then duplicates: the first record of an id wins, then, for
  Wikipedia, the first of those with a title (the local builder's rule, index.py);
* document indices are the dense rank of the kept documents by position;
* a link names a document by id, else by normalised title, following up to 5 redirects
  (graph.LinkResolver): one join on ids, one on an "effective title" map (titles plus
  redirect titles resolved in 5 join rounds over the redirects, never over the links).

No step holds more than one file, one id, one title or one rank block (2**16 entries).
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from linkbert_jax.data import graph, index, readers
from linkbert_jax.data import tokenizer as tokenizer_lib
from linkbert_jax.data.wikipedia import normalize_title

NAMESPACE = "linkbert"
RANK_BLOCK_BITS = 16


def count(name: str, n: int = 1) -> None:
    if n:
        Metrics.counter(NAMESPACE, name).inc(n)


class CountingDoFn(beam.DoFn):
    """A DoFn whose ``readers.Counters`` (and warnings) end up as Beam counters."""

    def setup(self):
        self.counters = readers.Counters()
        self._flushed = self.counters.as_dict()

    def finish_bundle(self):
        now = self.counters.as_dict()
        for k, v in now.items():
            count(k, v - self._flushed[k])
        self._flushed = now


class _RedirectSink(dict):
    """Stands in for the local builder's redirect dict: records (title, target) in order."""

    def __init__(self):
        super().__init__()
        self.pending = []

    def __setitem__(self, title, target):
        self.pending.append((title, target))


class ReadFile(CountingDoFn):
    """(file index, path) -> documents keyed by position; redirects as a tagged output."""

    def __init__(self, fmt: str, fields: readers.FieldMap):
        self.fmt, self.fields = fmt, fields

    def process(self, item):
        file_idx, path = item
        sink, seq = _RedirectSink(), 0
        for n, doc in enumerate(readers.read_file(path, self.fmt, self.fields, self.counters,
                                                  sink)):
            for title, target in sink.pending:
                yield beam.pvalue.TaggedOutput("redirects", (title, ((file_idx, seq), target)))
                seq += 1
            sink.pending.clear()
            yield ((file_idx, n), doc.id, doc.title, doc.text, doc.links, doc.source,
                   doc.wikitext)
        for title, target in sink.pending:
            yield beam.pvalue.TaggedOutput("redirects", (title, ((file_idx, seq), target)))
            seq += 1


class Tokenize(CountingDoFn):
    """Batches of read documents -> metadata keyed by id, and the payload keyed by position."""

    def __init__(self, tokenizer_json: str, segment_length: int, parser: str,
                 terms: bool = False):
        self.tokenizer_json, self.segment_length, self.parser = \
            tokenizer_json, segment_length, parser
        self.terms = terms

    def setup(self):
        super().setup()
        self.tok = tokenizer_lib.from_json(self.tokenizer_json)

    def process(self, batch):
        docs = []
        for d in batch:
            if d[3].strip():
                docs.append(d)
            else:
                self.counters.warn(*index.NO_TEXT, d[5], d[1])
        results = index.process_texts(self.tok, self.segment_length, self.parser, (),
                                      [(d[3], d[6]) for d in docs], self.terms)
        for (pos, doc_id, title, _, names, source, wikitext), res in zip(docs, results):
            links, toks, lens, nchars, terms = res
            if len(toks) == 0:
                self.counters.warn(*index.NO_TOKENS, source, doc_id)
                continue
            key_title = normalize_title(title) if title else ""
            yield beam.pvalue.TaggedOutput("payload", (pos, (
                doc_id, title, names if links is None else links, toks.tobytes(),
                lens.astype("<i4").tobytes(), nchars)))
            if terms is not None:
                yield beam.pvalue.TaggedOutput("terms", (pos, terms))
            yield doc_id, (pos, key_title, wikitext, source)


class FirstById(CountingDoFn):
    def process(self, item):
        doc_id, group = item
        first, *rest = sorted(group)
        for _, _, _, source in rest:
            self.counters.warn(*index.DUPLICATE, source, doc_id)
        pos, key_title, wikitext, source = first
        out = (key_title, (pos, doc_id, wikitext, source))
        yield out if key_title else beam.pvalue.TaggedOutput("untitled", out)


class FirstByTitle(CountingDoFn):
    """Id survivors sharing a title: the first names the title; Wikipedia keeps only it."""

    def process(self, item):
        key_title, group = item
        group = sorted(group)
        for i, (pos, doc_id, wikitext, source) in enumerate(group):
            if i and wikitext:
                self.counters.warn(*index.DUPLICATE, source, doc_id)
                continue
            yield (0, pos, (doc_id, key_title if i == 0 else ""))


def _rank_block(item):
    group, sortkey, _ = item
    return (group, sortkey[:-1] + (sortkey[-1] >> RANK_BLOCK_BITS,)), item


def _offsets(sizes) -> dict:
    out, total = {}, {}
    for (group, block), n in sorted(sizes):
        out[(group, block)] = total.get(group, 0)
        total[group] = total.get(group, 0) + n
    return out


def dense_rank(pcoll, label: str):
    """(group, sortkey tuple of ints, value) -> (group, rank within group, sortkey, value).

    Ranks count from 0 in sortkey order within each group. Elements are ranked in blocks
    of 2**16 consecutive last-key values; only the block sizes meet in one place."""
    blocks = pcoll | f"{label}Block" >> beam.Map(_rank_block)
    sizes = (blocks | f"{label}One" >> beam.Map(lambda kv: (kv[0], 1))
             | f"{label}Size" >> beam.CombinePerKey(sum)
             | f"{label}Sizes" >> beam.combiners.ToList())
    offsets = beam.pvalue.AsSingleton(sizes | f"{label}Offsets" >> beam.Map(_offsets))

    def assign(item, offsets):
        key, group = item
        for i, (g, sortkey, value) in enumerate(sorted(group, key=lambda e: e[1])):
            yield g, offsets[key] + i, sortkey, value

    return (blocks | f"{label}Group" >> beam.GroupByKey()
            | f"{label}Assign" >> beam.FlatMap(assign, offsets))


def documents(p, files, fmt, fields, tok_json, segment_length, parser, terms=False):
    """Returns (content keyed by index, link names (name, src), id map, title map,
    redirects (title, (position, target)), term counts keyed by index (with ``terms``,
    else None))."""
    read = (p | "Files" >> beam.Create(files) | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadFile(fmt, fields)).with_outputs("redirects", main="docs"))
    tok = (read.docs | "Batch" >> beam.BatchElements(min_batch_size=16, max_batch_size=64)
           | "Tokenize" >> beam.ParDo(Tokenize(tok_json, segment_length, parser, terms))
           .with_outputs("payload", "terms", main="meta"))
    by_id = (tok.meta | "ById" >> beam.GroupByKey()
             | "FirstById" >> beam.ParDo(FirstById()).with_outputs("untitled", main="titled"))
    titled = (by_id.titled | "ByTitle" >> beam.GroupByKey()
              | "FirstByTitle" >> beam.ParDo(FirstByTitle()))
    untitled = by_id.untitled | "Untitled" >> beam.MapTuple(lambda _, v: (0, v[0], (v[1], "")))
    kept = (titled, untitled) | "Kept" >> beam.Flatten()
    ranked = dense_rank(kept, "DocIndex")  # (0, index, pos, (id, title it names))
    index_by_pos = ranked | "IndexByPos" >> beam.MapTuple(lambda _, i, pos, v: (pos, i))
    by_pos = {"payload": tok.payload, "index": index_by_pos}
    joined = by_pos | "JoinPayload" >> beam.CoGroupByKey() | "Content" >> beam.ParDo(
        _Content()).with_outputs("names", main="content")
    ids = ranked | "IdMap" >> beam.MapTuple(lambda _, i, pos, v: (v[0], i))
    titles = (ranked | "TitleMap" >> beam.FlatMapTuple(
        lambda _, i, pos, v: [(v[1], i)] if v[1] else []))
    counts = None
    if terms:
        counts = ({"terms": tok.terms, "index": index_by_pos} | "JoinTerms" >> beam.CoGroupByKey()
                  | "TermsByIndex" >> beam.FlatMap(
                      lambda kv: [(i, t) for i in kv[1]["index"] for t in kv[1]["terms"]]))
    return joined.content, joined.names, ids, titles, read.redirects, counts


class _Content(beam.DoFn):
    def process(self, item):
        _, joined = item
        idx = list(joined["index"])
        if not idx:
            return  # a dropped duplicate
        doc_id, title, names, toks, lens, nchars = next(iter(joined["payload"]))
        count("links_total", len(names))
        for name in names:
            yield beam.pvalue.TaggedOutput("names", (name, idx[0]))
        yield idx[0], (doc_id, title, toks, lens, nchars)
