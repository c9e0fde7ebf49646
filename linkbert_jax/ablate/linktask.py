"""Downstream link task: which of four segments comes from a document this one links to?

    python -m linkbert_jax.ablate.linktask --build BUILD_DIR --output_dir TASK_DIR

From a finished build (``documents.jsonl`` says each document's split) this writes a
multiple-choice task in the ``mc`` format of ``python -m linkbert_jax.finetune``
(``{"id", "sent1", "sent2", "ending0".."ending3", "label"}``, docs/finetune.md):

* an anchor is a segment of a **held-out** document (split ``eval``, never seen in
  pretraining) that has at least one hyperlink to another document;
* the right ending is a segment of a document it links to, the three others are
  segments of distinct, uniformly drawn documents it does not link to (nor itself);
* the links are the corpus's **true hyperlinks**, whatever link source the build used
  (a tfidf or random build records its own links in ``documents.jsonl``): the corpus is
  read again with the build's recorded options through the builder's own reader, index
  and link resolution (data/readers.py, index.py, graph.py), so the document indices and
  the segments are the build's;
* a segment's text is its tokens (the build's tokenizer and segment length) decoded
  with the build's tokenizer: the candidates are exactly the pretraining segments;
* every draw is keyed by ``(seed, anchor document, segment)`` (data/keyed.py's hash):
  the same build, options and seed give the same bytes;
* the task's train/dev split is by anchor document (``--dev_fraction`` of the anchor
  documents, at least one, chosen by key; ``--test_fraction`` adds a ``test.jsonl`` of
  other anchor documents, for a score that model selection on dev has not seen);
  ``train_few_shot.jsonl`` keeps
  ``--few_shot_fraction`` (10%) of the training examples, chosen by key.

Writes ``train.jsonl``, ``dev.jsonl``, ``train_few_shot.jsonl`` and ``task.json`` (counts
and options), each under a temporary name, then renamed; ``task.json`` last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from linkbert_jax.data import build, graph, index, keyed, outdir, readers
from linkbert_jax.data import tokenizer as tokenizer_lib
from linkbert_jax.data import manifests
from linkbert_jax.data.manifests import DOCUMENTS_NAME, MANIFEST_NAME
from linkbert_jax.data.files import atomic_write, write_json
from linkbert_jax import errors
from linkbert_jax.errors import CorruptDataError

TASK_FILES = ("train.jsonl", "dev.jsonl", "train_few_shot.jsonl")
TASK_META = "task.json"
# Keyed-draw tags of this task (kept apart from the builder's, data/keyed.py).
TAG_ANCHOR, TAG_POSITIVE, TAG_NEGATIVE, TAG_SEGMENT, TAG_LABEL, TAG_DEV, TAG_FEW = \
    range(101, 108)
MAX_REJECTIONS = 4096  # negative draws before falling back to drawing from the list


@dataclass
class Corpus:
    """The build's documents, their segments' tokens and the true hyperlinks (CSR)."""
    ids: list
    is_eval: np.ndarray  # bool per document
    tokens: np.ndarray
    seg_offsets: np.ndarray  # token offset of each segment (+ the end)
    doc_seg_start: np.ndarray  # first segment of each document (+ the end)
    link_offsets: np.ndarray
    link_targets: np.ndarray
    decode: object  # token ids -> text

    @property
    def num_docs(self) -> int:
        return len(self.ids)

    def nseg(self, doc: int) -> int:
        return int(self.doc_seg_start[doc + 1] - self.doc_seg_start[doc])

    def links(self, doc: int) -> np.ndarray:
        return self.link_targets[self.link_offsets[doc]:self.link_offsets[doc + 1]]

    def text(self, doc: int, seg: int) -> str:
        g = int(self.doc_seg_start[doc]) + seg
        return self.decode(self.tokens[self.seg_offsets[g]:self.seg_offsets[g + 1]].tolist())


def read_documents_file(build_dir: str) -> list[dict]:
    path = os.path.join(build_dir, DOCUMENTS_NAME)
    if not os.path.exists(os.path.join(build_dir, MANIFEST_NAME)) or not os.path.exists(path):
        raise readers.DataError(f"{build_dir}: not a finished build (no {MANIFEST_NAME} "
                                f"or {DOCUMENTS_NAME})")
    with open(path, encoding="utf-8") as f:
        try:
            return [json.loads(line) for line in f]
        except ValueError as e:  # JSON or UTF-8
            raise CorruptDataError(f"{path}: not the builder's JSON lines ({e})") from None


def build_options(build_dir: str, inputs=None) -> argparse.Namespace:
    """The build's recorded options (``inputs`` replaces its ``--input`` paths), checked
    against the input fingerprints of its manifest."""
    manifest = manifests.read_manifest(build_dir)
    opts = argparse.Namespace(**manifest["options"])
    if inputs:
        opts.input = list(inputs)
    paths = readers.expand_inputs(opts.input, opts.format)
    why = outdir.input_change(manifest.get("inputs"), outdir.fingerprint_inputs(paths))
    if why:
        raise readers.DataError(f"{build_dir}: its corpus is not the one given: {why}")
    return opts


def reread(build_dir: str, opts, work: str):
    """The corpus read again as the builder did: (IndexResult, link offsets, targets)."""
    counters, redirects = readers.Counters(quiet=True), {}
    index.init_worker(os.path.join(build_dir, build.TOKENIZER), opts.segment_length,
                      opts.wikitext_parser, ())
    docs = readers.read_documents(opts.input, opts.format, build.field_map(opts), counters,
                                  redirects)
    res = index.build_index(docs, work, counters)
    resolver = graph.LinkResolver(res.ids, res.titles, redirects)
    offs, tgts = graph.resolve_links(os.path.join(work, "links.jsonl"), res.num_docs,
                                     resolver, counters)
    return res, offs, tgts


def open_corpus(build_dir: str, work: str, inputs=None) -> Corpus:
    """The build's documents with their true hyperlinks; ``work`` holds the token store."""
    documents = read_documents_file(build_dir)
    _, offs, tgts = reread(build_dir, build_options(build_dir, inputs), work)
    with open(os.path.join(work, "meta.jsonl"), encoding="utf-8") as f:
        ids = [json.loads(line)[0] for line in f]
    if ids != [d["id"] for d in documents]:
        raise readers.DataError(f"{build_dir}: the corpus read again does not give the "
                                f"build's documents ({len(ids)} vs {len(documents)})")
    tok = tokenizer_lib.load_fast(os.path.join(build_dir, build.TOKENIZER))
    size = os.path.getsize(os.path.join(work, "tokens.i32"))
    return Corpus(
        ids=ids, is_eval=np.array([d["split"] == "eval" for d in documents], bool),
        tokens=np.memmap(os.path.join(work, "tokens.i32"), np.int32, "r") if size
        else np.zeros(0, np.int32),
        seg_offsets=np.load(os.path.join(work, "seg_offsets.npy")),
        doc_seg_start=np.load(os.path.join(work, "doc_seg_start.npy")),
        link_offsets=offs, link_targets=tgts, decode=tok.decode)


