"""Linked-pair corpus builder (CLI).

    python -m linkbert_jax.data.build --input DUMP.xml.bz2 --format wikipedia \
        --output_dir out/ --tokenizer TOKENIZER_DIR --num_shards 8 --workers 4

readers -> pass 1 (wikitext -> text, tokenize, segment; on-disk store) -> link graph ->
train/eval split by document -> pair sampling + TFRecord shards -> documents.jsonl,
manifest.json (written last: its presence marks a finished build). See docs/data.md.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shutil
import tempfile
import time

import numpy as np

from linkbert_jax.data import (files, graph, index, keyed, link_sources, manifests, outdir,
                               readers, sampler, writer)
from linkbert_jax.data import tokenizer as tokenizer_lib
from linkbert_jax.data.features import NUM_RELATIONS, RELATIONS
from linkbert_jax.data.manifests import DOCUMENTS_NAME, MANIFEST_NAME, MANIFEST_VERSION
from linkbert_jax import errors
from linkbert_jax.errors import run_cli

log = logging.getLogger("linkbert_jax.data.build")
WORK = ".work"
TOKENIZER = "tokenizer"
# Options that do not change the output (excluded from the manifest and the reuse check).
_RUNTIME_ONLY = ("workers", "overwrite", "progress", "output_dir", "explicit_fields")
_FIELD_FLAGS = {"id": "id_field", "title": "title_field", "text": "text_fields",
                "links": "links_field"}
_CORPORA: dict = {}  # worker cache of opened corpora for its shard tasks


def make_parser(prog: str = "python -m linkbert_jax.data.build",
                description: str = __doc__.split("\n\n")[0]) -> argparse.ArgumentParser:
    """The builder's options (the Beam builder takes the same ones)."""
    p = errors.ArgumentParser(prog=prog, description=description)
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
    p.add_argument("--link_sampling", default="inverse_in_degree",
                   choices=keyed.LINK_SAMPLINGS,
                   help="linked partner: ∝ 1/in-degree (the paper's diversity adjustment) "
                        "or uniform over the out-links")
    p.add_argument("--id_field", help="default id")
    p.add_argument("--title_field", help="default title")
    p.add_argument("--text_fields", help="comma-separated, joined by newline (default text)")
    p.add_argument("--links_field", help="default links")
    p.add_argument("--wikitext_parser", default="fast", choices=("fast", "mwparserfromhell"))
    link_sources.add_options(p)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no_progress", dest="progress", action="store_false")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return finish_args(make_parser().parse_args(argv))


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    # Fields named on the command line must exist; defaults may be optional (a title).
    args.explicit_fields = tuple(role for role, flag in _FIELD_FLAGS.items()
                                 if getattr(args, flag) is not None)
    for role, flag in _FIELD_FLAGS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, role)
    return args


def _fraction(s: str) -> float:
    """``"1/3"`` or ``"0.5"``; NaN for anything else (the caller names the option)."""
    num, _, den = s.strip().partition("/")
    try:
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        return float("nan")


def recorded_options(args: argparse.Namespace) -> dict:
    link_sources.check(args)
    opts = {k: v for k, v in sorted(vars(args).items()) if k not in _RUNTIME_ONLY}
    probs = [_fraction(x) for x in args.relation_probs.split(",")]
    if len(probs) != 3 or not min(probs) >= 0 or not sum(probs) > 0:
        raise readers.DataError(f"--relation_probs needs 3 non-negative numbers, got "
                                f"{args.relation_probs!r}")
    opts["relation_probs"] = [p / sum(probs) for p in probs]
    if args.max_seq_length < 5:
        raise readers.DataError(f"--max_seq_length {args.max_seq_length} is too small: a "
                                f"pair [CLS] A [SEP] B [SEP] needs at least 5 tokens")
    seg = opts["segment_length"] = args.segment_length or (args.max_seq_length - 3) // 2
    if seg < 1:
        raise readers.DataError(f"--segment_length must be at least 1, got {seg}")
    if seg > args.max_seq_length - 2:
        raise readers.DataError(f"--segment_length {seg} is too long for --max_seq_length "
                                f"{args.max_seq_length} (at most {args.max_seq_length - 2})")
    if not 0 <= args.eval_fraction < 1:
        raise readers.DataError("--eval_fraction must be in [0, 1)")
    if args.num_shards < 1 or args.num_eval_shards < 1 or args.workers < 1:
        raise readers.DataError("--num_shards, --num_eval_shards and --workers must be >= 1")
    return opts


