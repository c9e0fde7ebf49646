"""Read a compiled module's HLO text (``compiled.as_text()``): its computations, each
instruction's result type, operands and attributes, and how many times each computation
runs in one step (a ``while`` body runs its trip count times, nested loops multiply).

Only what the step-time estimate needs (``linkbert_jax.aot.estimate``); the text format
is XLA's printer's, so the reader is lenient: an instruction it cannot place is skipped,
a loop whose trip count it cannot read counts once and is reported as such.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional

_BYTES = {"pred": 1, "s4": 1, "u4": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2,
          "bf16": 2, "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8,
          "c64": 8, "c128": 16}
_ARRAY = re.compile(r"\b([a-z]+\d*(?:e\d+m\d+\w*)?)\[([\d,]*)\](\{[^{}]*\})?")
_HEADER = re.compile(r"^(ENTRY\s+)?%([\w.\-]+)\s*\(.*\{\s*$")
_INSTR = re.compile(r"^\s*(ROOT\s+)?%([\w.\-]+)\s*=\s*")
_NAME = re.compile(r"%([\w.\-]+)")
_PASS = ("copy", "bitcast", "convert", "reshape")
_CALLED = re.compile(r"\b(condition|body|calls|to_apply|true_computation|false_computation|"
                     r"branch_computations)=(\{[^}]*\}|%[\w.\-]+)")


@dataclasses.dataclass(frozen=True)
class Instr:
    name: str
    type: str                  # the result type as printed (an array or a tuple)
    opcode: str
    operands: tuple[str, ...]  # operand instruction names
    literal: str               # the text between the parentheses (a constant's value)
    attrs: str                 # everything after the operand list
    computation: str
    root: bool = False         # the computation's result

    def called(self) -> dict[str, list[str]]:
        """Computations this instruction calls, by attribute (``body``, ``calls``, ...)."""
        return {key: _NAME.findall(value) for key, value in _CALLED.findall(self.attrs)}


@dataclasses.dataclass
class Module:
    computations: dict[str, list[Instr]]  # in printed order: callees before callers
    entry: str

    def __post_init__(self):
        self.by_name = {i.name: i for instrs in self.computations.values() for i in instrs}
        self._users: dict[str, dict[str, list[Instr]]] = {}

    def users(self, computation: str) -> dict[str, list[Instr]]:
        """The instructions of ``computation`` that use each value, by value name."""
        if computation not in self._users:
            users: dict[str, list[Instr]] = {}
            for instr in self.computations.get(computation, []):
                for name in instr.operands:
                    users.setdefault(name, []).append(instr)
            self._users[computation] = users
        return self._users[computation]


def arrays(type_text: str) -> list[tuple[int, int]]:
    """``(bytes, memory space)`` of each array in a printed type, in order (a tuple's
    elements flattened; an unknown element type such as ``token`` is 0 bytes). The memory
    space is the layout's ``S(n)``: 0 (HBM) when absent (``aot.traffic`` says how the
    others are read)."""
    out = []
    for dtype, dims, layout in _ARRAY.findall(type_text):
        size = _BYTES.get(dtype, 1 if dtype.startswith("f8") else 0)
        space = re.search(r"S\((\d+)\)", layout)
        out.append((size * math.prod(int(d) for d in dims.split(",") if d),
                    int(space.group(1)) if space else 0))
    return out


def array_bytes(type_text: str, hbm_only: bool = False) -> int:
    """Bytes of every array in a printed type, summed (``hbm_only``: memory space 0)."""
    return sum(b for b, space in arrays(type_text) if not (hbm_only and space))


def _balanced(text: str, start: int) -> int:
    """Index just past the bracket group that opens at ``text[start]``."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    stack = []
    for i in range(start, len(text)):
        c = text[i]
        if c in pairs:
            stack.append(pairs[c])
        elif stack and c == stack[-1]:
            stack.pop()
            if not stack:
                return i + 1
    return len(text)


def parse_instr(line: str, computation: str) -> Optional[Instr]:
    """One instruction line, or ``None`` when the line is not one."""
    m = _INSTR.match(line)
    if not m:
        return None
    pos = m.end()
    if line[pos:pos + 1] == "(":
        end = _balanced(line, pos)
    else:
        end = line.find(" ", pos)
    if end < 0:
        return None
    type_text = line[pos:end]
    rest = line[end:].lstrip()
    paren = rest.find("(")
    if paren < 0:
        return None
    close = _balanced(rest, paren)
    inside = rest[paren + 1:close - 1]
    return Instr(name=m.group(2), type=type_text, opcode=rest[:paren].strip(),
                 operands=tuple(_NAME.findall(inside)), literal=inside,
                 attrs=rest[close:], computation=computation, root=bool(m.group(1)))