def negatives(corpus: Corpus, seed: int, doc: int, seg: int, k: int) -> list[int] | None:
    """``k`` distinct documents drawn uniformly among those ``doc`` does not link to (nor
    ``doc``); None if there are fewer."""
    banned = set(corpus.links(doc).tolist()) | {doc}
    if corpus.num_docs - len(banned) < k:
        return None
    out: list[int] = []
    for n in range(MAX_REJECTIONS):
        d = int(keyed.below(keyed.mix(seed, TAG_NEGATIVE, doc, seg, n), corpus.num_docs))
        if d not in banned:
            out.append(d)
            banned.add(d)
            if len(out) == k:
                return out
    pool = [d for d in range(corpus.num_docs) if d not in banned]  # hub documents only
    for n in range(k - len(out)):
        h = keyed.mix(seed, TAG_NEGATIVE, doc, seg, MAX_REJECTIONS + n)
        out.append(pool.pop(int(keyed.below(h, len(pool)))))
    return out


def example(corpus: Corpus, seed: int, doc: int, seg: int, choices: int) -> dict | None:
    """The task example anchored at segment ``seg`` of ``doc`` (None: not enough
    unlinked documents for the wrong endings)."""
    links = corpus.links(doc)
    pos = int(links[keyed.below(keyed.mix(seed, TAG_POSITIVE, doc, seg), len(links))])
    negs = negatives(corpus, seed, doc, seg, choices - 1)
    if negs is None:
        return None
    label = int(keyed.below(keyed.mix(seed, TAG_LABEL, doc, seg), choices))
    cands = negs[:label] + [pos] + negs[label:]
    rec = {"id": f"{corpus.ids[doc]}@{seg}", "sent1": corpus.text(doc, seg), "sent2": ""}
    for i, d in enumerate(cands):
        s = int(keyed.below(keyed.mix(seed, TAG_SEGMENT, doc, seg, d), corpus.nseg(d)))
        rec[f"ending{i}"] = corpus.text(d, s)
    rec.update(label=label, doc=doc, segment=seg, candidate_docs=cands)
    return rec


