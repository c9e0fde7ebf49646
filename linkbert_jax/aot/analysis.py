"""Compile a config's real train and eval steps for a target and measure what they cost.

Everything is the trainer's own code: the step recipe (``linkbert_jax.pretrain.recipe``)
on a mesh over the target's devices; only the inputs are abstract (``jax.ShapeDtypeStruct`` with
shardings), so nothing is allocated and the devices may be compile-only TPU chips.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections

from linkbert_jax import sharding
from linkbert_jax.infra import step_costs
from linkbert_jax.pretrain import recipe as recipe_lib
from linkbert_jax.architectures import ARCHITECTURES
from linkbert_jax.aot import estimate
from linkbert_jax.aot.topology import Target
from linkbert_jax.errors import ConfigError

_OOM = (re.compile(r"required for .*?\(([\d.]+)([KMGT])\) exceeds available HBM "
                   r"\(([\d.]+)([KMGT])\)"),
        re.compile(r"Used ([\d.]+)([KMGT]) of ([\d.]+)([KMGT]) hbm"))
_UNIT = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


@dataclasses.dataclass
class Result:
    """One compile of one config on one target (``to_dict`` is the ``--json`` record)."""
    target: str
    devices: int
    settings: dict
    fits: bool
    usable_bytes: float            # per device: the compiler's available HBM (host RAM on CPU)
    needed_bytes: float            # per device: the train step's total
    memory: Optional[dict]         # step_costs.Memory fields (None when it did not compile)
    eval_bytes: Optional[float]
    state: dict                    # step_costs.state_bytes
    traced_flops: float            # the train step's matmul FLOPs, all devices
    analytic_flops: float          # metrics_log's model FLOPs for the global batch
    xla: dict                      # cost_analysis(): flops, bytes accessed (per device)
    has_loops: bool                # scan over layers or microbatches: XLA counts bodies once
    compile_s: float
    error: str = ""                # the compiler's out-of-memory line
    hlo: Optional[dict] = None     # estimate.hlo_costs: HBM bytes, collectives (per device)

    @property
    def headroom(self) -> float:
        return 1.0 - self.needed_bytes / self.usable_bytes

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), headroom=self.headroom)


def settings_of(config) -> dict:
    return {"mesh": {a: int(config.mesh[a]) for a in sharding.MESH_AXES},
            "microbatches": int(config.microbatches), "remat": config.model.remat,
            "scan_layers": bool(config.model.scan_layers),
            "global_batch_size": int(config.global_batch_size),
            "seq_length": int(config.seq_length)}


def prepared(config) -> tuple[ml_collections.ConfigDict, list[str]]:
    """A copy for compiling: no weights to load; a vocabulary taken from the data (0)
    becomes the architecture's. Returns it with notes for the report."""
    config = ml_collections.ConfigDict(config.to_dict())
    notes = []
    config.init_from_hf = ""  # the parameters' shapes do not depend on where they start
    if config.model.vocab_size <= 0:
        config.model.vocab_size = ARCHITECTURES[config.arch]["vocab_size"]
        notes.append(f"vocab_size 0 (the data's) compiled as {config.model.vocab_size}, "
                     f"the {config.arch} architecture's")
    return config, notes


def mesh_for(config, target: Target, devices: list):
    """The trainer's mesh over the target's devices, which it must cover exactly."""
    n = len(devices)
    forms = (f"valid meshes multiply to {n}: --config.mesh.data=-1 (data parallel), "
             f"--config.mesh.data=1 --config.mesh.fsdp=-1 (fully sharded), or sizes such "
             f"as data={_divisor(n)} fsdp={n // _divisor(n)} (-1 = the rest)")
    try:
        shape = sharding.mesh_shape(config.mesh, n)
    except ConfigError as e:
        raise ConfigError(f"{target.name}: {e}; {forms}") from None
    if math.prod(shape) != n:
        raise ConfigError(f"{target.name}: the mesh {dict(zip(sharding.MESH_AXES, shape))} "
                          f"uses {math.prod(shape)} of its {n} devices; {forms}")
    return sharding.make_mesh(config.mesh, devices)


def _divisor(n: int) -> int:
    d = int(math.isqrt(n))
    while n % d:
        d -= 1
    return d


