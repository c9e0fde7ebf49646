"""What the builder owns in its output directory, and fingerprints of its inputs.

The builder touches only files it wrote. Before writing anything it records the names
it is about to write in ``OUTPUT_DIR/.linkbert_build.json`` (the owner file); a later
build, a rebuild with ``--overwrite`` or the clean-up of an unfinished build removes
only those names. A non-empty directory without that file is someone else's: the build
refuses it unless ``--overwrite``, and even then writes next to the files there, never
over one of them.

Each input file's size, modification time and a fast content hash go into the manifest
(``inputs``); a re-run with the same options reuses the build only if they still match.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil

from linkbert_jax.data.manifests import MANIFEST_NAME
from linkbert_jax.data.files import TMP_SUFFIX, write_json
from linkbert_jax.data.readers import DataError

OWNER_NAME = ".linkbert_build.json"
_WHOLE = 64 << 20     # files up to this size are hashed whole
_SAMPLES, _CHUNK = 64, 1 << 20  # larger ones: 64 chunks of 1 MiB, evenly spaced


# ---------------------------------------------------------------------------- ownership

def owned_names(out: str) -> set[str] | None:
    """Names the builder wrote in ``out``: from the owner file, or from the manifest of a
    build made before owner files existed; None when the builder owns nothing there."""
    path = os.path.join(out, OWNER_NAME)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return set(json.load(f)["names"])
    manifest = os.path.join(out, MANIFEST_NAME)
    if not os.path.exists(manifest):
        return None
    with open(manifest, encoding="utf-8") as f:
        m = json.load(f)
    if not (isinstance(m, dict) and "options" in m and "files" in m):
        return None  # not a manifest of this builder
    names = {MANIFEST_NAME, m.get("tokenizer_dir", "tokenizer"),
             m.get("documents_file", "documents.jsonl"), ".work"}
    return names | {e["name"] for files in m.get("files", {}).values() for e in files}


def _write_owner(out: str, names: set[str]) -> None:
    write_json(os.path.join(out, OWNER_NAME),
               {"written_by": "linkbert_jax.data.build", "names": sorted(names)}, indent=1)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def claim(out: str, planned: set[str], overwrite: bool) -> None:
    """Make ``out`` ready for a build that writes ``planned``: remove what an earlier
    build wrote there (and only that); refuse a non-empty directory that is not the
    builder's unless ``overwrite``, and never replace a file the builder did not write."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise DataError(f"--output_dir {out} is a file, not a directory")
    os.makedirs(out, exist_ok=True)
    owned = owned_names(out)
    present = sorted(n for n in os.listdir(out) if n != OWNER_NAME)
    foreign = [n for n in present if owned is None or _base(n) not in owned]
    if owned is None and present and not overwrite:
        raise DataError(f"{out} is not empty and was not written by the builder (it holds "
                        f"{_names(present)}); choose a new or empty --output_dir, or pass "
                        f"--overwrite to build next to those files")
    clash = [n for n in foreign if n in planned]
    if clash:
        raise DataError(f"{os.path.join(out, clash[0])} exists and was not written by the "
                        f"builder: move it away or choose another --output_dir")
    _write_owner(out, (owned or set()) | planned)  # a superset until the build ends
    for name in present:
        if owned is not None and _base(name) in owned:
            _remove(os.path.join(out, name))
    _write_owner(out, planned)


def _base(name: str) -> str:
    return name[:-len(TMP_SUFFIX)] if name.endswith(TMP_SUFFIX) else name


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def inside(path: str, out: str) -> bool:
    """Whether ``path`` is ``out`` or lies under it (symbolic links resolved)."""
    path, out = os.path.realpath(path), os.path.realpath(out)
    return path == out or path.startswith(out.rstrip(os.sep) + os.sep)


# ---------------------------------------------------------------------------- inputs

def _content_hash(path: str, size: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        if size <= _WHOLE:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            for i in range(_SAMPLES):
                f.seek((size - _CHUNK) * i // (_SAMPLES - 1))
                h.update(f.read(_CHUNK))
    return h.hexdigest()


def _files(path: str) -> list[str]:
    if not os.path.isdir(path):
        return [path]
    # Not a dangling symbolic link (Debian's doc packages link to other packages' files).
    return sorted(f for d, _, names in os.walk(path) for n in names
                  if os.path.isfile(f := os.path.join(d, n)))


def fingerprint_inputs(paths: list[str]) -> list[dict]:
    """``[{path, size, mtime_ns, blake2b, whole}]`` of every file of ``paths`` (a
    directory: each file under it). Files over 64 MiB are hashed on 64 samples of
    1 MiB (a 20 GB dump in well under a second); their modification time then counts too."""
    out = []
    for p in paths:
        for f in _files(p):
            st = os.stat(f)
            out.append({"path": os.path.abspath(f), "size": st.st_size,
                        "mtime_ns": st.st_mtime_ns, "blake2b": _content_hash(f, st.st_size),
                        "whole": st.st_size <= _WHOLE})
    return out


def input_change(old: list[dict] | None, new: list[dict]) -> str | None:
    """Why the inputs ``new`` differ from those recorded as ``old``; None if they match."""
    if old is None:
        return "the build records no input fingerprints (made by an older version)"
    if len(old) != len(new):
        return f"{len(old)} input files then, {len(new)} now"
    for a, b in zip(old, new):
        if a["size"] != b["size"]:
            return f"{b['path']} changed (size {a['size']} -> {b['size']} bytes)"
        if a["blake2b"] != b["blake2b"]:
            return f"{b['path']} changed (content hash)"
        if not b["whole"] and a["mtime_ns"] != b["mtime_ns"]:
            return f"{b['path']} was modified since (modification time; not hashed whole)"
    return None