def anchor_segments(corpus: Corpus, seed: int, doc: int, per_document: int) -> list[int]:
    """The anchor segments of ``doc``: all, or ``per_document`` chosen by key (in order)."""
    n = corpus.nseg(doc)
    if per_document <= 0 or n <= per_document:
        return list(range(n))
    keys = keyed.mix(seed, TAG_ANCHOR, doc, np.arange(n))
    return sorted(np.argsort(keys, kind="stable")[:per_document].tolist())


def by_key(items: list, keys: list[int], n: int) -> set:
    """The ``n`` items with the smallest keys (ties: first)."""
    order = sorted(range(len(items)), key=lambda i: (keys[i], i))
    return {items[i] for i in order[:n]}


def assign_anchors(anchors: list[int], seed: int, dev_fraction: float,
                   test_fraction: float = 0.0) -> dict[int, str]:
    """Anchor document -> task file: in key order, the first ``dev_fraction`` (at least
    one) go to dev, the next ``test_fraction`` (at least one if > 0) to test, the rest
    (at least one) to train."""
    order = sorted(anchors, key=lambda d: (int(keyed.mix(seed, TAG_DEV, d)), d))
    n_dev = max(1, round(dev_fraction * len(order)))
    n_test = max(1, round(test_fraction * len(order))) if test_fraction > 0 else 0
    if n_dev + n_test >= len(order):
        raise readers.DataError(f"{len(order)} held-out documents with links are too few "
                                f"for a dev, a test and a train split (raise the build's "
                                f"--eval_fraction)")
    return {d: "dev.jsonl" if i < n_dev else "test.jsonl" if i < n_dev + n_test
            else "train.jsonl" for i, d in enumerate(order)}


def make_task(corpus: Corpus, seed: int, choices: int = 4, per_document: int = 0,
              dev_fraction: float = 0.2, few_shot_fraction: float = 0.1,
              test_fraction: float = 0.0):
    """``({file name: records}, counts)`` of the task on ``corpus``."""
    anchors = [d for d in range(corpus.num_docs)
               if corpus.is_eval[d] and len(corpus.links(d))]
    where = assign_anchors(anchors, seed, dev_fraction, test_fraction)
    out = {name: [] for name in TASK_FILES + (("test.jsonl",) if test_fraction else ())}
    skipped = 0
    for d in anchors:
        for s in anchor_segments(corpus, seed, d, per_document):
            rec = example(corpus, seed, d, s, choices)
            if rec is None:
                skipped += 1
            else:
                out[where[d]].append(rec)
    train = out["train.jsonl"]
    few_keys = [int(keyed.mix(seed, TAG_FEW, r["doc"], r["segment"])) for r in train]
    keep = by_key(list(range(len(train))), few_keys,
                  max(1, round(few_shot_fraction * len(train))))
    out["train_few_shot.jsonl"] = [r for i, r in enumerate(train) if i in keep]
    splits = sorted(set(where.values()))
    counts = {"anchor_documents": {n.split(".")[0]: sum(v == n for v in where.values())
                                   for n in splits},
              "examples": {name: len(recs) for name, recs in out.items()},
              "anchors_without_enough_negatives": skipped,
              "held_out_documents": int(corpus.is_eval.sum()),
              "documents": corpus.num_docs,
              "hyperlinks": int(len(corpus.link_targets))}
    return out, counts


