"""``--suggest``: compile candidate settings in order of cost until one fits.

Order: more microbatches (no extra FLOPs; each doubling halves the activations), then
``remat=dots`` and ``remat=full`` (recompute in the backward pass), then a fully sharded
mesh (parameters and optimizer state over all devices). A candidate that does not fit
fails fast (the compiler stops at memory assignment); the first that fits is compiled in
full and reported. A larger slice is the last resort and is only named.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterator, Optional

from linkbert_jax import config_defaults
from linkbert_jax.aot.analysis import Result

log = logging.getLogger("linkbert_jax")


def candidates(config, devices: int) -> Iterator[dict]:
    """Override sets, cheapest first (settings cheaper than the config's own, which did
    not fit, are skipped)."""
    tensor = max(1, int(config.mesh.tensor))
    batch = int(config.global_batch_size)
    per_device = batch // (devices // tensor)
    order = ("none", "dots", "full")
    meshes = [{}]
    if int(config.mesh.data) != 1:
        meshes.append({"mesh.data": 1, "mesh.fsdp": -1, "mesh.tensor": 1})
    for mesh in meshes:
        for remat in order[order.index(config.model.remat):]:
            own = not mesh and remat == config.model.remat
            k = 2 * int(config.microbatches) if own else 1
            while k <= per_device:
                if batch % (k * devices // tensor) == 0:
                    over = dict(mesh, microbatches=k)
                    if remat != config.model.remat:
                        over["model.remat"] = remat
                    yield over
                k *= 2


def search(config, devices: int, analyze: Callable[[object], Result],
           fits: Callable[[Result], bool]) -> Optional[tuple[dict, Result]]:
    """The first candidate (in order of cost) whose compile fits, with its result."""
    for over in candidates(config, devices):
        r = analyze(config_defaults.apply_overrides(config, over))
        log.info("try %s: %s", flags(over), "fits" if fits(r) else
                 f"needs {r.needed_bytes / 2 ** 30:.1f} of {r.usable_bytes / 2 ** 30:.1f} GiB")
        if fits(r):
            return over, r
    return None


def flags(overrides: dict) -> str:
    return " ".join(f"--config.{k}={v}" for k, v in overrides.items())
