"""Named accelerator slices -> compile-only devices, and the chips' published figures.

A slice is named as Google sells it (``v5e-32``, ``v4-32``: for v4 and v5p the number
counts TensorCores, two per chip, so ``v4-32`` is 16 chips) or by libtpu's topology
(``v5e:4x8``, ``v4:2x2x4``: chips per axis). libtpu (``pip install -e ".[tpu-aot]"``)
describes such a slice on any host and XLA compiles for its devices without running
anything; this is what makes ``dface-jax plan`` work on a CPU-only machine.

GPUs: XLA compiles for a GPU only through the CUDA PJRT plugin, and a compile-only GPU
topology needs that plugin plus a target description taken from an attached GPU
(:func:`gpu_compile_status` says what this host can do).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

from data_pipelines.errors import InputError

GIB = 2 ** 30

LIBTPU_INSTALL = 'pip install -e ".[tpu-aot]"  (libtpu==0.0.42.*, the version jax 0.10.2 pins)'


class LibtpuMissingError(InputError):
    """Compiling for a TPU needs libtpu, which is not installed."""


class TopologyError(InputError, ValueError):
    """A slice name this module does not know."""


@dataclasses.dataclass(frozen=True)
class Chip:
    """One TPU generation as libtpu names it, with Google's published per-chip figures.

    Attributes:
      generation: libtpu's topology prefix ("v5e").
      hbm_bytes: HBM per chip.
      peak_bf16_flops: peak bf16 matmul FLOP/s per chip (only for a roofline sanity check;
        every time the plan prints is XLA's).
      chip_config: libtpu's chip config: "megacore" presents a v4/v5p chip's two
        TensorCores as one device, as a TPU VM does by default.
      name_counts_cores: whether the sold slice name counts TensorCores (v4-32 = 16 chips).
    """

    generation: str
    hbm_bytes: int
    peak_bf16_flops: float
    chip_config: str
    name_counts_cores: bool


# Per-chip HBM and bf16 peak from Google's Cloud TPU pages (system architecture tables):
#   v4:  https://cloud.google.com/tpu/docs/v4   (32 GiB HBM2, 275 TFLOP/s bf16, 2 TensorCores)
#   v5e: https://cloud.google.com/tpu/docs/v5e  (16 GiB HBM2, 197 TFLOP/s bf16, 1 TensorCore)
#   v5p: https://cloud.google.com/tpu/docs/v5p  (95 GiB HBM2e, 459 TFLOP/s bf16, 2 TensorCores)
#   v6e: https://cloud.google.com/tpu/docs/v6e  (32 GiB HBM, 918 TFLOP/s bf16, 1 TensorCore)
CHIPS = {
    "v4": Chip("v4", 32 * GIB, 275e12, "megacore", True),
    "v5e": Chip("v5e", 16 * GIB, 197e12, "default", False),
    "v5p": Chip("v5p", 95 * GIB, 459e12, "megacore", True),
    "v6e": Chip("v6e", 32 * GIB, 918e12, "default", False),
}

# Chips -> libtpu grid of the standard slices (the shapes Cloud TPU provisions).
_GRIDS_2D = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8),
             128: (8, 16), 256: (16, 16)}
_GRIDS_3D = {1: (1, 1, 1), 4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4),
             64: (4, 4, 4), 128: (4, 4, 8)}


@dataclasses.dataclass(frozen=True)
class Slice:
    """A TPU slice: ``name`` as given, libtpu's ``topology`` ("v5e:4x8"), its ``chip``."""

    name: str
    topology: str
    chip: Chip
    chips: int

    @property
    def chips_per_host_bounds(self) -> tuple[int, int, int]:
        # One host drives at most a 2x2 block of chips in these slices (4 chips per VM).
        return (1, 1, 1) if self.chips == 1 else (2, 2, 1)


def parse_slice(name: str) -> Slice:
    """``"v5e-32"`` or ``"v5e:4x8"`` -> :class:`Slice`; an unknown name is a
    :class:`TopologyError` listing the known ones."""
    known = ", ".join(sorted(CHIPS))
    match = re.fullmatch(r"(v\d+[a-z]?)(?::(\d+(?:x\d+)*)|-(\d+))", name.strip())
    if not match or match.group(1) not in CHIPS:
        raise TopologyError(f"unknown TPU slice {name!r}: use e.g. v5e-32 or v5e:4x8 "
                            f"(generations: {known})")
    chip = CHIPS[match.group(1)]
    grids = _GRIDS_3D if chip.name_counts_cores else _GRIDS_2D
    if match.group(2):
        dims = tuple(int(d) for d in match.group(2).split("x"))
        if len(dims) != len(next(iter(grids.values()))) or min(dims) < 1:
            raise TopologyError(f"{name!r}: a {chip.generation} topology has "
                                f"{len(next(iter(grids.values())))} axes, e.g. "
                                f"{chip.generation}:{'x'.join(map(str, grids[4]))}")
        return Slice(name, f"{chip.generation}:{match.group(2)}", chip, math.prod(dims))
    count = int(match.group(3))
    chips = count // 2 if chip.name_counts_cores else count
    if chips not in grids or (chip.name_counts_cores and count % 2):
        sizes = sorted(c * (2 if chip.name_counts_cores else 1) for c in grids)
        raise TopologyError(f"{name!r}: known {chip.generation} slices are "
                            f"{', '.join(f'{chip.generation}-{s}' for s in sizes)}")
    return Slice(name, f"{chip.generation}:{'x'.join(map(str, grids[chips]))}", chip, chips)


def require_libtpu() -> None:
    """Raises :class:`LibtpuMissingError` (one line: how to install it) without libtpu."""
    try:
        import libtpu  # noqa: F401  (jax finds the TPU compiler through this package)
    except ImportError as err:
        raise LibtpuMissingError(f"compiling for TPU needs libtpu, which is not installed: "
                                 f"{LIBTPU_INSTALL}") from err


def slice_devices(tpu_slice: Slice) -> list:
    """The compile-only devices of ``tpu_slice`` (one per chip), in libtpu's order."""
    require_libtpu()
    # libtpu takes a machine-wide lock (/tmp/libtpu_lockfile) meant for processes that
    # drive real TPUs; compile-only devices drive none, so two plans (or a plan and its
    # test) must not lock each other out.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    description = topologies.get_topology_desc(
        platform="tpu", topology_name=tpu_slice.topology,
        chip_config_name=tpu_slice.chip.chip_config,
        chips_per_host_bounds=tpu_slice.chips_per_host_bounds)
    devices = list(description.devices)
    if len(devices) != tpu_slice.chips:
        raise TopologyError(f"libtpu gave {len(devices)} devices for {tpu_slice.topology}, "
                            f"expected {tpu_slice.chips} (one per chip)")
    return devices


def gpu_compile_status() -> str:
    """One sentence: can XLA compile for a GPU here, without a GPU? Asks jax for a
    compile-only CUDA topology and reports what it said."""
    from jax.experimental import topologies

    try:
        description = topologies.get_topology_desc(platform="cuda", topology_name="1x1x8")
    except Exception as err:  # any failure is the answer; it is reported, not raised
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return (f"not compiled for GPU: XLA cannot target a GPU on this host without one "
                f"(jax.experimental.topologies.get_topology_desc(platform='cuda') says: "
                f"{type(err).__name__}: {reason}). A compile-only GPU topology needs the CUDA "
                f"PJRT plugin (jax[cuda12]) and a target description read from an attached GPU.")
    return f"a compile-only CUDA topology is available here ({len(description.devices)} devices)"
