"""Vocabulary identity end to end: the hash of a tokenizer's vocabulary (in id order,
``linkbert_jax.data.tokenizer.describe``, the builder's function) travels with the data
(the manifest's ``vocab_sha256``), each checkpoint (its ``meta`` item) and each export
(``linkbert_export.json``), and every place that joins a model with ids compares hashes,
not only sizes:

- resume: the checkpoint's vocabulary vs the data's manifest;
- ``init_from_hf``: the Hugging Face directory's vocabulary vs the data's;
- fine-tuning ``--init`` with ``--tokenizer``: the starting model's vocabulary vs the
  tokenizer's;
- export: the checkpoint's vocabulary vs the tokenizer copied into the export.

A mismatch is a ``ConfigError`` (exit 2) whose one line names both sides. A side whose
vocabulary is unknown (a checkpoint saved before hashes were recorded, a directory
without a tokenizer) is not compared.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from linkbert_jax.errors import ConfigError

KEY = "vocab_sha256"  # in the manifest, a checkpoint's meta and an export's stamp
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
_SHORT = 12  # hex digits shown in messages


@dataclasses.dataclass(frozen=True)
class Side:
    """One side of a comparison: what it is (``"the data"``), where, and its hash."""
    what: str
    where: str
    sha256: str

    def __str__(self) -> str:
        return f"{self.what} {self.where} (vocabulary {self.sha256[:_SHORT]})"


def check(a: Optional[Side], b: Optional[Side], fix: str) -> None:
    """``ConfigError`` naming both sides when both are known and differ."""
    if a is not None and b is not None and a.sha256 != b.sha256:
        raise ConfigError(f"vocabulary mismatch: {a} vs {b}; the same token ids would "
                          f"mean other words; {fix}")


def has_tokenizer(path: str) -> bool:
    return bool(path) and any(os.path.isfile(os.path.join(path, n)) for n in TOKENIZER_FILES)


def of_tokenizer(path: str) -> str:
    """The vocabulary hash of a tokenizer directory (the builder's, which the manifest
    records)."""
    from linkbert_jax.data import tokenizer
    try:
        return tokenizer.describe(path)[KEY]
    except (OSError, ValueError) as err:
        raise ConfigError(f"tokenizer {path}: cannot be read ({err})") from None


def of_manifest(data_dir: str, manifest: Optional[dict]) -> Optional[Side]:
    from linkbert_jax.data import manifests
    sha = (manifest or {}).get(KEY)
    path = os.path.join(data_dir or ".", manifests.MANIFEST_NAME)
    return Side("the data", path, sha) if sha else None


def of_training_data(data_dir: str) -> Optional[Side]:
    """The vocabulary of a data directory that may be gone (None then)."""
    from linkbert_jax.data import manifests
    try:
        return of_manifest(data_dir, manifests.read_manifest(data_dir)) if data_dir else None
    except (OSError, ValueError):
        return None


def of_hf_dir(path: str, what: str) -> Optional[Side]:
    """A Hugging Face directory's vocabulary: the one its export recorded, else its own
    tokenizer's; None when neither is there (or the tokenizer is unreadable)."""
    from linkbert_jax.hf import export_dir
    sha = (export_dir.read_marker(path) or {}).get(KEY)  # the export's record, if any
    if sha:
        return Side(what, path, sha)
    if not has_tokenizer(path):
        return None
    try:
        return Side(what, path, of_tokenizer(path))
    except ConfigError:  # no usable tokenizer there: nothing to compare
        return None


def of_checkpoint(workdir: str, step: Optional[int] = None) -> Optional[Side]:
    """The vocabulary recorded in a checkpoint's meta (the latest complete step without
    ``step``); None without a checkpoint or for one saved before hashes were recorded."""
    from linkbert_jax.checkpoint import checkpoints, orbax_faults
    if not os.path.isdir(checkpoints.checkpoint_dir(workdir)):
        return None
    with orbax_faults.quiet_read_only():
        mgr = checkpoints.manager(workdir, read_only=True, async_save=False)
    try:
        step = checkpoints.latest_complete_step(mgr) if step is None else step
        return None if step is None else in_checkpoint(mgr, step)
    finally:
        mgr.close()


def in_checkpoint(mgr, step: int) -> Optional[Side]:
    """The vocabulary recorded in step ``step`` of a checkpoint manager."""
    import orbax.checkpoint as ocp
    meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    sha = (meta or {}).get(KEY)
    return Side("the checkpoint", os.path.join(str(mgr.directory), str(step)),
                sha) if sha else None


# ---------------------------------------------------------------------------- the checks

RESUME_FIX = "resume on data built with the checkpoint's tokenizer, or use a new --workdir"


def check_init_from_hf(hf_dir: str, data_dir: str, manifest: dict) -> None:
    """``init_from_hf``: the weights continue with the data's vocabulary."""
    data = of_manifest(data_dir, manifest)
    if hf_dir and data is not None:
        check(of_hf_dir(hf_dir, "init_from_hf"), data,
              f"build the data with --tokenizer {hf_dir}")


def check_export(workdir: str, step: int, tokenizer: Optional[str],
                 data: Optional[Side]) -> Optional[str]:
    """Export: the tokenizer copied has the checkpoint's vocabulary (or, for a checkpoint
    without a record, the training data's). Returns the model's vocabulary hash (None
    when unknown), which the export records."""
    own = of_checkpoint(workdir, step) or data
    if tokenizer and own is not None:
        check(own, Side("the tokenizer", tokenizer, of_tokenizer(tokenizer)),
              "pass --tokenizer with the vocabulary the checkpoint was trained with")
    return own.sha256 if own is not None else None
