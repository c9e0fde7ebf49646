"""Corpus-builder throughput and memory on the gensim Wikipedia sample, replicated.

    python bench/build.py [--min_text_mb 50] [--work_dir /tmp/linkbert_bench]

The 206-page sample is replicated with distinct titles (copy k renames every title and
link target with a " (copy k)" suffix, redirects included), so the link graph keeps its
shape. Compared on one core each (RAYON_NUM_THREADS=1), side by side in this run:
  * the bare fast tokenizer over the same plain text (``encode_batch``, texts in memory),
  * the full build (XML + wikitext + tokenize + segment + sample + write), ``--workers 1``,
    as a subprocess whose own peak RSS is reported, at 1x and 4x the input.
The last line is a key=value summary.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from xml.sax.saxutils import escape, quoteattr

from linkbert_jax.data import readers, wikipedia
from linkbert_jax.data.samples import minilm_dir, wikipedia_sample

_LINK = re.compile(r"\[\[([^\[\]|#\n]+)(#[^\[\]|\n]*)?(\||\]\])")


def _rename_link(m: re.Match, sfx: str) -> str:
    """[[T#s|a]] -> [[T (copy k)#s|a]]; [[T]] -> [[T (copy k)|T]] (same visible text)."""
    target, section, end = m.group(1), m.group(2) or "", m.group(3)
    visible = "" if end == "|" else target + section + "]]"
    return "[[" + target + sfx + section + "|" + visible
RUN_BUILD = ("import resource, sys; from linkbert_jax.data.build import main; rc = main(sys.argv[1:]); "
             "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
BARE_TOKENIZER = """
import json, sys, time
from linkbert_jax.data.tokenizer import load_fast
texts = [json.loads(l) for l in open(sys.argv[2])]
tok = load_fast(sys.argv[1])
t = time.perf_counter(); n = 0
for i in range(0, len(texts), 64):
    n += sum(len(e.ids) for e in tok.encode_batch(texts[i:i + 64], add_special_tokens=False))
print(json.dumps({"tokens": n, "seconds": time.perf_counter() - t}))
"""


def load_pages():
    counters = readers.Counters()
    return list(wikipedia.iter_pages(wikipedia_sample(), counters))


def write_replicated(pages, copies: int, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">\n')
        for k in range(copies):
            sfx = f" (copy {k})"
            for p in pages:
                if p.ns != "0":
                    continue
                text = _LINK.sub(lambda m: _rename_link(m, sfx), p.wikitext)
                redirect = "" if p.redirect is None else \
                    f"<redirect title={quoteattr(p.redirect + sfx)} />"
                f.write(f"<page><title>{escape(p.title + sfx)}</title><ns>0</ns>"
                        f"<id>{k}-{p.id}</id>{redirect}<revision><text>{escape(text)}"
                        f"</text></revision></page>\n")
        f.write("</mediawiki>\n")


def run_build(xml_path: str, out_dir: str, env) -> dict:
    cmd = [sys.executable, "-c", RUN_BUILD, "--input", xml_path, "--format", "wikipedia",
           "--output_dir", out_dir, "--tokenizer", minilm_dir(), "--num_shards", "8",
           "--workers", "1", "--overwrite", "--no_progress"]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"build failed: {p.stderr[-2000:]}")
    rss = int(re.search(r"PEAK_RSS_KB (\d+)", p.stdout).group(1))
    with open(os.path.join(out_dir, "manifest.json")) as f:
        m = json.load(f)
    return {"seconds": secs, "rss_mb": rss / 1024, "tokens": m["num_tokens"],
            "chars": m["num_chars"], "examples": sum(m["num_examples"].values())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--min_text_mb", type=float, default=50.0)
    ap.add_argument("--work_dir", default="/tmp/linkbert_bench")
    args = ap.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    env = dict(os.environ, RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    pages = load_pages()
    arts = [p for p in pages if p.ns == "0" and p.redirect is None]
    plain = [wikipedia.wikitext_to_text(p.wikitext)[0] for p in arts]
    copy_mb = sum(len(t.encode()) for t in plain) / 1e6
    copies = max(1, int(-(-args.min_text_mb // copy_mb)))
    print(f"sample: {len(arts)} articles, {copy_mb:.2f} MB plain text per copy; "
          f"1x = {copies} copies ({copies * copy_mb:.1f} MB), 4x = {4 * copies} copies")
    texts_path = os.path.join(args.work_dir, "texts_1x.jsonl")
    with open(texts_path, "w") as f:
        for _ in range(copies):
            for t in plain:
                f.write(json.dumps(t) + "\n")
    bare = json.loads(subprocess.run([sys.executable, "-c", BARE_TOKENIZER, os.path.join(
        minilm_dir()), texts_path], capture_output=True, text=True, env=env,
        check=True).stdout)
    tok_tps = bare["tokens"] / bare["seconds"]
    print(f"bare tokenizer: {bare['tokens']} tokens in {bare['seconds']:.1f}s "
          f"= {tok_tps:.0f} tokens/s (1 core)")
    results = {}
    for scale in (1, 4):
        xml_path = os.path.join(args.work_dir, f"wiki_{scale}x.xml")
        write_replicated(pages, copies * scale, xml_path)
        r = run_build(xml_path, os.path.join(args.work_dir, f"out_{scale}x"), env)
        results[scale] = r
        print(f"build {scale}x: {os.path.getsize(xml_path) / 1e6:.0f} MB XML, {r['tokens']} "
              f"tokens, {r['examples']} examples in {r['seconds']:.1f}s = "
              f"{r['tokens'] / r['seconds']:.0f} tokens/s, peak RSS {r['rss_mb']:.0f} MB")
        os.remove(xml_path)
    build_tps = results[1]["tokens"] / results[1]["seconds"]
    print(f"build tokens_per_s={build_tps:.0f} tokenizer_tokens_per_s={tok_tps:.0f} "
          f"ratio={build_tps / tok_tps:.2f} rss_1x_mb={results[1]['rss_mb']:.0f} "
          f"rss_4x_mb={results[4]['rss_mb']:.0f} text_1x_mb={copies * copy_mb:.0f} "
          f"tokens_4x_per_s={results[4]['tokens'] / results[4]['seconds']:.0f}")


if __name__ == "__main__":
    main()
