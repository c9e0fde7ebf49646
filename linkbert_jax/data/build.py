"""Linked-pair corpus builder (CLI).

    python -m linkbert_jax.data.build --input DUMP.xml.bz2 --format wikipedia \
        --output_dir out/ --tokenizer TOKENIZER_DIR --num_shards 8 --workers 4

readers -> pass 1 (wikitext -> text, tokenize, segment; on-disk store) -> link graph ->
train/eval split by document -> pair sampling + TFRecord shards -> documents.jsonl,
manifest.json (written last: its presence marks a finished build). See docs/data.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time

import numpy as np

from linkbert_jax.data import graph, index, readers, sampler, tokenizer as tokenizer_lib, writer
from linkbert_jax.data.features import DOCUMENTS_NAME, MANIFEST_NAME, RELATIONS

log = logging.getLogger("linkbert_jax.data.build")
WORK = ".work"
TOKENIZER = "tokenizer"
# Options that do not change the output (excluded from the manifest and the reuse check).
_RUNTIME_ONLY = ("workers", "overwrite", "progress", "output_dir")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m linkbert_jax.data.build",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--input", action="append", required=True, help="file or directory (repeat)")
    p.add_argument("--format", required=True, choices=readers.FORMATS)
    p.add_argument("--output_dir", required=True)
    tok = p.add_mutually_exclusive_group(required=True)
    tok.add_argument("--tokenizer", help="local Hugging Face tokenizer directory (fast)")
    tok.add_argument("--train_vocab_size", type=int, help="train a WordPiece vocab of this size")
    p.add_argument("--cased", action="store_true", help="with --train_vocab_size: keep case")
    p.add_argument("--max_seq_length", type=int, default=512)
    p.add_argument("--segment_length", type=int, default=None,
                   help="max tokens per segment (default (max_seq_length - 3) // 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_shards", type=int, default=8, help="train shards")
    p.add_argument("--num_eval_shards", type=int, default=1)
    p.add_argument("--eval_fraction", type=float, default=0.01)
    p.add_argument("--relation_probs", default="1/3,1/3,1/3",
                   help="contiguous,random,linked probabilities (fractions allowed)")
    p.add_argument("--examples_per_segment", type=float, default=1.0,
                   help="examples per segment of each split (like BERT's dupe_factor)")
    p.add_argument("--id_field", default="id")
    p.add_argument("--title_field", default="title")
    p.add_argument("--text_fields", default="text", help="comma-separated, joined by newline")
    p.add_argument("--links_field", default="links")
    p.add_argument("--wikitext_parser", default="fast", choices=("fast", "mwparserfromhell"))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no_progress", dest="progress", action="store_false")
    return p.parse_args(argv)


def _fraction(s: str) -> float:
    num, _, den = s.strip().partition("/")
    return float(num) / float(den) if den else float(num)


def recorded_options(args: argparse.Namespace) -> dict:
    opts = {k: v for k, v in sorted(vars(args).items()) if k not in _RUNTIME_ONLY}
    probs = [_fraction(x) for x in args.relation_probs.split(",")]
    if len(probs) != 3 or min(probs) < 0 or sum(probs) <= 0:
        raise readers.DataError(f"--relation_probs needs 3 non-negative numbers, got "
                                f"{args.relation_probs!r}")
    opts["relation_probs"] = [p / sum(probs) for p in probs]
    opts["segment_length"] = args.segment_length or (args.max_seq_length - 3) // 2
    if opts["segment_length"] < 1 or 2 * opts["segment_length"] + 3 > args.max_seq_length * 2:
        raise readers.DataError("--segment_length must be positive")
    if not 0 <= args.eval_fraction < 1:
        raise readers.DataError("--eval_fraction must be in [0, 1)")
    if args.num_shards < 1 or args.num_eval_shards < 1 or args.workers < 1:
        raise readers.DataError("--num_shards, --num_eval_shards and --workers must be >= 1")
    return opts


def _clean(output_dir: str, everything: bool) -> None:
    """Removes what a build writes (a stale or unfinished build); nothing else."""
    for name in os.listdir(output_dir):
        path = os.path.join(output_dir, name)
        ours = (name.endswith((".tfrecord", writer.TMP_SUFFIX)) or name in (WORK, TOKENIZER)
                or name == DOCUMENTS_NAME or (everything and name == MANIFEST_NAME))
        if ours:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def _reader(args, opts, counters, redirects):
    fields = readers.FieldMap(id=args.id_field, title=args.title_field,
                              text=tuple(f for f in args.text_fields.split(",") if f),
                              links=args.links_field)
    return readers.read_documents(args.input, args.format, fields, counters, redirects)


def prepare_tokenizer(args, opts, out_dir: str) -> dict:
    dst = os.path.join(out_dir, TOKENIZER)
    if args.tokenizer:
        tokenizer_lib.copy_pretrained(args.tokenizer, dst)
    else:
        quiet = readers.Counters(quiet=True)
        texts = (index.to_plain(d.text, d.wikitext, args.wikitext_parser, ())[0]
                 for d in _reader(args, opts, quiet, {}))
        tokenizer_lib.train_wordpiece(texts, args.train_vocab_size, dst, not args.cased)
    return tokenizer_lib.describe(dst)


def _shard_task(task):
    """Worker: writes one shard. ``task`` = (work_dir, out_dir, split, shard, n, cfg)."""
    work_dir, out_dir, split, shard, num_shards, cfg = task
    key = ("plan", work_dir, split)
    if key not in index._STATE:
        corpus = writer.open_corpus(work_dir)
        index._STATE[key] = (corpus, sampler.make_plan(corpus, split, cfg["probs"],
                                                       cfg["examples_per_segment"]))
    corpus, plan = index._STATE[key]
    pairs = sampler.sample_pairs(corpus, plan, cfg["seed"], shard, num_shards,
                                 cfg["max_seq_length"])
    name = writer.shard_name(writer.SPLITS[split], shard, num_shards)
    return writer.write_shard(os.path.join(out_dir, name), pairs, cfg["cls"], cfg["sep"])


def _write_documents(out_dir, work_dir, corpus) -> None:
    nseg = np.diff(corpus.doc_seg_start)
    path = os.path.join(out_dir, DOCUMENTS_NAME)
    with open(os.path.join(work_dir, "meta.jsonl"), encoding="utf-8") as meta, \
            open(path + writer.TMP_SUFFIX, "w", encoding="utf-8") as f:
        for i, line in enumerate(meta):
            doc_id, title = json.loads(line)
            links = corpus.link_targets[corpus.link_offsets[i]:corpus.link_offsets[i + 1]]
            f.write(json.dumps({"index": i, "id": doc_id, "title": title,
                                "split": writer.SPLITS[corpus.doc_split[i]],
                                "num_segments": int(nseg[i]), "links": links.tolist()},
                               ensure_ascii=False) + "\n")
    os.replace(path + writer.TMP_SUFFIX, path)


def build(args: argparse.Namespace) -> dict:
    opts = recorded_options(args)
    out = args.output_dir
    os.makedirs(out, exist_ok=True)
    old = writer.load_manifest(out)
    if old is not None and not args.overwrite:
        if old.get("options") == opts:
            print(f"{out}: already built with these options ({old['num_examples']['train']} "
                  f"train / {old['num_examples']['eval']} eval examples); reusing it "
                  f"(--overwrite to rebuild)")
            return old
        raise readers.DataError(f"{out} holds a build made with other options; pass "
                                f"--overwrite or choose another --output_dir")
    _clean(out, everything=True)
    work = os.path.join(out, WORK)
    os.makedirs(work)
    t0 = time.time()
    tok_info = prepare_tokenizer(args, opts, out)
    tok_dir = os.path.join(out, TOKENIZER)
    counters, redirects = readers.Counters(), {}
    init = (tok_dir, opts["segment_length"], args.wikitext_parser, ())
    pool = None
    if args.workers > 1:
        pool = multiprocessing.get_context("fork").Pool(args.workers, index.init_worker, init)
    else:
        index.init_worker(*init)
    try:
        from tqdm import tqdm

        with tqdm(desc="documents", unit="doc", disable=not args.progress) as bar:
            res = index.build_index(_reader(args, opts, counters, redirects), work, counters,
                                    pool, window=4 * args.workers, progress=bar)
        if res.num_docs == 0:
            raise readers.DataError(
                f"no usable documents in {', '.join(args.input)} ({counters.records} records "
                f"read; malformed {counters.malformed_records}, empty "
                f"{counters.empty_documents}, duplicates {counters.duplicate_ids})")
        t_index = time.time() - t0
        resolver = graph.LinkResolver(res.ids, res.titles, redirects)
        offs, tgts = graph.resolve_links(os.path.join(work, "links.jsonl"), res.num_docs,
                                         resolver, counters)
        del resolver, res.ids, res.titles
        np.save(os.path.join(work, "link_offsets.npy"), offs)
        np.save(os.path.join(work, "link_targets.npy"), tgts)
        np.save(os.path.join(work, "doc_split.npy"),
                index.assign_splits(res.num_docs, args.eval_fraction, args.seed))
        corpus = writer.open_corpus(work)
        cfg = dict(probs=opts["relation_probs"], seed=args.seed,
                   examples_per_segment=args.examples_per_segment,
                   max_seq_length=args.max_seq_length, cls=tok_info["special_ids"]["cls"],
                   sep=tok_info["special_ids"]["sep"])
        tasks = [(work, out, 0, k, args.num_shards, cfg) for k in range(args.num_shards)]
        if corpus.doc_split.any():
            tasks += [(work, out, 1, k, args.num_eval_shards, cfg)
                      for k in range(args.num_eval_shards)]
        results = pool.imap(_shard_task, tasks) if pool else map(_shard_task, tasks)
        shards = list(tqdm(results, total=len(tasks), desc="shards", unit="shard",
                           disable=not args.progress))
    finally:
        if pool is not None:
            pool.terminate()
    _write_documents(out, work, corpus)
    manifest = make_manifest(opts, res, corpus, counters, tok_info, tasks, shards)
    shutil.rmtree(work)
    writer.write_json_atomic(os.path.join(out, MANIFEST_NAME), manifest)
    secs = time.time() - t0
    print_summary(manifest, secs, t_index)
    return manifest


def make_manifest(opts, res, corpus, counters, tok_info, tasks, shards) -> dict:
    files = {"train": [], "eval": []}
    rel = {"train": [0, 0, 0], "eval": [0, 0, 0]}
    ex_tokens = {"train": 0, "eval": 0}
    for task, s in zip(tasks, shards):
        split = writer.SPLITS[task[2]]
        files[split].append({"name": s["name"], "num_examples": s["num_examples"]})
        rel[split] = [a + b for a, b in zip(rel[split], s["relations"])]
        ex_tokens[split] += s["num_tokens"]
    n_eval_docs = int(np.count_nonzero(corpus.doc_split))
    return {
        "format_version": 1,
        "num_examples": {k: sum(f["num_examples"] for f in v) for k, v in files.items()},
        "relations": dict(zip(RELATIONS, rel["train"])),
        "relations_eval": dict(zip(RELATIONS, rel["eval"])),
        "requested_relation_probs": dict(zip(RELATIONS, opts["relation_probs"])),
        "num_documents": res.num_docs,
        "num_documents_per_split": {"train": res.num_docs - n_eval_docs, "eval": n_eval_docs},
        "num_segments": res.num_segments,
        "num_links_resolved": int(len(corpus.link_targets)),
        "num_tokens": res.num_tokens,
        "num_chars": res.num_chars,
        "num_example_tokens": ex_tokens,
        "max_seq_length": opts["max_seq_length"],
        "segment_length": opts["segment_length"],
        "seed": opts["seed"],
        "tokenizer_dir": TOKENIZER,
        "vocab_size": tok_info["vocab_size"],
        "special_ids": tok_info["special_ids"],
        "vocab_sha256": tok_info["vocab_sha256"],
        "tokenizer_class": tok_info["class"],
        "documents_file": DOCUMENTS_NAME,
        "files": files,
        "counters": counters.as_dict(),
        "options": opts,
    }


def print_summary(m: dict, secs: float, secs_index: float) -> None:
    c = m["counters"]
    print(f"documents {m['num_documents']} (train {m['num_documents_per_split']['train']}, "
          f"eval {m['num_documents_per_split']['eval']}), segments {m['num_segments']}, "
          f"tokens {m['num_tokens']}, links resolved {m['num_links_resolved']}")
    print("examples train %d %s, eval %d %s" % (m["num_examples"]["train"], m["relations"],
                                                 m["num_examples"]["eval"], m["relations_eval"]))
    print("counters " + " ".join(f"{k}={v}" for k, v in c.items()))
    print(f"done in {secs:.1f}s (index {secs_index:.1f}s, "
          f"{m['num_tokens'] / max(secs, 1e-9):.0f} tokens/s)")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        args = parse_args(argv)
        build(args)
    except (readers.DataError, FileNotFoundError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
