"""HBM bytes of each kernel of a compiled TPU step, read from its HLO (``aot.hlo``).

A kernel is a top-level instruction (a fusion is one kernel): it reads its operands and
writes its result, except that

- arrays in another memory space than HBM (layout ``S(n)``, n > 0) are no HBM traffic:
  an assumption (XLA does not document the spaces; ``S(1)`` is VMEM, and the ``S(3)``
  of a v4 compile is read as its on-chip CMEM);
- an operand the kernel only slices (``dynamic-slice``, ``slice``, ``gather``, also
  through bitcasts, copies and nested fusions) reads only its slices, and one it only
  updates in place (``dynamic-update-slice``) reads nothing: a scanned layer takes one
  layer's slice of the stacked weights and activations, not the stack;
- a result made by an in-place update writes only the update;
- async ``-start`` ops move their data, ``-done`` ops nothing; bitcasts, tuples, the
  TPU's ``AllocateBuffer`` / ``ConcatBitcast`` bookkeeping nothing.

XLA's own ``cost_analysis()`` counts each loop body once; ``step_bytes`` counts every
computation its run count (``hlo.runs``) times, and also once, for comparison.
"""
from __future__ import annotations

from typing import Optional

from linkbert_jax.aot import hlo

_NO_TRAFFIC = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "while",
               "call", "conditional", "after-all", "partition-id", "replica-id",
               "opt-barrier", "async-start", "async-update", "async-done", "iota"}
_NO_TRAFFIC_CALLS = ("AllocateBuffer", "ConcatBitcast")  # TPU buffer bookkeeping
_SLICES = ("dynamic-slice", "slice", "gather")
_THROUGH = ("bitcast", "copy")
MATMUL = ("convolution", "dot")


def _hbm(module: hlo.Module, name: str) -> int:
    """HBM bytes of the named instruction's result."""
    instr = module.by_name.get(name)
    return hlo.array_bytes(instr.type, hbm_only=True) if instr else 0


def _outer_reads(module: hlo.Module, outer: Optional[tuple]) -> Optional[int]:
    """Where a nested fusion's result goes on in the fusion that holds it."""
    return None if outer is None else _reads(module, *outer)


def _reads(module: hlo.Module, comp: str, name: str, outer: Optional[tuple] = None
           ) -> Optional[int]:
    """Bytes read of value ``name`` in fused computation ``comp`` when every use slices
    it (its slices) or updates it in place (nothing), following bitcasts, copies and
    nested fusions (``outer``: the holding computation, fusion and its own ``outer``);
    ``None`` when some use reads it whole."""
    total = 0
    out = hlo.root(module, comp)
    if out is not None and out.name == name:  # the value leaves a nested fusion
        sub = _outer_reads(module, outer)
        if sub is None:
            return None
        total += sub
    for use in module.users(comp).get(name, []):
        if use.opcode == "fusion":
            sub = _nested_reads(module, comp, name, use, outer)
        elif name in use.operands[1:]:  # an index or the update, not the sliced operand
            return None
        elif use.opcode in _SLICES:
            sub = hlo.array_bytes(use.type)
        elif use.opcode == "dynamic-update-slice":
            sub = 0
        elif use.opcode in _THROUGH:
            sub = _reads(module, comp, use.name, outer)
        else:
            return None
        if sub is None:
            return None
        total += sub
    return total


def _nested_reads(module: hlo.Module, comp: str, name: str, fusion: hlo.Instr,
                  outer: Optional[tuple]) -> Optional[int]:
    if fusion.operands.count(name) != 1:
        return None
    body = (fusion.called().get("calls") or [""])[0]
    index = fusion.operands.index(name)
    param = next((i.name for i in module.computations.get(body, [])
                  if i.opcode == "parameter" and i.literal.strip() == str(index)), None)
    return None if param is None else _reads(module, body, param, (comp, fusion.name, outer))


def _written(module: hlo.Module, instr: Optional[hlo.Instr]) -> Optional[int]:
    """Bytes an in-place update (possibly behind bitcasts, copies or a nested fusion's
    root) writes; ``None`` when ``instr`` is no such update."""
    if instr is None:
        return None
    if instr.opcode == "dynamic-update-slice":
        return hlo.array_bytes(module.by_name[instr.operands[1]].type)
    if instr.opcode in _THROUGH:
        return _written(module, module.by_name.get(instr.operands[0]))
    if instr.opcode == "fusion":
        return _written(module, hlo.root(module, (instr.called().get("calls") or [""])[0]))
    return None