def field_map(args) -> readers.FieldMap:
    return readers.FieldMap(id=args.id_field, title=args.title_field,
                            text=tuple(f for f in args.text_fields.split(",") if f),
                            links=args.links_field)


def _reader(args, counters, redirects):
    return readers.read_documents(args.input, args.format, field_map(args), counters,
                                  redirects)


def prepare_tokenizer(args, tokenizer_src: str | None, out_dir: str) -> dict:
    dst = os.path.join(out_dir, TOKENIZER)
    if tokenizer_src:
        tokenizer_lib.copy_pretrained(tokenizer_src, dst)
    else:
        quiet = readers.Counters(quiet=True)
        texts = (index.to_plain(d.text, d.wikitext, args.wikitext_parser, ())[0]
                 for d in _reader(args, quiet, {}))
        tokenizer_lib.train_wordpiece(texts, args.train_vocab_size, dst, not args.cased)
    return tokenizer_lib.describe(dst)


def _plan_path(work_dir: str, split: int, shard: int) -> str:
    return os.path.join(work_dir, f"plan-{writer.SPLITS[split]}-{shard:05d}.bin")


def write_plans(work_dir: str, corpus, split: int, num_shards: int, cfg: dict) -> None:
    """Draws every example of ``split`` (keyed, see keyed.py) into per-shard plan files."""
    tables = sampler.split_tables(corpus, split, cfg["probs"], cfg["examples_per_segment"],
                                  cfg["link_sampling"])

    def sink(shard, rec):
        with open(_plan_path(work_dir, split, shard), "ab") as f:
            f.write(rec.tobytes())

    sampler.plan_split(tables, cfg["seed"], num_shards, sink)


def _shard_task(task):
    """Worker: writes one shard. ``task`` = (work_dir, out_dir, split, shard, n, cfg)."""
    work_dir, out_dir, split, shard, num_shards, cfg = task
    st = os.stat(os.path.join(work_dir, "tokens.i32"))
    key = (work_dir, st.st_ino, st.st_mtime_ns)  # not a previous build's
    if key not in _CORPORA:  # once per worker process
        _CORPORA[key] = writer.open_corpus(work_dir)
    corpus = _CORPORA[key]
    path = _plan_path(work_dir, split, shard)
    rec = np.fromfile(path, sampler.PLAN_DTYPE) if os.path.exists(path) else \
        np.zeros(0, sampler.PLAN_DTYPE)
    pairs = sampler.materialize(corpus, sampler.sort_plan(rec), cfg["max_seq_length"])
    name = writer.shard_name(writer.SPLITS[split], shard, num_shards)
    return writer.write_shard(os.path.join(out_dir, name), pairs, cfg["cls"], cfg["sep"])


def planned_names(args) -> set[str]:
    """Every name a build with ``args`` may write in its output dir."""
    shards = {writer.shard_name(split, k, n) for split, n in
              (("train", args.num_shards), ("eval", args.num_eval_shards)) for k in range(n)}
    return shards | {WORK, TOKENIZER, DOCUMENTS_NAME, MANIFEST_NAME}


def reusable(args, opts: dict, inputs: list[dict]) -> dict | None:
    """The finished build in the output dir if it was made from the same options and
    inputs (None if there is none, or with --overwrite); else a DataError saying why."""
    out = args.output_dir
    old = None if args.overwrite else manifests.read_manifest(out, missing_ok=True,
                                                             opener=files.open_raw)
    if old is None:
        return None
    if old.get("options") != opts:
        raise readers.DataError(f"{out} holds a build made with other options; pass "
                                f"--overwrite or choose another --output_dir")
    why = outdir.input_change(old.get("inputs"), inputs)
    if why:
        raise readers.DataError(f"{out} was built from other input: {why}; rebuild with "
                                f"--overwrite")
    print(f"{out}: already built with these options and inputs "
          f"({old['num_examples']['train']} train / {old['num_examples']['eval']} eval "
          f"examples); reusing it (--overwrite to rebuild)")
    return old


