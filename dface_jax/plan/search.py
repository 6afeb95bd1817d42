"""The largest batch whose program fits a device's memory, found by compiling at
increasing sizes with a small budget of compilations (a paper-scale compile takes
minutes on a small host).

Per-device memory is close to affine in the per-device batch (state and code fixed,
activations per example), so after the configured batch and 4x it, the fit of those two
predicts the limit and that prediction (with 5% headroom) is compiled to check it;
each miss shrinks it by 10%. A size whose arguments alone exceed the memory is refused
without compiling. The answer is the largest size compiled that fit.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

HEADROOM = 0.95
GROWTH = 4


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """largest_fit: the largest per-device batch seen to fit (None if none did);
    smallest_miss: the smallest seen not to (None if none); tried: (batch, bytes or None
    when refused before compiling, fits) in order; predicted_limit: where the affine fit
    of the compiled sizes reaches the capacity (None with fewer than two sizes)."""

    largest_fit: int | None
    smallest_miss: int | None
    tried: tuple[tuple[int, int | None, bool], ...]
    predicted_limit: int | None = None


def largest_fitting_batch(device_bytes: Callable[[int], int], capacity: int, start: int, *,
                          max_compiles: int = 3, known: dict[int, int] | None = None,
                          floor_bytes: Callable[[int], int] | None = None) -> SearchResult:
    """Searches per-device batch sizes >= 1.

    Args:
      device_bytes: per-device batch -> bytes one device needs (compiles the program).
      capacity: bytes one device has (HBM).
      start: the configured per-device batch.
      max_compiles: calls of ``device_bytes`` allowed (sizes in ``known`` are free).
      known: per-device batch -> bytes already measured.
      floor_bytes: a cheap lower bound of ``device_bytes`` (the arguments' bytes): a size
        whose bound exceeds ``capacity`` is refused without compiling.
    """
    measured = dict(known or {})
    tried: list[tuple[int, int | None, bool]] = []
    budget = [max_compiles]

    def fits(batch: int) -> bool | None:
        if batch in measured:
            value = measured[batch]
        elif floor_bytes is not None and floor_bytes(batch) > capacity:
            tried.append((batch, None, False))
            return False
        elif budget[0] <= 0:
            return None
        else:
            budget[0] -= 1
            value = measured[batch] = device_bytes(batch)
        tried.append((batch, value, value <= capacity))
        return value <= capacity

    def predicted() -> int | None:
        points = sorted(measured.items())
        if len(points) < 2 or points[-1][1] <= points[0][1]:
            return None
        (b0, v0), (b1, v1) = points[0], points[-1]
        slope = (v1 - v0) / (b1 - b0)
        return int((capacity - (v0 - slope * b0)) / slope)

    def result() -> SearchResult:
        good = [b for b, v in measured.items() if v <= capacity]
        bad = [b for b, v in measured.items() if v > capacity] + [b for b, v, _ in tried if v is None]
        return SearchResult(max(good) if good else None, min(bad) if bad else None, tuple(tried),
                            predicted())

    if not fits(start):
        batch = start
        while batch > 1 and fits(batch := max(1, batch // 2)) is False:
            pass
        return result()
    for factor in (GROWTH, 2):  # 2x only if 4x was refused before compiling
        fits(start * factor)
        if start * factor in measured:
            break
    points = sorted((b, v) for b, v in measured.items())
    if len(points) >= 2:
        (b0, v0), (b1, v1) = points[0], points[-1]
        slope = (v1 - v0) / (b1 - b0)
        if slope > 0:
            candidate = int((HEADROOM * capacity - (v0 - slope * b0)) / slope)
            lower = max(b for b, v in measured.items() if v <= capacity)
            while candidate > lower:
                verdict = fits(candidate)
                if verdict is None or verdict:
                    break
                candidate = int(candidate * 0.9)
    return result()