def _fusion_bytes(module: hlo.Module, fusion: hlo.Instr) -> float:
    body = (fusion.called().get("calls") or [""])[0]
    params = {i.literal.strip(): i.name for i in module.computations.get(body, [])
              if i.opcode == "parameter"}
    total = 0
    for index, operand in enumerate(fusion.operands):
        whole = _hbm(module, operand)
        part = _reads(module, body, params[str(index)]) if whole and str(index) in params \
            else None
        total += whole if part is None else min(part, whole)
    out = hlo.root(module, body)
    outs = ([module.by_name.get(o) for o in out.operands]
            if out is not None and out.opcode == "tuple" else [out])
    for o, (nbytes, space) in zip(outs, hlo.arrays(fusion.type)):
        update = _written(module, o)
        total += 0 if space else (nbytes if update is None else update)
    return float(total)


def _start_bytes(module: hlo.Module, instr: hlo.Instr) -> float:
    """An async ``-start``: its operands read and its outputs written. Its result is
    ``(destination, source, context)`` for ``copy-start``; else the outputs, or (when it
    has more arrays than its operands) the operands first, then the outputs (and
    contexts). A ``slice-start`` reads only its slice."""
    operands = [module.by_name[o].type for o in instr.operands if o in module.by_name]
    arrays = hlo.arrays(instr.type)
    if instr.opcode == "copy-start":
        outs = arrays[:1]
    else:
        n = sum(len(hlo.arrays(t)) for t in operands)
        outs = arrays[n:] if len(arrays) > n else arrays
    writes = sum(b for b, space in outs if not space)
    reads = sum(hlo.array_bytes(t, hbm_only=True) for t in operands)
    if instr.opcode == "slice-start" and reads:
        reads = outs[0][0] if outs else 0
    return float(reads + writes)


def kernel_bytes(module: hlo.Module, instr: hlo.Instr) -> float:
    """HBM bytes one top-level instruction reads and writes in one run."""
    op = instr.opcode
    if (op in _NO_TRAFFIC or op.endswith("-done") or
            any(f'custom_call_target="{t}"' in instr.attrs for t in _NO_TRAFFIC_CALLS)):
        return 0.0
    if op.endswith("-start"):
        return _start_bytes(module, instr)
    if op == "fusion":
        return _fusion_bytes(module, instr)
    out = hlo.array_bytes(instr.type, hbm_only=True)
    if op == "dynamic-slice":
        return float(out + (hlo.array_bytes(instr.type) if _hbm(module, instr.operands[0])
                            else 0))
    if op == "dynamic-update-slice":
        update = hlo.array_bytes(module.by_name[instr.operands[1]].type)
        return float(update * (bool(out) + bool(_hbm(module, instr.operands[1]))))
    return float(sum(_hbm(module, o) for o in instr.operands) + out)


def _matmul_computations(module: hlo.Module) -> set[str]:
    """Computations holding a convolution or dot, directly or in a computation they call
    (printed order puts callees first, so one pass suffices)."""
    found: set[str] = set()
    for name, instrs in module.computations.items():
        if any(i.opcode in MATMUL or any(c in found for cs in i.called().values() for c in cs)
               for i in instrs):
            found.add(name)
    return found


def step_bytes(module: hlo.Module, runs: hlo.Runs) -> dict:
    """Per-step HBM bytes of the kernels that hold a matmul and of the others, and the
    total with every computation counted once (as XLA's ``cost_analysis`` does)."""
    out = {"matmul": 0.0, "other": 0.0, "once": 0.0}
    matmul = _matmul_computations(module)
    for name, instrs in module.computations.items():
        times = runs.times.get(name, 0.0)
        if name in runs.fused or times == 0:
            continue
        for instr in instrs:
            b = kernel_bytes(module, instr)
            if b:
                holds = instr.opcode in MATMUL or any(
                    c in matmul for c in instr.called().get("calls", []))
                out["matmul" if holds else "other"] += times * b
                out["once"] += b
    return out