def claim_local(args, inputs: list[str], scratch: str) -> str | None:
    """Claims the local output dir (``outdir.claim``) for the build; returns the tokenizer
    to read: a copy in ``scratch`` if it lies inside the output dir (which the build
    rewrites). An --input among the builder's own files is refused first."""
    out, owned = args.output_dir, outdir.owned_names(args.output_dir) or set()
    for path in inputs:
        if outdir.inside(path, out):
            top = os.path.relpath(os.path.realpath(path), os.path.realpath(out))
            if top.split(os.sep)[0] in owned:
                raise readers.DataError(f"--input {path} is a file of the build in "
                                        f"{out}, which a rebuild replaces: copy it elsewhere")
    tokenizer = args.tokenizer
    if tokenizer and outdir.inside(tokenizer, out):
        if not os.path.isdir(tokenizer):
            raise FileNotFoundError(f"{tokenizer}: tokenizer directory not found")
        tokenizer = os.path.join(scratch, "tokenizer")
        shutil.copytree(args.tokenizer, tokenizer)
    outdir.claim(out, planned_names(args), args.overwrite)
    return tokenizer


def build(args: argparse.Namespace) -> dict:
    opts = recorded_options(args)
    inputs = readers.expand_inputs(args.input, args.format)
    for warning in readers.check_fields(inputs, args.format, field_map(args),
                                        args.explicit_fields):
        log.warning("%s", warning)
    fingerprints = outdir.fingerprint_inputs(inputs)
    old = reusable(args, opts, fingerprints)
    if old is not None:
        return old
    with tempfile.TemporaryDirectory(prefix="linkbert_build_") as scratch:
        return _build(args, opts, claim_local(args, inputs, scratch), fingerprints)


def _index(args, work: str, counters, redirects, pool) -> index.IndexResult:
    from tqdm import tqdm

    with tqdm(desc="documents", unit="doc", disable=not args.progress) as bar:
        res = index.build_index(_reader(args, counters, redirects), work, counters,
                                pool, window=4 * args.workers, progress=bar)
    if res.num_docs == 0:
        raise readers.DataError(
            f"no usable documents in {', '.join(args.input)} ({counters.records} records "
            f"read; malformed {counters.malformed_records}, empty "
            f"{counters.empty_documents}, duplicates {counters.duplicate_ids})")
    return res


def _link_and_split(args, work: str, res, counters, redirects, pool) -> int:
    """Writes the link graph used and the split; returns the hyperlinks resolved."""
    resolver = graph.LinkResolver(res.ids, res.titles, redirects)
    offs, tgts = graph.resolve_links(os.path.join(work, "links.jsonl"), res.num_docs,
                                     resolver, counters)
    del resolver, res.ids, res.titles
    hyperlinks = len(tgts)
    offs, tgts = link_sources.choose(args, work, res.num_docs, offs, tgts, pool)
    np.save(os.path.join(work, "link_offsets.npy"), offs)
    np.save(os.path.join(work, "link_targets.npy"), tgts)
    np.save(os.path.join(work, "doc_split.npy"),
            keyed.assign_splits(res.num_docs, args.eval_fraction, args.seed))
    return hyperlinks


def _write_shards(args, opts, work: str, tok_info: dict, pool):
    from tqdm import tqdm

    corpus = writer.open_corpus(work)
    cfg = dict(probs=opts["relation_probs"], seed=args.seed,
               examples_per_segment=args.examples_per_segment,
               link_sampling=args.link_sampling, max_seq_length=args.max_seq_length,
               cls=tok_info["special_ids"]["cls"], sep=tok_info["special_ids"]["sep"])
    out = args.output_dir
    tasks = [(work, out, 0, k, args.num_shards, cfg) for k in range(args.num_shards)]
    write_plans(work, corpus, 0, args.num_shards, cfg)
    if corpus.doc_split.any():
        tasks += [(work, out, 1, k, args.num_eval_shards, cfg)
                  for k in range(args.num_eval_shards)]
        write_plans(work, corpus, 1, args.num_eval_shards, cfg)
    results = pool.imap(_shard_task, tasks) if pool else map(_shard_task, tasks)
    shards = tqdm(results, total=len(tasks), desc="shards", unit="shard",
                  disable=not args.progress)
    return corpus, [(writer.SPLITS[t[2]], s) for t, s in zip(tasks, shards)]


