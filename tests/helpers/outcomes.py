"""What a command left behind: its one error line, and the files of a directory."""
from __future__ import annotations

import hashlib
import os


def one_error_line(err: str) -> str:
    """The only ``error:`` line of ``err`` (a command's stderr), with no traceback."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def sha256_of(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree_hashes(path, *, dirs: bool = False) -> dict:
    """``{relative path: sha256}`` of every file under ``path`` (with ``dirs``, every
    directory too, as ``"name/": ""``)."""
    out = {}
    for root, subdirs, names in os.walk(path):
        for name in subdirs if dirs else ():
            out[os.path.relpath(os.path.join(root, name), path) + "/"] = ""
        for name in names:
            p = os.path.join(root, name)
            out[os.path.relpath(p, path)] = sha256_of(p)
    return out
