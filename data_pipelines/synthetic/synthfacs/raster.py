"""Vectorised anti-aliased rasterisation primitives for SynthFACS.

Every primitive returns a *signed distance* (positive inside) in face units, evaluated on a
batch of pixel grids ``X, Y`` ([N, h, w], face units); ``coverage(sd, pixel)`` turns it into
an alpha in [0, 1] with a one-pixel linear ramp, which is analytic box-filter anti-aliasing
to first order. Curves through landmarks are polynomials y = f(x) (Lagrange through the
points); their distance is the vertical distance divided by sqrt(1 + f'(x)^2).
Shapes broadcast: per-frame parameters are [N, 1, 1].
"""

from __future__ import annotations

import numpy as np


def coverage(signed_distance: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """Alpha in [0, 1]: 1 inside, 0 outside, a linear ramp one pixel wide across the edge."""
    alpha = signed_distance / pixel
    alpha += 0.5
    return np.clip(alpha, 0.0, 1.0, out=alpha)


def blend(canvas: np.ndarray, colour, alpha: np.ndarray) -> np.ndarray:
    """``canvas`` painted with ``colour`` at opacity ``alpha`` (the "over" operator)."""
    painted = alpha * (colour - canvas)
    painted += canvas  # in place: one temporary array fewer
    return painted


def ellipse_sd(X, Y, cx, cy, rx, ry) -> np.ndarray:
    """Signed distance to an axis-aligned ellipse, to first order at the edge.

    With f = (x/rx)^2 + (y/ry)^2 - 1 the distance is about -f / |grad f|, which needs one
    square root and is exact on the ellipse (where the anti-aliasing ramp lives).
    """
    qx = X - cx
    qx /= rx
    qy = Y - cy
    qy /= ry
    gradient = np.sqrt(np.square(qx / rx) + np.square(qy / ry))
    gradient += 1e-6
    gradient *= 2.0
    qx *= qx
    qy *= qy
    inside = 1.0 - qx
    inside -= qy
    inside /= gradient
    return inside


def blob(X, Y, cx, cy, sx, sy) -> np.ndarray:
    """A soft Gaussian bump of height 1 (used for shading, not for edges)."""
    return np.exp(-(((X - cx) / sx) ** 2 + ((Y - cy) / sy) ** 2))


class Curve:
    """y = f(x) through K points per frame: [N, K] xs (distinct) and ys.

    The polynomial is in (x - x_mid) so the Vandermonde solve stays well conditioned.
    """

    def __init__(self, xs: np.ndarray, ys: np.ndarray):
        xs = np.asarray(xs, np.float64)
        ys = np.asarray(ys, np.float64)
        self.x_mid = xs.mean(axis=1)
        local = xs - self.x_mid[:, None]
        degree = xs.shape[1]
        vandermonde = local[:, :, None] ** np.arange(degree)[None, None, :]
        # coefficients [N, K], lowest power first
        self.coefficients = np.linalg.solve(vandermonde, ys[:, :, None])[:, :, 0]

    def shifted(self, dy) -> "Curve":
        """The same curve moved by ``dy`` (scalar or [N, 1, 1]) along y."""
        moved = object.__new__(Curve)
        moved.x_mid = self.x_mid
        moved.coefficients = self.coefficients.copy()
        moved.coefficients[:, 0] += np.reshape(np.asarray(dy, np.float64), (-1,))
        return moved

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f(X), f'(X)) for X [N, h, w] by Horner's rule."""
        local = X - self.x_mid[:, None, None].astype(np.float32)
        c = self.coefficients.astype(np.float32)[:, :, None, None]
        value, slope = c[:, -1], np.float32(0.0)
        for k in range(c.shape[1] - 2, -1, -1):
            slope = slope * local + value
            value = value * local + c[:, k]
        return value, slope


class SplitCurve:
    """Two curves joined at ``x_split`` [N]: ``left`` for x < x_split, ``right`` after.

    A cusp at the join is allowed (the cupid's bow of the upper lip).
    """

    def __init__(self, left: Curve, right: Curve, x_split: np.ndarray):
        self.left, self.right = left, right
        self.x_split = np.asarray(x_split, np.float32)[:, None, None]

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        on_left = X < self.x_split
        (left_value, left_slope), (right_value, right_slope) = self.left(X), self.right(X)
        return np.where(on_left, left_value, right_value), np.where(on_left, left_slope, right_slope)


def below_curve_sd(X, Y, curve: Curve | SplitCurve) -> np.ndarray:
    """Signed distance of the region below (larger y than) the curve."""
    value, slope = curve(X)
    return (Y - value) / np.sqrt(1.0 + slope * slope)


def band_sd(X, Y, top: Curve | SplitCurve, bottom: Curve | SplitCurve, x_left, x_right) -> np.ndarray:
    """Region between two curves and two verticals (eyes, lips, mouth opening)."""
    sd_top = below_curve_sd(X, Y, top)
    sd_bottom = -below_curve_sd(X, Y, bottom)
    sd_sides = np.minimum(X - x_left, x_right - X)
    return np.minimum(np.minimum(sd_top, sd_bottom), sd_sides)


def stroke_sd(X, Y, curve: Curve, half_width, x_left, x_right, taper: float = 0.0) -> np.ndarray:
    """A thick curve between ``x_left`` and ``x_right``; ``taper`` thins it to the ends.

    ``half_width`` may be [N, 1, 1]; with taper t the half-width at the ends is (1 - t) times
    the middle's.
    """
    distance = np.abs(below_curve_sd(X, Y, curve))
    if taper:
        middle = 0.5 * (x_left + x_right)
        half_length = 0.5 * np.abs(x_right - x_left) + 1e-6
        half_width = half_width * (1.0 - taper * np.clip(((X - middle) / half_length) ** 2, 0, 1))
    sd_sides = np.minimum(X - x_left, x_right - X)
    return np.minimum(half_width - distance, sd_sides)


def stripes(values: np.ndarray, period: float, sharpness: int = 4) -> np.ndarray:
    """Thin periodic lines (wrinkles): 1 on the line, falling to 0 between lines."""
    wave = 0.5 + 0.5 * np.cos(values * (2 * np.pi / period))
    lines = wave
    for _ in range(sharpness - 1):  # repeated products: much faster than np.power
        lines = lines * wave
    return lines