def _build(args, opts, tokenizer_src, fingerprints) -> dict:
    out = args.output_dir
    work = os.path.join(out, WORK)
    os.makedirs(work)
    t0 = time.time()
    tok_info = prepare_tokenizer(args, tokenizer_src, out)
    counters, redirects = readers.Counters(), {}
    init = (os.path.join(out, TOKENIZER), opts["segment_length"], args.wikitext_parser, (),
            link_sources.wants_terms(args))
    pool = None
    if args.workers > 1:
        pool = multiprocessing.get_context("fork").Pool(args.workers, index.init_worker, init)
    else:
        index.init_worker(*init)
    try:
        res = _index(args, work, counters, redirects, pool)
        t_index = time.time() - t0
        hyperlinks = _link_and_split(args, work, res, counters, redirects, pool)
        corpus, shards = _write_shards(args, opts, work, tok_info, pool)
    finally:
        if pool is not None:
            pool.terminate()
    writer.write_documents(out, work, corpus)
    stats = link_sources.link_stats(corpus_stats(res, corpus), args.link_source, hyperlinks)
    manifest = make_manifest(opts, stats, counters.as_dict(), tok_info, shards, fingerprints)
    shutil.rmtree(work)
    files.write_json(os.path.join(out, MANIFEST_NAME), manifest)
    print_summary(manifest, time.time() - t0, t_index)
    return manifest


def corpus_stats(res, corpus) -> dict:
    n_eval = int(np.count_nonzero(corpus.doc_split))
    return {"num_documents": res.num_docs,
            "num_documents_per_split": {"train": res.num_docs - n_eval, "eval": n_eval},
            "num_segments": res.num_segments, "num_links_resolved": int(len(corpus.link_targets)),
            "num_tokens": res.num_tokens, "num_chars": res.num_chars}


def make_manifest(opts, stats: dict, counters: dict, tok_info, shards, inputs) -> dict:
    """The manifest from corpus ``stats``, reader ``counters``, ``shards`` ((split, shard
    result) in file order) and input fingerprints: the local and the Beam builder's."""
    split_files = {"train": [], "eval": []}
    rel = {split: [0] * NUM_RELATIONS for split in writer.SPLITS}
    ex_tokens = {"train": 0, "eval": 0}
    for split, s in shards:
        split_files[split].append({"name": s["name"], "num_examples": s["num_examples"],
                             "bytes": s["bytes"]})
        rel[split] = [a + b for a, b in zip(rel[split], s["relations"])]
        ex_tokens[split] += s["num_tokens"]
    return {
        "format_version": MANIFEST_VERSION,
        "num_examples": {k: sum(f["num_examples"] for f in v)
                         for k, v in split_files.items()},
        "relations": dict(zip(RELATIONS, rel["train"])),
        "relations_eval": dict(zip(RELATIONS, rel["eval"])),
        "requested_relation_probs": dict(zip(RELATIONS, opts["relation_probs"])),
        **stats,
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
        "files": split_files,
        "counters": counters,
        "options": opts,
        "inputs": inputs,
    }


def print_summary(m: dict, secs: float, secs_index: float) -> None:
    c = m["counters"]
    print(f"documents {m['num_documents']} (train {m['num_documents_per_split']['train']}, "
          f"eval {m['num_documents_per_split']['eval']}), segments {m['num_segments']}, "
          f"tokens {m['num_tokens']}, links resolved {m['num_links_resolved']}"
          + link_sources.summary(m))
    print("examples train %d %s, eval %d %s" % (m["num_examples"]["train"], m["relations"],
                                                 m["num_examples"]["eval"], m["relations_eval"]))
    print("counters " + " ".join(f"{k}={v}" for k, v in c.items()))
    print(f"done in {secs:.1f}s (index {secs_index:.1f}s, "
          f"{m['num_tokens'] / max(secs, 1e-9):.0f} tokens/s)")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    return run_cli(lambda: build(parse_args(argv)))


cli = errors.console_script(main)  # python -m, and the console script


if __name__ == "__main__":
    cli()
