"""Ahead-of-time compilation of one jitted program and what XLA says about it.

``jit(f).lower(*ShapeDtypeStructs).compile()`` on compile-only devices runs XLA's whole
backend for that target; the executable's ``memory_analysis()`` gives the per-device
buffer sizes (arguments, outputs, temporaries, generated code) and ``cost_analysis()``
XLA's per-device FLOPs, bytes accessed and its cost model's ``optimal_seconds``.

Two facts about those figures, found by compiling small programs for v5e (both are
handled here, and printed):

- A loop (``lax.scan`` / while) is counted once, not once per iteration: per-step figures
  must come from compiling the step on its own.
- libtpu's cost model gives -1 s for every ``ConcatBitcast`` custom call (a buffer
  re-view it inserts at large widths), so a program with n of them reports its estimate
  minus n. They are counted in the compiled HLO and added back.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Sequence

import jax

# Custom calls libtpu's cost model prices at -1 s each (see the module docstring).
UNPRICED_CUSTOM_CALLS = ("ConcatBitcast",)


@dataclasses.dataclass(frozen=True)
class Figures:
    """What XLA reported for one compiled program, per device.

    Bytes: ``argument_bytes``, ``output_bytes``, ``alias_bytes`` (outputs written into
    donated arguments, counted in both), ``temp_bytes``, ``code_bytes``. ``flops`` and
    ``bytes_accessed`` per execution (loop bodies counted once). ``xla_optimal_seconds``
    is the cost model's raw sum; ``unpriced_ops`` the custom calls it priced at -1 s.
    """

    argument_bytes: int
    output_bytes: int
    alias_bytes: int
    temp_bytes: int
    code_bytes: int
    flops: float
    bytes_accessed: float
    xla_optimal_seconds: float
    unpriced_ops: int
    compile_seconds: float

    @property
    def device_bytes(self) -> int:
        """Everything one device holds while the program runs: arguments, outputs not
        aliased to a donated argument, temporaries and the program's code."""
        return (self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes
                + self.code_bytes)

    @property
    def seconds(self) -> float | None:
        """XLA's estimated execution time with the -1 s entries removed; None if the
        cost model gave no usable estimate."""
        value = self.xla_optimal_seconds + self.unpriced_ops
        return value if value > 0 else None

    def fits(self, hbm_bytes: int) -> bool:
        return self.device_bytes <= hbm_bytes


def count_unpriced_ops(hlo_text: str) -> int:
    """Number of custom calls in ``UNPRICED_CUSTOM_CALLS`` in a compiled module's HLO."""
    return sum(len(re.findall(rf'custom_call_target="{name}"', hlo_text))
               for name in UNPRICED_CUSTOM_CALLS)


def _first(analysis: Any) -> dict:
    # cost_analysis() is a dict on current jax, a one-element list on older ones.
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return dict(analysis or {})


def compile_program(jitted: Any, arguments: Sequence[Any]) -> Figures:
    """Lowers ``jitted`` (a ``jax.jit`` function whose shardings name the target's
    devices) at ``arguments`` (``jax.ShapeDtypeStruct`` s with shardings, or pytrees of
    them), compiles it and reads XLA's analyses."""
    start = time.perf_counter()
    compiled = jitted.lower(*arguments).compile()
    seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    cost = _first(compiled.cost_analysis())
    return Figures(
        argument_bytes=int(memory.argument_size_in_bytes),
        output_bytes=int(memory.output_size_in_bytes),
        alias_bytes=int(memory.alias_size_in_bytes),
        temp_bytes=int(memory.temp_size_in_bytes),
        code_bytes=int(memory.generated_code_size_in_bytes),
        flops=float(cost.get("flops", 0.0)),
        bytes_accessed=float(cost.get("bytes accessed", 0.0)),
        xla_optimal_seconds=float(cost.get("optimal_seconds", 0.0)),
        unpriced_ops=count_unpriced_ops(compiled.as_text() or ""),
        compile_seconds=seconds)


def tree_bytes_per_device(tree: Any) -> int:
    """Bytes one device holds of a pytree of ``ShapeDtypeStruct`` s with shardings (its
    shard of each leaf): what a program's arguments need before anything is compiled."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shape = leaf.sharding.shard_shape(leaf.shape) if leaf.sharding is not None else leaf.shape
        count = 1
        for size in shape:
            count *= size
        total += count * jax.numpy.dtype(leaf.dtype).itemsize
    return total
