"""The estimated step time of ``python -m linkbert_jax.aot`` (aot/estimate.py,
aot/collectives.py, aot/hlo.py) on cases whose answer is worked out by hand."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from linkbert_jax.infra import chips
from linkbert_jax.aot import collectives, estimate, hlo, topology, traffic

SLICE = "v4:2x2x1"  # one v4 host: 4 chips in a 2x2 square


@pytest.mark.parametrize("k", [2, 4, 8, 32])
def test_ring_collectives_are_the_hand_formulas(k):
    """A ring all-reduce sends 2(k-1)/k x N bytes per chip (reduce-scatter + all-gather);
    time = that / (link bandwidth x links used)."""
    n = 3 * 2 ** 20
    sent = 2 * (k - 1) / k * n
    assert collectives.ring_bytes("all-reduce", n, k) == pytest.approx(sent)
    for kind in ("all-gather", "reduce-scatter", "all-to-all"):
        assert collectives.ring_bytes(kind, n, k) == pytest.approx((k - 1) / k * n)
    assert collectives.ring_bytes("collective-permute", n, k) == n
    assert collectives.seconds(sent, 50e9, 4) == pytest.approx(sent / 200e9)
    assert collectives.ring_bytes("all-reduce", n, 1) == 0


@pytest.mark.parametrize("extents, chip_links, links", [
    ([2, 2, 1], 6, 2),   # a 2x2 square: one neighbour along x, one along y
    ([4, 1, 1], 6, 2),   # a ring of 4 along x: both directions
    ([2, 4, 4], 6, 5),   # v4-64 (2x4x4), data parallel over every chip
    ([4, 4, 4], 6, 6),
    ([16, 16], 4, 4),    # v5e/v6e: 4 links
    ([1, 1, 1], 6, 1)])
def test_links_used_follow_the_group_on_the_torus(extents, chip_links, links):
    assert collectives.links_used(extents, chip_links) == links


@pytest.mark.parametrize("attrs, n, groups", [
    ("replica_groups={{0,2},{1,3}}, to_apply=%add", 4, [[0, 2], [1, 3]]),
    ("replica_groups={}, to_apply=%add", 4, [[0, 1, 2, 3]]),
    ("channel_id=1, to_apply=%add", 3, [[0, 1, 2]]),
    ("replica_groups=[2,4]<=[8], x", 8, [[0, 1, 2, 3], [4, 5, 6, 7]]),
    ("replica_groups=[2,4]<=[4,2]T(1,0), x", 8, [[0, 2, 4, 6], [1, 3, 5, 7]]),
    ("replica_groups=mesh['axis_0'=4,'axis_1'=1,'axis_2'=1] {'axis_0','axis_1'}, x", 4,
     [[0, 1, 2, 3]]),
    ("replica_groups=mesh['a'=2,'b'=4] {'a'}, x", 8, [[0, 4], [1, 5], [2, 6], [3, 7]]),
    ("replica_groups=mesh['a'=2,'b'=4] {'b':(1)2}, x", 8, [[0, 2], [1, 3], [4, 6], [5, 7]]),
])
def test_replica_groups_in_each_printed_form(attrs, n, groups):
    assert collectives.replica_groups(attrs, n) == groups


# A while loop from 2 to 10 in steps of 2 (4 runs) around an all-reduce of f32[8].
_LOOP = """HloModule m

%sum (x: f32[], y: f32[]) -> f32[] {
  %x = f32[] parameter(0)
  %y = f32[] parameter(1)
  ROOT %s = f32[] add(%x, %y)
}

