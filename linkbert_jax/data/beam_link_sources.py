"""Beam builder: the links a build uses (``--link_source``, see link_sources.py).

* ``hyperlinks``: the resolved link graph (beam_links.py) as it is;
* ``random``: each document's keyed draw (``link_sources.random_links``), one document at
  a time, against the number of documents;
* ``tfidf``: document frequencies as a combine per term, the vocabulary and idf built from
  them in one place (``tfidf.Model``), each document's weighted row, then the matrix of all
  rows in one place (``tfidf.Matrix``, a side input) against which blocks of query rows
  find their neighbours in parallel (``tfidf.block_links``). The functions are the local
  builder's, and a row's result depends only on the row and the matrix, so both give the
  same links. The matrix (rows with the terms of df >= 2) must fit one worker's memory.

For a computed source the hyperlinks resolved are still counted (``hyperlinks_resolved``),
and the manifest reports them as the local builder does (``link_sources.link_stats``).
"""
from __future__ import annotations

import apache_beam as beam

from linkbert_jax.data import link_sources, tfidf
from linkbert_jax.data.beam_docs import count


def _as_lists(start: int, rows) -> list:
    return [(start + r, sorted(int(t) for t in row)) for r, row in enumerate(rows) if len(row)]


def _random(content, num_docs, seed: int, k: int):
    def draw(idx, n):
        return _as_lists(idx, link_sources.random_links(seed, n, k, [idx]))

    return (content | "RandomLinkDocs" >> beam.Keys()
            | "RandomLinks" >> beam.FlatMap(draw, num_docs))


def _block(bounds, matrix, k: int):
    start, stop = bounds
    return _as_lists(start, tfidf.block_links(matrix, start, stop, k))


def _tfidf(counts, num_docs, k: int):
    df = (counts | "Terms" >> beam.FlatMap(lambda kv: [(t, 1) for t in kv[1]])
          | "DocFreq" >> beam.CombinePerKey(sum) | "DocFreqs" >> beam.combiners.ToList())
    model = beam.pvalue.AsSingleton(df | "TfidfModel" >> beam.Map(tfidf.Model.from_df,
                                                                  num_docs))
    rows = counts | "TfidfRow" >> beam.Map(
        lambda kv, m: (kv[0],) + tfidf.weighted_row(kv[1], m), model)
    matrix = beam.pvalue.AsSingleton(
        rows | "TfidfRows" >> beam.combiners.ToList() | "TfidfMatrix" >> beam.Map(
            lambda rows, n, m: tfidf.Matrix.from_rows(rows, n, len(m.idf)), num_docs, model))
    blocks = (counts.pipeline | "TfidfStart" >> beam.Create([None])
              | "TfidfBlocks" >> beam.FlatMap(lambda _, n: tfidf.blocks(n), num_docs)
              | "SpreadBlocks" >> beam.Reshuffle())
    return blocks | "TfidfLinks" >> beam.FlatMap(_block, matrix, k)


def links(content, out_links, counts, args):
    """(src, sorted targets) of every document with a link, from ``args.link_source``."""
    if args.link_source == "hyperlinks":
        return out_links
    _ = out_links | "CountHyperlinks" >> beam.Map(
        lambda kv: count("hyperlinks_resolved", len(kv[1])))
    num_docs = beam.pvalue.AsSingleton(
        content | "LinkDocs" >> beam.Keys() | "NumDocs" >> beam.combiners.Count.Globally())
    if args.link_source == "random":
        return _random(content, num_docs, args.seed, args.link_k)
    return _tfidf(counts, num_docs, args.link_k)
