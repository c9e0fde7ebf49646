"""The Sphinx HTML reader (--format sphinx_html): sections as documents, anchors resolved
to the sections that hold them; a hand-made tree exactly, the Python documentation in bulk."""
import hashlib
import json
import os
import re

import pytest

from helpers.corpora import run_build
from linkbert_jax.data import build, readers, sphinx_html
from linkbert_jax.data import samples
from linkbert_jax.data.samples import minilm_dir, python_docs

NAV = ('<nav class="menu"><a class="reference internal" href="b.html#b-top">nav</a></nav>'
       '<div class="sphinxsidebar" role="navigation"><div><a class="reference internal" '
       'href="sub/c.html">sidebar</a></div></div>')
FOOTER = '<div class="footer"><a class="reference internal" href="b.html">footer</a></div>'
PAGES = {
    "a.html": NAV + """<div class="body" role="main">
<section id="top-a"><span id="label-a"></span>
<h1>Page A<a class="headerlink" href="#top-a">¶</a></h1>
<p>Intro of A links to <a class="reference internal" href="b.html">B</a> and
   <a class="reference internal" href="sub/c.html#func">func</a>.</p>
<section id="part-1"><h2>Part 1<a class="headerlink" href="#part-1">¶</a></h2>
<dl class="py function"><dt class="sig" id="a.thing">thing()<a class="headerlink"
 href="#a.thing">¶</a></dt>
<dd><p>Thing text, see <a class="reference internal" href="#top-a">top</a> and
<a class="reference external" href="https://example.org/">ext</a>.</p></dd></dl>
</section>
<p>Tail of A.</p>
<span class="target" id="before-empty"></span>
<section id="empty"><h2>Empty</h2>
<section id="inner"><h3>Inner</h3>
<p>Inner text <a class="reference internal" href="#empty">e</a></p>
</section></section></section></div>""" + FOOTER,
    "b.html": NAV + """<section id="b-top"><h1>B</h1>
<p>B text with <a class="reference internal" href="a.html#a.thing">t</a>,
<a class="reference internal" href="a.html#before-empty">x</a>,
<a class="reference internal" href="missing.html#nope">m</a>,
<a class="reference internal" href="genindex.html">index</a></p>
<div class="highlight"><pre>x = 1
y  =  2</pre></div><script>var hidden = "script";</script>
</section>""" + FOOTER,
    "sub/c.html": """<section id="c"><h1>C &amp; co</h1><p>C text
<a class="reference internal" href="../a.html#part-1">p</a></p>
<p id="func">Func para.</p></section>""",
    "genindex.html": '<section id="g"><h1>Index</h1><p>index text</p></section>',
    "_static/x.html": '<section id="s"><h1>S</h1><p>static</p></section>',
}
EXPECTED = [  # (id, title, text, links)
    ("a.html#top-a", "Page A", "Intro of A links to B and func.\nTail of A.",
     ["b.html#b-top", "sub/c.html#c"]),
    ("a.html#part-1", "Part 1", "thing()\nThing text, see top and ext.", ["a.html#top-a"]),
    ("a.html#empty", "Empty", "", []),
    ("a.html#inner", "Inner", "Inner text e", ["a.html#inner"]),
    ("b.html#b-top", "B", "B text with t, x, m, index\nx = 1\ny = 2",
     ["a.html#part-1", "a.html#inner", "missing.html#nope", "genindex.html"]),
    ("sub/c.html#c", "C & co", "C text p\nFunc para.", ["a.html#part-1"]),
]


def write_tree(root, pages=PAGES):
    for rel, body in pages.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<!DOCTYPE html><html><body>{body}</body></html>", encoding="utf-8")
    return root


def read(root):
    counters = readers.Counters()
    docs = list(readers.read_file(str(root), "sphinx_html", readers.FieldMap(), counters, {}))
    return docs, counters


def test_hand_made_tree_gives_exact_documents_and_links(tmp_path):
    docs, counters = read(write_tree(tmp_path / "html"))
    assert [(d.id, d.title, d.text, d.links) for d in docs] == EXPECTED
    assert docs[0].source == f"{tmp_path / 'html' / 'a.html'}:2"
    assert counters.records == 3 and counters.malformed_records == 0
    assert readers.expand_inputs([str(tmp_path / "html")], "sphinx_html") == \
        [str(tmp_path / "html")]


def test_pages_parsed_again_beyond_the_cache_give_the_same_documents(tmp_path,
                                                                     monkeypatch):
    root = write_tree(tmp_path / "html")
    cached, _ = read(root)
    monkeypatch.setattr(sphinx_html, "CACHE_CHARS", 40)  # keeps b.html only
    parsed_again, _ = read(root)
    assert parsed_again == cached


