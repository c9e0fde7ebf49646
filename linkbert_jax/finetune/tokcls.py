"""Token classification: NER / PICO with BIO tags (``BertForTokenClassification``).

Records: ``{"id", "tokens": [words], "ner_tags": [tags]}`` (tags are strings: ``O``,
``B-X``, ``I-X``). Words are split into sub-tokens by the fast tokenizer
(``is_split_into_words``); a word's label sits on its first sub-token, the others and the
special tokens carry -100 (no loss), and a word's prediction is its first sub-token's.
Words cut off by ``max_seq_length`` are predicted ``O`` and counted in a warning, so
entity F1 (``seqeval``) is always over every gold entity of the split.
"""
from __future__ import annotations

import logging

import numpy as np

from linkbert_jax.finetune import data, heads, losses, metrics
from linkbert_jax.finetune.tasks import Task

log = logging.getLogger("linkbert_jax")


def _checked(ds, path: str, labelled: bool):
    data.require(ds, path, ["tokens"] + (["ner_tags"] if labelled else []))
    all_tags = ds["ner_tags"] if labelled else None
    for i, words in enumerate(ds["tokens"]):
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise data.DataError(f"{path}: record {i + 1}: 'tokens' is not a list of strings")
        if labelled:
            tags = all_tags[i]
            if not isinstance(tags, list) or len(tags) != len(words):
                raise data.DataError(f"{path}: record {i + 1}: {len(tags or [])} ner_tags "
                                     f"for {len(words)} tokens")
            if not all(isinstance(t, str) for t in tags):
                raise data.DataError(f"{path}: record {i + 1}: ner_tags must be BIO "
                                     f"strings (O, B-X, I-X)")


class TokenClassification(Task):
    name = "tokcls"
    model_cls = heads.TokenClassifier
    loss = losses.TOKEN_CROSS_ENTROPY
    label_fields = ("ner_tags",)
    length_keys = data.INPUTS + ("labels",)  # -100 on padding: no loss there

    def check(self, ds, path, labelled):
        _checked(ds, path, labelled)

    def label_list(self, train, path):
        return sorted({t for tags in train["ner_tags"] for t in tags})

    def prepare(self, ds, path, tokenizer, config, labels, labelled, training):
        ids = {t: i for i, t in enumerate(labels)}
        if labelled:  # unknown tags: one line naming the record, before tokenizing
            for i, tags in enumerate(ds["ner_tags"]):
                data.label_ids(tags, ids, path, f"record {i + 1} tag")
        L = config.max_seq_length

        def fn(batch):
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True,
                            max_length=L, padding="max_length", return_token_type_ids=True)
            out = {k: enc[k] for k in data.INPUTS}
            first = np.full((len(batch["tokens"]), L), -1, np.int32)  # word -> position
            for r in range(len(batch["tokens"])):
                seen = set()
                for pos, w in enumerate(enc.word_ids(r)):
                    if w is not None and w not in seen:
                        seen.add(w)
                        first[r, pos] = w
            out["word_index"] = first
            return out

        fp = (self.name, data.tokenizer_fingerprint(tokenizer), L)
        arr = data.arrays(data.featurize(ds, fn, *fp))
        if labelled:
            arr["labels"] = self._targets(arr["word_index"], ds["ner_tags"], ids)
        self._warn_truncated(arr["word_index"], ds["tokens"], path)
        return data.Split(path, ds, arr, labelled)

    @staticmethod
    def _targets(word_index, tags, ids) -> np.ndarray:
        out = np.full(word_index.shape, losses.IGNORE, np.int32)
        rows, cols = np.nonzero(word_index >= 0)
        out[rows, cols] = [ids[tags[r][word_index[r, c]]] for r, c in zip(rows, cols)]
        return out

    @staticmethod
    def _warn_truncated(word_index, words, path) -> None:
        kept = (word_index >= 0).sum(axis=1)
        cut = sum(len(w) - k for w, k in zip(words, kept))
        if cut:
            log.warning("%s: %d words of %d records lie beyond max_seq_length: predicted "
                        "'O' (their entities count as missed)", path, cut,
                        int(np.sum(kept < [len(w) for w in words])))

    def predict(self, logits, split, labels, config):
        words, index = split.examples["tokens"], split.arrays["word_index"]
        best = np.argmax(logits, axis=-1)
        out = []
        for r, ws in enumerate(words):
            tags = ["O"] * len(ws)
            for c in np.flatnonzero(index[r] >= 0):
                tags[index[r, c]] = labels[best[r, c]]
            out.append(tags)
        return out

    def score(self, preds, split, labels, config):
        return metrics.entities(preds, split.examples["ner_tags"])