def parse(text: str) -> Module:
    """The module's computations and instructions from ``compiled.as_text()``."""
    computations: dict[str, list[Instr]] = {}
    entry, current = "", None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = header.group(2)
            computations[current] = []
            if header.group(1):
                entry = current
        elif line.strip() == "}":
            current = None
        elif current is not None:
            instr = parse_instr(line, current)
            if instr:
                computations[current].append(instr)
    if not entry:
        raise ValueError("no ENTRY computation in the HLO text")
    return Module(computations, entry)


def _source(module: Module, name: str) -> Optional[Instr]:
    """The instruction behind ``name``, looking through copies and bitcasts."""
    instr = module.by_name.get(name)
    while instr is not None and instr.opcode in _PASS and len(instr.operands) == 1:
        instr = module.by_name.get(instr.operands[0])
    return instr


def _constant(module: Module, name: str) -> Optional[int]:
    instr = _source(module, name)
    if instr is None or instr.opcode != "constant":
        return None
    try:
        return int(instr.literal.strip())
    except ValueError:
        return None


def _gte_index(instr: Optional[Instr]) -> Optional[int]:
    if instr is None or instr.opcode != "get-tuple-element":
        return None
    m = re.search(r"index=(\d+)", instr.attrs)
    return int(m.group(1)) if m else None


def root(module: Module, computation: str) -> Optional[Instr]:
    """The computation's ROOT instruction."""
    return next((i for i in module.computations.get(computation) or [] if i.root), None)


def trip_count(module: Module, loop: Instr) -> Optional[int]:
    """A ``while``'s trip count from its condition ``i < N`` (or ``<=``), the induction
    variable's initial constant in the loop's input tuple and its constant step in the
    body; ``None`` when the loop is not of that form."""
    called = loop.called()
    cond = root(module, (called.get("condition") or [""])[0])
    if cond is None or cond.opcode != "compare" or len(cond.operands) != 2:
        return None
    direction = re.search(r"direction=(\w+)", cond.attrs)
    index = _gte_index(_source(module, cond.operands[0]))
    limit = _constant(module, cond.operands[1])
    if direction is None or index is None or limit is None:
        return None
    init = module.by_name.get(loop.operands[0]) if loop.operands else None
    start = (_constant(module, init.operands[index])
             if init is not None and init.opcode == "tuple" and index < len(init.operands)
             else None)
    step = _step(module, (called.get("body") or [""])[0], index)
    if start is None or not step:
        return None
    span = limit - start + (1 if direction.group(1) == "LE" else 0)
    if direction.group(1) not in ("LT", "LE") or step < 0:
        return None
    return max(0, -(-span // step))


def _step(module: Module, body: str, index: int) -> Optional[int]:
    out = root(module, body)
    if out is None or out.opcode != "tuple" or index >= len(out.operands):
        return None
    update = _source(module, out.operands[index])
    if update is None or update.opcode != "add" or len(update.operands) != 2:
        return None
    a, b = (_source(module, o) for o in update.operands)
    if _gte_index(a) == index:
        return _constant(module, update.operands[1])
    if _gte_index(b) == index:
        return _constant(module, update.operands[0])
    return None


@dataclasses.dataclass(frozen=True)
class Runs:
    """How many times each computation runs per step, and which are fused bodies
    (their instructions are one kernel, costed at the fusion that calls them)."""
    times: dict[str, float]
    fused: frozenset[str]
    unknown_loops: int  # while loops whose trip count could not be read (counted once)


def runs(module: Module) -> Runs:
    """Each computation's run count: the entry once; a while body its trip count times its
    caller's count (the condition once more); anything else it calls, its caller's."""
    times = {name: 0.0 for name in module.computations}
    times[module.entry] = 1.0
    fused, unknown = set(), 0
    for name in reversed(list(module.computations)):  # callers before callees
        for instr in module.computations[name]:
            called = instr.called()
            if not called:
                continue
            n = 1
            if instr.opcode == "while":
                trip = trip_count(module, instr)
                unknown += trip is None
                n = 1 if trip is None else trip
            for key, callees in called.items():
                for callee in callees:
                    if callee not in times:
                        continue
                    times[callee] += times[name] * (n + 1 if key == "condition" else n)
                    if instr.opcode == "fusion" or key == "to_apply":
                        fused.add(callee)
    return Runs(times, frozenset(fused), unknown)
