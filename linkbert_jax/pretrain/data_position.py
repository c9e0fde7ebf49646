"""The data position of a training run, in examples, and which rows of each global
batch this process builds; the stream itself is ``linkbert_jax.pretrain.example_stream`` (its
docstring and docs/training.md state the rule). No TensorFlow here: the trainer imports
this module whatever its data source.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Iterator, Optional

import jax

from linkbert_jax.errors import ConfigError

log = logging.getLogger("linkbert_jax")


@dataclasses.dataclass(frozen=True)
class Position:
    """The data position of a run at ``step``: ``examples`` consumed in all, over
    ``streams`` virtual streams (each has consumed ``examples / streams``), going on in
    global batches of ``batch_size``."""
    step: int
    examples: int
    streams: int
    batch_size: int

    def at(self, step: int) -> "Position":
        return dataclasses.replace(
            self, step=step, examples=self.examples + (step - self.step) * self.batch_size)

    def meta(self) -> dict:
        """The checkpoint's record (``data_position``: the step, for older readers)."""
        return {"data_examples": self.examples, "data_streams": self.streams,
                "data_batch_size": self.batch_size, "data_position": self.step}


def start_position(config, meta: Optional[dict], step: int) -> Position:
    """Where the stream of a run that starts at ``step`` (restored with ``meta``)
    continues; ``ConfigError`` for a batch size or stream count it cannot continue."""
    B, asked = config.global_batch_size, int(config.get("data_streams") or 0)
    if meta is None:
        pos = Position(step, 0, asked or jax.process_count(), B)
    else:
        streams = int(meta.get("data_streams", meta.get("process_count", 1)))
        if asked and asked != streams:
            raise ConfigError(f"data_streams {asked}: this workdir's data stream was "
                              f"fixed at {streams} streams at its first start; drop "
                              f"--config.data_streams or use a new --workdir")
        old_b = int(meta.get("data_batch_size", B))
        examples = int(meta["data_examples"] if "data_examples" in meta
                       else int(meta["data_position"]) * old_b)
        pos = Position(step, examples, streams, B)
        if old_b != B:
            log.warning("global_batch_size %d -> %d: the data stream continues at example "
                        "%d (each of the %d streams at its example %d)", old_b, B,
                        examples, streams, examples // streams)
    if pos.streams < 1 or B % pos.streams or pos.examples % pos.streams:
        raise ConfigError(
            f"global_batch_size {B} does not divide over the {pos.streams} data streams "
            f"of this run (fixed at its first start; position: example {pos.examples}): "
            f"choose a multiple of {pos.streams} to continue exactly")
    return pos


def process_rows(sharding, global_batch_size: int) -> list[tuple[int, int]]:
    """The global batch rows this process holds, as sorted ``[start, stop)`` ranges, in
    the order ``jax.make_array_from_process_local_data`` maps its local rows."""
    index = sharding.addressable_devices_indices_map((global_batch_size,))
    spans = sorted({s[0].indices(global_batch_size)[:2] for s in index.values()})
    out: list[tuple[int, int]] = []
    for lo, hi in spans:
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def pieces(rows, global_batch_size: int, streams: int) -> list[tuple[int, int, int]]:
    """``(stream, first, stop)`` per piece of the rows: rows ``first..stop-1`` of each
    batch block of that stream, in local row order."""
    m = global_batch_size // streams
    out = []
    for lo, hi in rows:
        for v in range(lo // m, (hi - 1) // m + 1):
            out.append((v, max(lo, v * m) - v * m, min(hi, (v + 1) * m) - v * m))
    return out


def train_batches(config, source, position: Position, data_sharding) -> Iterator[dict]:
    """This process's rows of the training stream from ``position``, as numpy batches.

    A source with ``stream_batches`` (``TFRecordSource``) serves the stream above; any
    other (the synthetic ones of the tests) its ``batches`` at batch index
    ``examples / global_batch_size``."""
    B = config.global_batch_size
    rows = process_rows(data_sharding, B)
    kw = dict(split=config.train_split, seq_length=config.seq_length,
              masking=config.masking, seed=config.seed)
    if hasattr(source, "stream_batches"):
        return source.stream_batches(position=position, global_batch_size=B, rows=rows,
                                     **kw)
    n_proc = jax.process_count()
    return source.batches(batch_size=B // n_proc, process_index=jax.process_index(),
                          process_count=n_proc, start_batch=position.examples // B,
                          repeat=True, shuffle=True, **kw)
