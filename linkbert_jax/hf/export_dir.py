"""Which directory an export may write into, and how it writes there: the one owner of
that rule for the pretraining export (``python -m linkbert_jax.hf.export``) and the
fine-tuned model (``WORKDIR/model``, ``linkbert_jax.finetune.export``).

An export writes into a new or empty directory. A non-empty one is replaced only when
``overwrite`` is set *and* a previous export of the same kind wrote it: it holds the
marker ``MARKER_NAME``, which names the writer (``written_by``: the pretraining export
or fine-tuning) and lists every file it wrote with its size and SHA-256, and nothing
else is there and nothing listed has changed. Any other directory (a
Hugging Face model, a lone ``model.safetensors``, an export a user has added a file
to) is refused with one line, whatever its file names; nothing in it is touched.

The new directory is built under a temporary sibling and renamed into place, so the
output is complete or absent; its files get the permissions the umask gives (safetensors
writes 0600 through a temporary file of its own).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from typing import Optional

from linkbert_jax.data.files import rename
from linkbert_jax.errors import OutputDirError

MARKER_NAME = "linkbert_export.json"
# What an export writes. A marker of an export made before markers listed their files,
# with nothing else in the directory, still marks an export's directory.
EXPORT_FILES = frozenset({
    "config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "added_tokens.json",
    "README.md", MARKER_NAME})
# The writers (``written_by``); a marker from before markers named theirs: PRETRAINING.
PRETRAINING, FINETUNING = "linkbert_jax.hf.export", "linkbert_jax.finetune"



def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _listing(root: str) -> dict:
    """``{relative path: {size, sha256}}`` of every file under ``root`` (the marker's)."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if rel != MARKER_NAME:
                out[rel] = {"size": os.path.getsize(p), "sha256": _digest(p)}
    return out


def read_marker(out_dir: str) -> Optional[dict]:
    """The marker of an export in ``out_dir``; None when there is none (or it is not
    an export's: not a JSON object)."""
    try:
        with open(os.path.join(out_dir, MARKER_NAME), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _not_ours(out_dir: str, marker: dict) -> Optional[str]:
    """The first file in ``out_dir`` that the export of ``marker`` did not write (or that
    changed since); None when everything there is that export's, unchanged."""
    files = marker.get("files")
    present = _present(out_dir)
    if not isinstance(files, dict):  # a marker of an export made before it listed files
        return next((n for n in present if n not in EXPORT_FILES), None)
    for name in present:
        entry = files.get(name)
        path = os.path.join(out_dir, name)
        if (not isinstance(entry, dict) or not os.path.isfile(path)
                or os.path.islink(path) or os.path.getsize(path) != entry.get("size")
                or _digest(path) != entry.get("sha256")):
            return name
    return None


def _present(out_dir: str) -> list:
    """Every entry under ``out_dir`` (files, links, empty directories), relative."""
    out = []
    for d, dirs, names in os.walk(out_dir):
        out += [os.path.relpath(os.path.join(d, n), out_dir) for n in names
                if not (d == out_dir and n == MARKER_NAME)]
        out += [os.path.relpath(os.path.join(d, n), out_dir) for n in dirs
                if os.path.islink(os.path.join(d, n)) or not os.listdir(os.path.join(d, n))]
    return sorted(out)


def _names(names: list) -> str:
    shown = ", ".join(repr(n) for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check(out_dir: str, overwrite: bool, owner: str, *, what: str = "--output_dir",
          fix: str = "choose a new or empty --output_dir") -> None:
    """Refuse (:class:`OutputDirError`, one line) an ``out_dir`` that the export
    ``owner`` (the marker's ``written_by``) may not write into; see the module
    docstring. ``what`` names the directory's flag and ``fix`` what the user can do."""
    out_dir = os.path.realpath(out_dir)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise OutputDirError(f"{what} {out_dir} exists and is not a directory; {fix}")
    present = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
    if not present:
        return
    marker = read_marker(out_dir)
    if marker is None:
        raise OutputDirError(
            f"{what} {out_dir} is not empty and was not written by an export (it holds "
            f"{_names(present)}): it is left as it is; {fix}")
    writer = marker.get("written_by", PRETRAINING)
    if writer != owner:  # a fine-tuned model is not the pretraining export's, nor back
        raise OutputDirError(
            f"{what} {out_dir} holds a model that {writer} wrote ({_describe(marker)}), "
            f"not {owner}: it is left as it is; {fix}")
    foreign = _not_ours(out_dir, marker)
    if foreign is not None:
        raise OutputDirError(
            f"{what} {out_dir} holds an earlier export and {foreign!r}, which that export "
            f"did not write (or which changed since): it is left as it is; move the "
            f"file away or {fix}")
    if not overwrite:
        raise OutputDirError(
            f"{what} {out_dir} holds an earlier export ({_describe(marker)}); pass "
            f"--overwrite to replace it, or {fix}")


def _describe(marker: dict) -> str:
    desc = ", ".join(f"{k} {marker[k]}" for k in ("step", "seed") if k in marker)
    source = marker.get("workdir")
    return " of ".join(x for x in (desc, source) if x) or "no details"


def _respect_umask(root: str) -> None:
    """Files ``0666 & ~umask``, directories ``0777 & ~umask``, under ``root``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(root, 0o777 & ~umask)
    for d, dirs, names in os.walk(root):
        for n in dirs:
            os.chmod(os.path.join(d, n), 0o777 & ~umask)
        for n in names:
            if not os.path.islink(os.path.join(d, n)):
                os.chmod(os.path.join(d, n), 0o666 & ~umask)


@contextlib.contextmanager
def staged(out_dir: str, marker: dict, *, overwrite: bool, **message):
    """Check ``out_dir`` (:func:`check`, for the writer ``marker["written_by"]``;
    ``message``: its ``what``/``fix``), yield a
    temporary sibling to write into, then mark it (``marker`` plus the listing of its
    files), give its files the umask's permissions and put it in place of ``out_dir``
    (checked again just before). On any error the sibling is removed and ``out_dir``
    is left as it was."""
    owner = marker["written_by"]
    check(out_dir, overwrite, owner, **message)
    out_dir = os.path.realpath(out_dir)
    parent, name = os.path.split(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
    try:
        yield tmp
        with open(os.path.join(tmp, MARKER_NAME), "w", encoding="utf-8") as f:
            json.dump({**marker, "files": _listing(tmp)}, f, indent=2)
            f.write("\n")
        _respect_umask(tmp)
        check(out_dir, overwrite, owner, **message)
        old = None
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
            rename(out_dir, os.path.join(old, name))
        rename(tmp, out_dir)
        if old:
            shutil.rmtree(old)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
