"""The first real difference between two trees of arrays (a checkpoint's saved metadata
and the arrays a config makes), matched by path, not by position: a layer more or less
shifts every leaf after it, so comparing the flattened lists names unrelated leaves."""
from __future__ import annotations

import re
from typing import Optional

import jax

Path = tuple  # of str: dict keys, attribute names and sequence indices alike


def _key(entry) -> str:
    for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def leaves(tree) -> dict[Path, tuple]:
    """``{path: (shape, dtype)}`` in flattening order; a namedtuple's field and the
    dict key orbax saves it under are the same path."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {tuple(_key(e) for e in path): (tuple(leaf.shape), str(leaf.dtype))
            for path, leaf in flat}


def natural(path: Path) -> tuple:
    """Sort key reading numbers as numbers (``layer_2`` before ``layer_10``)."""
    return tuple(tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", k))
                 for k in path)


def show(path: Path) -> str:
    return "".join(f"[{k!r}]" for k in path)


def _shortest_absent(path: Path, others) -> Path:
    """The shortest prefix of ``path`` that no path of ``others`` starts with."""
    for n in range(1, len(path) + 1):
        if not any(o[:n] == path[:n] for o in others):
            return path[:n]
    return path


def first_mismatch(name: str, old: dict, new: dict, old_is: str = "the checkpoint",
                   new_is: str = "the config") -> Optional[str]:
    """A phrase naming the first difference between ``leaves`` dicts ``old`` and
    ``new`` (arrays only one side has, else the first shape or dtype that differs, in
    natural path order); None when they agree."""
    only = [(p, old_is, new_is, new) for p in old if p not in new] + [
        (p, new_is, old_is, old) for p in new if p not in old]
    if only:
        path, has, lacks, others = min(only, key=lambda x: natural(x[0]))
        more = f" ({len(only)} arrays differ)" if len(only) > 1 else ""
        return (f"{name}{show(_shortest_absent(path, others))} is in {has} but not in "
                f"{lacks}{more}")
    for path in sorted(new, key=natural):
        if old[path] != new[path]:
            return f"{name}{show(path)} is {old[path]} in {old_is}, {new[path]} in {new_is}"
    return None
