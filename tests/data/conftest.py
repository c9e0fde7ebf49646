import json
import random

import pytest

from linkbert_jax.data import build
from linkbert_jax.samples import minilm_dir as minilm_tokenizer  # noqa: F401
from linkbert_jax.samples import wikipedia_sample as gensim_wiki_sample  # noqa: F401


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


def run_build(*argv) -> dict:
    args = build.parse_args([str(a) for a in argv] + ["--no_progress"])
    return build.build(args)


@pytest.fixture(scope="session")
def wiki_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("wiki")
    argv = ["--input", gensim_wiki_sample(), "--format", "wikipedia", "--output_dir", out,
            "--tokenizer", minilm_tokenizer(), "--num_shards", 2, "--eval_fraction", 0.1,
            "--max_seq_length", 128, "--seed", 3]
    return out, run_build(*argv), argv
