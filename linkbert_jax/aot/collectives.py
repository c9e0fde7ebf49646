"""What one collective of the compiled step costs on a TPU slice's ICI.

The model (stated in docs/aot.md, checked by hand in tests/test_aot.py):

- **Bytes each chip sends**, ring algorithms over a group of ``k`` chips: all-reduce
  ``2(k-1)/k x N`` (reduce-scatter, then all-gather, of the N-byte buffer); all-gather,
  reduce-scatter and all-to-all ``(k-1)/k x N`` (N = the whole, unsharded buffer);
  collective-permute ``N`` (one hop).
- **Links used**: a chip drives one link to each neighbour the group has along each torus
  axis it spans: 2 along an axis where the group spans 3 or more chips (a bidirectional
  ring, as on a torus), 1 where it spans 2; at most the chip's links. A permute uses 1.
- **Time** = bytes / (link bandwidth one way x links used). Latency, hops and contention
  with other traffic are left out.

The group's chips come from the instruction's ``replica_groups`` (with
``use_global_device_ids`` these are partition ids, i.e. positions in the mesh's device
list) and their places on the torus from each device's ``coords``.
"""
from __future__ import annotations

import math
import re
from typing import Optional, Sequence

import numpy as np

KINDS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


def kind_of(opcode: str) -> Optional[str]:
    """The collective an opcode starts (``all-reduce-start`` -> ``all-reduce``), else
    ``None`` (``-done`` halves and everything else)."""
    base = opcode[:-len("-start")] if opcode.endswith("-start") else opcode
    return base if base in KINDS else None


def ring_bytes(kind: str, nbytes: float, k: int) -> float:
    """Bytes each chip sends for one collective over ``k`` chips; ``nbytes`` is the
    all-reduced buffer, or the whole (gathered / unscattered) buffer, or the permuted one."""
    if kind == "collective-permute":
        return float(nbytes)
    if k <= 1:
        return 0.0
    share = (k - 1) / k * nbytes
    return 2 * share if kind == "all-reduce" else share


def links_used(extents: Sequence[int], chip_links: int) -> int:
    """ICI links a chip of the group drives: 2 per torus axis where the group spans 3 or
    more chips, 1 where it spans 2, capped at the chip's links (at least 1)."""
    used = sum(2 if e > 2 else 1 for e in extents if e > 1)
    return max(1, min(used, chip_links)) if chip_links else max(1, used)


def seconds(bytes_per_chip: float, link_bytes_per_s: float, links: int) -> float:
    """Time to send ``bytes_per_chip`` over ``links`` links of ``link_bytes_per_s`` each."""
    return bytes_per_chip / (link_bytes_per_s * links)


# ---------------------------------------------------------------------- replica groups

_IOTA = re.compile(r"replica_groups=\[([\d,]+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?")
_MESH = re.compile(r"replica_groups=mesh\[([^\]]*)\](?:, device_ids=\(([^)]*)\))?\s*"
                   r"\{([^}]*)\}")
_AXIS = re.compile(r"'?([\w]+)'?(?::\((\d+)\)(\d+))?")


def _ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", text)]


def replica_groups(attrs: str, num_partitions: int) -> list[list[int]]:
    """The groups of partition ids an instruction's ``replica_groups`` names, in any of
    XLA's printed forms: explicit ``{{0,1},{2,3}}``, iota ``[2,2]<=[4]`` (with an optional
    transpose ``T(1,0)``), or mesh axes ``mesh['x'=2,'y'=2] {'x'}``; none or ``{}`` is one
    group of every partition."""
    m = _IOTA.search(attrs)
    if m:
        shape, dims = _ints(m.group(1)), _ints(m.group(2))
        ids = np.arange(math.prod(dims)).reshape(dims)
        if m.group(3):
            ids = ids.transpose(_ints(m.group(3)))
        return ids.reshape(shape).tolist()
    m = _MESH.search(attrs)
    if m:
        return _mesh_groups(m.group(1), m.group(2), m.group(3))
    m = re.search(r"replica_groups=\{((?:\{[\d,\s]*\},?\s*)*)\}", attrs)
    if m and m.group(1).strip():
        return [_ints(g) for g in re.findall(r"\{([\d,\s]*)\}", m.group(1))]
    if m or "replica_groups=" not in attrs:
        return [list(range(num_partitions))]
    raise ValueError(f"replica_groups not understood: {attrs[:200]}")


def _mesh_groups(axes_text: str, device_ids: Optional[str], grouped_text: str):
    axes = [(name.strip().strip("'\""), int(size))
            for name, size in (item.split("=") for item in axes_text.split(","))]
    refs = [(name, int(pre or 0), int(size or 0))
            for name, pre, size in _AXIS.findall(grouped_text) if name]
    split = {}
    for name, pre, size in refs:
        if pre and name in split:
            raise ValueError(f"mesh axis {name} named as several sub-axes: {grouped_text}")
        if pre:
            split[name] = (pre, size)
    dims, index = [], {}
    for name, size in axes:  # an axis named as sub-axis x:(pre)size is [pre, size, rest]
        if name in split:
            pre, sub = split[name]
            index[name] = len(dims) + 1
            dims += [pre, sub, size // (pre * sub)]
        else:
            index[name] = len(dims)
            dims.append(size)
    grouped = [index[name] for name, _, _ in refs]
    ids = np.array(_ints(device_ids)) if device_ids else np.arange(math.prod(dims))
    rest = [d for d in range(len(dims)) if d not in grouped]
    size = math.prod(dims[d] for d in grouped)
    return ids.reshape(dims).transpose(rest + grouped).reshape(-1, size).tolist()


def extents(group: Sequence[int], coords: Sequence[Sequence[int]]) -> list[int]:
    """How many distinct positions the group's chips take along each torus axis."""
    points = [coords[p] for p in group]
    return [len({p[axis] for p in points}) for axis in range(len(points[0]))]
