"""WarpFaces as a :class:`~data_pipelines.synthetic.me_sets.FaceRenderer`.

``render`` groups its rows by (person, scene): each group's neutral canvas is painted
once (``appearance.py``), then every frame is one backward warp of it. An output pixel
at frame point P shows the canvas at the skin point ``p`` with ``p + D(p) = S^-1(P)``:
``S`` is the scene's similarity (placement, scale, roll) with the frame's tiny jitter,
``D`` the sum of the frame's forward action-unit displacement fields (``actions.py``),
inverted by a few Newton steps. The eyeballs are warped by
``S`` alone, behind the warped lid aperture; between the lips, the upper and lower
sides are warped separately and the gap between them shows the mouth interior. Then the
frame gets its wrinkle shading, the background, the scene's light, blur and sensor noise.

Row ``r``'s random draws (jitter, noise) come from a generator seeded by ``(seed, r)``
only, so two renders of the same people, scenes and seed differ only by their actions.
"""

from __future__ import annotations

import functools
from typing import Callable

import cv2
import numpy as np

from data_pipelines.synthetic.facs import check_intensities
from data_pipelines.synthetic.warpfaces import actions
from data_pipelines.synthetic.warpfaces.appearance import Canvas, neutral_canvas
from data_pipelines.synthetic.warpfaces.background import background, frame_grid, lighting_field
from data_pipelines.synthetic.warpfaces.features import em_to_canvas_px
from data_pipelines.synthetic.warpfaces.people import (
    People, head_centre_v, keypoints, mouth_line_v, sample_people)
from data_pipelines.synthetic.warpfaces.scenes import Scenes, clean_scenes, sample_scenes

MIN_SIZE = 16
# Newton steps inverting a frame's displacement field: on the skin, every AU and every
# emotion prototype at intensity 1 is then inverted to within ~0.1 px at 64 px, most to a
# few hundredths (tested); micro-expressions, with a third of the slopes, far better.
INVERSION_STEPS = 3
# Safeguards where a field squeezes the skin towards a fold (inside the eye opening as the
# lids close, and at full intensity a few spots above the lips): the step's determinant
# is held at this floor and the step is at most this many times the current residual.
_MIN_DETERMINANT = 0.25
_MAX_STEP_RATIO = 3.0
# Canvas pixels per output pixel: the canvas is a little finer than the output and
# low-passed before the warp, so textures do not alias when they are sampled.
SUPERSAMPLE = 1.75
_ROW_SALT = 0x3A7F
_FIELD_SALT = 0x77E1


def face_to_frame(u: np.ndarray, v: np.ndarray, people: People, scenes: Scenes
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Frame points (x, y in fractions of the frame side, origin at the frame centre) of
    face points (u, v) [n, ...] (EM) under each row's scene, without jitter."""
    expand = (slice(None),) + (None,) * (np.ndim(u) - 1)
    scale = (scenes.values["face_height"] / people.params["head_height"])[expand]
    roll = scenes.values["roll"][expand]
    dv = v - head_centre_v(people)[expand]
    x = scenes.values["centre_x"][expand] + scale * (np.cos(roll) * u - np.sin(roll) * dv)
    y = scenes.values["centre_y"][expand] + scale * (np.sin(roll) * u + np.cos(roll) * dv)
    return x, y


def keypoints_px(people: People, scenes: Scenes, size: int) -> dict[str, np.ndarray]:
    """Neutral keypoints in output pixels (x, y; pixel centres at integer + 0.5):
    name -> float64 [n, 2], without the per-frame jitter."""
    out = {}
    for name, points in keypoints(people).items():
        x, y = face_to_frame(points[:, 0], points[:, 1], people, scenes)
        out[name] = np.stack([(x + 0.5) * size, (y + 0.5) * size], -1)
    return out


def _frame_to_face(x, y, person: dict, scene: dict, jitter: np.ndarray):
    """Inverse similarity: frame points -> face points (EM), with jitter (dx, dy, droll,
    dlog-scale) added to the scene's placement."""
    scale = scene["face_height"] / person["head_height"] * np.exp(jitter[3])
    roll = scene["roll"] + jitter[2]
    px, py = x - scene["centre_x"] - jitter[0], y - scene["centre_y"] - jitter[1]
    u = (np.cos(roll) * px + np.sin(roll) * py) / scale
    centre_v = person["chin_v"] - 0.5 * person["head_height"]
    v = (-np.sin(roll) * px + np.cos(roll) * py) / scale + centre_v
    return u, v


def _face_to_pixel(u, v, *, person: dict, scene: dict, size: int):
    """Face points (EM) -> output pixel coordinates (x, y; pixel centres at integers)
    under the scene's similarity without jitter (the grid action fields live on)."""
    scale = scene["face_height"] / person["head_height"]
    roll = scene["roll"]
    dv = v - (person["chin_v"] - 0.5 * person["head_height"])
    x = scene["centre_x"] + scale * (np.cos(roll) * u - np.sin(roll) * dv)
    y = scene["centre_y"] + scale * (np.sin(roll) * u + np.cos(roll) * dv)
    return (x + 0.5) * size - 0.5, (y + 0.5) * size - 0.5


def _light(scene: dict) -> dict:
    """The key light in face coordinates (the head's roll turns the light the other way)."""
    polar, azimuth = scene["light_polar"], scene["light_azimuth"] - scene["roll"]
    direction = (np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar))
    return {"direction": direction, "directional": scene["light_directional"]}


