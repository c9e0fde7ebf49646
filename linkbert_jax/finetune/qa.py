"""Extractive QA, SQuAD / MRQA style (``BertForQuestionAnswering``).

Records: ``{"id", "question", "context", "answers": {"answer_start": [...], "text":
[...]}}``. A long context is cut into windows of ``max_seq_length`` tokens overlapping
by ``doc_stride`` tokens (the fast tokenizer's overflow), each ``[CLS] question [SEP]
window [SEP]``; a training window's target is the first answer's token span, or [CLS]
when the answer is not inside it. Predictions: for each example, over all its windows,
the ``n_best_size`` best starts and ends of context tokens give spans of at most
``max_answer_length`` tokens; the best ``start + end`` logit sum is mapped back to the
context's characters through the tokenizer's offsets. Scored by SQuAD EM/F1 against all
gold texts.

Training answers whose ``answer_start`` does not point at their ``text`` in the context
(or with no answer at all) are skipped, counted in a warning; a dev/test record with no
answer is an error (SQuAD v2 unanswerable questions are not supported).
"""
from __future__ import annotations

import logging

import numpy as np

from linkbert_jax.finetune import data, heads, losses, metrics, seqcls
from linkbert_jax.finetune.tasks import Task

log = logging.getLogger("linkbert_jax")


def _answers(ds, path: str) -> list:
    out = []
    for i, a in enumerate(ds["answers"]):
        ok = (isinstance(a, dict) and isinstance(a.get("text"), list)
              and isinstance(a.get("answer_start"), list)
              and len(a["text"]) == len(a["answer_start"]))
        if not ok:
            raise data.DataError(f"{path}: record {i + 1}: 'answers' must be "
                                 f"{{\"answer_start\": [int], \"text\": [str]}}")
        out.append(a)
    return out


def _usable(answers, contexts) -> list[bool]:
    """First answer present and where ``answer_start`` says it is."""
    return [bool(a["text"]) and c[a["answer_start"][0]:][:len(a["text"][0])] == a["text"][0]
            for a, c in zip(answers, contexts)]


def _span(offsets, seq_ids, start_char: int, end_char: int) -> tuple[int, int]:
    """Token span of ``[start_char, end_char)`` inside a window, or (0, 0) ([CLS])."""
    ctx = [i for i, s in enumerate(seq_ids) if s == 1]
    if not ctx or offsets[ctx[0]][0] > start_char or offsets[ctx[-1]][1] < end_char:
        return 0, 0
    start = next(i for i in ctx if offsets[i][1] > start_char)
    end = next(i for i in reversed(ctx) if offsets[i][0] < end_char)
    return start, end


class ExtractiveQA(Task):
    name = "qa"
    model_cls = heads.SpanExtractor
    loss = losses.SPAN_CROSS_ENTROPY
    label_fields = ("answers",)
    length_keys = ()  # start/end softmaxes run over every position, padding too (as HF)

    def num_outputs(self, labels):
        return 2

    def check(self, ds, path, labelled):
        seqcls.check_texts(ds, path, ["question", "context"])
        if labelled:
            data.require(ds, path, self.label_fields)
            _answers(ds, path)

    def prepare(self, ds, path, tokenizer, config, labels, labelled, training):
        if labelled and training:
            ds = self._drop_unusable(ds, _usable(_answers(ds, path), ds["context"]), path)
        elif labelled:  # scored by the gold texts: each record needs one
            empty = [i for i, a in enumerate(_answers(ds, path)) if not a["text"]]
            if empty:
                raise data.DataError(f"{path}: record {empty[0] + 1} has no answer (SQuAD v2 "
                                     f"unanswerable questions are not supported)")
        self._check_room(ds, path, tokenizer, config)
        fp = (self.name, data.tokenizer_fingerprint(tokenizer), config.max_seq_length,
              config.doc_stride, labelled)
        feats = data.featurize(ds, lambda b: self._windows(b, tokenizer, config, labelled),
                               *fp)
        return data.Split(path, ds, data.arrays(feats), labelled)

    @staticmethod
    def _check_room(ds, path, tokenizer, config) -> None:
        """Each window must hold more context tokens than the stride it overlaps by."""
        lengths = [len(ids) for ids in tokenizer([q.lstrip() for q in ds["question"]],
                                                 add_special_tokens=False)["input_ids"]]
        i = int(np.argmax(lengths))
        room = config.max_seq_length - lengths[i] - 3  # [CLS] q [SEP] context [SEP]
        if room <= config.doc_stride:
            raise data.DataError(
                f"{path}: record {i + 1}: its question of {lengths[i]} tokens leaves {room} "
                f"context tokens per window of max_seq_length {config.max_seq_length}, not "
                f"more than doc_stride {config.doc_stride}; raise --config.max_seq_length "
                f"or lower --config.doc_stride")

    def _drop_unusable(self, ds, usable, path):
        bad = [i for i, ok in enumerate(usable) if not ok]
        if not bad:
            return ds
        log.warning("%s: %d of %d records skipped: no answer, or answer_start does not point "
                    "at the answer text in the context (first: record %d)", path, len(bad),
                    len(usable), bad[0] + 1)
        return ds.select([i for i, ok in enumerate(usable) if ok])

    def _windows(self, batch, tokenizer, config, labelled) -> dict:
        enc = tokenizer([q.lstrip() for q in batch["question"]], batch["context"],
                        truncation="only_second", max_length=config.max_seq_length,
                        stride=config.doc_stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, padding="max_length",
                        return_token_type_ids=True)
        out = {k: enc[k] for k in data.INPUTS}
        out["example_index"] = list(enc["overflow_to_sample_mapping"])
        out["offsets"], spans = [], []
        for i, offsets in enumerate(enc["offset_mapping"]):
            seq_ids = enc.sequence_ids(i)
            out["offsets"].append([o if s == 1 else (-1, -1) for o, s in zip(offsets, seq_ids)])
            if labelled:
                a = batch["answers"][out["example_index"][i]]
                start = a["answer_start"][0]
                spans.append(_span(offsets, seq_ids, start, start + len(a["text"][0])))
        if labelled:
            out["labels"] = spans
        return out

    def predict(self, logits, split, labels, config):
        contexts, offsets = split.examples["context"], split.arrays["offsets"]
        best = [(-np.inf, "")] * len(contexts)
        n, longest = config.n_best_size, config.max_answer_length
        for f, ex in enumerate(split.arrays["example_index"]):
            start_L, end_L = logits[f, :, 0], logits[f, :, 1]
            s, e = np.argsort(start_L)[::-1][:n], np.argsort(end_L)[::-1][:n]
            length = e[None, :] - s[:, None]
            ok = ((offsets[f, s, 0] >= 0)[:, None] & (offsets[f, e, 0] >= 0)[None, :]
                  & (length >= 0) & (length < longest))
            if not ok.any():
                continue
            score = np.where(ok, start_L[s][:, None] + end_L[e][None, :], -np.inf)
            i, j = np.unravel_index(np.argmax(score), score.shape)
            if score[i, j] > best[ex][0]:
                text = contexts[ex][offsets[f, s[i], 0]:offsets[f, e[j], 1]]
                best[ex] = (score[i, j], text)
        return [text for _, text in best]

    def score(self, preds, split, labels, config):
        return metrics.squad(preds, [a["text"] for a in split.examples["answers"]])
