"""Accelerator facts in one table: HBM capacity, dense bf16 peak and HBM bandwidth per chip,
and for TPUs the inter-chip interconnect (ICI): bandwidth per link and direction, links.

Used by the ahead-of-time compile report (``linkbert_jax.aot``: fit, headroom, roofline)
and by the trainer's MFU (``linkbert_jax.infra.metrics_log``). Figures are the vendors'
published per-chip numbers (sources beside each row). A TPU v4 or v5p chip runs its two
TensorCores as one JAX device ("megacore"), so one device = one chip for every row.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

GiB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class Chip:
    name: str
    device_kinds: tuple[str, ...]  # lower-case substrings of jax ``Device.device_kind``
    hbm_bytes: float
    bf16_flops: float  # dense (no sparsity) peak FLOP/s
    hbm_bytes_per_s: float
    ici_bytes_per_s: float = 0.0  # one ICI link, one direction (0: not known / not TPU)
    ici_links: int = 0            # ICI links per chip (one to each torus neighbour)


# ICI: Google's pages give the bandwidth per chip; the per-link figure is derived (per chip
# / links / 2 directions) and checked against each page's bisection bandwidth (a cut of a
# full pod's torus crosses 2 x side^(dims-1) links, each counted one way).
CHIPS = {
    # cloud.google.com/tpu/docs/v4: 275 TFLOPs (bf16) per chip; HBM2 32 GiB, 1200 GBps.
    # ICI: the page gives no per-chip figure, only "bisection bandwidth per Pod 24 TB/s"
    # for the 4096-chip pod (16x16x16 torus: 512 links cross the cut), so 46.9 GB/s per
    # link and direction (derived); 6 links: "a direct connection to the nearest
    # neighboring chips in 3 dimensions" (derived: 2 per dimension).
    "v4": Chip("TPU v4", ("tpu v4",), 32 * GiB, 275e12, 1200e9, 24e12 / 512, 6),
    # cloud.google.com/tpu/docs/v5e: 197 TFLOPs (bf16); HBM2 16 GB, 819 GBps (HBM stacks
    # are binary-sized: 16 GiB). ICI: "bidirectional ... 400 GBps" per chip, 4 ICI ports
    # (tpu/docs/v6e's v5e column): 50 GB/s per link and direction (derived; the page's
    # bisection 1.6 TB/s over the 32 links cut in a 16x16 torus gives the same).
    "v5e": Chip("TPU v5e", ("tpu v5 lite", "tpu v5e"), 16 * GiB, 197e12, 819e9, 50e9, 4),
    # cloud.google.com/tpu/docs/v5p: 459 TFLOPs (bf16); HBM2e 95 GB, 2765 GBps. JAX names
    # the device "TPU v5" (v5e is "TPU v5 lite", matched first above). ICI:
    # "bidirectional ... 1200 GBps" per chip (an older page: 4800 Gbps, the same one way),
    # 3D torus: 6 links (derived), 100 GB/s per link and direction (derived).
    "v5p": Chip("TPU v5p", ("tpu v5p", "tpu v5"), 95 * GiB, 459e12, 2765e9, 100e9, 6),
    # cloud.google.com/tpu/docs/v6e: 918 TFLOPs (bf16); HBM 32 GB, 1640 GBps. ICI:
    # "bidirectional ... 800 GBps" per chip, "ICI ports per chip 4": 100 GB/s per link and
    # direction (derived; bisection 3.2 TB/s / 32 links agrees; an older page's
    # "3584 Gbps" per chip would be 112 GB/s).
    "v6e": Chip("TPU v6e", ("tpu v6 lite", "tpu v6e"), 32 * GiB, 918e12, 1640e9, 100e9, 4),
    # cloud.google.com/tpu/docs/v3: 123 TFLOPs (bf16); HBM2 32 GiB, 900 GBps.
    "v3": Chip("TPU v3", ("tpu v3",), 32 * GiB, 123e12, 900e9),
    # NVIDIA H100 Tensor Core GPU datasheet, SXM5: 989 TFLOPS bf16 dense (1,979 with
    # sparsity), 80 GB HBM3, 3.35 TB/s.
    "h100": Chip("H100 SXM 80GB", ("h100",), 80 * GiB, 989e12, 3.35e12),
    # NVIDIA H200 datasheet: the H100's compute, 141 GB HBM3e, 4.8 TB/s.
    "h200": Chip("H200", ("h200",), 141e9, 989e12, 4.8e12),
    # NVIDIA A100 datasheet (SXM): 312 TFLOPS bf16 dense, 80 GB HBM2e, 2.039 TB/s.
    "a100": Chip("A100 80GB", ("a100",), 80 * GiB, 312e12, 2.039e12),
    # NVIDIA L4 datasheet: 121 TFLOPS bf16 dense, 24 GB GDDR6, 300 GB/s.
    "l4": Chip("L4", ("l4",), 24 * GiB, 121e12, 300e9),
    # NVIDIA A10 datasheet: 125 TFLOPS bf16 dense, 24 GB GDDR6, 600 GB/s.
    "a10": Chip("A10", ("a10",), 24 * GiB, 125e12, 600e9),
}


def for_device_kind(device_kind: str) -> Optional[Chip]:
    """The table row whose device-kind substring matches (``None`` for CPUs, unknowns)."""
    kind = device_kind.lower()
    for chip in CHIPS.values():
        if any(k in kind for k in chip.device_kinds):
            return chip
    return None
