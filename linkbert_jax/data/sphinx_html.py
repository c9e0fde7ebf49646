"""Sphinx HTML documentation (e.g. Debian's ``python3.11-doc``) as a linked corpus.

``--format sphinx_html --input HTML_ROOT``: every ``<section>`` of every page is a
document, with id ``page#section-id`` (``library/os.path.html#module-os.path``), its first
heading as title, and as text only what lies directly in it (its subsections are
documents of their own). Its links are the ``a.reference.internal`` hrefs of that text,
each resolved to the section that holds the target anchor: an anchor on a ``dt`` or
``span`` inside a section means that section, an empty target element right before a
``<section>`` (``<span id="label"></span><section ...>``) labels that section, a page
without fragment its first
top-level section, and an anchor in a section without text of its own the first
section below it that has text (where a reader following the link starts reading).
Links that resolve to nothing keep their raw ``page#anchor`` name, so the link graph
counts them as dangling; self and duplicate links are counted there too.

Skipped: everything outside sections (navigation, sidebars, footers, search boxes),
``script``/``style``/``nav``/``form`` elements, headerlinks (the ``¶``), and the index
pages (``genindex*``, ``py-modindex``, ``search``, ``contents``: lists of links, no text).

Two passes over the pages in sorted path order: the first maps anchors to sections
(memory: one entry per anchor), the second yields the documents; pages parsed in the
first are kept for the second up to ``CACHE_CHARS`` characters of text, the others are
parsed again, so memory stays bounded on any tree. Only the
standard library's ``html.parser`` is used. Counters: ``records`` = pages read,
``malformed_records`` = pages whose ``<section>`` tags do not balance, ``invalid_utf8``,
``empty_documents`` = pages without sections (sections without text are counted when
the index drops them).
"""
from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Iterator
from urllib.parse import unquote

from linkbert_jax.data.documents import RawDoc
from linkbert_jax.errors import DataError

SKIP_PAGES = re.compile(r"^(genindex(-.*)?|py-modindex|modindex|search|contents)\.html$")
_SKIP_TAGS = {"script", "style", "nav", "footer", "form", "template", "noscript"}
_SKIP_CLASSES = {"headerlink", "sphinxsidebar", "related", "footer"}
_SKIP_ROLES = {"navigation", "search"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
         "source", "track", "wbr"}  # no end tag: never a skipped region
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = _HEADINGS | {"p", "div", "pre", "li", "dt", "dd", "dl", "ul", "ol", "table", "tr",
                       "th", "td", "blockquote", "section", "br", "hr", "caption", "figure",
                       "figcaption", "aside"}
# Pages of the first pass kept for the second, up to this many characters of text (the
# Python documentation has 9M): the rest are parsed again.
CACHE_CHARS = 64 << 20
_RE_WS = re.compile(r"\s+")
_RE_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


@dataclass
class Section:
    id: str
    line: int
    parent: int  # index of the enclosing section, -1 at the top
    title: list = None  # text pieces of its first heading (None until one is seen)
    text: list = field(default_factory=list)
    hrefs: list = field(default_factory=list)


