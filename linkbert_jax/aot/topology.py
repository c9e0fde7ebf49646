"""Compile targets by name: TPU slices as ``gcloud`` names them, chip grids, this host.

- ``v4-64``, ``v5p-128``: accelerator types count TensorCores, two per chip, and a chip
  is one JAX device (megacore), so ``v4-64`` is 32 chips (grid 2x4x4);
- ``v5litepod-64`` (also ``v5e-64``), ``v6e-64``: count chips (grid 8x8);
- ``v4:2x4x4``, ``v5p:4x4x4``, ``v5e:8x8``, ``v6e:16x16``: the chip grid itself;
- ``cpu`` (this process's CPU devices) or ``cpu:N`` (N host devices);
- ``h100`` / ``h100:8``: no GPU compiler runs without a GPU here (docs/aot.md), so this
  is the CPU-host compile of the same sharding over 1 / 8 host devices, checked against
  the H100's memory and peaks: an estimate, labelled as one.

TPU devices come from ``jax.experimental.topologies.get_topology_desc`` and need the
``libtpu`` package (``pip install 'linkbert-jax[tpu]'``); they compile but never run.
The grids and per-host bounds follow MaxText's ``accelerator_to_spec_map.py``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Optional

from linkbert_jax.infra import chips
from linkbert_jax.errors import ConfigError

VALID_FORMS = ("an accelerator type as gcloud names it (v4-64, v5p-128, v5litepod-64, "
               "v6e-64), a chip grid (v4:2x4x4, v5p:4x4x4, v5e:8x8, v6e:16x16), "
               "cpu or cpu:N, h100 or h100:N (a CPU-host estimate)")


@dataclasses.dataclass(frozen=True)
class Generation:
    chip: str            # key of ``chips.CHIPS``
    topology_prefix: str  # libtpu's name for the grid: "<prefix>:AxBxC"
    chip_config: str     # "megacore": both TensorCores of a chip are one device
    cores_per_chip: int  # what the accelerator type's number counts per chip
    ndim: int            # torus dimensions


GENERATIONS = {
    "v4": Generation("v4", "v4", "megacore", 2, 3),
    "v5p": Generation("v5p", "v5", "megacore", 2, 3),
    "v5litepod": Generation("v5e", "v5e", "default", 1, 2),
    "v5e": Generation("v5e", "v5e", "default", 1, 2),
    "v6e": Generation("v6e", "v6e", "default", 1, 2),
}


@dataclasses.dataclass(frozen=True)
class Target:
    name: str                   # as the user gave it
    platform: str               # "tpu" | "cpu"
    chip: Optional[chips.Chip]  # None for the host CPU
    num_devices: int
    grid: str = ""              # "v4:2x4x4" (TPU)
    generation: str = ""        # key of GENERATIONS (TPU)

    @property
    def label(self) -> str:
        if self.grid:
            return f"{self.name} ({self.grid}, {self.num_devices} chips)"
        if self.chip:
            return (f"{self.name} (ESTIMATE: the XLA:CPU compile over {self.num_devices} "
                    f"host devices, not a GPU compile)")
        return f"{self.name} ({self.num_devices} host devices)"


def _grid(num_chips: int, ndim: int) -> tuple[int, ...]:
    """The slice's chip grid: double the smallest side from 1x1(x1) (2x2x1 for 3-D)."""
    dims = [2, 2, 1] if ndim == 3 and num_chips >= 4 else [1] * ndim
    while math.prod(dims) < num_chips:
        dims = sorted(dims)
        dims[0] *= 2
    dims = sorted(dims) if math.prod(dims) > 4 or ndim == 2 else dims
    return tuple(dims)


def _bad(name: str, why: str = "") -> ConfigError:
    return ConfigError(f"topology {name!r} {why or 'is not understood'}; valid forms: "
                       f"{VALID_FORMS}")


