"""Link graph: raw link names -> document indices (CSR), with counted drops.

A link names a document by id or by title; titles are compared after MediaWiki
normalisation (first letter case-insensitive, ``_`` = space, ``#section`` dropped) and
followed through redirects. Dangling, self and duplicate links are dropped and counted.
"""
from __future__ import annotations

import json
from array import array

import numpy as np

from linkbert_jax.data.wikipedia import normalize_title

MAX_REDIRECT_HOPS = 5
NOT_A_DOCUMENT = -1  # an id seen in the input whose record was dropped (a duplicate title)


class LinkResolver:
    def __init__(self, ids: dict[str, int], titles: dict[str, int], redirects: dict[str, str]):
        self.ids, self.titles, self.redirects = ids, titles, redirects

    def resolve(self, name: str) -> int | None:
        idx = self.ids.get(name)
        if idx is not None and idx != NOT_A_DOCUMENT:
            return idx
        title = normalize_title(name)
        for _ in range(MAX_REDIRECT_HOPS + 1):
            idx = self.titles.get(title)
            if idx is not None:
                return idx
            title = self.redirects.get(title)
            if title is None:
                return None
        return None


def resolve_links(links_path: str, num_docs: int, resolver: LinkResolver, counters):
    """Streams ``links_path`` (one JSON list of names per document, in index order).

    Returns ``(offsets int64[num_docs + 1], targets int32[num_links])``; each document's
    targets are unique, sorted, and never the document itself.
    """
    offsets = array("q", [0])
    targets = array("i")
    with open(links_path, "r", encoding="utf-8") as f:
        for doc, line in enumerate(f):
            names = json.loads(line)
            seen = set()
            for name in names:
                counters.links_total += 1
                idx = resolver.resolve(name)
                if idx is None:
                    counters.dangling_links += 1
                elif idx == doc:
                    counters.self_links += 1
                elif idx in seen:
                    counters.duplicate_links += 1
                else:
                    seen.add(idx)
            targets.extend(sorted(seen))
            offsets.append(len(targets))
    if len(offsets) != num_docs + 1:
        raise RuntimeError(f"{links_path}: {len(offsets) - 1} link rows for {num_docs} documents")
    return np.frombuffer(offsets, dtype=np.int64).copy(), np.frombuffer(targets, np.int32).copy()


def in_degrees(offsets: np.ndarray, targets: np.ndarray, num_docs: int) -> np.ndarray:
    return np.bincount(targets, minlength=num_docs).astype(np.int64)
