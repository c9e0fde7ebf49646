"""Beam builder, part 3: keyed examples of every anchor document -> sorted TFRecord shards.

Each document draws its own examples with ``keyed.draw_examples`` (the function the local
sampler runs over blocks of documents). Contiguous examples are finished at once; random
and linked ones become requests keyed by the partner's (pool, rank in the pool): a
training partner's key is its (split, rank); an eval anchor's partner, drawn from every
document (``keyed.POOL_ALL``, rank = index), is first re-keyed by a join with the small
table of (index -> split, rank). The requests are then joined with the partner document,
which picks the partner segment (``keyed.pick_segment``). Examples go to
shard ``keyed.shard_of(order key)`` and each shard is written sorted by
``(order key, doc_a, seg_a, relation, copy)``: the local builder's order, so shards are
byte-identical whatever the runner and its parallelism. One shard is held by one worker.
"""
from __future__ import annotations

import json

import apache_beam as beam
import numpy as np

from linkbert_jax.data import files, keyed, sampler, writer
from linkbert_jax.data.beam_pairs import Doc
from linkbert_jax.data.features import CONTIGUOUS

_U64 = 1 << 64


def _signed(values: np.ndarray) -> list[int]:
    """uint64 -> Python ints that fit int64 (Beam's fast integer coding)."""
    return np.asarray(values, np.uint64).view(np.int64).tolist()


class Anchor(beam.DoFn):
    """``Doc`` -> finished contiguous examples, and partner requests (tagged output)."""

    def __init__(self, seed, probs, examples_per_segment, max_seq_length, num_shards, special):
        self.seed, self.probs, self.eps = seed, probs, examples_per_segment
        self.max_seq_length, self.num_shards, self.special = max_seq_length, num_shards, special

    def setup(self):
        self._rates = {}

    def rates(self, split: int, counts: dict):
        """(examples per eligible anchor, pool size) of ``split``."""
        if split not in self._rates:
            pool = keyed.pool_of(split)
            n = sum(v[1] for s, v in counts.items() if keyed.in_pool(s, pool))
            rates = keyed.relation_rates(counts[split][0], n, self.probs, self.eps, split)
            self._rates[split] = (rates, n)
        return self._rates[split]

    def process(self, element, counts):
        doc = Doc(*element)
        rates, pool_size = self.rates(doc.split, counts)
        segs = doc.segments()
        w = doc.weighted
        rank = keyed.pool_rank(keyed.pool_of(doc.split), doc.index, doc.rank)
        a = keyed.Anchors(doc=np.array([doc.index]), rank=np.array([rank]),
                          nseg=np.array([len(segs)]), link_offsets=np.array([0, len(w)]),
                          link_docs=np.array([t for t, _, _ in w], np.int64),
                          link_ranks=np.array([r for _, r, _ in w], np.int64),
                          link_weights=np.array([x for _, _, x in w], np.int64))
        ex = keyed.draw_examples(self.seed, doc.split, a, rates, pool_size)
        key = keyed.order_key(ex["h"])
        shard = keyed.shard_of(key, self.num_shards[doc.split]).tolist()
        cut = sampler.cut_bits(ex["h"]).tolist()
        h, key = _signed(ex["h"]), _signed(key)
        rows = zip(h, key, shard, cut, ex["seg_a"].tolist(), ex["rel"].tolist(),
                   ex["copy"].tolist(), ex["rank_b"].tolist())
        for hi, ki, sh, ci, sa, rel, copy, rank_b in rows:
            sortkey = (ki % _U64, doc.index, sa, rel, copy)
            if rel == CONTIGUOUS:
                pair = sampler.make_pair(segs[sa], segs[sa + 1], self.max_seq_length, ci, rel,
                                         doc.index, doc.index, sa, sa + 1)
                yield finish(doc.split, sh, sortkey, pair, self.special)
            else:
                yield beam.pvalue.TaggedOutput("requests", (
                    (keyed.pool_of(doc.split), rank_b),
                    (doc.split, hi, sh, sortkey, ci, segs[sa].tobytes())))


def finish(split, shard, sortkey, pair, special):
    data, ntok = writer.encode_pair(pair, special["cls"], special["sep"])
    return (split, shard), (sortkey, data, pair[2], ntok)


