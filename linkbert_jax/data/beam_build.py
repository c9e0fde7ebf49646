"""Linked-pair corpus builder on Apache Beam (CLI): the local builder's output, at any scale.

    python -m linkbert_jax.data.beam_build --input 'gs://b/enwiki/*.xml.bz2' \
        --format wikipedia --output_dir gs://b/wiki512 --tokenizer TOKENIZER_DIR \
        --num_shards 1024 --runner DataflowRunner --project P --region R \
        --temp_location gs://b/tmp

Takes the local builder's options (``python -m linkbert_jax.data.build --help``); every
other flag is a Beam pipeline option (runner, workers, ...). With no ``--runner`` it runs
on Beam's local FnApiRunner, never on the Prism binary that Beam's DirectRunner downloads
first. The same input, options and seed give the same shards, ``documents.jsonl`` and
``manifest.json`` as the local builder, whatever the runner and its parallelism. Needs
``pip install 'linkbert-jax[beam]'``.
See docs/beam.md.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from linkbert_jax.data import beam_docs, beam_link_sources, beam_links, beam_pairs
from linkbert_jax.data import beam_shards, build, files, link_sources, outdir
from linkbert_jax.data import readers, tokenizer as tokenizer_lib, writer
from linkbert_jax.data.manifests import DOCUMENTS_NAME, MANIFEST_NAME
from linkbert_jax.errors import UserError, run_cli

log = logging.getLogger("linkbert_jax.data.beam_build")
STATS = ("num_documents", "num_documents_eval", "num_segments", "num_links_resolved",
         "num_tokens", "num_chars")


def parse_args(argv=None):
    """(builder options, Beam pipeline arguments)."""
    p = build.make_parser("python -m linkbert_jax.data.beam_build", __doc__.split("\n\n")[0])
    args, beam_args = p.parse_known_args(argv)
    args = build.finish_args(args)
    if args.train_vocab_size:
        raise readers.DataError("--train_vocab_size needs the whole corpus in one process: "
                                "train a vocabulary with the local builder (on a sample) "
                                "and pass its tokenizer/ directory as --tokenizer")
    if args.format == "hf":
        raise readers.DataError("--format hf is local only: save the dataset as Parquet")
    return args, beam_args


# Beam's default, the DirectRunner, first tries its Prism runner: a binary it downloads
# from GitHub at run time, and where it cannot, it leaves its temp directories behind and
# falls back to the FnApiRunner. So the local runner is named: the FnApiRunner, which
# reads --direct_num_workers and --direct_running_mode as the DirectRunner does.
LOCAL_RUNNER = "FnApiRunner"


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam's options from ``beam_args``; the runner :data:`LOCAL_RUNNER` if they name none."""
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = LOCAL_RUNNER
    return options


def input_files(paths: list[str], fmt: str) -> list[str]:
    """Input files in the local builder's order; globs and gs:// allowed."""
    out = []
    for p in paths:
        if not files.is_remote(p) and not any(c in p for c in "*?["):
            out.extend(readers.expand_inputs([p], fmt))
            continue
        from apache_beam.io.filesystems import FileSystems

        pattern = p.rstrip("/") + "/*" if not any(c in p for c in "*?[") else p
        found = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
        if not found:
            raise readers.DataError(f"{p}: no such file or directory")
        out.extend(found)
    return out


def fingerprints(paths: list[str]) -> list[dict]:
    """The manifest's ``inputs``: local files as the local builder records them; files
    on a Beam filesystem by size and modification time (not hashed)."""
    out = []
    for p in paths:
        if not files.is_remote(p):
            out += outdir.fingerprint_inputs([p])
            continue
        from apache_beam.io.filesystems import FileSystems

        m = FileSystems.match([p])[0].metadata_list[0]
        out.append({"path": p, "size": m.size_in_bytes, "blake2b": None, "whole": False,
                    "mtime_ns": int(m.last_updated_in_seconds * 1e9)})
    return out


def claim_output(args, inputs: list[str], scratch: str) -> str:
    """Readies the output dir; returns the tokenizer dir to read. A local one goes through
    the local builder's ownership rules; on a Beam filesystem a non-empty directory is
    refused unless --overwrite, which replaces only the names this build writes."""
    out, planned = args.output_dir, build.planned_names(args)
    if not files.is_remote(out):
        return build.claim_local(args, inputs, scratch)
    present = files.listdir(out)
    if present and not args.overwrite:
        raise readers.DataError(f"{out} is not empty; choose another --output_dir or pass "
                                f"--overwrite to replace the names a build writes there")
    for name in present:
        if name in planned or name.removesuffix(files.TMP_SUFFIX) in planned:
            files.remove(files.join(out, name))
    return args.tokenizer


