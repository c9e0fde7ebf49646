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


# --- Fast hand-encoded serialisation (parses with ``feature_spec()``; see tests). -------
# Example{1: Features{1: map<string, Feature>}}, Feature{3: Int64List{1: packed int64}}.

def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINT_TABLE = [_varint(i) for i in range(1 << 17)]


def _varints(values) -> bytes:
    table = _VARINT_TABLE
    try:
        return b"".join([table[v] for v in values])
    except IndexError:  # an id >= 2**17 (or negative): the general path
        return b"".join([_varint(int(v)) for v in values])


def _len_field(field_number: int, payload: bytes) -> bytes:
    return _varint((field_number << 3) | 2) + _varint(len(payload)) + payload


_KEYS = {name: _len_field(1, name.encode()) for name in ("input_ids",) + SCALAR_FEATURES}


def _int64_entry(name: str, packed_values: bytes) -> bytes:
    int64_list = _len_field(1, packed_values)
    feature = _len_field(3, int64_list)
    return _len_field(1, _KEYS[name] + _len_field(2, feature))


_SCALAR_CACHE: dict = {}


def _scalar_entry(name: str, value: int) -> bytes:
    key = (name, value)
    out = _SCALAR_CACHE.get(key)
    if out is None:
        out = _int64_entry(name, _varint(value))
        if value < 4096:  # small values (lengths, relations, segment indices) repeat
            _SCALAR_CACHE[key] = out
    return out


def serialize_example(input_ids, a_length: int, relation: int, doc_a: int, doc_b: int,
                      seg_a: int, seg_b: int) -> bytes:
    """A serialized ``tf.train.Example`` with the features above (no TensorFlow needed)."""
    vals = (a_length, relation, doc_a, doc_b, seg_a, seg_b)
    body = [_int64_entry("input_ids", _varints(input_ids))]
    body += [_scalar_entry(k, int(v)) for k, v in zip(SCALAR_FEATURES, vals)]
    return _len_field(1, b"".join(body))
