"""Evaluation metrics, computed as the community does, by the libraries that own them.

- classification: accuracy, micro and macro F1 (``scikit-learn``); relation extraction
  leaves its negative label out of the micro average (LinkBERT's ``PRF1``);
- multi-label: micro and macro F1 over the label indicator matrix (``scikit-learn``);
- regression: Pearson and Spearman correlation (``scipy``), mean squared error;
- NER: entity-level precision, recall and F1 (``seqeval``, the CoNLL convention);
- extractive QA: exact match and token F1 with the official SQuAD v1.1 answer
  normalisation (``squad_normalize``), the maximum over the gold answers;
- multiple choice: accuracy.

Every function takes plain Python/numpy predictions and golds and returns floats.
"""
from __future__ import annotations

import collections
import re
import string
from typing import Sequence

import numpy as np


def classification(pred: Sequence[int], gold: Sequence[int], labels: Sequence[str],
                   negative_label: str = "") -> dict:
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    ids = list(range(len(labels)))
    out = {"accuracy": float(accuracy_score(gold, pred)),
           "macro_f1": float(f1_score(gold, pred, labels=ids, average="macro",
                                      zero_division=0))}
    positive = [i for i in ids if labels[i] != negative_label]
    p, r, f, _ = precision_recall_fscore_support(gold, pred, labels=positive,
                                                 average="micro", zero_division=0)
    out.update(micro_precision=float(p), micro_recall=float(r), micro_f1=float(f))
    return out


def multilabel(pred: np.ndarray, gold: np.ndarray) -> dict:
    """``pred``/``gold``: [N, K] 0/1 indicator matrices."""
    from sklearn.metrics import accuracy_score, f1_score

    return {"micro_f1": float(f1_score(gold, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
            "subset_accuracy": float(accuracy_score(gold, pred))}


def regression(pred: Sequence[float], gold: Sequence[float]) -> dict:
    from scipy import stats

    pred, gold = np.asarray(pred, np.float64), np.asarray(gold, np.float64)
    constant = np.ptp(pred) == 0 or np.ptp(gold) == 0  # correlation undefined: report 0
    return {"pearson": 0.0 if constant else float(stats.pearsonr(pred, gold)[0]),
            "spearman": 0.0 if constant else float(stats.spearmanr(pred, gold)[0]),
            "mse": float(np.mean((pred - gold) ** 2))}


def entities(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> dict:
    """Entity-level scores of BIO tag sequences (seqeval's default, conlleval mode)."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    pred, gold = [list(p) for p in pred], [list(g) for g in gold]
    return {"precision": float(precision_score(gold, pred, zero_division=0)),
            "recall": float(recall_score(gold, pred, zero_division=0)),
            "f1": float(f1_score(gold, pred, zero_division=0)),
            "token_accuracy": float(accuracy_score(gold, pred))}


def choice(pred: Sequence[int], gold: Sequence[int]) -> dict:
    from sklearn.metrics import accuracy_score
    return {"accuracy": float(accuracy_score(gold, pred))}


# ------------------------------------------------------------------- SQuAD v1.1 (official)

def squad_normalize(s: str) -> str:
    """Lower case, remove punctuation, articles (a/an/the) and extra whitespace: the
    ``normalize_answer`` of the official SQuAD v1.1 evaluation script."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _token_f1(pred: str, gold: str) -> float:
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def squad(pred: Sequence[str], gold: Sequence[Sequence[str]]) -> dict:
    """Exact match and F1 (in %, as the official script prints them), each the maximum
    over an example's gold answers, averaged over examples."""
    em = [max(float(squad_normalize(p) == squad_normalize(g)) for g in gs)
          for p, gs in zip(pred, gold)]
    f1 = [max(_token_f1(p, g) for g in gs) for p, gs in zip(pred, gold)]
    return {"exact_match": 100.0 * float(np.mean(em)), "f1": 100.0 * float(np.mean(f1))}
