"""The TFRecord contract between the corpus builder and the input pipeline: the one place
that says what a pair record holds. Builder, input pipeline, model, demo
and tests import these names; nothing else spells them.

One ``tf.train.Example`` per segment pair ``[CLS] A [SEP] B [SEP]``:

=================  =========  ===============================================
feature            type       meaning
=================  =========  ===============================================
``input_ids``      int64[n]   token ids, unpadded, ``n <= max_seq_length``
``a_length``       int64      number of tokens of segment A (specials excluded);
                              token type 0 covers ``[CLS] A [SEP]`` (``token_types``)
``relation``       int64      index into ``RELATIONS``: 0 contiguous, 1 random, 2 linked
``doc_a``          int64      index of A's document in ``documents.jsonl``
``doc_b``          int64      index of B's document in ``documents.jsonl``
``seg_a``          int64      index of segment A within its document
``seg_b``          int64      index of segment B within its document
=================  =========  ===============================================

Token type ids are derived from ``a_length`` (no second id list on disk) and masking
is dynamic (done by the input pipeline), so one file serves any number of epochs.

The manifest beside the shards is ``linkbert_jax.data.manifests``'; the fast encoder of
a record is ``linkbert_jax.data.records.serialize_example``.
"""
from __future__ import annotations

from linkbert_jax.relations import (CONTIGUOUS, LINKED, NUM_RELATIONS,  # noqa: F401
                                    RANDOM, RELATIONS)  # the records' labels

# --- the pair record ---------------------------------------------------------------------
INPUT_IDS = "input_ids"
A_LENGTH = "a_length"
RELATION = "relation"
DOC_A, DOC_B, SEG_A, SEG_B = "doc_a", "doc_b", "seg_a", "seg_b"
SCALAR_FEATURES = (A_LENGTH, RELATION, DOC_A, DOC_B, SEG_A, SEG_B)  # one int64 each
FEATURES = (INPUT_IDS,) + SCALAR_FEATURES  # every feature is int64
TRAINING_FEATURES = (INPUT_IDS, A_LENGTH, RELATION)  # what the input pipeline parses

SPLITS = ("train", "eval")  # the builder's splits, by index (documents.jsonl, shard names)


def feature_spec(names=FEATURES) -> dict:
    """``tf.io.parse_example`` spec for ``names`` (default: every feature)."""
    import tensorflow as tf

    return {name: tf.io.RaggedFeature(tf.int64) if name == INPUT_IDS
            else tf.io.FixedLenFeature([], tf.int64) for name in names}


def token_types(positions, a_length):
    """Token type of each position, True (1) for ``B [SEP]``: type 0 covers ``[CLS] A
    [SEP]``, the first ``a_length + 2`` positions. Elementwise on ints, numpy arrays and
    TensorFlow tensors alike (broadcasting)."""
    return positions >= a_length + 2


def token_type_ids(input_len: int, a_length: int) -> list[int]:
    """Token type ids of one pair of ``input_len`` tokens."""
    return [int(token_types(i, a_length)) for i in range(input_len)]


# The manifest's names before they moved to ``linkbert_jax.data.manifests`` (0.2): still
# served here, with a DeprecationWarning; new code imports them from there.
_MOVED_TO_MANIFESTS = ("MANIFEST_NAME", "MANIFEST_VERSION", "DOCUMENTS_NAME", "manifest_path",
                       "read_manifest", "special_ids", "check_fits", "check_enough_files",
                       "upgrade_manifest")


def __getattr__(name: str):
    if name not in _MOVED_TO_MANIFESTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings
    from linkbert_jax.data import manifests
    warnings.warn(f"linkbert_jax.data.features.{name} is linkbert_jax.data.manifests.{name}",
                  DeprecationWarning, stacklevel=2)
    return getattr(manifests, name)

