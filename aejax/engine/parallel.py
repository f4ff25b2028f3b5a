"""Data parallelism on a 1-D device mesh, with JAX's own sharding machinery.

The dataset and the train state are replicated on every device of the mesh; each step's batch is
split along the mesh's ``data`` axis, and XLA adds the all-reduce of the gradients. One device is
not a mesh of one: it is the single-device code path, so its results stay bit-identical.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from aejax.engine import distributed
from aejax.errors import UserError

DATA_AXIS = "data"


def data_mesh(devices: int | None, batch_size: int) -> Mesh | None:
    """A ``data`` mesh over the first `devices` devices; None for one device (no mesh at all).

    Checked before anything loads: a device count the machine lacks, or one that does not divide
    the batch, is a user error naming what would work.
    """
    devices = resolve_devices(devices)
    _require_divides(devices, batch_size, "batch size", "batch_size")
    return _mesh(devices)


def seed_mesh(devices: int | None, seeds: int) -> Mesh | None:
    """A mesh for models trained side by side (`jax.vmap` over seeds): each device trains
    ``seeds / devices`` of them, and no collective is needed. None for one device."""
    devices = resolve_devices(devices)
    _require_divides(devices, seeds, "seed count", "seeds")
    return _mesh(devices)


def resolve_devices(devices: int | None) -> int:
    """`devices`, or by default 1, and all devices of all processes in a multi-process run."""
    if devices is not None:
        return devices
    return jax.device_count() if distributed.is_multiprocess() else 1


def _require_divides(devices: int, size: int, what: str, setting: str) -> None:
    if devices < 1:
        raise UserError(f"devices must be at least 1, got {devices}", settings=("devices",))
    if size % devices:
        raise UserError(
            f"{what} {size} does not split evenly over {devices} devices; use a {what} that is "
            f"a multiple of {devices}",
            settings=(setting, "devices"),
        )


def _mesh(devices: int) -> Mesh | None:
    present = jax.devices()
    if devices > len(present):
        kind = present[0].platform
        hint = "; on CPU, JAX_NUM_CPU_DEVICES=N makes N devices" if kind == "cpu" else ""
        raise UserError(
            f"{devices} devices asked for but {len(present)} {kind} device(s) present{hint}",
            settings=("devices",),
        )
    if distributed.is_multiprocess() and devices != len(present):
        raise UserError(
            f"a run of {jax.process_count()} processes trains on all their {len(present)} "
            f"devices; leave out --devices or set it to {len(present)}",
            settings=("devices",),
        )
    if devices == 1:
        return None
    # Auto axes: the classic sharding propagation (Explicit axes reject sharding constraints).
    return jax.make_mesh((devices,), (DATA_AXIS,), (AxisType.Auto,), devices=present[:devices])


def replicated(mesh: Mesh | None) -> NamedSharding | None:
    """Every device holds the whole array (None without a mesh: JAX's default device)."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec())


def place(tree: Any, mesh: Mesh | None) -> Any:
    """`tree` replicated over `mesh`; unchanged without one.

    Through host memory: an array already on one device cannot be put onto a mesh that spans
    several processes. (PRNG keys cannot be put there at all: make them with `jit_onto`.)
    """
    if mesh is None:
        return tree
    return jax.device_put(jax.device_get(tree), replicated(mesh))


def jit_onto(fn, mesh: Mesh | None, **kwargs):
    """`jax.jit(fn)`, its results replicated on `mesh` when there is one."""
    if mesh is not None:
        kwargs["out_shardings"] = replicated(mesh)
    return jax.jit(fn, **kwargs)


def split_batches(batches: Any, mesh: Mesh | None, batch_axis: int = 1) -> Any:
    """Inside a program: arrays (e.g. laid out ``(steps, batch, ...)``) split along `batch_axis`.

    Without this constraint the results are the same, but every device computes every example.
    """
    if mesh is None:
        return batches
    spec = PartitionSpec(*[None] * batch_axis, DATA_AXIS)
    return jax.lax.with_sharding_constraint(batches, NamedSharding(mesh, spec))


def split_seeds(tree: Any, mesh: Mesh | None) -> Any:
    """`tree`'s leading (seed) axis split over `mesh`'s devices; unchanged without a mesh."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(DATA_AXIS)))


def device_count(mesh: Mesh | None) -> int:
    return 1 if mesh is None else mesh.size
