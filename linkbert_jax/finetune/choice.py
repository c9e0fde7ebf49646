"""Multiple choice, MedQA style (``BertForMultipleChoice``).

Records: ``{"id", "sent1", "sent2", "ending0", ..., "ending<C-1>", "label"}`` with
``label`` the index of the right ending. Choice ``i`` is the pair ``(sent1, sent2 + " " +
ending_i)``, tokenized as Hugging Face's multiple-choice script does; the model scores
each choice and a softmax over the C scores is trained with cross-entropy.
"""
from __future__ import annotations

import re

import numpy as np

from linkbert_jax.finetune import data, heads, losses, metrics, seqcls
from linkbert_jax.finetune.tasks import Task

ENDING = re.compile(r"^ending(\d+)$")


def endings(ds, path: str) -> list:
    found = sorted((int(m.group(1)), c) for c in ds.column_names if (m := ENDING.match(c)))
    if len(found) < 2 or [i for i, _ in found] != list(range(len(found))):
        raise data.DataError(f"{path}: multiple-choice records need ending0, ending1, ... "
                             f"(fields: {', '.join(ds.column_names)})")
    return [c for _, c in found]


class MultipleChoice(Task):
    name = "mc"
    model_cls = heads.MultipleChoice
    loss = losses.CROSS_ENTROPY
    label_fields = ("label",)
    packs = True

    def num_outputs(self, labels):
        return 1

    def check(self, ds, path, labelled):
        seqcls.check_texts(ds, path, ["sent1", "sent2"] + endings(ds, path))
        if labelled:
            data.require(ds, path, self.label_fields)

    def label_list(self, train, path):
        return list(range(len(endings(train, path))))  # one label per ending

    def prepare(self, ds, path, tokenizer, config, labels, labelled, training):
        ends = endings(ds, path)
        if len(ends) != len(labels):
            raise data.DataError(f"{path}: {len(ends)} endings per record, the training "
                                 f"split has {len(labels)}")
        L = config.max_seq_length

        def fn(batch):
            first = [s for s in batch["sent1"] for _ in ends]
            second = [f"{h} {batch[e][i]}" for i, h in enumerate(batch["sent2"]) for e in ends]
            enc = seqcls.encode(tokenizer, [first, second], L)
            return {k: np.asarray(v, np.int32).reshape(-1, len(ends), L)
                    for k, v in enc.items()}

        fp = (self.name, data.tokenizer_fingerprint(tokenizer), L, ends)
        arr = data.arrays(data.featurize(ds, fn, *fp))
        if labelled:
            arr["labels"] = np.asarray(data.label_ids(ds["label"], {i: i for i in labels},
                                                      path), np.int32)
        return data.Split(path, ds, arr, labelled)

    def predict(self, logits, split, labels, config):
        return [int(i) for i in np.argmax(logits, axis=-1)]

    def score(self, preds, split, labels, config):
        return metrics.choice(preds, split.arrays["labels"])
