"""Streaming tf.data input pipeline: seeded shuffle, dynamic MLM masking, host-local
numpy batches, exact resume.

The training stream (``repeat=True``) is ``linkbert_jax.pretrain.example_stream``: virtual streams
of files, global batches built from them, a position in examples. Within a stream (or
the files of process ``i``, for a one-pass eval split, ``files[i::process_count]``):

* epoch ``e`` reads the files in an order drawn from ``(seed, stream, e)``, interleaved
  record by record ``CYCLE_LENGTH`` files at a time (``shards``), then shuffled in blocks of
  ``shuffle_buffer`` records (stateless, seeded from ``(seed, stream, e, block)``;
  independent of TF's global seed); epochs are concatenated;
* each block of a stream's examples is masked from its own seed (``masking.block_draws``).

A resume needs no saved iterator state: the epoch and offset of a position follow from
the manifest's per-file counts (checked against the files' record headers at start-up,
``check_files``), and the offset is skipped on serialized records, before any parsing.

The records, their parse spec, token types and the manifest (``max_seq_length``,
``vocab_size``, ``special_ids``, per-file counts under ``files``, and ``"bytes"``, each
file's size) are defined by ``linkbert_jax.data.features``, the contract with the
corpus builder.
"""
from __future__ import annotations

import functools
import mmap
import os
import struct
from typing import Iterator

import numpy as np
import tensorflow as tf

from linkbert_jax.infra import runtime
from linkbert_jax.data import files, manifests, records
from linkbert_jax.data.manifests import read_manifest, special_ids
from linkbert_jax.errors import ConfigError, CorruptShardError
from linkbert_jax.pretrain.masking import MaskingConfig
from linkbert_jax.pretrain.shards import (SHUFFLE_BUFFER, epoch_records, fold,
                                         parse_and_mask, process_files)

__all__ = ["MaskingConfig", "CorruptShardError", "read_manifest", "special_ids",
           "process_files", "make_dataset", "batches", "check_files", "find_corrupt_shard",
           "TFRecordSource"]




def is_data_dir(data_dir) -> bool:
    path = os.fspath(data_dir)
    return tf.io.gfile.isdir(path) if files.is_remote(path) else os.path.isdir(path)