def parse(name: str) -> Target:
    """A ``Target`` from a topology name, or a one-line ``ConfigError`` naming the forms."""
    m = re.fullmatch(r"cpu(?::(\d+))?", name)
    if m:
        n = int(m.group(1)) if m.group(1) else 0
        return Target(name, "cpu", None, n)
    m = re.fullmatch(r"h100(?::(\d+))?", name)
    if m:
        return Target(name, "cpu", chips.CHIPS["h100"], int(m.group(1) or 1))
    m = re.fullmatch(r"([a-z0-9]+)-(\d+)", name)
    if m and m.group(1) in GENERATIONS:
        gen = GENERATIONS[m.group(1)]
        count = int(m.group(2))
        chips_n, rest = divmod(count, gen.cores_per_chip)
        if rest or chips_n < 1 or chips_n & (chips_n - 1):
            grid = "4x4x12" if gen.ndim == 3 else "8x12"
            raise _bad(name, f"has {count / gen.cores_per_chip:g} chips, not a power of "
                       f"two (give other shapes as a chip grid, e.g. {m.group(1)}:{grid})")
        dims = _grid(chips_n, gen.ndim)
        return _target(name, m.group(1), dims)
    m = re.fullmatch(r"([a-z0-9]+):(\d+(?:x\d+)+)", name)
    if m and m.group(1) in GENERATIONS:
        dims = tuple(int(d) for d in m.group(2).split("x"))
        if len(dims) != GENERATIONS[m.group(1)].ndim or 0 in dims:
            raise _bad(name, f"needs {GENERATIONS[m.group(1)].ndim} positive sides")
        return _target(name, m.group(1), dims)
    raise _bad(name)


def _target(name: str, generation: str, dims: tuple[int, ...]) -> Target:
    gen = GENERATIONS[generation]
    grid = f"{gen.topology_prefix}:{'x'.join(map(str, dims))}"
    return Target(name, "tpu", chips.CHIPS[gen.chip], math.prod(dims), grid, generation)


def accelerator_type(target: Target) -> str:
    """The gcloud accelerator type of a TPU target (``v4:2x4x4`` -> ``v4-64``)."""
    gen = GENERATIONS[target.generation]
    name = {"v5e": "v5litepod"}.get(target.generation, target.generation)
    return f"{name}-{target.num_devices * gen.cores_per_chip}"


def larger(target: Target) -> Optional[str]:
    """The next slice of the same generation with twice the chips (``None`` off TPU)."""
    if target.platform != "tpu":
        return None
    return accelerator_type(dataclasses.replace(target, num_devices=2 * target.num_devices))


def devices(target: Target) -> list:
    """The target's devices (TPU: compile-only device objects)."""
    import jax
    if target.platform == "cpu":
        if target.num_devices:
            try:
                jax.config.update("jax_num_cpu_devices", target.num_devices)
            except RuntimeError:  # backends already up: keep what the process has
                pass
        return list(jax.devices("cpu"))
    return _tpu_devices(target)


def _tpu_devices(target: Target) -> list:
    from jax.experimental import topologies
    try:
        import libtpu  # noqa: F401  (the TPU compiler; an optional extra)
    except ImportError:
        raise ConfigError("TPU topologies need the TPU compiler: pip install "
                          "'linkbert-jax[tpu]' (the libtpu package)") from None
    # Compile-only: several processes may load libtpu at once (it never opens a chip);
    # naming the slice and host keeps libtpu from probing for a TPU VM's metadata.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", accelerator_type(target))
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    gen = GENERATIONS[target.generation]
    kwargs = {"chip_config_name": gen.chip_config}
    if target.num_devices >= 4:
        kwargs["chips_per_host_bounds"] = (2, 2, 1)
    try:
        found = topologies.get_topology_desc(topology_name=target.grid, platform="tpu",
                                             **kwargs).devices
    except Exception as e:  # noqa: BLE001 - libtpu's own error, as one line
        raise _bad(target.name, f"is not a grid libtpu accepts ({str(e).splitlines()[0]})")
    if len(found) != target.num_devices:
        raise _bad(target.name, f"gave {len(found)} devices, expected {target.num_devices}")
    return list(found)