def prepare_tokenizer(tokenizer_src: str, out_dir: str) -> tuple[dict, str]:
    """Copies the tokenizer to ``out_dir/tokenizer``; (description, tokenizer.json text)."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_lib.copy_pretrained(tokenizer_src, tmp)
        info = tokenizer_lib.describe(tmp)
        dst = files.join(out_dir, build.TOKENIZER)
        files.makedirs(dst)
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), "rb") as src, \
                    files.open_raw(files.join(dst, name), "wb") as f:
                f.write(src.read())
        with open(os.path.join(tmp, "tokenizer.json"), encoding="utf-8") as f:
            return info, f.read()


def construct(p, args, opts, file_list, tok_json, special, work):
    """The whole build as one pipeline on ``p``."""
    fields = build.field_map(args)
    content, names, ids, titles, redirects, terms = beam_docs.documents(
        p, file_list, args.format, fields, tok_json, opts["segment_length"],
        args.wikitext_parser, link_sources.wants_terms(args))
    out_links = beam_links.resolve(names, ids, titles, redirects)
    out_links = beam_link_sources.links(content, out_links, terms, args)
    docs = beam_pairs.documents(content, out_links, args.seed, args.eval_fraction,
                                args.link_sampling)
    beam_pairs.document_lines(docs, work)
    counts = beam_pairs.split_counts(docs)
    beam_shards.write_shards(p, docs, counts, opts, special, args.output_dir, work)


def counters_from(result) -> dict:
    """Beam counters of the ``linkbert`` namespace (committed values where the runner has
    them)."""
    out = {}
    for c in result.metrics().query()["counters"]:
        if c.key.metric.namespace == beam_docs.NAMESPACE:
            value = c.committed if c.committed is not None else c.attempted
            out[c.key.metric.name] = out.get(c.key.metric.name, 0) + value
    return out


def _concat_documents(work: str, out: str) -> None:
    dst = files.join(out, DOCUMENTS_NAME)
    with files.atomic_write(dst, "wb") as f:
        for name in files.listdir(files.join(work, "documents")):
            with files.open_raw(files.join(work, "documents", name)) as part:
                while chunk := part.read(1 << 24):
                    f.write(chunk)


def _manifest(args, opts, work, found: dict, tok_info, inputs) -> dict:
    n, n_eval = found.get("num_documents", 0), found.get("num_documents_eval", 0)
    stats = {"num_documents": n,
             "num_documents_per_split": {"train": n - n_eval, "eval": n_eval},
             **{k: found.get(k, 0) for k in STATS[2:]}}
    counters = {k: found.get(k, 0) for k in readers.Counters().as_dict()}
    shards = []
    for split, num in (("train", args.num_shards), ("eval", args.num_eval_shards)):
        if split == "eval" and not n_eval:
            continue
        for k in range(num):
            name = writer.shard_name(split, k, num)
            with files.open_raw(files.join(work, "stats", name + ".json")) as f:
                shards.append((split, json.load(f)))
    stats = link_sources.link_stats(stats, args.link_source, found.get("hyperlinks_resolved", 0))
    return build.make_manifest(opts, stats, counters, tok_info, shards, inputs)


def run(args, beam_args) -> dict:
    """The build (or the finished one it may reuse): the local builder's checks first."""
    opts = build.recorded_options(args)
    paths = input_files(args.input, args.format)
    local = [p for p in paths if not files.is_remote(p)]
    for warning in readers.check_fields(local, args.format, build.field_map(args),
                                        args.explicit_fields):
        log.warning("%s", warning)
    inputs = fingerprints(paths)
    old = build.reusable(args, opts, inputs)
    if old is not None:
        return old
    with tempfile.TemporaryDirectory(prefix="linkbert_beam_") as scratch:
        tokenizer_src = claim_output(args, paths, scratch)
        return _run(args, beam_args, opts, paths, inputs, tokenizer_src)


def _run(args, beam_args, opts, paths, inputs, tokenizer_src) -> dict:
    out = args.output_dir
    work = files.join(out, build.WORK)
    for sub in ("documents", "stats"):
        files.makedirs(files.join(work, sub))
    t0 = time.time()
    tok_info, tok_json = prepare_tokenizer(tokenizer_src, out)
    p = beam.Pipeline(options=pipeline_options(beam_args))
    construct(p, args, opts, list(enumerate(paths)), tok_json, tok_info["special_ids"], work)
    found = counters_from(_run_pipeline(p))
    if not found.get("num_documents"):
        raise readers.DataError(
            f"no usable documents in {', '.join(args.input)} ({found.get('records', 0)} "
            f"records read; malformed {found.get('malformed_records', 0)}, empty "
            f"{found.get('empty_documents', 0)}, duplicates {found.get('duplicate_ids', 0)})")
    _concat_documents(work, out)
    manifest = _manifest(args, opts, work, found, tok_info, inputs)
    files.remove(work)
    files.write_json(files.join(out, MANIFEST_NAME), manifest)
    build.print_summary(manifest, time.time() - t0, 0.0)
    return manifest


def _run_pipeline(p):
    """``p`` run to its end; an input error a worker raised, which the runner wraps in its
    own exception type (the worker's traceback in its message), as a ``DataError`` with
    that error's line. Any other failure propagates as it is."""
    try:
        result = p.run()
        result.wait_until_finish()
        return result
    except Exception as e:
        found = re.search(r"(?:DataError|ValueError|FileNotFoundError): ([^\n]+)", str(e))
        if found is None or isinstance(e, (UserError, OSError)):  # not wrapped
            raise
        raise readers.DataError(found.group(1)) from e


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    return run_cli(lambda: run(*parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