def test_builder_counts_self_dangling_and_empty(tmp_path):
    root = write_tree(tmp_path / "html")
    m = run_build("--input", root, "--format", "sphinx_html", "--output_dir", tmp_path / "o",
                  "--tokenizer", minilm_dir(), "--max_seq_length", 32, "--eval_fraction", 0)
    c = m["counters"]
    assert (m["num_documents"], m["num_links_resolved"]) == (5, 6)
    assert (c["links_total"], c["self_links"], c["dangling_links"], c["empty_documents"]) == \
        (9, 1, 2, 1)
    docs = [json.loads(line) for line in open(tmp_path / "o" / "documents.jsonl")]
    ids = [d["id"] for d in docs]
    assert ids == [e[0] for e in EXPECTED if e[2]]
    assert [[ids[j] for j in d["links"]] for d in docs] == [
        ["b.html#b-top", "sub/c.html#c"], ["a.html#top-a"], [],
        ["a.html#part-1", "a.html#inner"], ["a.html#part-1"]]


def test_beam_builder_writes_the_same_bytes(tmp_path):
    from linkbert_jax.data import beam_build

    root = write_tree(tmp_path / "html")
    argv = ["--input", root, "--format", "sphinx_html", "--tokenizer", minilm_dir(),
            "--max_seq_length", 32, "--eval_fraction", 0, "--num_shards", 2]
    run_build(*argv, "--output_dir", tmp_path / "local")
    beam_build.run(*beam_build.parse_args([str(a) for a in argv] +
                                          ["--output_dir", str(tmp_path / "beam")]))

    def hashes(d):
        return {n: hashlib.sha256((d / n).read_bytes()).hexdigest()
                for n in sorted(os.listdir(d)) if (d / n).is_file()}
    assert hashes(tmp_path / "beam") == hashes(tmp_path / "local")


def test_malformed_and_undecodable_pages_are_counted(tmp_path):
    root = write_tree(tmp_path / "html", {
        "a.html": '<section id="a"><h1>A</h1><p>text</p></section></section>',
        "b.html": '<section id="b"><h1>B</h1><p>open ended',
        "c.html": '<p>no sections here</p>',
        "e.html": '<section id="e"><h1>E<section id="f"><p>in f</p></section>'
                  '<hr class="footer"><p>after</p></section>'})
    (root / "d.html").write_bytes(b'<section id="d"><p>caf\xe9</p></section>')
    docs, counters = read(root)
    assert [(d.id, d.text) for d in docs] == [
        ("a.html#a", "text"), ("b.html#b", "open ended"), ("d.html#d", "caf\ufffd"),
        ("e.html#e", "after"), ("e.html#f", "in f")]  # a void element never skips
    assert [d.title for d in docs[-2:]] == ["E", ""]  # an unclosed heading ends
    assert (counters.records, counters.malformed_records, counters.invalid_utf8,
            counters.empty_documents) == (5, 2, 1, 1)


def test_bad_input_is_one_line_naming_the_path(tmp_path, capsys):
    page = write_tree(tmp_path / "html") / "a.html"
    empty = tmp_path / "empty"
    empty.mkdir()
    for path, says in ((page, "HTML root directory"), (empty, "no .html pages")):
        rc = build.main(["--input", str(path), "--format", "sphinx_html", "--output_dir",
                         str(tmp_path / "o"), "--tokenizer", minilm_dir(), "--no_progress",
                         "--overwrite"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, err
        assert err[0].startswith(f"error: {path}:") and says in err[0]


def test_python_docs_location_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(samples.PYDOCS_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no library/ directory") as e:
        python_docs()
    assert "\n" not in str(e.value)
    monkeypatch.delenv(samples.PYDOCS_ENV)
    monkeypatch.setattr(samples, "_PYDOCS_HTML", os.path.join("no", "such", "html"))
    with pytest.raises(FileNotFoundError, match="make pydocs") as e:
        python_docs()
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def python_doc_corpus():
    root = python_docs()
    return root, *read(root)


def test_python_documentation_is_a_large_linked_corpus(python_doc_corpus):
    """Every <section> of the pages read is a document and thousands have text; tens of
    thousands of their links resolve to a document, at least 10,000 distinct pairs of
    documents (counted as the link graph counts: no self links, no repeats)."""
    root, docs, counters = python_doc_corpus
    pages = sphinx_html.list_pages(root)
    sections = sum(len(re.findall(r"<section\b", open(os.path.join(root, p),
                                                      encoding="utf-8").read()))
                   for p in pages)
    assert len(docs) == sections and counters.records == len(pages)
    assert counters.malformed_records == 0
    with_text = {d.id for d in docs if d.text}
    assert len(with_text) >= 2000 and len(with_text) >= 0.9 * len(docs)
    links = [(d.id, t) for d in docs if d.text for t in d.links]
    resolved = [(s, t) for s, t in links if t in with_text]
    assert len(resolved) >= 20000 and len(resolved) >= 0.99 * len(links)
    assert len({(s, t) for s, t in resolved if s != t}) >= 10000