%cond (p: (s32[], f32[8])) -> pred[] {
  %p = (s32[], f32[8]{0}) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %n = s32[] constant(10)
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

%body (q: (s32[], f32[8])) -> (s32[], f32[8]) {
  %q = (s32[], f32[8]{0}) parameter(0)
  %j = s32[] get-tuple-element(%q), index=0
  %two = s32[] constant(2)
  %next = s32[] add(%j, %two)
  %v = f32[8]{0} get-tuple-element(%q), index=1
  %ar = f32[8]{0} all-reduce(%v), replica_groups={{0,1}}, to_apply=%sum
  ROOT %t = (s32[], f32[8]{0}) tuple(%next, %ar)
}

ENTRY %main (a: f32[8]) -> f32[8] {
  %a = f32[8]{0} parameter(0)
  %start = s32[] constant(2)
  %init = (s32[], f32[8]{0}) tuple(%start, %a)
  %w = (s32[], f32[8]{0}) while(%init), condition=%cond, body=%body
  ROOT %out = f32[8]{0} get-tuple-element(%w), index=1
}
"""


def test_a_loop_body_runs_its_trip_count():
    """The trip count is read from the loop (start 2, i < 10, step 2: 4 runs); a
    collective in the body costs 4 times; an unreadable loop counts once, reported."""
    module = hlo.parse(_LOOP)
    runs = hlo.runs(module)
    assert (runs.times["body"], runs.times["cond"], runs.unknown_loops) == (4, 5, 0)
    assert "sum" in runs.fused
    coords = [[0, 0, 0], [1, 0, 0]]
    (found,) = estimate.collectives_of(module, runs, coords, chips.CHIPS["v4"])
    assert (found.kind, found.nbytes, found.group, found.links, found.runs) == (
        "all-reduce", 32, 2, 1, 4)
    unknown = hlo.parse(_LOOP.replace("constant(10)", "parameter(1)"))
    assert hlo.runs(unknown).unknown_loops == 1 and hlo.runs(unknown).times["body"] == 1


def test_psum_in_a_scan_on_a_tpu_slice_costs_the_hand_number():
    """A psum of N = 1 MiB per chip over the 4 chips of v4:2x2x1 in a 5-step scan: the
    compiled HLO's all-reduce is found with its group of 4 on 2 links (the 2x2 square:
    one neighbour along x, one along y) and costs 5 x 2(k-1)/k x N / (2 x link)."""
    target = topology.parse(SLICE)
    mesh = jax.sharding.Mesh(np.array(topology.devices(target)), ("d",))
    n = 1024 * 256 * 4

    def body(c, _):
        return jax.lax.psum(c * 2, "d"), None

    step = jax.jit(jax.shard_map(lambda a: jax.lax.scan(body, a, None, length=5)[0],
                                 mesh=mesh, in_specs=P("d"), out_specs=P("d"),
                                 check_vma=False))
    x = jax.ShapeDtypeStruct((4 * 1024, 256), jnp.float32,
                             sharding=NamedSharding(mesh, P("d")))
    module = hlo.parse(step.lower(x).compile().as_text())
    runs = hlo.runs(module)
    coords = [list(d.coords) for d in mesh.devices.flat]
    found = estimate.collectives_of(module, runs, coords, target.chip)
    assert {(c.kind, c.nbytes, c.group, c.links) for c in found} == {("all-reduce", n, 4, 2)}
    assert sum(c.runs for c in found) == 5 and runs.unknown_loops == 0
    hand = 5 * (2 * 3 / 4 * n) / (2 * 24e12 / 512)
    assert sum(c.runs * c.seconds for c in found) == pytest.approx(hand, rel=1e-9)


def test_hbm_bytes_count_a_loop_body_its_trip_count():
    """An elementwise step on 256 MiB arrays (too big to stay on chip) in a 5-step scan:
    counted once, the HBM bytes are XLA's own cost analysis (which counts a loop body
    once); with the trip count the body (read the carry and the other input, write the
    carry: 3 x 256 MiB) counts 4 times more."""
    target = topology.parse(SLICE)
    one = jax.sharding.SingleDeviceSharding(topology.devices(target)[0])
    x = jax.ShapeDtypeStruct((8192, 8192), jnp.float32, sharding=one)

    def f(a, b):
        return jax.lax.scan(lambda c, _: (jnp.sin(c) * b + 1.0, None), a, None, length=5)[0]

    compiled = jax.jit(f).lower(x, x).compile()
    module = hlo.parse(compiled.as_text())
    got = traffic.step_bytes(module, hlo.runs(module))
    xla = compiled.cost_analysis()
    xla = (xla[0] if isinstance(xla, (list, tuple)) else xla)["bytes accessed"]
    assert got["once"] == pytest.approx(xla, rel=1e-4)
    assert got["matmul"] == 0
    assert got["other"] - got["once"] == pytest.approx(4 * 3 * 2 ** 28, rel=1e-6)


def test_the_step_adds_its_terms():
    """max(compute, matmul kernels' memory) + other kernels' memory + collectives; MFU
    is the analytic FLOPs over the chips' peak for that time; days at that step."""
    chip = chips.CHIPS["v4"]
    costs = {"hbm_bytes": {"matmul": 0.05 * chip.hbm_bytes_per_s,
                           "other": 0.02 * chip.hbm_bytes_per_s, "once": 0.0},
             "collectives": {"all-reduce": {"seconds": 0.03}}, "unknown_loops": 0}
    e = estimate.step(0.1 * chip.bf16_flops, costs, chip, analytic_flops=2e14, devices=4,
                      num_train_steps=86400)
    assert e["step_s"] == pytest.approx(0.1 + 0.02 + 0.03)
    assert e["train_days"] == pytest.approx(0.15)
    assert e["mfu"] == pytest.approx(2e14 / (4 * chip.bf16_flops * 0.15))
    costs["collectives"] = None  # no ICI figures: the term is not estimated
    assert estimate.step(0.1 * chip.bf16_flops, costs, chip, 2e14, 4, 1)["step_s"] == (
        pytest.approx(0.12))
