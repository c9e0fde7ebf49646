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
``[B, C]``, ``[B, L, K]`` or ``[B, L, 2]``; the pooled heads also take packed batches
(``linkbert_jax.finetune.packing``: ``position_ids``, ``segment_ids``, ``cls_index``).
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from linkbert_jax.model import LinkBert, ModelConfig, dense
from linkbert_jax.ops import dropout as dropout_ops
from linkbert_jax.readout import Readout


class _TaskModel(nn.Module):
    config: ModelConfig
    num_outputs: int
    dropout: float = 0.1  # the classifier's dropout rate
    head_name = "classifier"

    def setup(self):
        self.bert = LinkBert(self.config)
        self.drop = dropout_ops.Dropout(self.dropout)
        setattr(self, self.head_name,
                dense(self.config, self.num_outputs, -1, ("embed", None), self.head_name))

    def _encode(self, input_ids, attention_mask, token_type_ids, deterministic, **packed):
        return self.bert.encode(input_ids, attention_mask, token_type_ids,
                                deterministic=deterministic, **packed)

    def _head(self, x):
        return getattr(self, self.head_name)(x).astype(jnp.float32)


class SequenceClassifier(_TaskModel):
    """Reads the pooled [CLS] only: its last layer runs at [CLS] alone. Packed inputs
    (``linkbert_jax.finetune.packing``: rows ``[G, R, L]`` holding several examples each,
    ``position_ids``, ``segment_ids`` and each example's ``cls_index`` ``[G, E]``) give
    the same logits, ``[G * E, K]``, with less padding computed."""
    hf_architecture = "BertForSequenceClassification"  # the transformers class it exports to

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None,
                 position_ids=None, segment_ids=None, cls_index=None, *, deterministic=True):
        if cls_index is None:
            mask = jnp.ones_like(input_ids) if attention_mask is None else attention_mask
            readout, packed = Readout.first(mask), {}
        else:
            readout = Readout.packed(cls_index, segment_ids)
            input_ids, token_type_ids, position_ids, segment_ids = map(
                _rows, (input_ids, token_type_ids, position_ids, segment_ids))
            packed = {"position_ids": position_ids, "segment_ids": segment_ids}
        h_Ex1xD = self.bert.read(input_ids, attention_mask, token_type_ids, readout=readout,
                                 deterministic=deterministic, **packed)
        return self._head(self.drop(self.bert.pool(h_Ex1xD), deterministic=deterministic))


def _rows(x_GxRxL):
    return x_GxRxL.reshape(-1, x_GxRxL.shape[-1])


class MultipleChoice(SequenceClassifier):
    """Inputs ``[B, C, L]`` (C choices), or packed with ``cls_index`` ``[G, E, C]``; one
    score per choice (``num_outputs`` = 1): ``[B, C]``."""
    hf_architecture = "BertForMultipleChoice"

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None,
                 position_ids=None, segment_ids=None, cls_index=None, *, deterministic=True):
        if cls_index is not None:
            G, E, C = cls_index.shape
            return super().__call__(input_ids, None, token_type_ids, position_ids, segment_ids,
                                    cls_index.reshape(G, E * C),
                                    deterministic=deterministic).reshape(G * E, C)
        B, C, L = input_ids.shape
        flat = [x.reshape(B * C, L) for x in (input_ids, attention_mask, token_type_ids)]
        return super().__call__(*flat, deterministic=deterministic).reshape(B, C)


class TokenClassifier(_TaskModel):
    hf_architecture = "BertForTokenClassification"

    def __call__(self, input_ids, attention_mask, token_type_ids, *, deterministic=True):
        h_BxLxD = self._encode(input_ids, attention_mask, token_type_ids, deterministic)
        return self._head(self.drop(h_BxLxD, deterministic=deterministic))


class SpanExtractor(_TaskModel):
    """Start and end logits per token (``num_outputs`` = 2; no dropout, as in HF)."""
    hf_architecture = "BertForQuestionAnswering"

    head_name = "qa_outputs"

    def __call__(self, input_ids, attention_mask, token_type_ids, *, deterministic=True):
        return self._head(self._encode(input_ids, attention_mask, token_type_ids,
                                       deterministic))
