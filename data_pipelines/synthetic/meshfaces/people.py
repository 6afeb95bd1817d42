"""MeshFaces people: per-person shape coefficients and appearance draws.

A person is a row of random numbers; ``head.py`` turns the shape coefficients into a 3D
head and ``texture.py`` the appearance draws into an albedo map. Person ``i`` of a seed is
drawn from its own stream, so the first people of a seed do not depend on ``count``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Standard-normal coefficients (clipped to +-2.5) of the smooth shape modes, in head.py.
SHAPE_FIELDS: tuple[str, ...] = (
    "face_width", "face_length", "jaw_width", "chin", "nose_length", "nose_protrusion",
    "nose_width", "cheeks", "lip_upper", "lip_lower", "mouth_width", "eye_spacing",
    "eye_size", "brow_ridge", "head_depth", "ears", "bump_x", "bump_y", "bump_amplitude",
    "forehead",
)
# Uniform [0, 1) appearance draws, read by texture.py (and head.py for the hair volume).
LOOK_FIELDS: tuple[str, ...] = (
    "skin_tone", "blotches", "freckles", "moles", "brow_dark", "brow_thick", "brow_arch",
    "hair_tone", "hairline", "hair_style", "hair_volume", "iris_tone", "lip_tone", "stubble",
    "beard", "age", "cloth_tone", "cloth_pattern", "gaze_x", "gaze_y",
)
SHAPE = {name: i for i, name in enumerate(SHAPE_FIELDS)}
LOOK = {name: i for i, name in enumerate(LOOK_FIELDS)}
_PEOPLE_SALT = 0x4D455348  # "MESH"


@dataclasses.dataclass(frozen=True)
class People:
    """Struct of arrays, one row per person.

    shape: float32 [N, len(SHAPE_FIELDS)] standard-normal shape coefficients.
    look: float32 [N, len(LOOK_FIELDS)] uniform appearance draws in [0, 1).
    key: int64 [N] seed of the person's texture noise (pores, blotches, hair strands).
    """

    shape: np.ndarray
    look: np.ndarray
    key: np.ndarray

    def __len__(self) -> int:
        return len(self.key)

    def take(self, rows: np.ndarray) -> "People":
        rows = np.asarray(rows, np.int64)
        return People(self.shape[rows], self.look[rows], self.key[rows])

    def shape_of(self, row: int, field: str) -> float:
        return float(self.shape[row, SHAPE[field]])

    def look_of(self, row: int, field: str) -> float:
        return float(self.look[row, LOOK[field]])


def sample_people(seed: int, count: int) -> People:
    """``count`` people, deterministic per ``seed`` (person i from stream (seed, i))."""
    if count < 0:
        raise ValueError(f"sample_people: count must be >= 0, got {count}")
    shapes, looks, keys = [], [], []
    for i in range(count):
        rng = np.random.default_rng(np.random.SeedSequence([seed, _PEOPLE_SALT, i]))
        shapes.append(np.clip(rng.standard_normal(len(SHAPE_FIELDS)), -2.5, 2.5))
        looks.append(rng.random(len(LOOK_FIELDS)))
        keys.append(rng.integers(2**62))
    return People(np.asarray(shapes, np.float32).reshape(count, len(SHAPE_FIELDS)),
                  np.asarray(looks, np.float32).reshape(count, len(LOOK_FIELDS)),
                  np.asarray(keys, np.int64))
