"""Pair augmentations that teach the tokenizer what to ignore and what to encode.

A (source, driving) pair of one clip differs by the face's motion; everything else about
the pair (how the face is framed, lit and textured) is what the action tokens must not
depend on. :func:`augment_pair` draws, per pair:

- **framing**: one similarity transform (scale, rotation, shift) applied to both frames,
  so the face sits at another place and size in the frame, as faces do in other
  recordings (and in the frames another renderer draws);
- **appearance**: one photometric transform for both frames (contrast, gamma, a light
  gradient, blur), and fresh sensor noise per frame;
- **local motion**: with probability ``local_motion``, the driving frame is replaced by the
  source warped with a smooth random displacement field (a few Gaussian bumps, each moving
  a region by up to ``local_motion_px`` pixels), on the face or, with probability
  ``texture``, on a procedural texture instead of the face. The tokens then have to say
  where and how the image moved, whatever moved.

Every draw comes from the per-pair generator Grain's ``random_map`` hands over, so the
stream is the same with any number of workers and resumes exactly.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class PairAugment:
    """Magnitudes of :func:`augment_pair` (all 0 = the pair unchanged).

    framing_scale: log-uniform range (low, high) of the zoom. framing_shift: largest shift
    as a fraction of the frame. framing_rotation: largest rotation in radians.
    contrast: largest |log| contrast factor. gamma: largest |log| gamma. light: largest
    brightness change across the frame from a linear gradient. blur: largest Gaussian blur
    sigma in pixels. noise: largest per-frame sensor noise std (gray levels).
    local_motion: probability that the driving frame is a random warp of the source.
    local_motion_px: largest displacement of one bump, in pixels. texture: probability that
    such a pair moves a procedural texture instead of the face.
    """

    framing_scale: tuple[float, float] = (1.0, 1.0)
    framing_shift: float = 0.0
    framing_rotation: float = 0.0
    contrast: float = 0.0
    gamma: float = 0.0
    light: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    local_motion: float = 0.0
    local_motion_px: float = 2.0
    texture: float = 0.0

    def __post_init__(self):
        low, high = self.framing_scale
        if not 0 < low <= high:
            raise ValueError(f"framing_scale must be (low, high) with 0 < low <= high, "
                             f"got {self.framing_scale}")
        for name in ("local_motion", "texture"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability, got {getattr(self, name)}")
        for name in ("framing_shift", "framing_rotation", "contrast", "gamma", "light", "blur",
                     "noise", "local_motion_px"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def is_identity(self) -> bool:
        return self == PairAugment()


def _similarity(rng: np.random.Generator, size: int, augment: PairAugment) -> np.ndarray:
    """A 2x3 affine matrix about the frame centre: zoom, rotation, shift."""
    low, high = augment.framing_scale
    scale = math.exp(rng.uniform(math.log(low), math.log(high)))
    angle = rng.uniform(-augment.framing_rotation, augment.framing_rotation)
    shift = rng.uniform(-augment.framing_shift, augment.framing_shift, 2) * size
    centre = (size - 1) / 2.0
    matrix = cv2.getRotationMatrix2D((centre, centre), math.degrees(angle), scale)
    matrix[:, 2] += shift
    return matrix


def _warp_affine(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    size = image.shape[0]
    warped = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    return warped.reshape(image.shape)


def smooth_displacement(rng: np.random.Generator, size: int, max_px: float,
                        num_bumps: tuple[int, int] = (1, 4)) -> np.ndarray:
    """float32 [size, size, 2] (dy, dx) field: 1-3 Gaussian bumps at random places, each
    moving its region by a random vector of length up to ``max_px`` (log-uniform from
    ``max_px / 16``, so small motions are as common as large ones)."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.zeros((size, size, 2), np.float32)
    for _ in range(int(rng.integers(*num_bumps))):
        cy, cx = rng.uniform(0.1 * size, 0.9 * size, 2)
        sigma = rng.uniform(0.04, 0.15) * size
        length = max_px * math.exp(rng.uniform(math.log(1 / 16), 0.0))
        direction = rng.uniform(0, 2 * math.pi)
        weight = np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * sigma ** 2))
        field[..., 0] += weight * length * math.sin(direction)
        field[..., 1] += weight * length * math.cos(direction)
    return field


def warp_by_field(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Backward warp: output[y, x] = image[y - dy, x - dx] (the region moves by the field)."""
    size = image.shape[0]
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    warped = cv2.remap(image, cols - field[..., 1], rows - field[..., 0], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT_101)
    return warped.reshape(image.shape)


def procedural_texture(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """float32 [size, size, channels] in [0, 1]: multi-scale value noise with a few dark and
    bright blobs and strokes, a stand-in for "anything that can move"."""
    image = np.zeros((size, size), np.float32)
    for octave in range(4):
        cells = 2 ** (octave + 1)
        grid = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
        image += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) / (octave + 1)
    for _ in range(int(rng.integers(2, 8))):
        centre = tuple(int(v) for v in rng.uniform(0, size, 2))
        axes = tuple(int(v) for v in rng.uniform(1, size / 5, 2))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    float(rng.uniform(-1.5, 1.5)), -1, lineType=cv2.LINE_AA)
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
    image = 0.15 + 0.7 * image
    return np.repeat(image[..., None], channels, axis=-1).astype(np.float32)


def _photometric(pair: np.ndarray, rng: np.random.Generator, augment: PairAugment) -> np.ndarray:
    """One contrast, gamma, light gradient and blur for both frames [2, H, W, C]."""
    size = pair.shape[1]
    if augment.contrast:
        mean = pair.mean()
        pair = mean + (pair - mean) * math.exp(rng.uniform(-augment.contrast, augment.contrast))
    if augment.gamma:
        pair = np.clip(pair, 0.0, 1.0) ** math.exp(rng.uniform(-augment.gamma, augment.gamma))
    if augment.light:
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        gradient = (math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None])
        pair = pair * (1.0 + rng.uniform(0, augment.light) * gradient)[None, :, :, None]
    if augment.blur:
        sigma = rng.uniform(0, augment.blur)
        if sigma > 0.3:
            pair = np.stack([cv2.GaussianBlur(frame, (0, 0), sigma).reshape(frame.shape)
                             for frame in pair])
    return pair


def augment_pair(pair: np.ndarray, rng: np.random.Generator, augment: PairAugment) -> np.ndarray:
    """float32 [2, H, W, C] (source, driving) in [0, 1] -> the augmented pair (module doc)."""
    if augment.is_identity:
        return pair
    size, channels = pair.shape[1], pair.shape[3]
    pair = np.array(pair, np.float32)
    if rng.random() < augment.local_motion:
        base = (procedural_texture(rng, size, channels) if rng.random() < augment.texture
                else pair[0])
        field = smooth_displacement(rng, size, augment.local_motion_px)
        pair = np.stack([base, warp_by_field(base, field)])
    if (augment.framing_scale != (1.0, 1.0) or augment.framing_shift
            or augment.framing_rotation):
        matrix = _similarity(rng, size, augment)
        pair = np.stack([_warp_affine(frame, matrix) for frame in pair])
    pair = _photometric(pair, rng, augment)
    if augment.noise:
        std = rng.uniform(0, augment.noise)
        pair = pair + std * rng.standard_normal(pair.shape).astype(np.float32)
    return np.clip(pair, 0.0, 1.0).astype(np.float32)