def lexical_baseline(train: list[dict], evaluated: list[dict], choices: int) -> float:
    """Accuracy on ``evaluated`` of picking the ending most TF-IDF-cosine-similar to the
    anchor (scikit-learn's ``TfidfVectorizer()`` fitted on the training texts; ties: the
    first): how far word overlap alone goes, a reference for the fine-tuned models."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [r[k] for r in train for k in ["sent1"] + [f"ending{i}" for i in range(choices)]]
    vec = TfidfVectorizer().fit(texts)
    right = 0
    for r in evaluated:
        x = vec.transform([r["sent1"]] + [r[f"ending{i}"] for i in range(choices)])
        right += int(np.argmax((x[1:] @ x[0].T).toarray().ravel()) == r["label"])
    return right / max(1, len(evaluated))


def write_task(out_dir: str, files: dict, meta: dict) -> None:
    """The task files, each written under a temporary name then renamed; meta last."""
    os.makedirs(out_dir, exist_ok=True)
    for name, records in files.items():
        path = os.path.join(out_dir, name)
        with atomic_write(path, encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    write_json(os.path.join(out_dir, TASK_META), meta, indent=1)


def run(args) -> dict:
    """Builds the task of ``args`` (see ``make_parser``); returns its ``task.json``."""
    if args.choices < 2 or not 0 < args.dev_fraction < 1 or \
            not 0 <= args.test_fraction < 1 or not 0 < args.few_shot_fraction <= 1:
        raise readers.DataError("--choices must be >= 2, --dev_fraction in (0, 1), "
                                "--test_fraction in [0, 1), --few_shot_fraction in (0, 1]")
    os.makedirs(args.output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".linktask_", dir=args.output_dir) as work:
        corpus = open_corpus(args.build, work, args.input)
        files, counts = make_task(corpus, args.seed, args.choices, args.per_document,
                                  args.dev_fraction, args.few_shot_fraction,
                                  args.test_fraction)
        del corpus  # the token store lies in ``work``
    meta = {"build": os.path.abspath(args.build), "seed": args.seed,
            "choices": args.choices, "per_document": args.per_document,
            "dev_fraction": args.dev_fraction, "test_fraction": args.test_fraction,
            "few_shot_fraction": args.few_shot_fraction,
            "links": "hyperlinks (the corpus read again)",
            "text": "segments decoded with the build's tokenizer", **counts,
            "tfidf_baseline_accuracy": {
                name.split(".")[0]: lexical_baseline(files["train.jsonl"], files[name],
                                                     args.choices)
                for name in ("dev.jsonl", "test.jsonl") if name in files}}
    write_task(args.output_dir, files, meta)
    return meta


def make_parser() -> argparse.ArgumentParser:
    p = errors.ArgumentParser(prog="python -m linkbert_jax.ablate.linktask",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--build", required=True, help="a finished build's output directory")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--input", action="append",
                   help="the corpus, if not at the build's recorded --input paths")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--choices", type=int, default=4)
    p.add_argument("--per_document", type=int, default=0,
                   help="anchor segments per held-out document (0: all)")
    p.add_argument("--dev_fraction", type=float, default=0.2)
    p.add_argument("--test_fraction", type=float, default=0.0,
                   help="anchor documents of a test split (test.jsonl; 0: none)")
    p.add_argument("--few_shot_fraction", type=float, default=0.1)
    return p


def main(argv=None) -> int:
    from linkbert_jax.errors import run_cli
    return run_cli(lambda: _say(run(make_parser().parse_args(argv))))


def _say(meta: dict) -> None:
    ex = meta["examples"]
    test = f"{ex['test.jsonl']} test / " if "test.jsonl" in ex else ""
    print(f"link task: {ex['train.jsonl']} train / {ex['dev.jsonl']} dev / {test}"
          f"{ex['train_few_shot.jsonl']} few-shot examples from "
          f"{sum(meta['anchor_documents'].values())} held-out anchor documents")


if __name__ == "__main__":
    sys.exit(main())
