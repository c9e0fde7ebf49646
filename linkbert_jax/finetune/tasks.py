"""The task interface every family implements, and loading a task's data.

A task (one instance per run: it may learn the label format from the training split):

- ``check(ds, path, labelled)``: one-line :class:`DataError` for anything unusable;
- ``label_list(train, path)``: the label names, in id order ([] when there are none);
- ``prepare(ds, path, tokenizer, config, labels, labelled, training) -> data.Split``
  (``training``: ``ds`` is the training split, whose unusable records may be skipped);
- ``predict(logits, split, labels, config)``: one JSON-able prediction per example;
- ``score(predictions, split, labels, config)``: the metrics of a labelled split;
- ``model_cls``, ``loss``, ``num_outputs(labels)``; for export ``problem_type``
  (``transformers``' name);
- ``length_keys``: the arrays a batch may be cut to its rows' length (``data.Lengths``):
  the inputs, and token labels; none where padded positions count in the loss;
- ``packs``: whether its batches may be packed several examples to a row
  (``config.pack_examples``; the heads on the pooled [CLS]).
"""
from __future__ import annotations

import dataclasses
import importlib

from linkbert_jax.finetune import data
from linkbert_jax.finetune.families import FAMILIES



def get_task(name: str):
    if name not in FAMILIES:
        raise data.DataError(f"task {name!r} is not one of {sorted(FAMILIES)}")
    module, cls = FAMILIES[name].task.split(":")
    return getattr(importlib.import_module(module), cls)()


class Task:
    name = ""
    model_cls = None
    loss = None
    problem_type = None
    length_keys = data.INPUTS
    packs = False

    def lengths(self, config, shards: int = 1, microbatches: int = 1) -> data.Lengths:
        """How this task's batches follow their lengths, for steps over ``shards``
        data-parallel devices in ``microbatches``."""
        buckets = max(1, int(config.length_buckets))
        multiple = -(-config.max_seq_length // (8 * buckets)) * 8
        return data.Lengths(self.length_keys, multiple, config.group_by_length,
                            int(config.pack_examples) if self.packs else 0,
                            shards * microbatches, int(config.pack_shapes))

    def num_outputs(self, labels) -> int:
        return len(labels)

    def label_list(self, train, path: str) -> list:
        return []


@dataclasses.dataclass
class TaskData:
    task: Task
    labels: list  # label names in id order
    splits: dict  # name -> data.Split
    tokenizer: object  # the fast tokenizer the splits were tokenized with

    @property
    def num_outputs(self) -> int:
        return self.task.num_outputs(self.labels)


def has_labels(task: Task, ds) -> bool:
    return all(f in ds.column_names for f in task.label_fields)


def load(task: Task, files: dict, tokenizer, config, cache_dir=None) -> TaskData:
    """Read, check and tokenize the given splits (``train`` and ``validation`` required,
    ``test`` optional and possibly unlabelled)."""
    for split in ("train", "validation"):
        if not files.get(split):
            raise data.DataError(f"no {split} file given (--{split}_file)")
    raw = {s: (files[s], data.load_split(files[s], cache_dir)) for s in data.TASK_SPLITS
           if files.get(s)}
    train_path, train = raw["train"]
    task.check(train, train_path, True)
    labels = task.label_list(train, train_path)
    splits = {}
    for name, (path, ds) in raw.items():
        labelled = name != "test" or has_labels(task, ds)
        if name != "train":
            task.check(ds, path, labelled)
        splits[name] = task.prepare(ds, path, tokenizer, config, labels, labelled,
                                    training=name == "train")  # what may be skipped
        if len(splits[name]) == 0:
            raise data.DataError(f"{path}: no usable records")
    return TaskData(task, labels, splits, tokenizer)