def usable_bytes(target: Target, devices: list) -> float:
    """Per-device memory the compiler may use: asked of the compiler itself on TPU (the
    out-of-memory line of a deliberately oversized program), host RAM on CPU."""
    if target.platform == "cpu":
        if target.chip:  # an estimate for that chip (h100): its memory
            return float(target.chip.hbm_bytes)
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    dev = jax.sharding.SingleDeviceSharding(devices[0])
    big = jax.ShapeDtypeStruct((int(4 * target.chip.hbm_bytes) // 4,), jnp.float32,
                               sharding=dev)
    try:
        jax.jit(lambda a: a * 2).lower(big).compile()
    except Exception as e:  # noqa: BLE001 - the message is the answer
        oom = parse_oom(str(e))
        if oom:
            return oom[1]
    return float(target.chip.hbm_bytes)


def parse_oom(message: str) -> Optional[tuple[float, float]]:
    """(needed, available) bytes from XLA's out-of-memory message, else ``None``."""
    for pattern in _OOM:
        m = pattern.search(message)
        if m:
            return (float(m.group(1)) * _UNIT[m.group(2)], float(m.group(3)) * _UNIT[m.group(4)])
    return None


def _xla_costs(compiled) -> dict:
    ca = compiled.cost_analysis()
    ca = (ca[0] if isinstance(ca, (list, tuple)) else ca) or {}
    return {"flops": float(ca.get("flops", 0.0)),
            "bytes_accessed": float(ca.get("bytes accessed", 0.0))}


def _try_compile(lowered):
    """(compiled, None) or (None, the compiler's out-of-memory message)."""
    try:
        return lowered.compile(), None
    except Exception as e:  # noqa: BLE001 - XLA raises JaxRuntimeError/XlaRuntimeError
        msg = str(e)
        if "RESOURCE_EXHAUSTED" not in msg and parse_oom(msg) is None:
            raise
        return None, msg.strip().splitlines()[0]


def analyze(config, target: Target, devices: list, usable: float) -> Result:
    """Compile the config's train step (then its eval step) and collect the figures."""
    recipe = recipe_lib.build(config, mesh=mesh_for(config, target, devices))
    abstract, mesh = recipe.abstract_state, recipe.mesh
    train, evaluate = recipe.compile()
    t0 = time.perf_counter()
    traced = train.trace(abstract, recipe.abstract_batch(), recipe.abstract_key())
    with jax.set_mesh(mesh):
        compiled, error = _try_compile(traced.lower())
    mem = step_costs.memory(compiled) if compiled else None
    hlo = (estimate.hlo_costs(compiled.as_text(), _coords(mesh), target.chip)
           if compiled and target.chip else None)  # no chip figures: nothing to estimate
    eval_bytes = None
    if compiled:
        eval_compiled, _ = _try_compile(evaluate.lower(abstract.params,
                                                       recipe.abstract_eval_batch()))
        eval_bytes = step_costs.memory(eval_compiled).total if eval_compiled else math.inf
    needed = mem.total if mem else (parse_oom(error) or (math.inf,))[0]
    return Result(
        target=target.name, devices=len(devices), settings=settings_of(config),
        fits=bool(mem) and needed <= usable and (eval_bytes or 0) <= usable,
        usable_bytes=usable, needed_bytes=needed,
        memory=dataclasses.asdict(mem) if mem else None, eval_bytes=eval_bytes,
        state=step_costs.state_bytes(abstract),
        traced_flops=step_costs.traced_matmul_flops(traced.jaxpr),
        analytic_flops=recipe.flops_per_step,
        xla=_xla_costs(compiled) if compiled else {},
        has_loops=bool(config.model.scan_layers) or int(config.microbatches) > 1,
        compile_s=time.perf_counter() - t0, error=error or "", hlo=hlo)


def _coords(mesh) -> Optional[list]:
    """Each partition's chip position on the torus (partition i runs on the mesh's i-th
    device, the executable's device assignment), or ``None`` off TPU."""
    coords = [getattr(d, "coords", None) for d in mesh.devices.flat]
    return None if any(c is None for c in coords) else [list(c) for c in coords]
