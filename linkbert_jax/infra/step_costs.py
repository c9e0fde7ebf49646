"""What a compiled train step costs: per-device memory, matmul FLOPs, state bytes.

Shared by the trainer's start-up log and the ahead-of-time compile command
(``linkbert_jax.aot``), so a run on real hardware prints the figures the prediction made.

- ``memory(compiled)``: XLA's own per-device figures (``compiled.memory_analysis()``).
- ``traced_matmul_flops(jaxpr)``: FLOPs of every ``dot_general`` in the traced step, with
  ``scan`` lengths applied (layers, microbatches) and remat recompute included. XLA's
  ``cost_analysis()`` counts each loop body once, so with ``scan_layers`` or
  ``microbatches`` its figure is far below the real step; this count is not.
- ``state_bytes(abstract_state)``: parameter and optimizer bytes on one device and in all.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import jax
import jax.numpy as jnp

log = logging.getLogger("linkbert_jax")


def abstract_batch(batch_size: int, seq_length: int, max_predictions: int,
                   sharding=None) -> dict:
    """The train/eval batch as ``jax.ShapeDtypeStruct`` (the input pipeline's contract:
    ``linkbert_jax.pretrain.input_pipeline.batches``)."""
    b, n, p = batch_size, seq_length, max_predictions
    i32, f32 = jnp.int32, jnp.float32
    shapes = {"input_ids": ((b, n), i32), "attention_mask": ((b, n), i32),
              "token_type_ids": ((b, n), i32), "masked_positions": ((b, p), i32),
              "masked_ids": ((b, p), i32), "masked_weights": ((b, p), f32),
              "relation": ((b,), i32), "example_weight": ((b,), f32)}
    return {k: jax.ShapeDtypeStruct(s, d, sharding=sharding) for k, (s, d) in shapes.items()}


def abstract_key(sharding=None) -> jax.ShapeDtypeStruct:
    """A typed PRNG key's abstract value (no device array: any target can take it)."""
    k = jax.eval_shape(lambda: jax.random.key(0))
    return jax.ShapeDtypeStruct(k.shape, k.dtype, sharding=sharding)


# ---------------------------------------------------------------------------- FLOPs

def _dot_flops(eqn) -> float:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval
    k = math.prod(lhs.shape[d] for d in lhs_contract)
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * k


def _sub_jaxprs(params: dict):
    for value in params.values():
        for v in (value if isinstance(value, (tuple, list)) else (value,)):
            if isinstance(v, jax.extend.core.ClosedJaxpr):
                yield v.jaxpr
            elif isinstance(v, jax.extend.core.Jaxpr):
                yield v


def traced_matmul_flops(jaxpr) -> float:
    """2·M·N·K summed over every ``dot_general`` (a ``ClosedJaxpr`` or ``Jaxpr``), each
    ``scan`` body times its length; of a ``cond``, the costliest branch."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "scan":
            total += eqn.params["length"] * traced_matmul_flops(eqn.params["jaxpr"])
        elif name == "cond":
            total += max(traced_matmul_flops(b) for b in eqn.params["branches"])
        else:
            total += sum(traced_matmul_flops(j) for j in _sub_jaxprs(eqn.params))
    return total


# ---------------------------------------------------------------------------- bytes

def _shard_bytes(x) -> int:
    shape = x.sharding.shard_shape(x.shape) if x.sharding is not None else x.shape
    return math.prod(shape) * jnp.dtype(x.dtype).itemsize


def state_bytes(abstract_state) -> dict:
    """``{params, opt_state}`` x ``{device, total}`` bytes of an abstract TrainState whose
    leaves carry their shardings (``steps.state_shardings``)."""
    out = {}
    for part in ("params", "opt_state"):
        leaves = jax.tree_util.tree_leaves(getattr(abstract_state, part))
        out[part] = {"device": sum(_shard_bytes(x) for x in leaves),
                     "total": sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize
                                  for x in leaves)}
    return out


@dataclasses.dataclass(frozen=True)
class Memory:
    """Per-device bytes as XLA reports them for one compiled executable."""
    arguments: int
    outputs: int
    aliased: int  # outputs that reuse a donated argument's buffer
    temporaries: int
    code: int

    @property
    def total(self) -> int:
        return self.arguments + self.outputs - self.aliased + self.temporaries + self.code


def memory(compiled) -> Memory:
    m = compiled.memory_analysis()
    return Memory(arguments=int(m.argument_size_in_bytes), outputs=int(m.output_size_in_bytes),
                  aliased=int(m.alias_size_in_bytes), temporaries=int(m.temp_size_in_bytes),
                  code=int(m.generated_code_size_in_bytes))


def gb(n: float) -> str:
    """Bytes for a report: GiB, or MiB below 1 GiB."""
    return f"{n / 1024 ** 3:.2f} GiB" if n >= 1024 ** 3 else f"{n / 1024 ** 2:.1f} MiB"


def memory_line(mem: Memory) -> str:
    return (f"arguments {gb(mem.arguments)}, outputs {gb(mem.outputs)} (aliased "
            f"{gb(mem.aliased)}), temporaries {gb(mem.temporaries)}, code {gb(mem.code)}: "
            f"total {gb(mem.total)}")


def compile_logged(step_fn, abstract_state, batch, key, *, analytic_flops: float,
                   devices) -> Any:
    """Compile ``step_fn`` ahead of time for these abstract inputs, log its per-device
    memory and its traced/analytic FLOP ratio, and return the compiled step (the trainer
    runs it, so the step is compiled once)."""
    traced = step_fn.trace(abstract_state, batch, key)
    compiled = traced.lower().compile()
    mem = memory(compiled)
    limit = _bytes_limit(devices[0])
    log.info("train step per device: %s%s", memory_line(mem),
             f" of {gb(limit)} ({1 - mem.total / limit:.0%} free)" if limit else "")
    flops = traced_matmul_flops(traced.jaxpr)
    log.info("train step matmul FLOPs %.3g = %.3f x the model's analytic %.3g (remat "
             "recompute and vocabulary padding show here)", flops,
             flops / analytic_flops, analytic_flops)
    return compiled


def _bytes_limit(device) -> int:
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend has memory stats
        stats = {}
    return int(stats.get("bytes_limit", 0))
