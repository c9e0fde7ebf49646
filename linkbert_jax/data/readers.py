"""Streaming corpus readers: one ``RawDoc`` per usable record, problems counted.

Formats: ``wikipedia`` (MediaWiki XML dumps, see ``wikipedia.py``), ``sphinx_html`` (a
Sphinx HTML tree, one document per section, see ``sphinx_html.py``), ``jsonl``,
``parquet`` and ``hf`` (a directory written by ``datasets.save_to_disk``). Records of the
last three map to documents through a ``FieldMap`` so a citation corpus
(``pmid``, ``title`` + ``abstract``, ``references``) reads like the default
(``id``, ``title``, ``text``, ``links``).

Wikitext is *not* converted here (that is the expensive part and runs in worker processes):
a wikipedia ``RawDoc`` carries ``wikitext=True`` and its links are filled in later.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Iterator

from linkbert_jax.data import files, sphinx_html, wikipedia
from linkbert_jax.data.documents import RawDoc  # noqa: F401  (the readers' API)
from linkbert_jax.errors import DataError

log = logging.getLogger(__name__)
FORMATS = ("wikipedia", "jsonl", "parquet", "hf", "sphinx_html")
_NO_FIELD_MAP = ("wikipedia", "sphinx_html")  # formats whose records have no field names
_WHOLE_DIRECTORY = ("hf", "sphinx_html")  # an --input directory is one input
_MAX_NAMED_WARNINGS = 20  # per counter; the rest are only counted


@dataclass
class FieldMap:
    id: str = "id"
    title: str = "title"
    text: tuple[str, ...] = ("text",)  # several fields are joined with a newline
    links: str = "links"


@dataclass
class Counters:
    """Reader/graph counters, reported in the manifest."""
    records: int = 0
    malformed_records: int = 0
    invalid_utf8: int = 0
    empty_documents: int = 0
    duplicate_ids: int = 0
    redirects: int = 0
    non_main_namespace: int = 0
    truncated_inputs: int = 0
    links_total: int = 0
    dangling_links: int = 0
    self_links: int = 0
    duplicate_links: int = 0
    namespaces: set = field(default_factory=set, repr=False)
    quiet: bool = field(default=False, repr=False)  # count only (second reading pass)
    _warned: dict = field(default_factory=dict, repr=False)

    def warn(self, counter: str, msg: str, *args) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        n = self._warned.get(counter, 0) + 1
        self._warned[counter] = n
        if self.quiet:
            return
        if n <= _MAX_NAMED_WARNINGS:
            log.warning(msg, *args)
        elif n == _MAX_NAMED_WARNINGS + 1:
            log.warning("further '%s' warnings are only counted", counter)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not f.name.startswith("_") and f.name not in ("namespaces", "quiet")}


def _record_to_doc(rec, fields: FieldMap, source: str, counters: Counters) -> RawDoc | None:
    if not isinstance(rec, dict):
        counters.warn("malformed_records", "%s: record is not an object, skipped", source)
        return None
    parts = [rec.get(f) for f in fields.text]
    parts = [p if isinstance(p, str) else ("" if p is None else str(p)) for p in parts]
    text = "\n".join(p for p in parts if p.strip())
    doc_id, title = rec.get(fields.id), rec.get(fields.title)
    if doc_id is None and title is None:
        counters.warn("malformed_records", "%s: record has neither '%s' nor '%s', skipped",
                      source, fields.id, fields.title)
        return None
    links = rec.get(fields.links) or []
    if isinstance(links, (str, int)):
        links = [links]
    if not isinstance(links, (list, tuple)) and not hasattr(links, "tolist"):
        counters.warn("malformed_records", "%s: '%s' is not a list, links ignored",
                      source, fields.links)
        links = []
    links = [str(x) for x in (links.tolist() if hasattr(links, "tolist") else links)
             if x is not None]
    return RawDoc(id=str(doc_id if doc_id is not None else title),
                  title="" if title is None else str(title), text=text, links=links,
                  source=source)


def read_jsonl(path: str, fields: FieldMap, counters: Counters) -> Iterator[RawDoc]:
    lineno = 0
    try:
        with files.open_input(path) as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                counters.records += 1
                source = f"{path}:{lineno}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    counters.warn("invalid_utf8", "%s: invalid UTF-8 (%s), bad bytes replaced",
                                  source, e.reason)
                    line = raw.decode("utf-8", errors="replace")
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    counters.warn("malformed_records", "%s: malformed JSON (%s), skipped",
                                  source, e.msg)
                    continue
                doc = _record_to_doc(rec, fields, source, counters)
                if doc is not None:
                    yield doc
    except (EOFError, OSError) as e:
        counters.warn("truncated_inputs", "%s: truncated or corrupt after line %d (%s)",
                      path, lineno, e)


def read_parquet(path: str, fields: FieldMap, counters: Counters) -> Iterator[RawDoc]:
    import pyarrow.parquet as pq

    with files.open_raw(path) as raw:
        try:
            pf = pq.ParquetFile(raw)
        except Exception as e:  # pyarrow raises several types for a bad file
            raise DataError(f"{path}: cannot open as Parquet ({e})") from None
        row = 0
        for batch in pf.iter_batches(batch_size=1024):
            for rec in batch.to_pylist():
                row += 1
                counters.records += 1
                doc = _record_to_doc(rec, fields, f"{path}:row {row}", counters)
                if doc is not None:
                    yield doc


def _hf_splits(path: str) -> list:
    """``[(split name, Dataset)]`` of a saved Hugging Face datasets directory, by name
    (``""`` for a lone ``Dataset``); a ``DataError`` when ``path`` is not one."""
    import datasets

    try:
        ds = datasets.load_from_disk(path)
    except Exception as e:
        raise DataError(f"{path}: not a Hugging Face datasets directory ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        return [(name, ds[name]) for name in sorted(ds)]
    return [("", ds)]


def read_hf(path: str, fields: FieldMap, counters: Counters) -> Iterator[RawDoc]:
    for name, split in _hf_splits(path):
        for row, rec in enumerate(split, 1):
            counters.records += 1
            doc = _record_to_doc(rec, fields, f"{path}:{name}{'/' if name else ''}row {row}",
                                 counters)
            if doc is not None:
                yield doc


def read_wikipedia(path: str, counters: Counters, redirects: dict) -> Iterator[RawDoc]:
    """Main-namespace articles; redirects go into ``redirects`` (title -> target)."""
    for page in wikipedia.iter_pages(path, counters):
        counters.records += 1
        if page.ns != "0":
            counters.non_main_namespace += 1
            continue
        title = wikipedia.normalize_title(page.title)
        if page.redirect is not None:
            counters.redirects += 1
            target = wikipedia.normalize_title(page.redirect)
            if title and target:
                redirects[title] = target
            continue
        if not title:
            counters.warn("malformed_records", "%s: page %d has no title, skipped",
                          path, page.line)
            continue
        yield RawDoc(id=page.id or title, title=title, text=page.wikitext, links=None,
                     source=f"{path}:page {page.line}", wikitext=True)


FIELD_FLAGS = {"id": "--id_field", "title": "--title_field", "text": "--text_fields",
               "links": "--links_field"}
SCAN_RECORDS = 1000  # JSONL: records read up front to see which fields exist


def _jsonl_fields(path: str) -> set[str]:
    """Keys of the (object) records among the first ``SCAN_RECORDS`` of a JSONL file."""
    opener = open
    if path.endswith(".gz"):
        import gzip
        opener = gzip.open
    elif path.endswith(".bz2"):
        import bz2
        opener = bz2.open
    seen, n = set(), 0
    try:
        with opener(path, "rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    seen.update(rec)
                n += 1
                if n >= SCAN_RECORDS:
                    break
    except (EOFError, OSError):
        pass  # a truncated file: the reader counts it
    return seen


def _schema_fields(path: str, fmt: str) -> dict[str, set[str]]:
    """``{where: field names}`` of one input (several for a ``DatasetDict``)."""
    if fmt == "jsonl":
        return {path: _jsonl_fields(path)}
    if fmt == "parquet":
        import pyarrow.parquet as pq
        try:
            return {path: set(pq.read_schema(path).names)}
        except Exception as e:  # pyarrow raises several types for a bad file
            raise DataError(f"{path}: cannot open as Parquet ({e})") from None
    return {f"{path}:{name}" if name else path: set(split.column_names)
            for name, split in _hf_splits(path)}


def check_fields(paths: list[str], fmt: str, fields: FieldMap, explicit=()) -> list[str]:
    """Every field of ``fields`` must exist in every input (Parquet/HF: the schema; JSONL:
    seen in the first ``SCAN_RECORDS`` records), else ``DataError`` naming the field and
    the available ones. Fields left at their defaults are optional where the format
    allows (a title, links: warned about), but some text and an id or a title must
    exist. ``explicit``: roles (id/title/text/links) named on the command line.
    Returns the warnings."""
    if fmt in _NO_FIELD_MAP:
        return []
    warnings = []
    for path in expand_inputs(paths, fmt):
        for where, have in _schema_fields(path, fmt).items():
            warnings += _check_one(where, have, fields, set(explicit), fmt)
    return warnings


def _check_one(where: str, have: set[str], fields: FieldMap, explicit: set[str],
               fmt: str) -> list[str]:
    seen = "seen in its first %d records" % SCAN_RECORDS if fmt == "jsonl" else "in its schema"
    avail = ", ".join(sorted(have)) or "none"
    wanted = [("id", fields.id), ("title", fields.title), ("links", fields.links)]
    wanted += [("text", f) for f in fields.text]
    for role, name in wanted:
        if name not in have and (role in explicit or role == "text"):
            raise DataError(f"{where}: no field {name!r} ({FIELD_FLAGS[role]}) {seen}; "
                            f"fields: {avail}")
    if fields.id not in have and fields.title not in have:
        raise DataError(f"{where}: neither {fields.id!r} (--id_field) nor {fields.title!r} "
                        f"(--title_field) {seen}; fields: {avail}")
    if fields.links not in have:
        return [f"{where}: no field {fields.links!r} {seen}: its documents have no links "
                f"(--links_field names the field; fields: {avail})"]
    return []


def expand_inputs(paths: list[str], fmt: str) -> list[str]:
    """Directories expand to their files (sorted) except for ``hf`` and ``sphinx_html``;
    missing paths fail."""
    out = []
    for p in paths:
        if not os.path.exists(p):
            raise DataError(f"{p}: no such file or directory")
        if os.path.isdir(p) and fmt not in _WHOLE_DIRECTORY:
            out.extend(sorted(os.path.join(p, n) for n in os.listdir(p)
                              if not n.startswith(".") and os.path.isfile(os.path.join(p, n))))
        else:
            out.append(p)
    return out


def read_documents(paths: list[str], fmt: str, fields: FieldMap, counters: Counters,
                   redirects: dict) -> Iterator[RawDoc]:
    """All documents of all inputs, in input order."""
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    for path in expand_inputs(paths, fmt):
        yield from read_file(path, fmt, fields, counters, redirects)


def read_file(path: str, fmt: str, fields: FieldMap, counters: Counters,
              redirects: dict) -> Iterator[RawDoc]:
    """The documents of one input file (or ``hf`` directory)."""
    if fmt == "wikipedia":
        return read_wikipedia(path, counters, redirects)
    if fmt == "jsonl":
        return read_jsonl(path, fields, counters)
    if fmt == "parquet":
        return read_parquet(path, fields, counters)
    if fmt == "sphinx_html":
        return sphinx_html.read_sphinx_html(path, counters)
    return read_hf(path, fields, counters)
