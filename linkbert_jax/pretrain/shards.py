"""The tf.data pieces both streams are made of (``input_pipeline``'s one-pass eval split
and ``example_stream``'s training stream): which files a process reads, an epoch of a
file list's records (interleaved, shuffled in seeded blocks), and the parse and dynamic
mask of a block of records. Their constants are part of the streams' definition: a
change changes every stream, so resumes of old runs would read other examples."""
from __future__ import annotations

import os

import tensorflow as tf

from linkbert_jax.data import features
from linkbert_jax.data import manifests
from linkbert_jax.errors import ConfigError, CorruptDataError
from linkbert_jax.pretrain.masking import block_draws, mask_batch, random_token_table

CYCLE_LENGTH = 4          # files read at once (part of the stream's definition)
SHUFFLE_BUFFER = 10_000   # records per shuffled block (part of the stream's definition)


def process_files(data_dir, manifest: dict, split: str, process_index: int,
                  process_count: int) -> list[tuple[str, int]]:
    """(path, num_examples) of the files process ``process_index`` reads: i, i+P, ..."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    entries = manifest["files"].get(split)
    if not entries:
        raise ConfigError(f"manifest in {data_dir} lists no files for split {split!r} "
                          f"(splits: {sorted(manifest['files'])})")
    files = []
    for e in entries:
        if not isinstance(e, dict) or "name" not in e or "num_examples" not in e:
            raise CorruptDataError(f"manifest file entry {e!r} needs 'name' and "
                                   "'num_examples' (exact resume needs per-file counts)")
        files.append((os.path.join(os.fspath(data_dir), e["name"]), int(e["num_examples"])))
    manifests.check_enough_files(manifest, split, process_count)
    return files[process_index::process_count]


def fold(seed, *data):
    for d in data:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(d, tf.int64))
    return seed


def epoch_records(paths, base_seed, epoch, shuffle: bool, shuffle_buffer: int,
                   skip: int = 0):
    """Serialized records of one epoch (``epoch``: int64 scalar tensor), less ``skip``.

    The shuffle permutes consecutive blocks of ``shuffle_buffer`` records with stateless
    ops (seeded from seed, process, epoch, block), not with ``Dataset.shuffle``, whose
    seed would also depend on TF's global seed. Skipped whole blocks are never shuffled.
    """
    paths = tf.constant(paths)
    if shuffle:
        order = tf.argsort(tf.random.stateless_uniform(
            [int(paths.shape[0])], fold(base_seed, 1, epoch)))
        paths = tf.gather(paths, order)
    ds = tf.data.Dataset.from_tensor_slices(paths)
    cycle = min(CYCLE_LENGTH, int(paths.shape[0]))
    parallel = {"num_parallel_calls": cycle, "deterministic": True} if cycle > 1 else {}
    ds = ds.interleave(lambda p: tf.data.TFRecordDataset(p, buffer_size=1 << 20),
                       cycle_length=cycle, block_length=1, **parallel)
    if not shuffle:
        return ds.skip(skip) if skip else ds
    first_block, skip = divmod(skip, shuffle_buffer)
    ds = ds.skip(first_block * shuffle_buffer).batch(shuffle_buffer)

    def permute(block, records):
        seed = fold(base_seed, 2, epoch, block)
        return tf.gather(records, tf.argsort(
            tf.random.stateless_uniform(tf.shape(records)[:1], seed)))

    ds = ds.enumerate(start=first_block).map(permute).unbatch()
    return ds.skip(skip) if skip else ds


def parse_and_mask(serialized, seeds, *, spans, block, batch_size, seq_length, masking,
                   ids, vocab_size):
    """Parsed and masked batch of ``batch_size`` rows (``serialized`` may be shorter: the
    rest is padding), masked with ``masking.block_draws(seeds, spans, block)``."""
    parsed = tf.io.parse_example(serialized, features.feature_spec(features.TRAINING_FEATURES))
    n = tf.shape(serialized)[0]
    pad_rows = batch_size - n  # > 0 only for the last batch of a non-repeating stream
    ragged = tf.cast(parsed[features.INPUT_IDS], tf.int32)
    lengths_B = tf.pad(tf.cast(ragged.row_lengths(), tf.int32), [[0, pad_rows]])
    tf.debugging.assert_less_equal(lengths_B, seq_length,
                                   message="record longer than seq_length")
    ids_BxL = ragged.to_tensor(default_value=ids["pad"], shape=[batch_size, seq_length])
    a_len_B = tf.pad(tf.cast(parsed[features.A_LENGTH], tf.int32), [[0, pad_rows]])
    relation_B = tf.pad(tf.cast(parsed[features.RELATION], tf.int32), [[0, pad_rows]])
    pos_L = tf.range(seq_length)[None, :]
    attention_BxL = pos_L < lengths_B[:, None]
    type_BxL = features.token_types(pos_L, a_len_B[:, None]) & attention_BxL
    ids_BxL, positions, orig, weights = mask_batch(
        ids_BxL, lengths_B, block_draws(tf.unstack(seeds), spans, block), config=masking,
        mask_id=ids["mask"],
        special_ids=list(ids.values()),
        random_ids=random_token_table(vocab_size, list(ids.values())))
    out = {
        "input_ids": ids_BxL,
        "attention_mask": tf.cast(attention_BxL, tf.int32),
        "token_type_ids": tf.cast(type_BxL, tf.int32),
        "masked_positions": positions,
        "masked_ids": orig,
        "masked_weights": weights,
        "relation": relation_B,
        "example_weight": tf.cast(tf.range(batch_size) < n, tf.float32),
    }
    P = masking.max_predictions
    shapes = {"masked_positions": [batch_size, P], "masked_ids": [batch_size, P],
              "masked_weights": [batch_size, P], "relation": [batch_size],
              "example_weight": [batch_size]}
    for k, v in out.items():
        v.set_shape(shapes.get(k, [batch_size, seq_length]))
    return out
