"""Device mesh, logical axis rules and shardings (params, optimizer state, batches).

Mesh axes are ``(data, fsdp, tensor)``; their sizes come from ``config.mesh`` (-1 = the
remaining devices). Logical names on parameters/activations map to mesh axes by
``config.logical_axis_rules``.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from linkbert_jax.errors import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")


def mesh_shape(mesh_config, num_devices: int) -> tuple[int, ...]:
    """Resolve ``{data, fsdp, tensor}`` sizes (at most one -1) against the device count."""
    sizes = [int(mesh_config[a]) for a in MESH_AXES]
    if sum(s == -1 for s in sizes) > 1:
        raise ConfigError(f"mesh: at most one axis may be -1, got {dict(zip(MESH_AXES, sizes))}")
    if any(s == 0 or s < -1 for s in sizes):
        raise ConfigError(f"mesh: sizes must be positive or -1, got {dict(zip(MESH_AXES, sizes))}")
    fixed = math.prod(s for s in sizes if s != -1)
    if fixed > num_devices or (-1 not in sizes and fixed != num_devices) or num_devices % fixed:
        shown = " x ".join(f"{a}={s}" for a, s in zip(MESH_AXES, sizes))
        raise ConfigError(
            f"mesh {shown} needs {fixed}{'*k' if -1 in sizes else ''} devices but "
            f"{num_devices} are available; set --config.mesh.data/fsdp/tensor so that "
            f"their product is {num_devices} (use -1 for one of them)")
    return tuple(num_devices // fixed if s == -1 else s for s in sizes)


def make_mesh(mesh_config, devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(mesh_config, len(devices))
    try:  # topology-aware device order on TPU/GPU
        arr = mesh_utils.create_device_mesh(shape, devices)
    except Exception:  # noqa: BLE001 - fake CPU devices, odd shapes: plain order
        arr = np.asarray(devices).reshape(shape)
    return Mesh(arr, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def rules_from_config(config) -> tuple:
    return tuple((str(k), tuple(v) if isinstance(v, (list, tuple)) else v)
                 for k, v in config.logical_axis_rules)


def _axis_size(mesh: Mesh, axes) -> int:
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else axes
    return math.prod(mesh.shape[a] for a in axes)


def fit_spec(spec: P, shape: Sequence[int], mesh: Mesh) -> P:
    """Replicate any dimension its mesh axes do not divide (e.g. 2 token types over 4)."""
    dims = list(spec) + [None] * (len(shape) - len(spec))
    return P(*[None if _axis_size(mesh, a) > 1 and n % _axis_size(mesh, a) else a
               for a, n in zip(dims, shape)])


def shardings_from_boxed(abstract_boxed: Any, mesh: Mesh, rules) -> Any:
    """NamedShardings for a tree of ``nn.LogicallyPartitioned`` abstract leaves."""
    specs = nn.get_partition_spec(abstract_boxed)
    mesh_specs = nn.logical_to_mesh(specs, rules)
    shapes = nn.unbox(abstract_boxed)
    return jax.tree_util.tree_map(
        lambda s, x: NamedSharding(mesh, fit_spec(s, x.shape, mesh)), mesh_specs, shapes,
        is_leaf=lambda x: isinstance(x, P))


def batch_axes(mesh: Mesh, rules) -> tuple[str, ...]:
    spec = nn.logical_to_mesh_axes(("batch",), rules)[0]
    axes = () if spec is None else ((spec,) if isinstance(spec, str) else tuple(spec))
    return tuple(a for a in axes if mesh.shape[a] > 1) or ()


def data_parallel_size(mesh: Mesh, rules) -> int:
    return _axis_size(mesh, batch_axes(mesh, rules) or None)


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
    axes = batch_axes(mesh, rules)
    return NamedSharding(mesh, P(axes if axes else None))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(local_batch: dict, sharding: NamedSharding) -> dict:
    """Per-process host batch (numpy) -> global jax.Arrays sharded on the batch axis."""
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local_batch.items()}


def describe(shardings: Any) -> dict[str, str]:
    """``{param path: partition spec}`` for logs and tests."""
    flat = jax.tree_util.tree_flatten_with_path(shardings)[0]
    return {jax.tree_util.keystr(p): str(s.spec) for p, s in flat}
