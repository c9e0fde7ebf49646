"""A build's manifest (``manifest.json`` beside the shards), the one module that reads it.

It holds ``max_seq_length``, ``vocab_size``, ``special_ids`` (``{"cls": .., "sep": ..,
"pad": .., "mask": .., other specials}``), ``files: {split: [{"name": .., "num_examples":
N, ...}, ...]}`` and, for people, the options, counters and relation counts of the build,
and ``format_version``. :func:`read_manifest` reads one through :func:`upgrade_manifest`,
the one place that knows older spellings; the checks here say what a run needs of it.
The pair records themselves are ``linkbert_jax.data.features``'.
"""
from __future__ import annotations

import json
import os
import posixpath

from linkbert_jax.data.files import is_remote  # one owner: a scheme:// at the start
from linkbert_jax.errors import ConfigError, CorruptDataError

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1  # the manifest's "format_version", as the builder writes it
DOCUMENTS_NAME = "documents.jsonl"
REQUIRED_KEYS = ("max_seq_length", "vocab_size", "files")
REQUIRED_SPECIALS = ("cls", "sep", "pad", "mask")
_LEGACY_SPECIAL_TABLES = ("special_token_ids", "special_tokens")


def _open(path: str):
    """A local file, or a remote path (:func:`is_remote`) through tf.io.gfile."""
    if not is_remote(path):
        return open(path)
    import tensorflow as tf
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(path)
    return tf.io.gfile.GFile(path)


def manifest_path(data_dir) -> str:
    return os.path.join(os.fspath(data_dir), MANIFEST_NAME)


def read_manifest(data_dir, *, missing_ok: bool = False, opener=None) -> dict | None:
    """The manifest of a data directory, checked and upgraded; errors name the file.
    With ``missing_ok``, None when there is none. ``opener`` opens a path for reading
    (the builder's: Apache Beam's filesystems); by default a local file, or a remote
    one through tf.io.gfile (training's)."""
    path = manifest_path(data_dir)
    try:
        with (opener or _open)(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise FileNotFoundError(f"no manifest at {path}: is {data_dir} a data directory "
                                "written by the corpus builder?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptDataError(f"corrupt manifest {path}: {e}") from None
    if not isinstance(manifest, dict):
        raise CorruptDataError(f"corrupt manifest {path}: expected a JSON object")
    for key in REQUIRED_KEYS:
        if key not in manifest:
            raise CorruptDataError(f"manifest {path} lacks {key!r}")
    check_file_names(manifest, path)
    return upgrade_manifest(manifest)


def check_file_names(manifest: dict, path: str) -> None:
    """``CorruptDataError`` unless every file name of the manifest (``path``) is a relative path
    that stays inside the data directory (no ``..``, no absolute path, no scheme)."""
    splits = manifest.get("files")
    for split, entries in (splits.items() if isinstance(splits, dict) else ()):
        for e in entries if isinstance(entries, list) else ():
            name = e.get("name") if isinstance(e, dict) else None
            if name is None:
                continue
            norm = posixpath.normpath(str(name).replace("\\", "/"))
            if (not isinstance(name, str) or not name or is_remote(name)
                    or os.path.isabs(name) or norm.startswith("/")
                    or norm == ".." or norm.startswith("../") or norm == "."):
                raise CorruptDataError(f"manifest {path}: file {name!r} of split {split!r} is "
                                 f"not inside the data directory (file names must be "
                                 f"relative paths under it)")


def special_ids(manifest: dict) -> dict[str, int]:
    """``{"cls": .., "sep": .., "pad": .., "mask": .., <other specials>}``."""
    table = manifest.get("special_ids")
    ids = {k: v for k, v in (table if isinstance(table, dict) else {}).items()
           if isinstance(v, int) and not isinstance(v, bool)}
    missing = [n for n in REQUIRED_SPECIALS if n not in ids]
    if missing:
        raise CorruptDataError(f"manifest lacks special ids {missing} under 'special_ids'")
    return ids


def check_fits(manifest: dict, seq_length: int) -> None:
    """``ConfigError`` unless the data's pairs fit in ``seq_length`` tokens."""
    data_len = manifest.get("max_seq_length")
    if data_len is not None and seq_length < int(data_len):
        raise ConfigError(f"seq_length {seq_length} < the data's max_seq_length {data_len}: "
                         "its pairs would not fit")


def check_enough_files(manifest: dict, split: str, process_count: int) -> None:
    """``ConfigError`` unless ``split`` has a file for each process (each reads its own)."""
    files = manifest.get("files", {}).get(split)
    if files is not None and len(files) < process_count:
        raise ConfigError(f"split {split!r} of the data has {len(files)} file(s), fewer than "
                         f"the {process_count} processes (each reads its own files): rebuild "
                         f"with at least {process_count} shards (--num_shards / "
                         "--num_eval_shards)")


def _legacy_special_name(key: str) -> str:
    k = key.lower().strip("[]<>")
    for suffix in ("_token_id", "_id", "_token"):
        if k.endswith(suffix):
            return k[: -len(suffix)]
    return k


def upgrade_manifest(manifest: dict) -> dict:
    """``manifest`` in the current schema (``format_version`` ``MANIFEST_VERSION``).

    A current manifest comes back as it is. One without ``format_version`` was written
    by hand or by a tool for the input pipeline before the builder existed, and may
    spell the special ids other ways: a table under ``special_token_ids`` or
    ``special_tokens`` (or, with no table, ``cls_id`` ... at the top level), with keys
    such as ``cls_id``, ``cls_token_id`` or ``[CLS]``. Its copy has them under
    ``special_ids`` as ``{"cls": .., ...}``.
    """
    if manifest.get("format_version") == MANIFEST_VERSION:
        return manifest
    table, top_level = manifest, True
    for key in ("special_ids",) + _LEGACY_SPECIAL_TABLES:
        if isinstance(manifest.get(key), dict):
            table, top_level = manifest[key], False
            break
    ids = {}
    for key, value in table.items():
        name = _legacy_special_name(key)
        if not top_level or name in REQUIRED_SPECIALS:
            ids[name] = value
    out = {k: v for k, v in manifest.items() if k not in _LEGACY_SPECIAL_TABLES}
    out.update(special_ids=ids, format_version=MANIFEST_VERSION)
    return out