def _padding_batches(data_dir, manifest, split, process_count, batch_size, start_batch,
                     num_examples) -> int:
    """Empty batches to append to one pass so that every process yields as many batches
    as the largest one (the others get rows of example_weight 0): a multi-process eval
    loop never waits on a finished process."""
    counts = [sum(n for _, n in process_files(data_dir, manifest, split, i, process_count))
              for i in range(process_count)]
    total = -(-max(counts) // batch_size)
    own = max(0, -(-(num_examples - start_batch * batch_size) // batch_size))
    return max(0, total - start_batch) - own


def make_dataset(data_dir, *, split: str, batch_size: int, seq_length: int,
                 masking: MaskingConfig, seed: int, process_index: int = 0,
                 process_count: int = 1, start_batch: int = 0, repeat: bool = True,
                 shuffle: bool = True, shuffle_buffer: int = SHUFFLE_BUFFER
                 ) -> tf.data.Dataset:
    """Host-local batches (dicts of tensors, see ``batches``) of ``split``.

    ``repeat=True``: an endless stream of full batches, ``example_stream`` with one
    stream per process (process ``i``: rows ``[i*b, (i+1)*b)`` of global batches of
    ``process_count * b``, from batch ``start_batch``). ``repeat=False``: one pass; the
    last partial batch is padded with rows of ``example_weight`` 0, and every process
    yields ``ceil(max_i examples_i / batch_size)`` batches (all-padding ones at the end
    where it has fewer examples), minus ``start_batch``. A corrupt shard shows
    up here as TF's ``DataLossError``; ``batches`` turns it into ``CorruptShardError``.
    """
    runtime.hide_accelerators_from_tensorflow()  # TF is only the input library
    manifest = read_manifest(data_dir)
    manifests.check_fits(manifest, seq_length)
    if masking.max_predictions > seq_length:
        raise ValueError("max_predictions > seq_length")
    if batch_size < 1 or start_batch < 0:
        raise ValueError(f"bad batch_size {batch_size} / start_batch {start_batch}")
    if repeat:  # the training stream with V = process_count (example_stream)
        from linkbert_jax.pretrain import example_stream
        B, rows = batch_size * process_count, [(process_index * batch_size,
                                                 (process_index + 1) * batch_size)]
        position = example_stream.Position(start_batch, start_batch * B, process_count, B)
        return example_stream.make_dataset(
            data_dir, split=split, position=position, global_batch_size=B, rows=rows,
            seq_length=seq_length,
            masking=masking, seed=seed, shuffle=shuffle, shuffle_buffer=shuffle_buffer)
    files = process_files(data_dir, manifest, split, process_index, process_count)
    num_examples = sum(n for _, n in files)
    base_seed = fold(tf.constant([0, seed], tf.int64), process_index)
    ds = epoch_records([p for p, _ in files], base_seed, tf.constant(0, tf.int64),
                       shuffle=shuffle, shuffle_buffer=shuffle_buffer,
                       skip=start_batch * batch_size)
    ds = ds.batch(batch_size, drop_remainder=False)
    extra = _padding_batches(data_dir, manifest, split, process_count, batch_size,
                             start_batch, num_examples)
    if extra > 0:
        ds = ds.concatenate(
            tf.data.Dataset.from_tensors(tf.zeros([0], tf.string)).repeat(extra))
    ds = ds.enumerate(start=start_batch).map(
        lambda k, s: (s, tf.stack([fold(base_seed, 3, k)])))
    ds = ds.map(functools.partial(
        parse_and_mask, spans=[(0, batch_size)], block=batch_size, batch_size=batch_size,
        seq_length=seq_length, masking=masking, ids=special_ids(manifest),
        vocab_size=int(manifest["vocab_size"])),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options)


def _count_records(path: str) -> int:
    """Records of a TFRecord file, from their length headers only (the payloads are
    skipped: about a second per GB from the page cache)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    n, pos, header = 0, 0, struct.Struct("<Q")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        while pos + 12 <= size:
            pos += 16 + header.unpack_from(mm, pos)[0]
            n += 1
    if pos != size:
        raise CorruptShardError(f"{path}: truncated inside record {n - 1}" if pos > size
                                else f"{path}: truncated record header after {n} records")
    return n


def _file_size(path: str) -> int | None:
    if files.is_remote(path):
        return tf.io.gfile.stat(path).length if tf.io.gfile.exists(path) else None
    return os.path.getsize(path) if os.path.isfile(path) else None


def _count_remote(path: str) -> int:
    """Records of a shard on a bucket, read in full by TF (CRC checked)."""
    try:
        return sum(1 for _ in tf.data.TFRecordDataset(path))
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
        raise CorruptShardError(f"corrupt TFRecord shard {path}: {e.message}") from None


def check_files(data_dir, manifest: dict, split: str, *, read_all: bool = False) -> None:
    """Every file of ``split`` is there and is what the manifest says, else
    ``CorruptShardError`` naming the file: its size (``bytes``, written by the builder;
    free to check) and, for local files, its record count from the headers (the counts
    place the data position of a resume, so an edited count must not pass).
    ``read_all`` also reads every record (CRC checked) and counts them: for an eval
    split, whose damage would otherwise surface after training."""
    entries = manifest["files"].get(split) or []
    for (path, num_examples), entry in zip(process_files(data_dir, manifest, split, 0, 1),
                                           entries):
        size = _file_size(path)
        if size is None:
            raise CorruptShardError(f"{path}: missing (listed in the manifest of {data_dir})")
        if "bytes" in entry and size != int(entry["bytes"]):
            raise CorruptShardError(f"{path}: {size} bytes where the manifest says "
                                    f"{entry['bytes']}: truncated or replaced; rebuild the "
                                    f"data")
        if files.is_remote(path) and (read_all or "bytes" not in entry):
            n = _count_remote(path)
        elif read_all:
            try:
                n = sum(1 for _ in records.iterate_records(path))
            except records.RecordError as e:
                raise CorruptShardError(f"corrupt TFRecord shard {e}") from None
        elif not files.is_remote(path):  # the count places a resume: always checked
            n = _count_records(path)
        else:  # a bucket's size is checked; counting would read every byte
            continue
        if n != num_examples:
            raise CorruptShardError(f"{path}: {n} records where the manifest says "
                                    f"{num_examples}: the manifest was edited or the file "
                                    f"replaced; rebuild the data")


def find_corrupt_shard(paths) -> tuple[str, str] | None:
    """Reads every record of ``paths`` (CRC checked); the first bad (path, error) or None."""
    for path in paths:
        try:
            for _ in tf.data.TFRecordDataset(path).batch(1024):
                pass
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError,
                tf.errors.InvalidArgumentError) as e:
            return path, e.message.strip().splitlines()[0]
        except tf.errors.NotFoundError:
            return path, "file not found"
    return None


def numpy_batches(ds: tf.data.Dataset, paths) -> Iterator[dict[str, np.ndarray]]:
    """``ds`` as numpy; TF's errors of a corrupt shard among ``paths`` become
    ``CorruptShardError`` naming it."""
    it = ds.as_numpy_iterator()
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (tf.errors.DataLossError, tf.errors.NotFoundError,
                tf.errors.InvalidArgumentError) as e:
            bad = find_corrupt_shard(paths)
            if bad is None:
                raise
            raise CorruptShardError(f"corrupt or truncated TFRecord shard {bad[0]}: "
                                    f"{bad[1]}") from e
        yield batch


def batches(data_dir, *, split: str, batch_size: int, seq_length: int,
            masking: MaskingConfig, seed: int, process_index: int = 0,
            process_count: int = 1, start_batch: int = 0, repeat: bool = True,
            shuffle: bool = True, shuffle_buffer: int = SHUFFLE_BUFFER
            ) -> Iterator[dict[str, np.ndarray]]:
    """``make_dataset(...)`` (same arguments) as host-local numpy batches:

    input_ids, attention_mask, token_type_ids [b, L] int32; masked_positions, masked_ids
    [b, P] int32; masked_weights [b, P] float32; relation [b] int32; example_weight [b]
    float32 (0 for padding rows of a last partial batch). A truncated or corrupt shard
    raises ``CorruptShardError`` naming the file; with ``repeat=False`` the pass is also
    checked against the manifest's example count.
    """
    ds = make_dataset(data_dir, split=split, batch_size=batch_size, seq_length=seq_length,
                      masking=masking, seed=seed, process_index=process_index,
                      process_count=process_count, start_batch=start_batch, repeat=repeat,
                      shuffle=shuffle, shuffle_buffer=shuffle_buffer)
    files = process_files(data_dir, read_manifest(data_dir), split, process_index,
                          process_count)
    seen = 0
    for batch in numpy_batches(ds, [p for p, _ in files]):
        seen += int(batch["example_weight"].sum())
        yield batch
    if not repeat:
        expected = max(0, sum(n for _, n in files) - start_batch * batch_size)
        if seen != expected:
            raise CorruptShardError(
                f"split {split!r} gave {seen} examples where the manifest of "
                f"{data_dir} promises {expected}: a shard is truncated or the manifest is "
                "stale")


class TFRecordSource:
    """The trainer's data source: a TFRecord directory written by the corpus builder
    (local or ``scheme://``).

    Any object with ``manifest`` and ``batches`` serves (tests pass a synthetic one;
    ``check`` is optional); problems with the directory are ``ConfigError``s, one line
    each."""

    def __init__(self, data_dir: str):
        if not data_dir:
            raise ConfigError("config.data_dir is not set: pass --config.data_dir=DIR "
                              "(a TFRecord directory written by the corpus builder)")
        if not is_data_dir(data_dir):
            raise ConfigError(f"data_dir {data_dir!r} does not exist or is not a directory")
        self.data_dir = data_dir

    def manifest(self) -> dict:
        try:
            return read_manifest(self.data_dir)
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"data_dir {self.data_dir!r}: cannot read its manifest ({e})")

    def batches(self, *, masking, **kwargs) -> Iterator[dict[str, np.ndarray]]:
        """``batches(data_dir, ...)`` with the config's masking section."""
        return batches(self.data_dir, masking=MaskingConfig(**dict(masking)), **kwargs)

    def stream_batches(self, *, split, position, global_batch_size, rows, masking,
                       **kwargs) -> Iterator[dict[str, np.ndarray]]:
        """This process's ``rows`` of the training stream from ``position``
        (``example_stream``), as numpy batches."""
        from linkbert_jax.pretrain import example_stream
        ds = example_stream.make_dataset(
            self.data_dir, split=split, position=position,
            global_batch_size=global_batch_size, rows=rows,
            masking=MaskingConfig(**dict(masking)), **kwargs)
        paths = [p for p, _ in process_files(self.data_dir, read_manifest(self.data_dir),
                                             split, 0, 1)]
        return numpy_batches(ds, paths)

    def check(self, manifest: dict, train_split: str, eval_split: str | None) -> None:
        """At start-up: the files are those of the manifest (sizes; the eval split read in
        full, CRC checked), so damage shows now and not after hours of training."""
        check_files(self.data_dir, manifest, train_split)
        if eval_split is not None:
            check_files(self.data_dir, manifest, eval_split, read_all=True)
