"""Sequences/s of the input pipeline (TFRecord read, parse, dynamic masking, batching to
host numpy arrays) on N cores (default 1), at seq 128 and 512, on synthetic shards of
near-full-length pairs (vocab 30522) that it writes itself.

    python bench/input_pipeline.py [--cores 1] [--batch_size 256] [--seconds 10]

Last line: ``input_pipeline seq_per_s_128=... seq_per_s_512=...``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per length")
    p.add_argument("--records", type=int, default=32768, help="records per length")
    p.add_argument("--seq_lengths", default="128,512")
    p.add_argument("--data_dir", default=None, help="keep the synthetic shards here")
    return p.parse_args()


ARGS = _args()
# Pin before TensorFlow starts its thread pools.
os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: ARGS.cores]))
from linkbert_jax.infra import runtime  # noqa: E402

runtime.quiet_tensorflow()
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(ARGS.cores)
tf.config.threading.set_inter_op_parallelism_threads(ARGS.cores)

from linkbert_jax.pretrain import input_pipeline as ip  # noqa: E402
from linkbert_jax.data import features, writer  # noqa: E402
from linkbert_jax.data import manifests

VOCAB = 30522
SPECIAL_IDS = {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
NUM_FILES = 8


def _pairs(rng, n, seq_length):
    """Near-full-length pairs (total length uniform in [0.9 L, L], A about half) in the
    sampler's tuple form."""
    for _ in range(n):
        total = int(rng.integers(int(0.9 * seq_length), seq_length + 1))
        a = int(rng.integers((total - 3) // 4, 3 * (total - 3) // 4))
        body = rng.integers(999, VOCAB, size=total - 3)
        yield (body[:a], body[a:], int(rng.integers(features.NUM_RELATIONS)),
               *(int(x) for x in rng.integers(1 << 20, size=4)))


def write_shards(data_dir, seq_length, num_records, seed=0):
    """Shards and manifest written by the corpus builder's own writer."""
    rng = np.random.default_rng(seed)
    os.makedirs(data_dir, exist_ok=True)
    files = []
    per_file = -(-num_records // NUM_FILES)
    for i in range(NUM_FILES):
        n = min(per_file, num_records - i * per_file)
        path = os.path.join(data_dir, writer.shard_name("train", i, NUM_FILES))
        entry = writer.write_shard(path, _pairs(rng, n, seq_length), SPECIAL_IDS["cls"],
                                   SPECIAL_IDS["sep"])
        files.append({"name": entry["name"], "num_examples": n})
    manifest = {"format_version": manifests.MANIFEST_VERSION, "max_seq_length": seq_length,
                "vocab_size": VOCAB, "special_ids": SPECIAL_IDS, "files": {"train": files}}
    with open(os.path.join(data_dir, manifests.MANIFEST_NAME), "w") as f:
        json.dump(manifest, f)


def measure(data_dir, seq_length):
    masking = ip.MaskingConfig(max_predictions=20 if seq_length <= 128 else 80)
    ds = ip.make_dataset(data_dir, split="train", batch_size=ARGS.batch_size,
                         seq_length=seq_length, masking=masking, seed=0)
    options = tf.data.Options()
    options.threading.private_threadpool_size = ARGS.cores
    options.threading.max_intra_op_parallelism = 1
    it = ds.with_options(options).as_numpy_iterator()
    for _ in range(5):  # warm up: trace, fill the shuffle buffer, page cache
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < ARGS.seconds:
        batch = next(it)
        n += batch["input_ids"].shape[0]
    dt = time.perf_counter() - t0
    return n / dt


def main():
    tmp = ARGS.data_dir or tempfile.mkdtemp(prefix="bench_input_")
    lengths = [int(x) for x in ARGS.seq_lengths.split(",")]
    results = {}
    print(f"cores={ARGS.cores} (affinity {sorted(os.sched_getaffinity(0))}), "
          f"batch_size={ARGS.batch_size}, {ARGS.records} records per length")
    for L in lengths:
        d = os.path.join(tmp, f"seq{L}")
        if not os.path.exists(os.path.join(d, manifests.MANIFEST_NAME)):
            t = time.perf_counter()
            write_shards(d, L, ARGS.records)
            print(f"wrote {ARGS.records} records of ~{L} tokens in "
                  f"{time.perf_counter() - t:.1f}s")
        results[L] = measure(d, L)
        print(f"seq {L}: {results[L]:,.0f} sequences/s "
              f"({results[L] / ARGS.cores:,.0f} per core), "
              f"{results[L] * L / 1e6:.2f} M tokens/s")
    print("input_pipeline " + " ".join(f"seq_per_s_{L}={results[L]:.0f}" for L in lengths))


if __name__ == "__main__":
    sys.exit(main())
