"""Small fine-tuning tasks built from real text (the Wikipedia sample in gensim's wheel),
one per family, in the JSON-lines formats LinkBERT's preprocessing writes; and a tiny
random BERT directory with MiniLM's tokenizer for fast tests.

Train and dev come from *different articles*, so a model must generalise to unseen
articles: what pretrained weights know and a random encoder cannot learn from a few
hundred examples.
"""
from __future__ import annotations

import functools
import json
import os
import random
import re

from linkbert_jax.data.samples import wikipedia_articles

WORD = re.compile(r"\w+|[^\w\s]")


def _split_articles(seed: int, dev_fraction: float = 0.3):
    arts = list(wikipedia_articles())  # (title, sentences, linked titles)
    random.Random(seed).shuffle(arts)
    k = int(len(arts) * dev_fraction)
    return arts[k:], arts[:k]


def write_jsonl(path: str, rows) -> str:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return str(path)


def _write_splits(out_dir, make, n_train: int, n_dev: int, seed: int) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    train_arts, dev_arts = _split_articles(seed)
    rng = random.Random(seed)
    rows = {"train": make(train_arts, n_train, rng), "validation": make(dev_arts, n_dev, rng)}
    rows["test"] = rows["validation"][: max(1, n_dev // 2)]
    return {k: write_jsonl(os.path.join(out_dir, f"{k}.json"), v) for k, v in rows.items()}


def _seqcls_rows(arts, n, rng):
    """Is this sentence from the article with this title? (yes/no, balanced)"""
    rows = []
    for i in range(n):
        a = rng.choice(arts)
        src = a if i % 2 == 0 else rng.choice([b for b in arts if b is not a])
        rows.append({"id": f"s{i}", "sentence1": a[0], "sentence2": rng.choice(src[1]),
                     "label": "yes" if src is a else "no"})
    return rows


def _mc_rows(arts, n, rng, choices: int = 4):
    """Which article is this sentence from? (MedQA layout: sent1, sent2, ending0..3)"""
    rows = []
    for i in range(n):
        picks = rng.sample(arts, choices)
        label = rng.randrange(choices)
        row = {"id": f"m{i}", "sent1": rng.choice(picks[label][1]),
               "sent2": "This sentence is from the article about", "label": label}
        row.update({f"ending{j}": p[0] for j, p in enumerate(picks)})
        rows.append(row)
    return rows


@functools.lru_cache(maxsize=None)
def _title_pattern(titles: tuple):
    """One regex for an article's linked titles as whole words, the longest first."""
    alternatives = sorted((t for t in titles if t.strip()), key=len, reverse=True)
    if not alternatives:
        return None
    return re.compile(r"\b(?:" + "|".join(map(re.escape, alternatives)) + r")\b")


def _mentions(sentence: str, titles: tuple) -> list:
    """Character spans of linked titles (whole words, not overlapping) in the sentence."""
    pattern = _title_pattern(titles)
    return [m.span() for m in pattern.finditer(sentence)] if pattern else []


def _with_mentions(arts, rng):
    pool = [(s, _mentions(s, a[2])) for a in arts for s in a[1]]
    pool = [(s, m) for s, m in pool if m]
    rng.shuffle(pool)
    return pool


def _tokcls_rows(arts, n, rng):
    """BIO tags of the words that form a linked article's title."""
    rows = []
    for i, (s, spans) in enumerate(_with_mentions(arts, rng)[:n]):
        toks = [(m.group(), m.start()) for m in WORD.finditer(s)]
        tags = []
        for w, start in toks:
            inside = [sp for sp in spans if sp[0] <= start < sp[1]]
            tags.append("O" if not inside else ("B-ENT" if start == inside[0][0] else "I-ENT"))
        rows.append({"id": f"t{i}", "tokens": [w for w, _ in toks], "ner_tags": tags})
    return rows


def _qa_rows(arts, n, rng):
    """Which linked article does this sentence mention? (SQuAD layout; every mention is a
    gold answer)."""
    rows = []
    for i, (s, spans) in enumerate(_with_mentions(arts, rng)[:n]):
        rows.append({"id": f"q{i}", "question": "Which linked article is mentioned?",
                     "context": s, "answers": {"answer_start": [a for a, _ in spans],
                                               "text": [s[a:b] for a, b in spans]}})
    return rows


def _multilabel_rows(arts, n, rng):
    """The seqcls question, plus a second label for long sentences: label lists."""
    rows = _seqcls_rows(arts, n, rng)
    for r in rows:
        r["label"] = [r["label"]] + (["long"] if len(r["sentence2"]) > 120 else [])
    return rows


def _regression_rows(arts, n, rng):
    """Single sentences scored by their share of words longer than six letters."""
    rows = []
    for i, r in enumerate(_seqcls_rows(arts, n, rng)):
        words = r["sentence2"].split()
        rows.append({"id": f"r{i}", "sentence": r["sentence2"],
                     "label": sum(len(w) > 6 for w in words) / len(words)})
    return rows


MAKERS = {"seqcls": _seqcls_rows, "mc": _mc_rows, "tokcls": _tokcls_rows, "qa": _qa_rows,
          "multilabel": _multilabel_rows, "regression": _regression_rows}


def real_task(family: str, out_dir, n_train: int = 256, n_dev: int = 128,
              seed: int = 0) -> dict:
    """``{"train", "validation", "test"}`` JSON-lines paths of a real-text task."""
    return _write_splits(out_dir, MAKERS[family], n_train, n_dev, seed)


def tiny_bert(out_dir, *, hidden: int = 32, layers: int = 2, seed: int = 0, dropout: float = 0.1,
              max_position_embeddings: int = 128) -> str:
    """A random BERT (MiniLM's uncased vocabulary and tokenizer) as a Hugging Face
    directory: the fast stand-in for a checkpoint."""
    import jax

    from linkbert_jax.hf import convert
    from linkbert_jax.model import ModelConfig, init_params
    from linkbert_jax.data.samples import minilm_dir

    cfg = ModelConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=2, intermediate_size=2 * hidden,
                      max_position_embeddings=max_position_embeddings,
                      hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    params = init_params(cfg, jax.random.key(seed))
    convert.save_hf(cfg, params, str(out_dir), tokenizer=minilm_dir(), heads=False)
    return str(out_dir)
