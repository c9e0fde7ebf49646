"""An estimated step time from the compiled step's HLO, term by term.

Per device, per step (loop bodies times their trip counts, ``aot.hlo.runs``):

- **compute**: the step's matmul FLOPs (``step_costs.traced_matmul_flops``, the one
  count) / the chip's dense bf16 peak;
- **memory**: HBM bytes of every kernel (``aot.traffic``: each top-level instruction or
  fusion reads its operands and writes its result, a slice or in-place update only the
  slice) / HBM bandwidth, split into the kernels that hold a matmul and the others;
- **collectives**: each all-reduce, all-gather, reduce-scatter, all-to-all and
  collective-permute on the slice's ICI (``aot.collectives``).

``step = max(compute, matmul kernels' memory) + other kernels' memory + collectives``:
a matmul kernel runs at the slower of its FLOPs and its bytes, the other kernels (layer
norm, softmax, GELU, the optimizer) are bound by their bytes, and no collective overlaps
anything. docs/aot.md says what this leaves out.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from linkbert_jax.aot import collectives, hlo, traffic
from linkbert_jax.infra.chips import Chip


@dataclasses.dataclass(frozen=True)
class Collective:
    """One collective instruction of the step."""
    kind: str
    nbytes: float      # N: the buffer (all-reduce, permute) or the whole buffer (others)
    group: int         # chips in each replica group
    links: int         # ICI links a chip drives for it
    runs: float        # times per step
    wire_bytes: float  # bytes a chip sends, per run
    seconds: float     # per run
    groups_read: bool = True  # False: replica groups not understood, costed over all chips


def _group_and_links(instr: hlo.Instr, coords: Sequence[Sequence[int]],
                     chip: Chip) -> tuple[int, int, bool]:
    """(chips per group, links used by the slowest group, groups understood)."""
    if collectives.kind_of(instr.opcode) == "collective-permute":
        return 2, 1, True
    try:
        groups, read = collectives.replica_groups(instr.attrs, len(coords)), True
    except ValueError:
        groups, read = [list(range(len(coords)))], False
    links = min(collectives.links_used(collectives.extents(g, coords), chip.ici_links)
                for g in groups)
    return len(groups[0]), links, read


def collectives_of(module: hlo.Module, runs: hlo.Runs, coords: Sequence[Sequence[int]],
                   chip: Chip) -> list[Collective]:
    """Every collective instruction of the step with its ring-model cost on ``chip``'s ICI
    (``coords``: each partition's chip position on the torus)."""
    found = []
    for name, instrs in module.computations.items():
        times = runs.times.get(name, 0.0)
        for instr in instrs:
            kind = collectives.kind_of(instr.opcode)
            if kind is None or times == 0:
                continue
            k, links, read = _group_and_links(instr, coords, chip)
            nbytes = sum(hlo.array_bytes(module.by_name[o].type) for o in instr.operands
                         if o in module.by_name) * (k if kind == "all-gather" else 1)
            wire = collectives.ring_bytes(kind, nbytes, k)
            found.append(Collective(kind, nbytes, k, links, times, wire, collectives.seconds(
                wire, chip.ici_bytes_per_s, links), read))
    return found


def hlo_costs(text: str, coords: Optional[Sequence[Sequence[int]]],
              chip: Optional[Chip]) -> dict:
    """The compiled step's HBM bytes and, on a TPU slice, its collectives by kind (what
    ``analysis.Result.hlo`` holds)."""
    module = hlo.parse(text)
    runs = hlo.runs(module)
    out = {"hbm_bytes": traffic.step_bytes(module, runs), "unknown_loops": runs.unknown_loops,
           "collectives": None}
    if coords and chip is not None and chip.ici_bytes_per_s:
        by_kind: dict[str, dict] = {}
        for c in collectives_of(module, runs, coords, chip):
            row = by_kind.setdefault(c.kind, {"instructions": 0, "runs": 0.0,
                                              "wire_bytes": 0.0, "seconds": 0.0,
                                              "groups_not_read": 0})
            row["instructions"] += 1
            row["groups_not_read"] += not c.groups_read
            row["runs"] += c.runs
            row["wire_bytes"] += c.runs * c.wire_bytes
            row["seconds"] += c.runs * c.seconds
        out["collectives"] = by_kind
    return out


def step(flops_per_device: float, costs: dict, chip: Chip, analytic_flops: float,
         devices: int, num_train_steps: int) -> dict:
    """The estimated step, its terms, the MFU it implies and the days to
    ``num_train_steps`` (``costs``: ``hlo_costs``; a ``None`` collective term counts 0)."""
    compute = flops_per_device / chip.bf16_flops
    b = costs["hbm_bytes"]
    mem_matmul = b["matmul"] / chip.hbm_bytes_per_s
    mem_other = b["other"] / chip.hbm_bytes_per_s
    coll = costs["collectives"]
    comm = sum(row["seconds"] for row in coll.values()) if coll is not None else None
    total = max(compute, mem_matmul) + mem_other + (comm or 0.0)
    return {"compute_s": compute, "memory_matmul_s": mem_matmul, "memory_other_s": mem_other,
            "collective_s": comm, "step_s": total,
            "mfu": analytic_flops / (devices * chip.bf16_flops * total),
            "train_days": total * num_train_steps / 86400}
