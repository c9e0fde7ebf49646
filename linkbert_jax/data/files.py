"""The I/O facade: local paths, or any Apache Beam filesystem (``gs://``, ``s3://``,
``hdfs://``) when the ``beam`` extra is installed; ``.gz``/``.bz2`` decompressed by name;
and the one atomic write (``atomic_write``: a temporary name beside the file, renamed
into place) that every writer of the package uses. The checkpoint package keeps its
own renames (orbax's step directories)."""
from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import os
import re
import shutil

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
TMP_SUFFIX = ".tmp"  # the temporary name of a file being written: ``NAME.tmp``


def is_remote(path: str) -> bool:
    """A ``scheme://`` path (gs://, s3://, ram://...), the scheme at the start: read
    through a filesystem library; anything else (``dir/a://b`` too) is a local path."""
    return bool(_SCHEME.match(path))


def open_raw(path: str, mode: str = "rb"):
    """The file's bytes as stored (``mode`` "rb" or "wb"); ``FileNotFoundError`` for a
    file to read that is not there, local or remote."""
    if not is_remote(path):
        return open(path, mode)
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    if mode == "rb" and not FileSystems.exists(path):
        raise FileNotFoundError(path)
    fs_open = FileSystems.open if mode == "rb" else FileSystems.create
    return fs_open(path, compression_type=CompressionTypes.UNCOMPRESSED)


@contextlib.contextmanager
def open_input(path: str, decompress: bool = True):
    """Binary stream of ``path``, decompressed when it ends with .gz or .bz2."""
    with open_raw(path) as raw:
        if decompress and path.endswith(".bz2"):
            with bz2.open(raw) as f:
                yield f
        elif decompress and path.endswith(".gz"):
            with gzip.open(raw) as f:
                yield f
        else:
            yield raw


def _fs():
    from apache_beam.io.filesystems import FileSystems
    return FileSystems


def join(*parts: str) -> str:
    return _fs().join(*parts) if is_remote(parts[0]) else os.path.join(*parts)


def exists(path: str) -> bool:
    return _fs().exists(path) if is_remote(path) else os.path.exists(path)


def makedirs(path: str) -> None:
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)  # object stores have no directories


def rename(src: str, dst: str) -> None:
    if is_remote(src):
        _fs().rename([src], [dst])
    else:
        os.replace(src, dst)


def listdir(path: str) -> list[str]:
    """Names of the entries directly under ``path`` (files and directories)."""
    if not is_remote(path):
        return sorted(os.listdir(path)) if os.path.isdir(path) else []
    prefix = path.rstrip("/") + "/"
    found = _fs().match([prefix + "**"])[0].metadata_list
    return sorted({m.path[len(prefix):].split("/", 1)[0] for m in found})


def remove(path: str) -> None:
    """Deletes a file or a directory tree."""
    if is_remote(path):
        found = _fs().match([path.rstrip("/") + "/**"])[0].metadata_list
        _fs().delete([m.path for m in found] or [path])
    elif os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", *, suffix: str = TMP_SUFFIX,
                 fsync: bool = False, **open_kw):
    """``open(path, mode)`` through ``path + suffix``, renamed onto ``path`` when the
    block ends; a remote path (``mode`` "wb") through ``open_raw``. A reader sees the
    old file or the whole new one, never a part. An error in the block leaves the
    temporary name, as a crash would (what a build left unfinished shows; the next
    write overwrites it)."""
    tmp = path + suffix
    with (open_raw(tmp, mode) if is_remote(path) else open(tmp, mode, **open_kw)) as f:
        yield f
        if fsync and not is_remote(path):
            f.flush()
            os.fsync(f.fileno())
    rename(tmp, path)


def write_text(path: str, text: str) -> None:
    """``text`` into ``path``, atomically (``atomic_write``)."""
    with atomic_write(path, encoding="utf-8") as f:
        f.write(text)


def write_json(path: str, obj, indent: int = 2, **dump_kw) -> None:
    """``obj`` as JSON (and a newline) into ``path``, local or on a Beam filesystem,
    under a temporary name, then renamed."""
    with atomic_write(path, "wb") as f:
        f.write((json.dumps(obj, indent=indent, **dump_kw) + "\n").encode("utf-8"))
