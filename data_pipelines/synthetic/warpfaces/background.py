"""WarpFaces backgrounds: a wall with its own texture and, per scene, some clutter.

Backgrounds live in frame coordinates (fractions of the frame side, origin at the frame
centre) and stay still while the head jitters, as a camera on a tripod sees them.
"""

from __future__ import annotations

import numpy as np

from data_pipelines.synthetic.warpfaces.texture import lattice_noise, smoothstep, soft_step

_BACKGROUND_SALT = 0xB6
_EXTENT = (-0.75, 0.75, -0.75, 0.75)


def frame_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) float64 [size, size]: pixel centres in frame fractions, origin at the centre."""
    t = (np.arange(size) + 0.5) / size - 0.5
    return np.meshgrid(t, t)


def background(scene: dict, size: int) -> np.ndarray:
    """float32 [size, size]: the scene's wall and objects, before the scene's light."""
    x, y = frame_grid(size)
    rng = np.random.default_rng([_BACKGROUND_SALT, int(scene["background_seed"])])
    tone = scene["background_tone"]
    wall = tone * (1.0 + 0.12 * lattice_noise(rng, x, y, 0.35, _EXTENT)
                   + 0.04 * lattice_noise(rng, x, y, 0.04, _EXTENT)
                   + 0.06 * (y * rng.uniform(-1, 1) + x * rng.uniform(-1, 1)))
    edge = 0.6 / size
    for _ in range(int(rng.poisson(6.0 * scene["clutter"]))):
        kind = rng.integers(3)
        cx, cy = rng.uniform(-0.6, 0.6, 2)
        w, h = rng.uniform(0.05, 0.45, 2)
        object_tone = np.clip(tone + rng.uniform(-0.45, 0.35), 0.03, 0.97)
        if kind == 0:     # a box, picture frame or shelf
            mask = soft_step(w - np.abs(x - cx), edge) * soft_step(h - np.abs(y - cy), edge)
        elif kind == 1:   # a round object
            mask = soft_step(1.0 - np.hypot((x - cx) / w, (y - cy) / h), edge / max(w, h))
        else:             # a door frame or pole: a long vertical band
            mask = soft_step(0.2 * w - np.abs(x - cx), edge)
        texture = 1.0 + 0.08 * lattice_noise(rng, x, y, rng.uniform(0.02, 0.2), _EXTENT)
        shading = 1.0 + 0.15 * (x - cx) * rng.uniform(-2, 2)
        wall = wall * (1 - mask) + object_tone * texture * shading * mask
    return np.clip(wall, 0.0, 1.0).astype(np.float32)


def lighting_field(scene: dict, size: int) -> np.ndarray:
    """float32 [size, size]: the scene's exposure gain times its linear light gradient
    and vignette (applied to face and background alike)."""
    x, y = frame_grid(size)
    angle = scene["gradient_angle"]
    gradient = 1.0 + scene["gradient"] * (x * np.cos(angle) + y * np.sin(angle))
    vignette = 1.0 - scene["vignette"] * smoothstep((np.hypot(x, y) - 0.2) / 0.51)
    return (scene["gain"] * gradient * vignette).astype(np.float32)
