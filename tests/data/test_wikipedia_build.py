"""Acceptance 1 (real Wikipedia sample) and 3 (determinism across worker counts)."""
import json
import os
import subprocess
import sys

from helpers.corpora import run_build
from linkbert_jax.data import graph, records, wikipedia
from linkbert_jax.data.features import CONTIGUOUS, LINKED, RANDOM


def _docs(out):
    with open(os.path.join(out, "documents.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _examples(out, manifest, split):
    for f in manifest["files"][split]:
        yield from records.iterate_examples(os.path.join(out, f["name"]))


def test_reads_106_articles_and_resolves_redirects(wiki_build):
    out, m, _ = wiki_build
    assert m["num_documents"] == 106
    c = m["counters"]
    assert c["redirects"] >= 99 and c["non_main_namespace"] >= 1
    assert c["links_total"] > 20000 and m["num_links_resolved"] > 50
    assert c["dangling_links"] + c["self_links"] + c["duplicate_links"] + \
        m["num_links_resolved"] == c["links_total"]
    docs = _docs(out)
    assert [d["index"] for d in docs] == list(range(106))
    assert sum(len(d["links"]) for d in docs) == m["num_links_resolved"]
    assert sum(d["num_segments"] for d in docs) == m["num_segments"]
    assert m["num_examples"]["train"] > 1000 and m["num_examples"]["eval"] > 0


def test_link_through_redirect_counts_as_link_to_target():
    r = graph.LinkResolver({"1": 0}, {"History of Albania": 0}, {"AlbaniaHistory": "History of Albania"})
    assert r.resolve("albaniaHistory") == 0       # first letter case-insensitive
    assert r.resolve("History_of_Albania#Middle Ages") == 0
    assert r.resolve("1") == 0 and r.resolve("Nowhere") is None


def test_wikitext_to_text_keeps_anchors_drops_markup():
    text, links = wikipedia.wikitext_to_text(
        "{{Infobox|a=[[X]]}}'''Bold''' see [[history of Albania#Early|its past]] and "
        "[[Category:Foo]][[File:a.jpg|thumb|cap [[Y]]]]<ref>cite [[Z]]</ref>\n"
        "{| class=wikitable\n|-\n| cell\n|}\n== Head ==\n* item [http://x.org site]")
    assert "Bold see its past and" in text and "Head" in text and "item site" in text
    for junk in ("Infobox", "Category", "cite", "cell", "thumb", "{{", "[["):
        assert junk not in text
    assert links[0] == "History of Albania" and "X" not in links and "Z" not in links


def test_every_pair_matches_its_relation(wiki_build):
    out, m, _ = wiki_build
    docs = _docs(out)
    cls, sep = m["special_ids"]["cls"], m["special_ids"]["sep"]
    for split in ("train", "eval"):
        counts = [0, 0, 0]
        for ex in _examples(out, m, split):
            da, db, sa, sb, rel = ex["doc_a"], ex["doc_b"], ex["seg_a"], ex["seg_b"], ex["relation"]
            counts[rel] += 1
            assert docs[da]["split"] == split  # eval anchors: held-out documents;
            assert split == "eval" or docs[db]["split"] == split  # partners: all of them
            assert 0 <= sa < docs[da]["num_segments"] and 0 <= sb < docs[db]["num_segments"]
            if rel == CONTIGUOUS:
                assert db == da and sb == sa + 1
            elif rel == RANDOM:
                assert db != da
            else:
                assert rel == LINKED and db in docs[da]["links"]
            ids, la = ex["input_ids"], ex["a_length"]
            assert len(ids) <= m["max_seq_length"]
            assert ids[0] == cls and ids[la + 1] == sep and ids[-1] == sep
        key = "relations" if split == "train" else "relations_eval"
        assert counts == list(m[key].values())
        assert min(counts) > 0  # the eval articles link to the whole corpus


def test_manifest_files_and_tokenizer(wiki_build):
    out, m, _ = wiki_build
    from transformers import AutoTokenizer

    for split in ("train", "eval"):
        for f in m["files"][split]:
            n = sum(1 for _ in records.iterate_records(os.path.join(out, f["name"])))
            assert n == f["num_examples"]
    tok = AutoTokenizer.from_pretrained(os.path.join(out, m["tokenizer_dir"]))
    assert len(tok) == m["vocab_size"] == 30522 and tok.cls_token_id == m["special_ids"]["cls"]
    assert not any(n.endswith(".tmp") for n in os.listdir(out)) and ".work" not in os.listdir(out)


def test_rerun_reuses_finished_output(wiki_build, capsys):
    out, m, argv = wiki_build
    again = run_build(*argv)
    assert again == m and "already built" in capsys.readouterr().out


def test_workers_give_byte_identical_output(wiki_build, tmp_path):
    """The command line, as users run it: a fresh process forks the workers (this test
    process may hold JAX's threads, which a fork would copy mid-lock)."""
    out, m, argv = wiki_build
    argv2 = [str(a) for a in argv]
    argv2[argv2.index("--output_dir") + 1] = str(tmp_path)
    subprocess.run([sys.executable, "-m", "linkbert_jax.data.build", *argv2, "--workers",
                    "2", "--no_progress"], check=True, capture_output=True, timeout=600)
    names = sorted(f["name"] for s in ("train", "eval") for f in m["files"][s])
    names += ["documents.jsonl", "manifest.json"]  # the manifest holds no timings
    for name in names:
        with open(os.path.join(out, name), "rb") as a, open(tmp_path / name, "rb") as b:
            assert a.read() == b.read(), name


def test_mwparser_variant_drops_templates_and_content_tags():
    text, links = wikipedia.wikitext_to_text_mwparser(
        "{{Infobox|a=b}}Bold see [[history of Albania|its past]] <ref>cite {{c|d}}</ref>"
        "and\n{| class=wikitable\n|-\n| cell\n|}\n{{Navbox}} end")
    assert "see its past" in text and text.endswith("end")
    for junk in ("Infobox", "cite", "cell", "Navbox", "{{", "[["):
        assert junk not in text
    assert links == ["History of Albania"]