class _PageParser(HTMLParser):
    """Sections of one page (in start-tag order), and which section holds each id."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.anchors: dict[str, int] = {}
        self.stack: list[int] = []  # open sections
        self.skip: list | None = None  # [tag, depth] while inside a skipped element
        self.heading: str | None = None  # tag of the title heading being read
        self.pre = 0
        self.stray_ends = 0
        self.pending: list[str] = []  # ids with nothing after them yet but whitespace

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.skip is not None:
            self.skip[1] += tag == self.skip[0]
            return
        if tag == "section":
            self._open(a.get("id") or f"section-{len(self.sections)}")
            for anchor in self.pending:  # empty targets right before it label it
                self.anchors[anchor] = self.stack[-1]
        self.pending = []
        if a.get("id"):
            self.pending = [a["id"]]
            if self.stack:
                self.anchors.setdefault(a["id"], self.stack[-1])
        classes = set((a.get("class") or "").split())
        if tag not in _VOID and (tag in _SKIP_TAGS or classes & _SKIP_CLASSES
                                 or a.get("role") in _SKIP_ROLES):
            self.skip = [tag, 1]
            return
        if not self.stack:
            return
        cur = self.sections[self.stack[-1]]
        if tag in _HEADINGS and cur.title is None:
            cur.title, self.heading = [], tag
        elif tag == "a" and {"reference", "internal"} <= classes and a.get("href") \
                and self.heading is None:
            cur.hrefs.append(a["href"])
        self.pre += tag == "pre"
        if tag in _BLOCKS and self.heading is None:
            cur.text.append("\n")

    def _open(self, sid: str) -> None:
        self.heading = None  # a heading left open (malformed) ends with its section
        parent = self.stack[-1] if self.stack else -1
        self.sections.append(Section(id=sid, line=self.getpos()[0], parent=parent))
        self.stack.append(len(self.sections) - 1)

    def handle_endtag(self, tag):
        if self.skip is not None:
            self.skip[1] -= tag == self.skip[0]
            if self.skip[1] == 0:
                self.skip = None
            return
        if tag == "section":
            self.heading = None
            if self.stack:
                self.stack.pop()
            else:
                self.stray_ends += 1
            return
        if tag == self.heading:
            self.heading = None
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _BLOCKS and self.stack:
            self.sections[self.stack[-1]].text.append("\n")

    def handle_data(self, data):
        if self.pending and data.strip():
            self.pending = []
        if self.skip is not None or not self.stack:
            return
        cur = self.sections[self.stack[-1]]
        if self.heading is not None:
            cur.title.append(data)
        else:
            cur.text.append(data if self.pre else _RE_WS.sub(" ", data))


def clean_text(pieces: list[str]) -> str:
    """Lines with runs of spaces collapsed, stripped, empty ones dropped."""
    lines = (_RE_SPACES.sub(" ", line).strip() for line in "".join(pieces).split("\n"))
    return "\n".join(line for line in lines if line)


@dataclass
class Page:
    rel: str  # path under the root, "/"-separated
    path: str
    sections: list[Section]
    anchors: dict[str, int]
    texts: list[str]
    malformed: str | None  # why its <section> tags do not balance
    bad_utf8: str | None


def list_pages(root: str) -> list[str]:
    """``.html`` pages under ``root`` ("/"-separated, sorted), without ``_static``-like
    directories and the index pages (``SKIP_PAGES``)."""
    out = []
    for d, dirs, names in os.walk(root):
        dirs[:] = [n for n in dirs if not n.startswith((".", "_"))]
        rel_dir = os.path.relpath(d, root)
        for n in names:
            if n.endswith(".html") and not SKIP_PAGES.match(n):
                out.append(n if rel_dir == "." else posixpath.join(
                    rel_dir.replace(os.sep, "/"), n))
    return sorted(out)


def parse_page(root: str, rel: str) -> Page:
    """One page parsed (problems noted, not counted); an unreadable file is a
    ``DataError`` naming it."""

    path = os.path.join(root, *rel.split("/"))
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    bad_utf8 = None
    try:
        html = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad_utf8, html = e.reason, raw.decode("utf-8", errors="replace")
    p = _PageParser()
    p.feed(html)
    p.close()
    malformed = None
    if p.stray_ends or p.stack:
        malformed = f"{p.stray_ends} stray </section>, {len(p.stack)} unclosed <section>"
    texts = [clean_text(s.text) for s in p.sections]
    for s in p.sections:
        s.text = []  # only the clean text is kept
    return Page(rel, path, p.sections, p.anchors, texts, malformed, bad_utf8)


def landing(page: Page) -> list[int | None]:
    """For each section, the section a link to it lands in: itself if it has text, else
    its first descendant (document order) with text, else None."""
    land: list[int | None] = [i if t else None for i, t in enumerate(page.texts)]
    for j, text in enumerate(page.texts):
        if not text:
            continue
        a = page.sections[j].parent
        while a >= 0 and land[a] is None:
            land[a] = j
            a = page.sections[a].parent
    return land


def doc_id(page: Page, section: int) -> str:
    return f"{page.rel}#{page.sections[section].id}"


def page_targets(page: Page) -> dict[str, str]:
    """``{"page#anchor" or "page": document id}`` of the anchors that land in a section."""
    land = landing(page)
    out = {}
    for anchor, i in page.anchors.items():
        if land[i] is not None:
            out[f"{page.rel}#{anchor}"] = doc_id(page, land[i])
    tops = [i for i, s in enumerate(page.sections) if s.parent < 0]
    if tops and land[tops[0]] is not None:
        out[page.rel] = doc_id(page, land[tops[0]])
    return out


def link_key(page_rel: str, href: str) -> str:
    """An href of ``page_rel`` as ``"page#anchor"`` (or ``"page"``) under the root."""
    path, _, frag = href.partition("#")
    path = unquote(path.split("?", 1)[0])
    if path:
        path = posixpath.normpath(posixpath.join(posixpath.dirname(page_rel), path))
    else:
        path = page_rel
    frag = unquote(frag)
    return f"{path}#{frag}" if frag else path


def _check_root(root: str) -> list[str]:

    if not os.path.isdir(root):
        raise DataError(f"{root}: --format sphinx_html reads the HTML root directory of a "
                        f"Sphinx build (e.g. /usr/share/doc/python3.11/html), not a file")
    pages = list_pages(root)
    if not pages:
        raise DataError(f"{root}: no .html pages under this directory")
    return pages


def read_sphinx_html(root: str, counters) -> Iterator:
    """Documents (``documents.RawDoc``) of the Sphinx HTML tree at ``root``, in page path
    order, then section order; links are document ids (or dangling raw names)."""

    pages = _check_root(root)
    targets: dict[str, str] = {}
    cache, cached = {}, 0
    for rel in pages:  # pass 1: anchors -> documents
        page = parse_page(root, rel)
        targets.update(page_targets(page))
        size = sum(map(len, page.texts))
        if cached + size <= CACHE_CHARS:
            cache[rel], cached = page, cached + size
    for rel in pages:  # pass 2: documents
        page = cache.pop(rel, None) or parse_page(root, rel)
        _count(page, counters)
        for i, s in enumerate(page.sections):
            links = [link_key(rel, h) for h in s.hrefs]
            yield RawDoc(id=doc_id(page, i), title=clean_text(s.title or []).replace("\n", " "),
                         text=page.texts[i], links=[targets.get(k, k) for k in links],
                         source=f"{page.path}:{s.line}")


def _count(page: Page, counters) -> None:
    counters.records += 1
    if page.bad_utf8:
        counters.warn("invalid_utf8", "%s: invalid UTF-8 (%s), bad bytes replaced",
                      page.path, page.bad_utf8)
    if page.malformed:
        counters.warn("malformed_records", "%s: %s; its sections are kept as parsed",
                      page.path, page.malformed)
    if not page.sections:
        counters.warn("empty_documents", "%s: no <section>, skipped", page.path)
