"""Task models: Hugging Face's BERT task heads over ``LinkBert``'s encoder and pooler.

Each is the Flax twin of a ``transformers`` class, parameter for parameter, so that an
export is a name map (``linkbert_jax.finetune.export``):

- ``SequenceClassifier``  ``BertForSequenceClassification``: dropout + linear on the pooler
  (one output for regression, K for single- or multi-label classification);
- ``MultipleChoice``      ``BertForMultipleChoice``: the same with one output per choice;
- ``TokenClassifier``     ``BertForTokenClassification``: dropout + linear per token, no pooler;
- ``SpanExtractor``       ``BertForQuestionAnswering``: linear to (start, end) per token.

Parameters: ``bert/{embeddings,encoder,pooler}`` (``LinkBert``'s own modules, no MLM/DRP
head is created) and ``classifier`` (``qa_outputs`` for spans). Every model maps
``(input_ids, attention_mask, token_type_ids)`` to float32 ``logits``: ``[B, K]``,
``[B, C]``, ``[B, L, K]`` or ``[B, L, 2]``.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from linkbert_jax.model import LinkBert, ModelConfig, _dense


class _TaskModel(nn.Module):
    config: ModelConfig
    num_outputs: int
    dropout: float = 0.1  # the classifier's dropout rate
    head_name = "classifier"

    def setup(self):
        self.bert = LinkBert(self.config)
        self.drop = nn.Dropout(self.dropout)
        setattr(self, self.head_name,
                _dense(self.config, self.num_outputs, -1, ("embed", None), self.head_name))

    def _encode(self, input_ids, attention_mask, token_type_ids, deterministic,
                first_only=False):
        return self.bert.encode(input_ids, attention_mask, token_type_ids,
                                deterministic=deterministic, first_only=first_only)

    def _head(self, x):
        return getattr(self, self.head_name)(x).astype(jnp.float32)


class SequenceClassifier(_TaskModel):
    """Reads the pooled [CLS] only: its last layer runs at [CLS] alone."""

    def __call__(self, input_ids, attention_mask, token_type_ids, *, deterministic=True):
        h_Bx1xD = self._encode(input_ids, attention_mask, token_type_ids, deterministic,
                               first_only=True)
        return self._head(self.drop(self.bert.pool(h_Bx1xD), deterministic=deterministic))


class MultipleChoice(SequenceClassifier):
    """Inputs ``[B, C, L]`` (C choices); one score per choice (``num_outputs`` = 1)."""

    def __call__(self, input_ids, attention_mask, token_type_ids, *, deterministic=True):
        B, C, L = input_ids.shape
        flat = [x.reshape(B * C, L) for x in (input_ids, attention_mask, token_type_ids)]
        return super().__call__(*flat, deterministic=deterministic).reshape(B, C)


class TokenClassifier(_TaskModel):
    def __call__(self, input_ids, attention_mask, token_type_ids, *, deterministic=True):
        h_BxLxD = self._encode(input_ids, attention_mask, token_type_ids, deterministic)
        return self._head(self.drop(h_BxLxD, deterministic=deterministic))


class SpanExtractor(_TaskModel):
    """Start and end logits per token (``num_outputs`` = 2; no dropout, as in HF)."""

    head_name = "qa_outputs"

    def __call__(self, input_ids, attention_mask, token_type_ids, *, deterministic=True):
        return self._head(self._encode(input_ids, attention_mask, token_type_ids,
                                       deterministic))
