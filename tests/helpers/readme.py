"""The README's tested commands, found by explicit markers, and a small shell-like parser.

A tested block is the fenced code block right after a marker line::

    <!-- test: NAME -->
    ```bash
    ...
    ```

``block(NAME)`` is its text and ``commands(NAME)`` the argv of each command in it
(backslash-newlines joined as the shell does, a command spanning lines in an open quote
kept whole, ``#`` comments dropped). Nothing else of the README is read, so its prose
can be reworded freely; a marker that disappears fails the test that needs it.
"""
from __future__ import annotations

import os
import re
import shlex

from helpers import REPO

README = os.path.join(REPO, "README.md")
_MARKED = re.compile(r"^<!-- test: ([\w-]+) -->\n```[\w-]*\n(.*?)^```", re.M | re.S)


def blocks(path: str = README) -> dict[str, str]:
    """Marker name -> the text of the block it tags."""
    with open(path, encoding="utf-8") as f:
        found = _MARKED.findall(f.read())
    names = [name for name, _ in found]
    assert len(set(names)) == len(names), f"a marker tags two blocks: {names}"
    return dict(found)


def block(name: str) -> str:
    marked = blocks()
    assert name in marked, f"no README block marked {name!r} (markers: {sorted(marked)})"
    return marked[name]


def commands(name: str) -> list[list[str]]:
    """The argv of each shell command of the block marked ``name``."""
    out, pending = [], ""
    for line in block(name).replace("\\\n", "").splitlines():
        if not pending and (not line.strip() or line.strip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line
        try:
            argv = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        out.append(argv)
        pending = ""
    assert not pending, f"unterminated command in the block {name!r}: {pending}"
    return out


def flag(argv: list[str], name: str) -> str:
    """Last value of ``--name value`` or ``--name=value``."""
    value = None
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(name + "="):
            value = a.split("=", 1)[1]
    assert value is not None, f"{name} not in {argv}"
    return value


def substitute(argv: list[str], places: dict[str, str]) -> list[str]:
    """Each placeholder replaced by its stand-in (one pass: stand-ins are not rescanned)."""
    pattern = re.compile("|".join(map(re.escape, places)))
    return [pattern.sub(lambda m: places[m.group(0)], a) for a in argv]
