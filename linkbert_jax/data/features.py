"""The TFRecord contract between the corpus builder and the input pipeline.

One ``tf.train.Example`` per segment pair ``[CLS] A [SEP] B [SEP]``:

=================  =========  ===============================================
feature            type       meaning
=================  =========  ===============================================
``input_ids``      int64[n]   token ids, unpadded, ``n <= max_seq_length``
``a_length``       int64      number of tokens of segment A (specials excluded);
                              token type 0 covers ``a_length + 2`` positions
``relation``       int64      0 contiguous, 1 random, 2 linked
``doc_a``          int64      index of A's document in ``documents.jsonl``
``doc_b``          int64      index of B's document in ``documents.jsonl``
``seg_a``          int64      index of segment A within its document
``seg_b``          int64      index of segment B within its document
=================  =========  ===============================================

Token type ids are derived from ``a_length`` (no second id list on disk) and masking
is dynamic (done by the input pipeline), so one file serves any number of epochs.
"""
from __future__ import annotations

RELATIONS = ("contiguous", "random", "linked")
CONTIGUOUS, RANDOM, LINKED = 0, 1, 2

SCALAR_FEATURES = ("a_length", "relation", "doc_a", "doc_b", "seg_a", "seg_b")
MANIFEST_NAME = "manifest.json"
DOCUMENTS_NAME = "documents.jsonl"


def feature_spec():
    """``tf.io.parse_example`` spec for the features above."""
    import tensorflow as tf

    spec = {"input_ids": tf.io.RaggedFeature(tf.int64)}
    spec.update({k: tf.io.FixedLenFeature([], tf.int64) for k in SCALAR_FEATURES})
    return spec


def token_type_ids(input_len: int, a_length: int) -> list[int]:
    """Token type ids of one pair: 0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``."""
    n0 = a_length + 2
    return [0] * n0 + [1] * (input_len - n0)