def _sample(image: np.ndarray, u: np.ndarray, v: np.ndarray, density: float) -> np.ndarray:
    x, y = em_to_canvas_px(u, v, density)
    return cv2.remap(image, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _render_group(person: dict, kp: dict, scene: dict, intensities: np.ndarray,
                  rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    """float32 [R, size, size]: the frames of one (person, scene) group."""
    px_per_em = scene["face_height"] * size / person["head_height"]
    density = float(np.clip(SUPERSAMPLE * px_per_em, 8.0, 96.0))
    canvas: Canvas = neutral_canvas(person, kp, _light(scene), density)
    low_pass = 0.45 * density / px_per_em
    layers = cv2.GaussianBlur(canvas.layers, (0, 0), low_pass)
    eyeball = cv2.GaussianBlur(canvas.eyeball, (0, 0), low_pass)
    x, y = frame_grid(size)
    base_u, base_v = _frame_to_face(x, y, person, scene, np.zeros(4))
    active = np.flatnonzero(intensities.max(axis=0) > 0)
    fields = None
    if active.size:
        rng = np.random.default_rng([_FIELD_SALT, person["texture_seed"]])
        fields = actions.action_fields(active, base_u, base_v, kp, person, 0.45 / px_per_em, rng)
    to_grid = functools.partial(_face_to_pixel, person=person, scene=scene, size=size)
    grid_axes = px_per_em * np.array([[np.cos(scene["roll"]), np.sin(scene["roll"])],
                                      [-np.sin(scene["roll"]), np.cos(scene["roll"])]])
    wall = background(scene, size)
    light = lighting_field(scene, size)
    # per-frame jitter: translation (frame fractions), roll (radians) and log scale
    jitter_std = scene["jitter"] * np.array([1.0, 1.0, 0.5, 0.5])
    frames = np.empty((len(rows), size, size), np.float32)
    for j, row in enumerate(rows):
        rng = np.random.default_rng([_ROW_SALT, seed % 2**32, seed // 2**32 % 2**32, int(row)])
        jitter = rng.standard_normal(4) * jitter_std
        noise = rng.standard_normal((size, size)).astype(np.float32)
        flicker = 1.0 + 0.003 * rng.standard_normal() * (scene["noise_std"] > 0)
        u, v = _frame_to_face(x, y, person, scene, jitter)
        face, alpha = _warp_frame(canvas, layers, eyeball, fields, intensities[j], u, v,
                                  person, px_per_em, to_grid, grid_axes)
        frames[j] = _finish(alpha * face + (1.0 - alpha) * wall, light, scene, size,
                            noise, flicker)
    return frames


def _warp_frame(canvas: Canvas, layers: np.ndarray, eyeball: np.ndarray,
                fields: actions.ActionFields | None, intensities: np.ndarray,
                u: np.ndarray, v: np.ndarray, person: dict, px_per_em: float,
                to_grid: Callable, grid_axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(face gray, coverage alpha) [size, size] of one frame: output points (u, v) EM;
    ``to_grid`` maps face points to the pixels of the grid the fields are sampled on,
    ``grid_axes`` [2, 2] turns per-pixel derivatives on it into per-EM ones."""
    density = canvas.density
    dark = None
    opening = None
    if fields is None:
        sampled = _sample(layers, u, v, density)
    else:
        upper, lower, dark = actions.displacements(fields, intensities[fields.aus])
        src_upper = _preimage(u, v, upper, to_grid, grid_axes)
        sampled = _sample(layers, src_upper[..., 0], src_upper[..., 1], density)
        if np.any(upper != lower):   # the lips move apart: warp each side on its own
            src_lower = _preimage(u, v, lower, to_grid, grid_axes)
            sampled_lower = _sample(layers, src_lower[..., 0], src_lower[..., 1], density)
            take_lower, opening = actions.mouth_split(src_upper, src_lower, person,
                                                      0.6 / px_per_em)
            sampled = np.where(take_lower[..., None], sampled_lower, sampled)
            # the upper lip's inner edge in the output, where the upper teeth hang from
            edge = (mouth_line_v(u, person["mouth_half_width"], person["corner_lift"])
                    + upper[..., 1])
    gray, aperture, alpha = sampled[..., 0], sampled[..., 1], sampled[..., 2]
    # the eyeballs follow the head only; the lids' aperture shows them
    face = gray * (1.0 - aperture) + _sample(eyeball, u, v, density) * aperture
    if opening is not None:
        teeth = 1.0 - np.clip((v - edge) / 0.09, 0.0, 1.0)
        teeth *= np.clip(1.0 - np.square(u / person["mouth_half_width"]), 0.0, 1.0)
        interior = canvas.light_level * (0.07 + 0.5 * teeth * teeth)
        face = face * (1.0 - opening) + interior * opening
        alpha = alpha * (1.0 - opening) + opening
    if dark is not None:
        face = face * (1.0 - np.clip(dark, -0.3, 0.9))
    return face, alpha


def _preimage(u: np.ndarray, v: np.ndarray, field: np.ndarray, to_grid: Callable,
              grid_axes: np.ndarray) -> np.ndarray:
    """[H, W, 2] skin points p (EM) that the forward ``field`` [H, W, 2] (EM, sampled on
    the frame's grid) carries to the output points q = (u, v): p + field(p) = q, solved
    by Newton steps from p = q - field(q)."""
    # field and its Jacobian (d field_u / du, / dv, d field_v / du, / dv) on the grid
    d_dx, d_dy = np.gradient(field, axis=1), np.gradient(field, axis=0)
    d_du = grid_axes[0, 0] * d_dx + grid_axes[0, 1] * d_dy
    d_dv = grid_axes[1, 0] * d_dx + grid_axes[1, 1] * d_dy
    jacobian = np.stack([d_du[..., 0], d_dv[..., 0], d_du[..., 1], d_dv[..., 1]], -1)
    source_u, source_v = u - field[..., 0], v - field[..., 1]
    for _ in range(INVERSION_STEPS):
        x, y = (c.astype(np.float32) for c in to_grid(source_u, source_v))
        moved = cv2.remap(field, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        slope = cv2.remap(jacobian, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        res_u = source_u + moved[..., 0] - u
        res_v = source_v + moved[..., 1] - v
        a, b = 1.0 + slope[..., 0], slope[..., 1]
        c, d = slope[..., 2], 1.0 + slope[..., 3]
        det = np.maximum(a * d - b * c, _MIN_DETERMINANT)
        step_u, step_v = (d * res_u - b * res_v) / det, (a * res_v - c * res_u) / det
        shrink = np.minimum(1.0, _MAX_STEP_RATIO * np.hypot(res_u, res_v)
                            / np.maximum(np.hypot(step_u, step_v), 1e-12))
        source_u = source_u - shrink * step_u
        source_v = source_v - shrink * step_v
    return np.stack([source_u, source_v], -1)


def _finish(image: np.ndarray, light: np.ndarray, scene: dict, size: int, noise: np.ndarray,
            flicker: float) -> np.ndarray:
    """The scene's light, the lens blur and the sensor noise; clipped to [0, 1]."""
    image = image * light * flicker
    sigma = scene["blur"] * size
    if sigma > 0.05:
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
    return np.clip(image + scene["noise_std"] * noise, 0.0, 1.0).astype(np.float32)


def render_faces(people: People, au_intensities: np.ndarray, scenes: Scenes, *, size: int,
                 seed: int) -> np.ndarray:
    """float32 [N, size, size, 1] in [0, 1]: row r is ``people`` row r doing
    ``au_intensities`` [N, A] row r (AU_NAMES order, in [0, 1]) in ``scenes`` row r."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE} (pixels), got {size!r}")
    n = len(people)
    if len(scenes) != n:
        raise ValueError(f"people and scenes must have one row per frame: got {n} people "
                         f"and {len(scenes)} scenes")
    au = check_intensities(au_intensities, n)
    out = np.zeros((n, size, size, 1), np.float32)
    if n == 0:
        return out
    kp = keypoints(people)
    keys = np.concatenate([people.matrix(), scenes.matrix()], 1)
    _, group_of_row = np.unique(keys, axis=0, return_inverse=True)
    group_of_row = group_of_row.reshape(-1)
    for group in range(int(group_of_row.max()) + 1):
        rows = np.flatnonzero(group_of_row == group)
        first = int(rows[0])
        person_kp = {name: tuple(points[first]) for name, points in kp.items()}
        out[rows, ..., 0] = _render_group(people.row(first), person_kp, scenes.row(first),
                                          au[rows], rows, int(size), int(seed))
    return out


class WarpFacesRenderer:
    """The WarpFaces face model and painter (see the package docstring)."""

    name = "warpfaces"
    seed_salt = 0x57A2

    def sample_people(self, seed: int, count: int) -> People:
        return sample_people(seed, count, salt=self.seed_salt)

    def sample_scenes(self, rng: np.random.Generator, count: int, dataset: str | None) -> Scenes:
        return sample_scenes(rng, count, dataset)

    def clean_scenes(self, count: int) -> Scenes:
        return clean_scenes(count)

    def render(self, people: People, au_intensities: np.ndarray, scenes: Scenes, *,
               size: int, seed: int) -> np.ndarray:
        return render_faces(people, au_intensities, scenes, size=size, seed=seed)


WARPFACES = WarpFacesRenderer()
"""WarpFaces: photo-like faces whose actions are image warps (a validation renderer)."""
