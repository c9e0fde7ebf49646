"""MediaWiki XML dumps: streaming page reader and wikitext -> (plain text, link targets).

``iter_pages`` streams ``<page>`` elements (``.xml`` or ``.xml.bz2``) and never holds more
than one page. ``wikitext_to_text`` is a linear, regex-driven converter: templates, tables,
refs, comments, files and categories removed; link anchors kept as text; link targets
returned. ``mwparserfromhell`` is available as ``parser="mwparserfromhell"`` (more faithful
on exotic markup) but runs at ~0.7 MB/s of wikitext on one core, about 4x slower than
the BERT fast tokenizer it feeds, so the default is the fast converter (see docs/data.md).
"""
from __future__ import annotations

import html
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterator

from linkbert_jax.data import files

log = logging.getLogger(__name__)

# Namespaces whose links are not article links (checked case-insensitively), plus the
# names a dump's <siteinfo> declares.
_NON_ARTICLE_PREFIXES = {
    "file", "image", "media", "category", "template", "wikipedia", "wp", "help", "portal",
    "user", "talk", "special", "mediawiki", "module", "draft", "book", "timedtext", "wikt",
    "wiktionary", "s", "q", "b", "n", "v", "voy", "commons", "meta", "m", "species", "d",
    "wikidata", "mw", "w",
}
_LANG_PREFIX = re.compile(r"^[a-z]{2,3}(-[a-z]+)?$")
_REMOVE_CONTENT_TAGS = ("ref", "math", "gallery", "timeline", "score", "syntaxhighlight",
                        "source", "pre", "imagemap", "chem", "ce", "hiero", "graph", "mapframe")
_RE_COMMENT = re.compile(r"<!--.*?(-->|$)", re.S)
_RE_SELF_CLOSING_REF = re.compile(r"<ref\b[^>]*/\s*>", re.I)
_RE_CONTENT_TAG = re.compile(
    r"<(%s)\b[^>]*>.*?</\1\s*>" % "|".join(_REMOVE_CONTENT_TAGS), re.I | re.S)
_RE_ANY_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*\b[^>]*>")
_RE_NEST_TOKEN = re.compile(r"\{\{|\}\}|^[ \t:]*\{\||^[ \t]*\|\}", re.M)
_RE_LINK = re.compile(r"\[\[([^\[\]|\n]*)(?:\|([^\[\]]*))?\]\]")
_RE_EXT_LINK = re.compile(r"\[(?:https?:|ftp:|//)[^\s\]]*\s*([^\]]*)\]")
_RE_BARE_URL = re.compile(r"https?://\S+")
_RE_QUOTES = re.compile(r"'{2,5}")
_RE_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$", re.M)
_RE_LIST = re.compile(r"^[*#:;]+\s*", re.M)
_RE_MAGIC = re.compile(r"__[A-Z]+__|^-{4,}\s*$", re.M)
_RE_BLANKS = re.compile(r"\n\s*\n\s*")
_RE_SPACES = re.compile(r"[ \t\u00a0]+")
_RE_REDIRECT = re.compile(r"^\s*#redirect\s*:?\s*\[\[([^\]|]*)", re.I)


@dataclass
class Page:
    """One ``<page>`` of a dump, before wikitext conversion."""
    id: str
    title: str
    ns: str
    redirect: str | None
    wikitext: str
    line: int  # approximate: number of pages read before it + 1 (XML has no cheap lines)


def normalize_title(title: str) -> str:
    """MediaWiki title normalisation: ``_`` -> space, ``#section`` dropped, first letter up."""
    title = title.split("#", 1)[0].replace("_", " ").strip()
    title = _RE_SPACES.sub(" ", html.unescape(title)) if "&" in title else _RE_SPACES.sub(" ", title)
    if title.startswith(":"):
        title = title[1:].lstrip()
    return title[:1].upper() + title[1:]


def is_article_target(target: str, extra_prefixes=()) -> bool:
    """False for links into other namespaces or other wikis (``File:``, ``fr:`` ...)."""
    if ":" not in target:
        return True
    prefix = target.split(":", 1)[0].strip().lower()
    return not (prefix in _NON_ARTICLE_PREFIXES or prefix in extra_prefixes
                or _LANG_PREFIX.match(prefix))


def _remove_nested(text: str) -> str:
    """Drops ``{{templates}}`` (nested) and ``{| tables |}`` (nested) in one scan."""
    out, depth, last = [], 0, 0
    for m in _RE_NEST_TOKEN.finditer(text):
        tok = m.group().strip(" \t:")
        opening = tok in ("{{", "{|")
        if opening:
            if depth == 0:
                out.append(text[last:m.start()])
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                last = m.end()
    if depth == 0:
        out.append(text[last:])
    return "".join(out)


