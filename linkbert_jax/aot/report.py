"""The ahead-of-time report: memory per device, FLOPs per step, a roofline bound on the
step time, an estimated step time term by term (``aot.estimate``) with its MFU and the
days to the recipe's steps, and what to change when it does not fit."""
from __future__ import annotations

import math
from typing import Optional

from linkbert_jax.aot import estimate
from linkbert_jax.aot.analysis import Result
from linkbert_jax.infra.chips import Chip
from linkbert_jax.infra.step_costs import gb

HEADROOM = 0.10  # the margin a default config keeps below the compiler's available memory


def roofline(r: Result, chip: Optional[Chip], num_train_steps: int) -> dict:
    """Lower bounds: a step cannot beat its matmul FLOPs at the chip's bf16 peak, nor its
    bytes at the HBM bandwidth. XLA's bytes count each loop body once, so with scans the
    memory term is itself a lower bound. Collectives over ICI are not counted."""
    if chip is None or not r.memory:
        return {}
    compute_s = r.traced_flops / r.devices / chip.bf16_flops
    memory_s = r.xla.get("bytes_accessed", 0.0) / chip.hbm_bytes_per_s
    bound = max(compute_s, memory_s)
    return {"compute_s": compute_s, "memory_s": memory_s, "step_s": bound,
            "mfu_bound": r.analytic_flops / (r.devices * chip.bf16_flops * bound),
            "train_hours": bound * num_train_steps / 3600}


def estimated(r: Result, chip: Optional[Chip], num_train_steps: int) -> dict:
    """``estimate.step`` for this compile (empty off a chip or when it did not compile)."""
    if chip is None or not r.hlo:
        return {}
    return estimate.step(r.traced_flops / r.devices, r.hlo, chip, r.analytic_flops,
                         r.devices, num_train_steps)


def _estimate_lines(r: Result, chip: Chip, num_train_steps: int) -> list[str]:
    e = estimated(r, chip, num_train_steps)
    b, coll = r.hlo["hbm_bytes"], r.hlo["collectives"]
    comm = _ms(e["collective_s"]) if coll is not None else "not estimated"
    out = [f"estimated step: {_ms(e['step_s'])} = max(compute {_ms(e['compute_s'])}, matmul "
           f"kernels' memory {_ms(e['memory_matmul_s'])}) + other kernels' memory "
           f"{_ms(e['memory_other_s'])} + collectives {comm}",
           f"  memory: {b['matmul'] / 1e9:.2f} + {b['other'] / 1e9:.2f} GB per device "
           f"(matmul + other kernels, loop bodies x trip count; {b['once'] / 1e9:.2f} GB "
           f"with each body once) at {chip.hbm_bytes_per_s / 1e9:.0f} GB/s"]
    if r.hlo["unknown_loops"]:
        out.append(f"  note: {r.hlo['unknown_loops']} loop(s) of unknown trip count "
                   f"counted once")
    if coll is None:
        out.append("  collectives: not estimated (no ICI figures for this target)")
    for kind, row in sorted((coll or {}).items()):
        unread = (f"; {row['groups_not_read']} with replica groups not read, costed over "
                  f"every chip" if row["groups_not_read"] else "")
        out.append(f"  {kind}: {row['instructions']} in the HLO, {row['runs']:.0f} per step, "
                   f"{row['wire_bytes'] / 1e9:.2f} GB sent per chip: {_ms(row['seconds'])} "
                   f"(ring model, {chip.ici_bytes_per_s / 1e9:.1f} GB/s per link one way, up "
                   f"to {chip.ici_links} links{unread})")
    out.append(f"estimated MFU {e['mfu']:.0%}; {num_train_steps} steps: "
               f"{e['train_days']:.3g} days (the step alone, no collective overlapping "
               f"anything; input, eval, checkpoints and start-up not included)")
    return out


