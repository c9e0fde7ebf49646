"""The training example stream: one global sequence of batches, whatever the process,
device and host counts, and a data position counted in examples.

The rule (also in docs/training.md):

* The train files are dealt to ``V`` virtual streams: stream ``v`` reads
  ``files[v::V]``. ``V`` is fixed at the first start of a workdir
  (``config.data_streams``; 0 = the process count then) and saved in every checkpoint.
* Stream ``v`` is the concatenation of its epochs; epoch ``e`` reads the stream's files
  in an order drawn from ``(seed, v, e)``, interleaved and block-shuffled
  (``shards.epoch_records``).
* Global batch ``b`` of size ``B`` (a multiple of ``V``) takes ``m = B / V`` consecutive
  examples of every stream: row ``v*m + i`` is example ``j0 + b*m + i`` of stream ``v``,
  where ``j0 = N / V`` and ``N`` is the data position, the number of examples consumed
  when the run (re)started.
* The block of stream ``v`` that starts at its example ``j`` is masked with random
  numbers drawn from ``(seed, v, j)`` (``masking.block_draws``), whichever process
  builds which of its rows.
* Process ``p`` builds the rows of each global batch that its devices hold (from the
  batch sharding) and reads only the streams that overlap them.

So a resume continues at example ``N`` of the same stream on any number of processes
and devices, and with another batch size (still a multiple of ``V``). With ``V`` equal
to the process count, this is the stream in which process ``p`` reads ``files[p::P]``.
"""
from __future__ import annotations

import functools

import tensorflow as tf

from linkbert_jax.data import manifests
from linkbert_jax.data.manifests import read_manifest
from linkbert_jax.infra import runtime
from linkbert_jax.pretrain import shards
from linkbert_jax.pretrain.data_position import Position, pieces
from linkbert_jax.errors import ConfigError


def _stream_blocks(paths, count, base_seed, start: int, block: int, shuffle: bool,
                   shuffle_buffer: int) -> tf.data.Dataset:
    """Blocks of ``block`` serialized records of one stream, from its example ``start``."""
    epoch = functools.partial(shards.epoch_records, paths, base_seed, shuffle=shuffle,
                              shuffle_buffer=shuffle_buffer)
    first, within = divmod(start, count)
    ds = epoch(tf.constant(first, tf.int64), skip=within)
    ds = ds.concatenate(tf.data.Dataset.range(first + 1, 2**62).flat_map(epoch))
    return ds.batch(block, drop_remainder=True)


def stream_files(data_dir, manifest: dict, split: str, streams: int):
    """The files of each stream: ``files[v::V]``; ConfigError if a stream has none."""
    files = shards.process_files(data_dir, manifest, split, 0, 1)
    if len(files) < streams:
        raise ConfigError(f"split {split!r} of {data_dir} has {len(files)} file(s), fewer "
                          f"than the run's {streams} data streams (each reads its own "
                          f"files): rebuild with at least {streams} shards")
    return [files[v::streams] for v in range(streams)]


def make_dataset(data_dir, *, split: str, position: Position, global_batch_size: int,
                 rows, seq_length: int, masking, seed: int, shuffle: bool = True,
                 shuffle_buffer: int = shards.SHUFFLE_BUFFER) -> tf.data.Dataset:
    """This process's rows (``rows``, see ``process_rows``) of every global batch from
    ``position`` on, as dicts of tensors (the fields of ``input_pipeline.batches``)."""
    runtime.hide_accelerators_from_tensorflow()
    manifest = read_manifest(data_dir)
    manifests.check_fits(manifest, seq_length)
    V, B = position.streams, global_batch_size
    m, j0 = B // V, position.examples // V
    files = stream_files(data_dir, manifest, split, V)
    parts = pieces(rows, B, V)
    used = sorted({v for v, _, _ in parts})
    empty = [v for v in used if not sum(n for _, n in files[v])]
    if empty:
        raise ConfigError(f"data stream {empty[0]} of split {split!r} ({files[empty[0]][0][0]}"
                          f", ...) has no examples")
    base = {v: shards.fold(tf.constant([0, seed], tf.int64), v) for v in used}
    blocks = tuple(_stream_blocks([p for p, _ in files[v]], sum(n for _, n in files[v]),
                                  base[v], j0, m, shuffle, shuffle_buffer) for v in used)
    slot = {v: k for k, v in enumerate(used)}

    def assemble(k, blocks_):
        serialized = tf.concat([blocks_[slot[v]][a:b] for v, a, b in parts], axis=0)
        return serialized, tf.stack([shards.fold(base[v], 3, j0 + k * m) for v, _, _ in parts])

    ds = tf.data.Dataset.zip(blocks).enumerate().map(assemble)
    ds = ds.map(functools.partial(
        shards.parse_and_mask, spans=[(a, b) for _, a, b in parts], block=m,
        batch_size=sum(b - a for _, a, b in parts), seq_length=seq_length,
        masking=masking, ids=manifests.special_ids(manifest),
        vocab_size=int(manifest["vocab_size"])),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)
