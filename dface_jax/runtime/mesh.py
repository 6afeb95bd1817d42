"""Data-parallel device mesh: one ``data`` axis, batch sharded over it, parameters replicated.

The same code runs on one CPU, N forced CPU devices, one GPU, or a multi-host TPU pod slice
after ``jax.distributed.initialize()``: every process feeds only its own slice of the global
batch and :func:`global_batch` assembles the global ``jax.Array`` without moving data between
hosts. We use ``jax.jit`` over a ``Mesh`` rather than ``jax.pmap`` (pmap is now a wrapper
over jit + shard_map and its docstring recommends those).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
# The LOSO sweep's mesh axis: each device trains its share of the folds.
FOLDS_AXIS = "folds"


def make_mesh(devices: list[jax.Device] | None = None, axis: str = DATA_AXIS) -> Mesh:
    """A 1D mesh over ``devices`` (default: all devices of all processes) named ``axis``.

    ``devices`` may be compile-only devices of an accelerator topology
    (``jax.experimental.topologies``), which is how ``dface-jax plan`` compiles a run's
    programs for a TPU slice this host does not have."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (axis,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding for values every device holds whole (parameters, optimizer state, step, rng)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Sharding for ``[B, ...]`` arrays split along the batch over the ``data`` axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def leading_axis_sharded(mesh: Mesh) -> NamedSharding:
    """Sharding for ``[F, ...]`` arrays split along their first axis over the mesh's only
    axis (the LOSO folds over ``folds``)."""
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))


def check_global_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """Returns the per-process batch size, or raises if the global batch does not divide."""
    num_devices = mesh.devices.size
    if global_batch_size % num_devices:
        raise ValueError(f"global batch size {global_batch_size} is not divisible by the "
                         f"{num_devices} devices of the mesh")
    return global_batch_size // jax.process_count()


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
    """Turns this process's slice of the batch (a pytree of ``[B_local, ...]`` numpy arrays)
    into global ``jax.Array`` s ``[B_local * process_count, ...]`` sharded over ``data``."""
    sharding = batch_sharded(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)