class Partner(beam.DoFn):
    """(split, rank) joined with its requests -> the examples whose partner it is."""

    def __init__(self, max_seq_length, special):
        self.max_seq_length, self.special = max_seq_length, special

    def process(self, item):
        _, joined = item
        reqs = list(joined["requests"])
        if not reqs:
            return
        doc = Doc(*next(iter(joined["doc"])))
        segs = doc.segments()
        seg_b = keyed.pick_segment(
            np.array([r[1] for r in reqs], np.int64).view(np.uint64), len(segs)).tolist()
        for (split, _, shard, sortkey, cut, a_bytes), sb in zip(reqs, seg_b):
            _, doc_a, sa, rel, _ = sortkey
            pair = sampler.make_pair(np.frombuffer(a_bytes, np.int32), segs[sb],
                                     self.max_seq_length, cut, rel, doc_a, doc.index, sa, sb)
            yield finish(split, shard, sortkey, pair, self.special)


class WriteShard(beam.DoFn):
    """((split, shard), examples) -> the shard file (temporary name, then renamed) and its
    manifest entry as ``stats/<name>.json`` in the work dir."""

    def __init__(self, out_dir, work_dir, num_shards):
        self.out_dir, self.work_dir, self.num_shards = out_dir, work_dir, num_shards

    def process(self, item):
        (split, shard), joined = item
        name = writer.shard_name(writer.SPLITS[split], shard, self.num_shards[split])
        path = files.join(self.out_dir, name)
        stats = writer.ShardStats()
        with files.atomic_write(path, "wb") as f:
            for _, data, rel, ntok in sorted(joined["examples"], key=lambda e: e[0]):
                f.write(data)
                stats.add(rel, ntok, len(data))
        with files.open_raw(files.join(self.work_dir, "stats", name + ".json"), "wb") as f:
            f.write(json.dumps(stats.as_dict(name)).encode())


def _by_split_rank(item):
    """(POOL_ALL, index) requests joined with the document's (split, rank)."""
    _, joined = item
    reqs = list(joined["requests"])
    if reqs:
        (key,) = joined["split_rank"]
        for req in reqs:
            yield key, req


def split_rank_keys(docs, requests):
    """Requests keyed by their partner's (split, rank): a training pool's key already is;
    an eval pool's (POOL_ALL, index) goes through a join with (index -> split, rank)."""
    train, whole = requests | "ByPool" >> beam.Partition(
        lambda kv, n: int(kv[0][0] == keyed.POOL_ALL), 2)
    split_rank = docs | "IndexToSplitRank" >> beam.Map(
        lambda d: ((keyed.POOL_ALL, d[0]), (d[1], d[2])))
    resolved = ({"requests": whole, "split_rank": split_rank}
                | "JoinIndex" >> beam.CoGroupByKey()
                | "ToSplitRank" >> beam.FlatMap(_by_split_rank))
    return (train, resolved) | "Requests" >> beam.Flatten()


def _shard_ids(counts, num_shards):
    """Every train shard, and the eval shards when the eval split has documents."""
    return [((split, k), None) for split in (0, 1) if counts.get(split, (0, 0))[1]
            or split == 0 for k in range(num_shards[split])]


def write_shards(p, docs, counts, opts: dict, special: dict, out_dir: str, work_dir: str):
    num_shards = (opts["num_shards"], opts["num_eval_shards"])
    counts_si = beam.pvalue.AsSingleton(counts)
    anchored = docs | "Anchor" >> beam.ParDo(
        Anchor(opts["seed"], opts["relation_probs"], opts["examples_per_segment"],
               opts["max_seq_length"], num_shards, special), counts_si).with_outputs(
        "requests", main="examples")
    by_rank = docs | "ByRank" >> beam.Map(lambda d: ((d[1], d[2]), d))
    partnered = ({"requests": split_rank_keys(docs, anchored.requests), "doc": by_rank}
                 | "JoinPartner" >> beam.CoGroupByKey()
                 | "Partner" >> beam.ParDo(Partner(opts["max_seq_length"], special)))
    examples = (anchored.examples, partnered) | "Examples" >> beam.Flatten()
    ids = counts | "ShardIds" >> beam.FlatMap(_shard_ids, num_shards)
    return ({"examples": examples, "id": ids} | "ByShard" >> beam.CoGroupByKey()
            | "WriteShard" >> beam.ParDo(WriteShard(out_dir, work_dir, num_shards)))
