"""MeshFaces scenes: camera, framing, light, sensor and background of each clip.

A scene row fixes everything but the face: head pose (yaw, pitch, roll), where the face
sits in the frame and how big it is, the perspective (camera distance), a directional key
light with ambient and fill, exposure, sensor noise and blur, the frame-to-frame jitter
magnitudes, and a seeded background (gradient, low-frequency texture, clutter). Each
dataset has its own style; one clip's frames share one scene.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

SCENE_FIELDS: tuple[str, ...] = (
    "yaw", "pitch", "roll",            # degrees (positive yaw: the face turns to image right)
    "centre_x", "centre_y",            # face centre in the frame, fractions of its size
    "face_height",                     # hairline to chin over frame height
    "distance",                        # camera distance in face heights (perspective)
    "light_azimuth", "light_elevation",  # degrees; 0, 0: light from the camera
    "light", "ambient", "fill", "specular",
    "gain",                            # exposure multiplier
    "noise",                           # Gaussian sensor noise std, gray levels
    "blur",                            # optical blur std, output pixels
    "jitter_px", "jitter_deg",         # per-frame head translation / rotation std
    "bg_level", "bg_contrast", "bg_clutter",  # backdrop gray, gradient, clutter (0-1)
    "bg_blur",                         # backdrop defocus std, 1/64ths of the frame
)
FIELD = {name: i for i, name in enumerate(SCENE_FIELDS)}

# Uniform ranges per dataset. SMIC: far, dim, noisy and soft; CASME II: close and evenly
# lit; SAMM: big face, strong side light in a dark studio; talking video (None): any pose
# up to 20 degrees, any framing. In ME clips each frame's head is jittered by 0.05-0.07 px
# (std per axis at 64 px) and 0.02-0.04 degrees, so consecutive frames differ by ~0.1 px:
# ME recordings are nearly still, and more jitter drowns the micro-expressions (the
# pixel baseline's UF1 drops by ~0.05 with twice this jitter).
_ME_JITTER = {"jitter_px": (0.05, 0.07), "jitter_deg": (0.02, 0.04)}
STYLES: dict[str | None, dict[str, tuple[float, float]]] = {
    "casme2": {"yaw": (-12, 12), "pitch": (-10, 10), "roll": (-4, 4), "centre_x": (0.42, 0.58),
               "centre_y": (0.44, 0.56), "face_height": (0.62, 0.76), "distance": (3.5, 5.5),
               "light_azimuth": (-30, 30), "light_elevation": (10, 40), "light": (0.45, 0.6),
               "ambient": (0.45, 0.55), "fill": (0.1, 0.2), "specular": (0.2, 0.4),
               "gain": (0.95, 1.1), "noise": (0.003, 0.006), "blur": (0.0, 0.2),
               "bg_level": (0.45, 0.75), "bg_contrast": (0.05, 0.15), "bg_clutter": (0.0, 0.5),
               "bg_blur": (1.0, 3.0), **_ME_JITTER},
    "samm": {"yaw": (-15, 15), "pitch": (-12, 12), "roll": (-5, 5), "centre_x": (0.4, 0.6),
             "centre_y": (0.4, 0.6), "face_height": (0.68, 0.8), "distance": (3.5, 5.0),
             "light_azimuth": (50, 80), "light_elevation": (0, 35), "light": (0.75, 0.95),
             "ambient": (0.25, 0.35), "fill": (0.04, 0.1), "specular": (0.3, 0.5),
             "gain": (1.0, 1.15), "noise": (0.005, 0.008), "blur": (0.0, 0.3),
             "bg_level": (0.15, 0.4), "bg_contrast": (0.03, 0.1), "bg_clutter": (0.0, 0.3),
             "bg_blur": (2.0, 4.0), **_ME_JITTER},
    "smic": {"yaw": (-20, 20), "pitch": (-15, 15), "roll": (-6, 6), "centre_x": (0.36, 0.64),
             "centre_y": (0.38, 0.62), "face_height": (0.5, 0.62), "distance": (4.0, 7.0),
             "light_azimuth": (-50, 50), "light_elevation": (0, 40), "light": (0.35, 0.55),
             "ambient": (0.3, 0.4), "fill": (0.05, 0.15), "specular": (0.1, 0.25),
             "gain": (0.65, 0.8), "noise": (0.008, 0.012), "blur": (0.2, 0.4),
             "bg_level": (0.3, 0.7), "bg_contrast": (0.1, 0.25), "bg_clutter": (0.3, 1.0),
             "bg_blur": (0.5, 2.0), **_ME_JITTER},
    None: {"yaw": (-20, 20), "pitch": (-15, 15), "roll": (-8, 8), "centre_x": (0.38, 0.62),
           "centre_y": (0.38, 0.62), "face_height": (0.45, 0.8), "distance": (3.5, 6.0),
           "light_azimuth": (-60, 60), "light_elevation": (0, 45), "light": (0.4, 0.7),
           "ambient": (0.25, 0.45), "fill": (0.05, 0.2), "specular": (0.15, 0.35),
           "gain": (0.85, 1.1), "noise": (0.006, 0.015), "blur": (0.0, 0.4),
           "bg_level": (0.2, 0.8), "bg_contrast": (0.05, 0.25), "bg_clutter": (0.0, 1.0),
           "bg_blur": (0.5, 3.0), "jitter_px": (0.1, 0.2), "jitter_deg": (0.05, 0.15)},
}
CLEAN = {"yaw": 0.0, "pitch": 0.0, "roll": 0.0, "centre_x": 0.5, "centre_y": 0.5,
         "face_height": 0.62, "distance": 5.0, "light_azimuth": 0.0, "light_elevation": 15.0,
         "light": 0.5, "ambient": 0.5, "fill": 0.0, "specular": 0.2, "gain": 1.0, "noise": 0.0,
         "blur": 0.0, "jitter_px": 0.0, "jitter_deg": 0.0, "bg_level": 0.55, "bg_contrast": 0.0,
         "bg_clutter": 0.0, "bg_blur": 0.0}


@dataclasses.dataclass(frozen=True)
class Scenes:
    """Struct of arrays: values float32 [N, len(SCENE_FIELDS)], bg_seed int64 [N]."""

    values: np.ndarray
    bg_seed: np.ndarray

    def __len__(self) -> int:
        return len(self.bg_seed)

    def take(self, rows: np.ndarray) -> "Scenes":
        rows = np.asarray(rows, np.int64)
        return Scenes(self.values[rows], self.bg_seed[rows])

    def field(self, name: str) -> np.ndarray:
        return self.values[:, FIELD[name]]


def sample_scenes(rng: np.random.Generator, count: int, dataset: str | None) -> Scenes:
    """``count`` scenes in the style of ``dataset`` ("casme2", "samm", "smic", None)."""
    if dataset not in STYLES:
        raise ValueError(f"unknown dataset style {dataset!r}; choose from casme2, samm, smic "
                         "or None (talking-face video)")
    style = STYLES[dataset]
    values = np.empty((count, len(SCENE_FIELDS)), np.float32)
    for name, i in FIELD.items():
        low, high = style[name]
        values[:, i] = rng.uniform(low, high, count)
    if dataset == "samm":  # the side light comes from either side
        values[:, FIELD["light_azimuth"]] *= rng.choice([-1.0, 1.0], count)
    return Scenes(values, rng.integers(2**62, size=count, dtype=np.int64))


def clean_scenes(count: int) -> Scenes:
    """Frontal, centred, evenly lit, noise-free scenes on a plain background."""
    row = np.array([CLEAN[name] for name in SCENE_FIELDS], np.float32)
    return Scenes(np.tile(row, (count, 1)), np.zeros(count, np.int64))


def background(seed: int, size: int, level: float, contrast: float, clutter: float,
               blur: float) -> np.ndarray:
    """float32 [size, size] backdrop in [0, 1]: a gradient, low-frequency texture and (with
    ``clutter`` > 0) out-of-focus furniture-like rectangles and blobs, blurred by ``blur`` px."""
    image = np.full((size, size), level, np.float32)
    if contrast <= 0 and clutter <= 0:
        ramp = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        return image - 0.04 * ramp[:, None]  # a plain wall, lighter at the top
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB6]))
    ramp = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    image += 2 * contrast * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None])
    coarse = rng.standard_normal((5, 5)).astype(np.float32)
    image += 0.6 * contrast * cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(round(clutter * 7))):
        tone = float(np.clip(level + rng.normal(0, 0.25), 0.02, 0.98))
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        w, h = rng.uniform(0.08, 0.6, 2) * size
        if rng.uniform() < 0.7:
            cv2.rectangle(image, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), tone, -1)
        else:
            cv2.ellipse(image, (int(x0), int(y0)), (int(w / 2), int(h / 2)),
                        float(rng.uniform(0, 180)), 0, 360, tone, -1)
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    return np.clip(image, 0.0, 1.0)