def wikitext_to_text(wikitext: str, extra_prefixes=()) -> tuple[str, list[str]]:
    """Plain text and the (normalised) article link targets of one page's wikitext."""
    links: list[str] = []

    def link_sub(m: re.Match) -> str:
        target, anchor = m.group(1), m.group(2)
        if not is_article_target(target, extra_prefixes):
            return ""  # files, categories, interwiki: no text (caption links kept above)
        norm = normalize_title(target)
        if norm:
            links.append(norm)
        return anchor if anchor is not None else target.split("#", 1)[0].lstrip(":")

    text = _RE_COMMENT.sub("", wikitext)
    text = _RE_SELF_CLOSING_REF.sub("", text)
    text = _RE_CONTENT_TAG.sub("", text)
    text = _remove_nested(text)
    for _ in range(3):  # innermost links first, so file captions with links collapse
        text, n = _RE_LINK.subn(link_sub, text)
        if n == 0 or "[[" not in text:
            break
    text = _RE_EXT_LINK.sub(r"\1", text)
    text = _RE_BARE_URL.sub("", text)
    text = _RE_ANY_TAG.sub("", text)
    text = _RE_QUOTES.sub("", text)
    text = _RE_HEADING.sub(r"\2", text)
    text = _RE_LIST.sub("", text)
    text = _RE_MAGIC.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    text = _RE_SPACES.sub(" ", text)
    text = _RE_BLANKS.sub("\n", text).strip()
    return text, links


def wikitext_to_text_mwparser(wikitext: str, extra_prefixes=()) -> tuple[str, list[str]]:
    """Same contract as :func:`wikitext_to_text`, with mwparserfromhell (slower)."""
    import mwparserfromhell

    code = mwparserfromhell.parse(wikitext)
    links = []
    for node in code.filter_wikilinks():
        target = str(node.title)
        if is_article_target(target, extra_prefixes) and normalize_title(target):
            links.append(normalize_title(target))
    _remove_all(code, code.filter_templates(recursive=False))
    _remove_all(code, [node for node in code.filter_tags() if str(node.tag).lower()
                       in _REMOVE_CONTENT_TAGS or str(node.tag) in ("table",)])
    text = code.strip_code(normalize=True, collapse=True)
    text = _RE_SPACES.sub(" ", text)
    return _RE_BLANKS.sub("\n", text).strip(), links


def _remove_all(code, nodes) -> None:
    """Removes ``nodes`` from the parsed ``code``; one already gone (with a removed
    parent) is passed over."""
    for node in nodes:
        try:
            code.remove(node)
        except ValueError:
            pass


def iter_pages(path: str, counters) -> Iterator[Page]:
    """Streams the pages of one dump; a truncated/corrupt file is a counted warning."""
    ns_names: set[str] = set()
    count = 0
    page: dict = {}
    root = None
    try:
        with files.open_input(path) as f:
            for event, el in ET.iterparse(f, events=("start", "end")):
                if event == "start":
                    if root is None:
                        root = el
                    continue
                tag = el.tag.rsplit("}", 1)[-1]
                if tag == "namespace" and el.text:
                    ns_names.add(el.text.strip().lower())
                elif tag in ("title", "ns", "text") and tag not in page:
                    page[tag] = el.text or ""
                elif tag == "id" and "id" not in page:
                    page["id"] = el.text or ""
                elif tag == "redirect":
                    page["redirect"] = el.get("title", "")
                elif tag == "page":
                    count += 1
                    yield _make_page(page, ns_names, count)
                    page = {}
                    root.clear()  # bounded memory: drop every finished page
                elif tag == "siteinfo":
                    counters.namespaces = ns_names
    except (EOFError, OSError, ET.ParseError) as e:
        counters.truncated_inputs += 1
        log.warning("%s: truncated or corrupt input after %d pages (%s); "
                    "keeping the pages read so far", path, count, e)


def _make_page(page: dict, ns_names: set[str], count: int) -> Page:
    title = page.get("title", "")
    ns = page.get("ns")
    if ns is None:  # old dumps: no <ns>, infer from the title prefix
        ns = "0" if ":" not in title or title.split(":", 1)[0].lower() not in ns_names else "?"
    text = page.get("text", "")
    redirect = page.get("redirect")
    if redirect is None:
        m = _RE_REDIRECT.match(text)
        redirect = m.group(1) if m else None
    return Page(id=page.get("id", ""), title=title, ns=ns.strip(), redirect=redirect,
                wikitext=text, line=count)
