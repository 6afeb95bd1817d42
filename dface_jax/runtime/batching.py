"""Chunked application of a compiled function to arrays too large for one call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np


def pad_rows(arrays: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Aligned arrays of at most ``batch_size`` rows, each padded to exactly ``batch_size``
    rows with copies of its last row (so a jitted function sees one shape)."""
    return [np.concatenate([a, np.repeat(a[-1:], batch_size - len(a), axis=0)])
            if len(a) < batch_size else a for a in arrays]


def apply_in_batches(fn: Callable[..., Any], *arrays: np.ndarray, batch_size: int) -> Any:
    """Applies ``fn`` to aligned leading-axis chunks of ``arrays``; concatenates host results.

    Chunks keep memory flat on large inputs. When there is more than one chunk, the last one
    is padded with copies of its final row (and the padding dropped from the outputs), so a
    jitted ``fn`` compiles once for every chunk. ``fn`` may return an array or a pytree of
    arrays whose leading axis is the batch; the result has the same structure.
    """
    if not arrays:
        raise ValueError("apply_in_batches needs at least one input array")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    count = len(arrays[0])
    if any(len(a) != count for a in arrays):
        raise ValueError(f"inputs differ in batch size: {[np.shape(a) for a in arrays]}")
    outputs = []
    for start in range(0, count, batch_size):
        chunk = [a[start:start + batch_size] for a in arrays]
        real = len(chunk[0])
        if count > batch_size:
            chunk = pad_rows(chunk, batch_size)
        outputs.append(jax.tree.map(lambda x, real=real: np.asarray(x)[:real], fn(*chunk)))
    return jax.tree.map(lambda *xs: np.concatenate(xs), *outputs)
