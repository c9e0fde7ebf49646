"""Fine-tuning data: JSON-lines splits read by ``datasets``' json loader, checked, tokenized
once with the checkpoint's fast tokenizer (cached by ``datasets`` under a fingerprint of
the inputs) and served as numpy batches, cut to their rows' length (:class:`Lengths`).

Bad input is a :class:`DataError` naming the file and record (the CLI prints it as one
line and exits 2): a missing file, a file that is not JSON, an empty split, a missing
field, a label the training split does not define. What a task may skip (an answer span
that does not match its context) is counted and warned by the task.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Iterator, Optional

import numpy as np

from linkbert_jax.errors import DataError
from linkbert_jax.finetune import packing

log = logging.getLogger("linkbert_jax")

TASK_SPLITS = ("train", "validation", "test")  # a task's files (not the builder's splits)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
MODEL_INPUTS = INPUTS + packing.INPUTS  # what a task model takes (by name)



def _quiet_datasets():
    import datasets
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def load_split(path: str, cache_dir: Optional[str] = None):
    """One JSON-lines (or JSON array) file as a ``datasets.Dataset``."""
    import datasets
    _quiet_datasets()
    if not path or not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: empty file (no records)")
    try:
        ds = datasets.load_dataset("json", data_files={"split": os.path.abspath(path)},
                                   split="split", cache_dir=cache_dir)
    except Exception as err:  # noqa: BLE001 - pyarrow/datasets raise many error types
        cause = err.__cause__ or err
        msg = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise DataError(f"{path}: not JSON lines of records ({msg[:200]})") from None
    if len(ds) == 0:
        raise DataError(f"{path}: no records")
    return ds


def require(ds, path: str, fields) -> None:
    """Every field present as a column and set (not null) in every record."""
    missing = [f for f in fields if f not in ds.column_names]
    if missing:
        raise DataError(f"{path}: no field {missing[0]!r} in its records (fields: "
                        f"{', '.join(ds.column_names)})")
    for f in fields:
        for i, v in enumerate(ds[f]):
            if v is None:
                raise DataError(f"{path}: record {i + 1} has no {f!r}")


def label_ids(values, label2id: dict, path: str, field: str = "label") -> list[int]:
    out = []
    for i, v in enumerate(values):
        if v not in label2id:
            raise DataError(f"{path}: record {i + 1}: {field} {v!r} is not one of the "
                            f"training split's labels {sorted(label2id, key=str)[:20]}")
        out.append(label2id[v])
    return out


def tokenizer_fingerprint(tokenizer) -> str:
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]


def featurize(ds, fn, *parts):
    """``ds.map(fn, batched=True)`` with all input columns removed, cached by ``datasets``
    under a fingerprint of the dataset and ``parts`` (task, tokenizer, lengths, labels)."""
    key = json.dumps([ds._fingerprint, *parts], sort_keys=True, default=str)
    fp = hashlib.sha256(key.encode()).hexdigest()[:32]
    return ds.map(fn, batched=True, remove_columns=ds.column_names, new_fingerprint=fp)


def arrays(features) -> dict[str, np.ndarray]:
    """A featurized dataset as numpy arrays (int32 ids, float32 floats)."""
    out = {}
    for name in features.column_names:
        x = np.asarray(features.with_format("numpy")[name])
        out[name] = x.astype(np.float32 if x.dtype.kind == "f" else
                             (np.int32 if x.dtype.kind in "iub" else x.dtype))
    return out


@dataclasses.dataclass
class Split:
    """A tokenized split: raw examples (for metrics and predictions) and model arrays
    (``INPUTS`` and, when the split has gold labels, ``labels``; tasks may add their own
    keys, e.g. QA's ``example_index``/``offsets``, which never reach the device)."""

    path: str
    examples: object  # datasets.Dataset
    arrays: dict
    has_labels: bool

    def __len__(self) -> int:
        return len(self.arrays["input_ids"])


def model_inputs(arr: dict) -> dict:
    return {k: arr[k] for k in INPUTS + ("labels",) if k in arr}


def _take(arr: dict, rows: np.ndarray, size: int) -> dict:
    """``rows`` of each array, zero-padded to ``size`` rows; ``example_weight`` 1/0."""
    out = {}
    for k, x in arr.items():
        part = x[rows]
        if len(rows) < size:
            part = np.concatenate([part, np.zeros((size - len(rows),) + x.shape[1:], x.dtype)])
        out[k] = part
    out["example_weight"] = (np.arange(size) < len(rows)).astype(np.float32)
    return out


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


@dataclasses.dataclass(frozen=True)
class Lengths:
    """How batches follow their rows' lengths. Every split is tokenized padded to
    ``max_seq_length``; a batch is cut to its longest row rounded up to ``multiple``
    (``keys``: the arrays whose last axis is the sequence; none, or ``multiple`` 0: never
    cut), so a step computes no more padding than the rounding needs. Masked padding
    changes no real position's output, so the cut changes the results only in the last
    float bits, and each new length compiles once. With ``group``, training batches hold
    rows of similar lengths (Hugging Face's ``group_by_length``).

    With ``pack`` > 0 (the pooled heads), batches are packed instead, several examples
    to a row (``linkbert_jax.finetune.packing``), in groups of up to ``pack`` examples
    that split the ``parts`` (data-parallel shards x microbatches) of a batch evenly."""

    keys: tuple = ()
    multiple: int = 0
    group: bool = False
    pack: int = 0
    parts: int = 1
    pack_shapes: int = packing.ROW_COUNTS

    def shape(self, batch: dict) -> dict:
        """The batch as a step takes it: packed, or cut."""
        if self.pack <= 0:
            return self.cut(batch)
        E = packing.group_size(len(batch["input_ids"]), self.parts, self.pack)
        return packing.pack(batch, E, row_counts=self.pack_shapes)

    def cut(self, batch: dict) -> dict:
        if not self.keys or self.multiple <= 0:
            return batch
        mask = batch["attention_mask"]
        L = mask.shape[-1]
        real = np.flatnonzero(mask.reshape(-1, L).any(axis=0))
        longest = int(real[-1]) + 1 if len(real) else 1
        n = min(L, -(-longest // self.multiple) * self.multiple)
        return batch if n == L else {k: (v[..., :n] if k in self.keys else v)
                                     for k, v in batch.items()}


def row_lengths(split: Split) -> np.ndarray:
    """Real tokens per row (the longest choice's for multiple choice)."""
    mask = split.arrays["attention_mask"]
    return mask.reshape(len(mask), -1, mask.shape[-1]).sum(-1).max(-1)


def _grouped(order: np.ndarray, lengths: np.ndarray, batch_size: int, rng) -> np.ndarray:
    """Hugging Face's ``LengthGroupedSampler``: the shuffled rows in megabatches of 50
    batches, each sorted by length (longest first); then the batches in random order."""
    mega = 50 * batch_size
    batches = []
    for start in range(0, len(order), mega):
        part = order[start:start + mega]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    short = [b for b in batches if len(b) < batch_size]  # at most one: kept last
    return np.concatenate([full[i] for i in rng.permutation(len(full))] + short)


def train_batches(split: Split, batch_size: int, seed: int, epoch: int,
                  process_index: int = 0, process_count: int = 1,
                  lengths: Lengths = Lengths(), first: int = 0) -> Iterator[dict]:
    """One epoch of shuffled global batches (the last one zero-weight padded, as a
    PyTorch DataLoader's shorter last batch), shaped by ``lengths`` (cut or packed);
    each process gets its part. ``first``: batches of the epoch to skip (a resume)."""
    arr = model_inputs(split.arrays)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(split))
    if lengths.group:
        order = _grouped(order, row_lengths(split), batch_size, rng)
    for start in range(first * batch_size, len(order), batch_size):
        b = lengths.shape(_take(arr, order[start:start + batch_size], batch_size))
        yield _local(b, process_index, process_count)


def eval_batches(split: Split, batch_size: int, process_index: int = 0,
                 process_count: int = 1, lengths: Lengths = Lengths()) -> Iterator[dict]:
    """Every row once, in order, shaped by ``lengths`` (cut or packed); the last batch
    zero-weight padded."""
    arr = {k: v for k, v in model_inputs(split.arrays).items() if k != "labels"}
    for start in range(0, len(split), batch_size):
        b = lengths.shape(_take(arr, np.arange(start, min(start + batch_size, len(split))),
                                batch_size))
        yield _local(b, process_index, process_count)


def _local(batch: dict, process_index: int, process_count: int) -> dict:
    """This process's part of a global batch: its share of every array's leading axis
    (rows, or packed groups; a process's devices hold consecutive parts)."""
    def part(x):
        n, rest = divmod(len(x), process_count)
        if rest:
            raise ValueError(f"{len(x)} rows or groups do not split over {process_count} "
                             f"processes")
        return x[process_index * n:(process_index + 1) * n]
    return {k: part(v) for k, v in batch.items()}
