"""Beam builder: link names -> each document's resolved out-links (graph.py as joins).

``graph.LinkResolver`` looks a name up as an id, else as a normalised title, following
up to ``MAX_REDIRECT_HOPS`` redirects. Here: one join of the names with the id map; the
redirects are resolved once into an "effective title" map (a redirect title that is not a
document's title -> the document its chain reaches), in ``MAX_REDIRECT_HOPS`` join rounds
over the redirects only; then one join of the remaining names with that map. Dangling,
self and duplicate links are counted as in ``graph.resolve_links``.
"""
from __future__ import annotations

import typing

import apache_beam as beam

from linkbert_jax.data.beam_docs import count
from linkbert_jax.data.graph import MAX_REDIRECT_HOPS
from linkbert_jax.data.wikipedia import normalize_title

_KV = typing.Tuple[typing.Any, typing.Any]  # generators with tagged outputs defeat inference


def _last_redirect(item):
    """A title redirected twice keeps the later page (the local builder's dict)."""
    title, group = item
    return title, max(group)[1]


def _by_id(item):
    name, joined = item
    ids = list(joined["ids"])
    if ids:
        for src in joined["names"]:
            yield src, ids[0]
        return
    title = normalize_title(name)
    for src in joined["names"]:
        yield beam.pvalue.TaggedOutput("pending", (title, src))


def _redirect_step(item, last: bool):
    """Pending (current title, redirect source): resolved at a document title, else one
    more hop (the sources' next title), else dropped (dangling)."""
    _, joined = item
    idx = list(joined["title"])
    if idx:
        for source in joined["pending"]:
            yield beam.pvalue.TaggedOutput("resolved", (source, idx[0]))
        return
    target = list(joined["redirect"])
    if target and not last:
        for source in joined["pending"]:
            yield target[0], source


def effective_titles(titles, redirects):
    """Document titles plus redirect titles resolved to the document they reach."""
    redirect = redirects | "LastRedirect" >> (beam.GroupByKey() | beam.Map(_last_redirect))
    # Round 0: a redirect whose own title is a document's title is never followed.
    pending = ({"title": titles, "redirect": redirect} | "Hop0" >> beam.CoGroupByKey()
               | "Step0" >> beam.FlatMap(lambda kv: [] if list(kv[1]["title"]) else
                                         [(t, kv[0]) for t in kv[1]["redirect"]]))
    resolved = []
    for hop in range(1, MAX_REDIRECT_HOPS + 1):
        step = ({"pending": pending, "title": titles, "redirect": redirect}
                | f"Hop{hop}" >> beam.CoGroupByKey()
                | f"Step{hop}" >> beam.FlatMap(_redirect_step, hop == MAX_REDIRECT_HOPS)
                .with_output_types(_KV).with_outputs("resolved", main="pending"))
        pending = step.pending
        resolved.append(step.resolved)
    return [titles] + resolved | "EffectiveTitles" >> beam.Flatten()


def _by_title(item):
    _, joined = item
    idx = list(joined["title"])
    srcs = list(joined["links"])
    if not idx:
        count("dangling_links", len(srcs))
        return
    for src in srcs:
        yield src, idx[0]


def _out_links(item):
    src, targets = item
    others = [t for t in targets if t != src]
    unique = set(others)
    count("self_links", len(list(targets)) - len(others))
    count("duplicate_links", len(others) - len(unique))
    return src, sorted(unique)


def resolve(names, ids, titles, redirects):
    """(name, src) links -> (src, sorted unique targets) for documents with any link."""
    first = ({"names": names, "ids": ids} | "JoinIds" >> beam.CoGroupByKey()
             | "LinkById" >> beam.FlatMap(_by_id).with_output_types(_KV).with_outputs("pending", main="resolved"))
    by_title = ({"links": first.pending, "title": effective_titles(titles, redirects)}
                | "JoinTitles" >> beam.CoGroupByKey() | "LinkByTitle" >> beam.FlatMap(_by_title))
    return ((first.resolved, by_title) | "Resolved" >> beam.Flatten()
            | "BySource" >> beam.GroupByKey() | "OutLinks" >> beam.Map(_out_links))
