"""Texture primitives of WarpFaces: value noise, hair-like strokes and soft lines.

Noise is defined in continuous coordinates (face units or frame fractions) by a random
lattice whose size depends only on the extent and the lattice spacing, never on the
sampling grid: the same person has the same pores and blotches at every resolution.
"""

from __future__ import annotations

import cv2
import numpy as np


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a C1 ramp in between (any shape)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def soft_step(x: np.ndarray, width: float) -> np.ndarray:
    """A soft edge: 0 for x << 0, 0.5 at 0, 1 for x >> 0 over about ``width``."""
    return smoothstep(0.5 + np.asarray(x) / (2.0 * width))


def gaussian(u: np.ndarray, v: np.ndarray, centre, sigma_u: float, sigma_v: float) -> np.ndarray:
    """exp(-((u - cu)^2 / su^2 + (v - cv)^2 / sv^2) / 2) over any grid."""
    return np.exp(-0.5 * (np.square((u - centre[0]) / sigma_u)
                          + np.square((v - centre[1]) / sigma_v)))


def lattice_noise(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, spacing: float,
                  extent: tuple[float, float, float, float]) -> np.ndarray:
    """Smooth value noise (std ~0.85, mean ~0) at points (u, v), float32 of their shape.

    A lattice of N(0, 1) values every ``spacing`` over ``extent`` = (u0, u1, v0, v1) is
    interpolated bicubically; points outside the extent see the reflected lattice.
    """
    cols = int(np.ceil((extent[1] - extent[0]) / spacing)) + 4
    rows = int(np.ceil((extent[3] - extent[2]) / spacing)) + 4
    lattice = rng.standard_normal((rows, cols)).astype(np.float32)
    map_x = ((u - extent[0]) / spacing + 1.5).astype(np.float32)
    map_y = ((v - extent[2]) / spacing + 1.5).astype(np.float32)
    return cv2.remap(lattice, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def fractal_noise(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, spacing: float,
                  extent: tuple[float, float, float, float], octaves: int,
                  persistence: float = 0.55) -> np.ndarray:
    """Sum of ``octaves`` lattice noises, each half the spacing of the last and
    ``persistence`` times its amplitude; normalised to std ~0.85."""
    total = np.zeros(np.shape(u), np.float32)
    amplitude, norm = 1.0, 0.0
    for _ in range(octaves):
        total += amplitude * lattice_noise(rng, u, v, spacing, extent)
        norm += amplitude * amplitude
        amplitude *= persistence
        spacing *= 0.5
    return total / np.float32(np.sqrt(norm))


def draw_strokes(shape: tuple[int, int], strokes: np.ndarray, tones: np.ndarray,
                 thickness: int = 1) -> np.ndarray:
    """Antialiased polylines on a blank float32 image of ``shape``, values in [0, 1].

    strokes: float [S, P, 2] polylines in pixel coordinates (x, y); tones: [S] in [0, 1]
    (later strokes overwrite earlier ones where they cross, like hairs on top).
    """
    canvas = np.zeros(shape, np.uint8)
    if len(strokes) == 0:
        return canvas.astype(np.float32)
    shift = 3  # sub-pixel precision: 1/8 px
    points = np.round(np.asarray(strokes) * (1 << shift)).astype(np.int32)
    levels = np.clip(np.round(np.asarray(tones) * 4), 1, 4).astype(int)
    for level in range(1, 5):  # one call per tone level; cv2 draws many lines at once
        chosen = [p for p, lv in zip(points, levels) if lv == level]
        if chosen:
            cv2.polylines(canvas, chosen, False, int(level * 255 // 4), thickness,
                          cv2.LINE_AA, shift)
    return canvas.astype(np.float32) / 255.0


def segment_distance(u: np.ndarray, v: np.ndarray, p0, p1) -> np.ndarray:
    """Distance from each point (u, v) to the segment p0-p1."""
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    length2 = max(du * du + dv * dv, 1e-12)
    t = np.clip(((u - p0[0]) * du + (v - p0[1]) * dv) / length2, 0.0, 1.0)
    return np.hypot(u - (p0[0] + t * du), v - (p0[1] + t * dv))


def polyline_line(u: np.ndarray, v: np.ndarray, points, width: float) -> np.ndarray:
    """A soft line of Gaussian profile (std ``width``) along a polyline, peak 1.

    points: [P, 2] vertices. The profile tapers to 0 over the first and last segments'
    ends so that wrinkles fade out instead of ending bluntly.
    """
    points = np.asarray(points, np.float64)
    distance = np.full(np.shape(u), np.inf)
    for p0, p1 in zip(points[:-1], points[1:]):
        distance = np.minimum(distance, segment_distance(u, v, p0, p1))
    ends = np.minimum(np.hypot(u - points[0, 0], v - points[0, 1]),
                      np.hypot(u - points[-1, 0], v - points[-1, 1]))
    span = np.hypot(*(points[-1] - points[0])) + 1e-9
    taper = smoothstep(ends / (0.3 * span))
    return np.exp(-0.5 * np.square(distance / width)) * taper


def arc(centre, radius_u: float, radius_v: float, start: float, stop: float,
        count: int = 9) -> np.ndarray:
    """[count, 2] points on an elliptic arc from angle ``start`` to ``stop`` (radians,
    0 = +u, pi/2 = +v i.e. downwards)."""
    angles = np.linspace(start, stop, count)
    return np.stack([centre[0] + radius_u * np.cos(angles),
                     centre[1] + radius_v * np.sin(angles)], 1)
