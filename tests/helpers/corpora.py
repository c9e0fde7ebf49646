"""Small synthetic corpora for the builder tests (documents of random sentences)."""
from __future__ import annotations

import json
import random

from linkbert_jax.data import build

WORDS = ("alpha beta gamma delta river mountain city music paper protein cell "
         "history war king language science theory number light water stone").split()


def synthetic_doc_text(rng: random.Random, n_sentences: int) -> str:
    sents = []
    for _ in range(n_sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 12))]
        sents.append(" ".join(words).capitalize() + ".")
    return " ".join(sents)


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def ring_corpus(path, n: int = 24):
    """``path`` (written once): ``n`` JSONL documents of 12 random sentences, document i
    linking to i+1 and i+7 (mod n)."""
    if not path.exists():
        rng = random.Random(0)
        write_jsonl(path, [{"id": f"d{i}", "title": f"Doc {i}",
                            "text": synthetic_doc_text(rng, 12),
                            "links": [f"d{(i + 1) % n}", f"d{(i + 7) % n}"]}
                           for i in range(n)])
    return path


def random_link_corpus(path, n: int, min_links: int, seed: int = 5) -> list[dict]:
    """``path`` (JSONL, written): ``n`` documents of 6 random sentences, each linking to
    ``min_links`` to 4 random documents (a draw of itself dropped); returns the records."""
    rng = random.Random(seed)
    records = [{"id": f"d{i}", "title": f"Doc {i}", "text": synthetic_doc_text(rng, 6),
                "links": [f"d{j}" for j in rng.sample(range(n), rng.randint(min_links, 4))
                          if j != i]} for i in range(n)]
    write_jsonl(path, records)
    return records


def run_build(*argv) -> dict:
    """The builder in-process (``--no_progress`` added); returns its manifest."""
    args = build.parse_args([str(a) for a in argv] + ["--no_progress"])
    return build.build(args)
