"""WarpFaces scenes: framing, light, camera and background of one clip.

A scene is drawn once per clip; all frames of the clip share it, and only the tiny
per-frame jitter and the sensor noise (drawn in ``render`` from the seed and the row)
differ between them. Positions and lengths are fractions of the frame side, so a scene
looks the same at every output size.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SCENE_FIELDS: tuple[str, ...] = (
    "face_height",        # crown-to-chin height / frame side
    "centre_x",           # head centre, frame fractions from the frame centre (+ right)
    "centre_y",           # (+ down)
    "roll",               # in-plane head rotation, radians (+ clockwise on screen)
    "gain",               # exposure multiplier
    "light_azimuth",      # direction the key light comes from in the image plane, radians
    "light_polar",        # key light angle off the camera axis, radians
    "light_directional",  # key light share of the light (the rest is ambient)
    "gradient",           # relative brightness change across the frame (linear)
    "gradient_angle",     # radians
    "vignette",           # brightness lost at the frame corners
    "noise_std",          # Gaussian sensor noise std, gray levels
    "blur",               # optical blur std, fraction of the frame side
    "jitter",             # per-frame head translation std, fraction of the frame side
    "background_tone",
    "clutter",            # how many objects the background holds (0: a plain wall)
    "background_seed",
)


@dataclasses.dataclass(frozen=True)
class Scenes:
    """Scenes as a struct of arrays: ``values[k]`` is float64 [n] for each SCENE_FIELDS k."""

    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.values["face_height"].shape[0])

    def take(self, rows: np.ndarray | list[int]) -> "Scenes":
        rows = np.asarray(rows, np.int64)
        return Scenes({k: v[rows] for k, v in self.values.items()})

    def matrix(self) -> np.ndarray:
        """float64 [n, S]: every field as a column (equal rows = the same scene)."""
        return np.stack([np.asarray(self.values[k], np.float64) for k in SCENE_FIELDS], 1)

    def row(self, i: int) -> dict[str, float]:
        return {k: float(v[i]) for k, v in self.values.items()}


@dataclasses.dataclass(frozen=True)
class SceneStyle:
    """Ranges a dataset's scenes are drawn from: (low, high) uniform unless said.

    offset_std: std of the head centre offset (frame fractions, clipped at 2.5 std);
    roll_max: largest |roll| in radians (uniform); jitter: per-frame translation std.
    """

    face_height: tuple[float, float]
    offset_std: float
    roll_max: float
    gain: tuple[float, float]
    light_polar: tuple[float, float]
    light_directional: tuple[float, float]
    gradient: tuple[float, float]
    vignette: tuple[float, float]
    noise_std: tuple[float, float]
    blur: tuple[float, float]
    jitter: float
    background_tone: tuple[float, float]
    clutter: tuple[float, float]


# SMIC-HS: far, dim, noisy and a little soft (a high-speed camera); CASME II: close and
# evenly lit in front of a white wall; SAMM: large faces under a strong side light.
# None: a talking-face video, moderate everything. Per-frame jitter stays at ~0.1 px at
# 64 px: micro-expressions move ~0.5-1 px, and these textured faces (skin, hair strands)
# turn any head motion into differences all over the head, so more would drown them.
DATASET_STYLES: dict[str | None, SceneStyle] = {
    "smic": SceneStyle(face_height=(0.52, 0.68), offset_std=0.045, roll_max=0.12,
                       gain=(0.58, 0.8), light_polar=(0.3, 0.8), light_directional=(0.25, 0.5),
                       gradient=(0.0, 0.25), vignette=(0.1, 0.3), noise_std=(0.008, 0.014),
                       blur=(0.003, 0.006), jitter=0.0016, background_tone=(0.25, 0.55),
                       clutter=(0.4, 1.0)),
    "casme2": SceneStyle(face_height=(0.7, 0.84), offset_std=0.03, roll_max=0.07,
                         gain=(0.95, 1.1), light_polar=(0.1, 0.4), light_directional=(0.1, 0.25),
                         gradient=(0.0, 0.08), vignette=(0.0, 0.08), noise_std=(0.006, 0.012),
                         blur=(0.002, 0.005), jitter=0.0014, background_tone=(0.75, 0.92),
                         clutter=(0.0, 0.2)),
    "samm": SceneStyle(face_height=(0.78, 0.9), offset_std=0.04, roll_max=0.1,
                       gain=(0.8, 1.0), light_polar=(0.7, 1.1), light_directional=(0.45, 0.7),
                       gradient=(0.25, 0.5), vignette=(0.05, 0.2), noise_std=(0.008, 0.013),
                       blur=(0.002, 0.006), jitter=0.0014, background_tone=(0.4, 0.6),
                       clutter=(0.0, 0.3)),
    None: SceneStyle(face_height=(0.52, 0.88), offset_std=0.07, roll_max=0.26,
                     gain=(0.75, 1.1), light_polar=(0.2, 0.9), light_directional=(0.15, 0.55),
                     gradient=(0.0, 0.3), vignette=(0.0, 0.25), noise_std=(0.005, 0.02),
                     blur=(0.0, 0.008), jitter=0.0025, background_tone=(0.25, 0.85),
                     clutter=(0.0, 1.0)),
}


def sample_scenes(rng: np.random.Generator, count: int, dataset: str | None) -> Scenes:
    """``count`` scenes in the style of ``dataset`` (a :data:`DATASET_STYLES` key)."""
    if dataset not in DATASET_STYLES:
        raise ValueError(f"unknown dataset style {dataset!r}; choose from "
                         f"{', '.join(str(k) for k in DATASET_STYLES)}")
    style = DATASET_STYLES[dataset]

    def uniform(bounds: tuple[float, float]) -> np.ndarray:
        return rng.uniform(bounds[0], bounds[1], count)

    offset = np.clip(rng.normal(0.0, style.offset_std, (2, count)),
                     -2.5 * style.offset_std, 2.5 * style.offset_std)
    values = {
        "face_height": uniform(style.face_height),
        "centre_x": offset[0],
        # faces sit a little high in a frame (room for the neck), as in most recordings
        "centre_y": offset[1] - 0.02,
        "roll": rng.uniform(-style.roll_max, style.roll_max, count),
        "gain": uniform(style.gain),
        "light_azimuth": rng.uniform(-np.pi, np.pi, count),
        "light_polar": uniform(style.light_polar),
        "light_directional": uniform(style.light_directional),
        "gradient": uniform(style.gradient),
        "gradient_angle": rng.uniform(-np.pi, np.pi, count),
        "vignette": uniform(style.vignette),
        "noise_std": uniform(style.noise_std),
        "blur": uniform(style.blur),
        "jitter": np.full(count, style.jitter),
        "background_tone": uniform(style.background_tone),
        "clutter": uniform(style.clutter),
        "background_seed": rng.integers(1, 2**31, count).astype(np.float64),
    }
    return Scenes(values)


def clean_scenes(count: int) -> Scenes:
    """Centred, upright faces under soft frontal light; no gradient, jitter or noise."""
    constant = {"face_height": 0.78, "centre_x": 0.0, "centre_y": 0.0, "roll": 0.0,
                "gain": 1.0, "light_azimuth": -np.pi / 2, "light_polar": 0.25,
                "light_directional": 0.2, "gradient": 0.0, "gradient_angle": 0.0,
                "vignette": 0.0, "noise_std": 0.0, "blur": 0.0, "jitter": 0.0,
                "background_tone": 0.6, "clutter": 0.0, "background_seed": 0.0}
    return Scenes({k: np.full(count, float(constant[k])) for k in SCENE_FIELDS})
