"""TFRecord framing (write/read, CRC-checked), a TensorFlow-free Example reader and the
hand-encoded Example writer (``serialize_example``, the builder's).

``iterate_examples(path)`` yields dicts keyed by the feature names of ``features.py``
(``input_ids`` a list, the others ints); the input pipeline itself uses ``tf.data`` with
``features.feature_spec()``.
"""
from __future__ import annotations

import struct
from typing import Iterator

import google_crc32c

from linkbert_jax.data.features import FEATURES, INPUT_IDS, SCALAR_FEATURES
from linkbert_jax.errors import RecordError



def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord: length, CRC of length, data, CRC of data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked_crc(length)) + data + \
        struct.pack("<I", _masked_crc(data))


def iterate_records(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        n = 0
        while True:
            head = f.read(12)
            if not head:
                return
            if len(head) < 12:
                raise RecordError(f"{path}: truncated record header after {n} records")
            length, crc = struct.unpack("<QI", head)
            if crc != _masked_crc(head[:8]):
                raise RecordError(f"{path}: corrupt length of record {n}")
            data = f.read(length)
            tail = f.read(4)
            if len(data) < length or len(tail) < 4:
                raise RecordError(f"{path}: truncated record {n}")
            if struct.unpack("<I", tail)[0] != _masked_crc(data):
                raise RecordError(f"{path}: CRC mismatch in record {n}")
            n += 1
            yield data


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message (varint/len wire types)."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _read_varint(buf, pos)
        elif wt == 2:
            n, pos = _read_varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        else:
            raise RecordError(f"unsupported wire type {wt}")
        yield num, wt, val


def _int64_list(buf: bytes) -> list[int]:
    out = []
    for num, wt, val in _fields(buf):
        if num != 1:
            continue
        if wt == 0:
            out.append(val)
        else:  # packed
            pos = 0
            while pos < len(val):
                v, pos = _read_varint(val, pos)
                out.append(v)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in out]


def parse_example(data: bytes) -> dict:
    feats = {}
    for num, _, features in _fields(data):
        if num != 1:
            continue
        for _, _, entry in _fields(features):
            key, value = None, b""
            for n2, _, v in _fields(entry):
                if n2 == 1:
                    key = v.decode()
                elif n2 == 2:
                    value = v
            for n3, _, lst in _fields(value):
                if n3 == 3:
                    feats[key] = _int64_list(lst)
    out = {INPUT_IDS: feats.get(INPUT_IDS, [])}
    for k in SCALAR_FEATURES:
        out[k] = feats[k][0]
    return out


def iterate_examples(path: str) -> Iterator[dict]:
    for data in iterate_records(path):
        yield parse_example(data)


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


_KEYS = {name: _len_field(1, name.encode()) for name in FEATURES}


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
    body = [_int64_entry(INPUT_IDS, _varints(input_ids))]
    body += [_scalar_entry(k, int(v)) for k, v in zip(SCALAR_FEATURES, vals)]
    return _len_field(1, b"".join(body))