def lines(r: Result, chip: Optional[Chip], num_train_steps: int) -> list[str]:
    """The human-readable report of one compile."""
    s = r.settings
    out = [f"settings: mesh {_mesh(s['mesh'])}, microbatches {s['microbatches']}, remat "
           f"{s['remat']}, scan_layers {s['scan_layers']}; batch {s['global_batch_size']} x "
           f"{s['seq_length']}; compiled in {r.compile_s:.0f} s"]
    p, o = r.state["params"], r.state["opt_state"]
    out.append(f"state per device: params {gb(p['device'])} of {gb(p['total'])}, optimizer "
               f"{gb(o['device'])} of {gb(o['total'])} ({p['total'] / p['device']:.1f}x "
               f"sharded over {r.devices} devices)")
    if r.memory:
        m = r.memory
        state = p["device"] + o["device"]
        out.append(f"train step per device: arguments {gb(m['arguments'])}, outputs "
                   f"{gb(m['outputs'])}, temporaries {gb(m['temporaries'])}, code "
                   f"{gb(m['code'])}")
        out.append(f"donated state aliased: {gb(m['aliased'])} of {gb(state)} "
                   f"({'yes' if m['aliased'] >= 0.99 * state else 'NO: a second copy'})")
    else:
        out.append(f"train step: did not compile: {r.error}")
    out.append(f"memory per device: {gb(r.needed_bytes)} of {gb(r.usable_bytes)} available"
               f" ({r.headroom:.0%} headroom); eval step "
               f"{gb(r.eval_bytes) if r.eval_bytes is not None else 'not compiled'}")
    out.extend(_flop_lines(r))
    rf = roofline(r, chip, num_train_steps)
    if rf:
        out.append(f"roofline per step: compute {_ms(rf['compute_s'])} (bf16 peak "
                   f"{chip.bf16_flops / 1e12:.0f} TFLOP/s), memory >= {_ms(rf['memory_s'])} "
                   f"({chip.hbm_bytes_per_s / 1e9:.0f} GB/s): step >= {_ms(rf['step_s'])}, "
                   f"MFU <= {rf['mfu_bound']:.0%}")
        out.append(f"recipe: {num_train_steps} steps >= {rf['train_hours']:.2f} h at that "
                   f"bound (collectives, input and eval not included)")
    if estimated(r, chip, num_train_steps):
        out.extend(_estimate_lines(r, chip, num_train_steps))
    return out


def _flop_lines(r: Result) -> list[str]:
    ratio = r.traced_flops / r.analytic_flops
    out = [f"FLOPs per step: {r.traced_flops:.3g} compiled (every matmul of the step, loops "
           f"unrolled) vs {r.analytic_flops:.3g} analytic: {ratio:.3f}x (remat recompute, "
           f"vocabulary padding)"]
    if r.xla:
        note = ("counts each loop body once" if r.has_loops else
                f"{r.xla['flops'] * r.devices / r.analytic_flops:.3f}x analytic, elementwise "
                f"ops included")
        out.append(f"XLA cost analysis per device: {r.xla['flops']:.3g} FLOPs, "
                   f"{r.xla['bytes_accessed'] / 1e9:.1f} GB accessed ({note})")
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _mesh(mesh: dict) -> str:
    return " x ".join(f"{k} {v}" for k, v in mesh.items())


def suggestions(r: Result, larger_slice: Optional[str]) -> list[str]:
    """What to try, in order of cost, when the step does not fit (``--config.`` flags)."""
    s = r.settings
    out = []
    state = r.state["params"]["device"] + r.state["opt_state"]["device"]
    activations = max(r.needed_bytes - 2 * state, 1.0)  # state plus its gradients
    room = r.usable_bytes * (1 - HEADROOM) - 2 * state
    dp = r.devices // max(1, s["mesh"].get("tensor", 1))
    per_device = s["global_batch_size"] // max(1, dp)
    k = s["microbatches"]
    if room > 0:
        want = k * 2 ** max(1, math.ceil(math.log2(activations / room)))
        if want <= per_device and per_device % want == 0:
            out.append(f"--config.microbatches={want} (estimated from the activation "
                       f"memory; no extra FLOPs)")
    if s["remat"] != "full":
        out.append("--config.model.remat=" + ("dots" if s["remat"] == "none" else "full")
                   + " (recomputes activations in the backward pass: more FLOPs)")
    if s["mesh"].get("data", 1) != 1 and state > 0.05 * r.usable_bytes:
        out.append("--config.mesh.data=1 --config.mesh.fsdp=-1 (shards parameters and "
                   "optimizer state over all devices)")
    if larger_slice:
        out.append(f"--topology {larger_slice} (a larger slice)")
    return out
