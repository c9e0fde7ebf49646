"""Sequence classification, multi-label classification and regression (one family: the
same inputs and head, ``BertForSequenceClassification``, with three losses).

Records, as LinkBERT's preprocessing writes them (``datasets`` json):
``{"id", "sentence", "label"}`` or ``{"id", "sentence1", "sentence2", "label"}``, where
``label`` is

- seqcls: a string or an int (the label names are the training split's, sorted);
- multilabel: a list of label names, or a 0/1 indicator list of one fixed length (the
  format LinkBERT writes for HoC; the names are then the positions 0..K-1);
- regression: a number.
"""
from __future__ import annotations

import numpy as np

from linkbert_jax.finetune import data, heads, losses, metrics
from linkbert_jax.finetune.tasks import Task

PAIR, SINGLE = ("sentence1", "sentence2"), ("sentence",)


def text_fields(ds, path: str) -> tuple:
    cols = ds.column_names
    if all(f in cols for f in PAIR):
        return PAIR
    if SINGLE[0] in cols:
        return SINGLE
    raise data.DataError(f"{path}: records need 'sentence' or 'sentence1' and 'sentence2' "
                         f"(fields: {', '.join(cols)})")


def check_texts(ds, path: str, fields) -> None:
    data.require(ds, path, fields)
    for f in fields:
        for i, v in enumerate(ds[f]):
            if not isinstance(v, str):
                raise data.DataError(f"{path}: record {i + 1}: {f!r} is not a string: {v!r}")


def encode(tokenizer, columns: list, max_length: int) -> dict:
    """[CLS] a [SEP] (b [SEP]) truncated and padded to ``max_length``, as the
    Hugging Face scripts tokenize (longest-first truncation of pairs)."""
    enc = tokenizer(*columns, truncation=True, max_length=max_length, padding="max_length",
                    return_token_type_ids=True, return_attention_mask=True)
    return {k: enc[k] for k in data.INPUTS}


class SingleLabel(Task):
    name = "seqcls"
    model_cls = heads.SequenceClassifier
    loss = losses.CROSS_ENTROPY
    problem_type = "single_label_classification"
    label_fields = ("label",)
    packs = True

    def check(self, ds, path, labelled):
        check_texts(ds, path, text_fields(ds, path))
        if labelled:
            data.require(ds, path, self.label_fields)

    def label_list(self, train, path):
        values = train["label"]
        kinds = {type(v) for v in values}
        if not kinds <= {str, int} or len(kinds) > 1:
            raise data.DataError(f"{path}: labels must all be strings or all ints for "
                                 f"{self.name} (found {sorted(k.__name__ for k in kinds)})")
        return sorted(set(values))

    def targets(self, values, labels, path):
        return np.asarray(data.label_ids(values, {v: i for i, v in enumerate(labels)}, path),
                          np.int32)

    def prepare(self, ds, path, tokenizer, config, labels, labelled, training):
        fields = text_fields(ds, path)
        fp = (self.name, data.tokenizer_fingerprint(tokenizer), config.max_seq_length, fields)
        feats = data.featurize(ds, lambda b: encode(tokenizer, [b[f] for f in fields],
                                                    config.max_seq_length), *fp)
        arr = data.arrays(feats)
        if labelled:
            arr["labels"] = self.targets(ds["label"], labels, path)
        return data.Split(path, ds, arr, labelled)

    def predict(self, logits, split, labels, config):
        return [labels[i] for i in np.argmax(logits, axis=-1)]

    def score(self, preds, split, labels, config):
        ids = {v: i for i, v in enumerate(labels)}
        return metrics.classification([ids[p] for p in preds], split.arrays["labels"],
                                      [str(v) for v in labels], config.negative_label)


class MultiLabel(SingleLabel):
    name = "multilabel"
    loss = losses.BINARY_CROSS_ENTROPY
    problem_type = "multi_label_classification"

    def label_list(self, train, path):
        rows = train["label"]
        for i, r in enumerate(rows):
            if not isinstance(r, list):
                raise data.DataError(f"{path}: record {i + 1}: a multilabel label is a list "
                                     f"of label names or a 0/1 list, not {r!r}")
        self.indicator = (len({len(r) for r in rows}) == 1 and len(rows[0]) > 1 and
                          all(v in (0, 1) and not isinstance(v, str) for r in rows for v in r))
        if self.indicator:
            return list(range(len(rows[0])))
        return sorted({v for r in rows for v in r}, key=str)

    def targets(self, values, labels, path):
        out = np.zeros((len(values), len(labels)), np.float32)
        ids = {v: i for i, v in enumerate(labels)}
        for i, r in enumerate(values):
            if self.indicator:
                if not isinstance(r, list) or len(r) != len(labels):
                    raise data.DataError(f"{path}: record {i + 1}: label is not a 0/1 list "
                                         f"of length {len(labels)} like the training split's")
                out[i] = r
            else:
                out[i, data.label_ids(r or [], ids, path, f"record {i + 1} label")] = 1.0
        return out

    def predict(self, logits, split, labels, config):
        return [[labels[j] for j in np.flatnonzero(row > config.multilabel_threshold)]
                for row in logits]

    def score(self, preds, split, labels, config):
        ids = {v: i for i, v in enumerate(labels)}
        pred = np.zeros_like(split.arrays["labels"], dtype=np.int32)
        for i, p in enumerate(preds):
            pred[i, [ids[v] for v in p]] = 1
        return metrics.multilabel(pred, split.arrays["labels"].astype(np.int32))


class Regression(SingleLabel):
    name = "regression"
    loss = losses.SQUARED_ERROR
    problem_type = "regression"

    def num_outputs(self, labels):
        return 1

    def label_list(self, train, path):
        self.targets(train["label"], [], path)
        return []

    def targets(self, values, labels, path):
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise data.DataError(f"{path}: record {i + 1}: a regression label is a "
                                     f"number, not {v!r}")
        return np.asarray(values, np.float32)

    def predict(self, logits, split, labels, config):
        return [float(x) for x in logits[:, 0]]

    def score(self, preds, split, labels, config):
        return metrics.regression(preds, split.arrays["labels"])
