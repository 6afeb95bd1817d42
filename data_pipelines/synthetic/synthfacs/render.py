"""Rendering SynthFACS faces: pose, nuisance and the anti-aliased grayscale painter.

A frame is painted back to front in the face-normalised frame: every pixel centre is mapped
to face units by the inverse pose, so head motion, identity and actions all enter as
parameters of analytic shapes (see ``raster.py``). The large shapes (head, hair, ears,
neck) are evaluated on the whole frame; the eye and mouth regions only in two windows
around them, which keeps the cost per frame low (see ``benchmarks/synth_speed.py``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

import numpy as np

from data_pipelines.synthetic.synthfacs import raster
from data_pipelines.synthetic.facs import AU_INDEX
from data_pipelines.synthetic.synthfacs.face_model import (
    EYE_LINE, LANDMARK_INDEX as LM, Identities, face_frame_landmarks)

POSE_FIELDS = ("translate_x", "translate_y", "rotation", "log_scale")


@dataclasses.dataclass(frozen=True)
class Nuisance:
    """Per-frame nuisance magnitudes (all random draws come from ``render_faces``'s seed).

    translation_std: head translation std, fraction of the frame.
    rotation_std: in-plane head rotation std, radians.
    scale_std: std of the log head scale.
    camera_scale: face size multiplier (camera distance / frame scale of a dataset).
    illumination: largest brightness change across the frame from a linear light gradient
        (0.3 = +-15 % at the frame edges).
    brightness: (low, high) uniform range of the global gain.
    noise_std: additive Gaussian sensor noise std (gray levels).
    """

    translation_std: float = 0.01
    rotation_std: float = 0.02
    scale_std: float = 0.01
    camera_scale: float = 1.0
    illumination: float = 0.3
    brightness: tuple[float, float] = (0.85, 1.1)
    noise_std: float = 0.01

    @classmethod
    def none(cls, camera_scale: float = 1.0) -> "Nuisance":
        """No jitter, neutral light, no noise (only the camera scale is kept)."""
        return cls(0.0, 0.0, 0.0, camera_scale, 0.0, (1.0, 1.0), 0.0)


@dataclasses.dataclass(frozen=True)
class _FrameNuisance:
    pose: np.ndarray      # [N, 4] pose added by the nuisance
    lighting: np.ndarray  # [N, 3] gain, gradient x, gradient y
    noise_seed: int


def _sample_frame_nuisance(nuisance: Nuisance, n: int, seed: int) -> _FrameNuisance:
    """The per-frame draws, in a fixed order so landmarks and pixels agree for one seed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4E55]))
    pose = rng.standard_normal((n, 4)) * np.array(
        [nuisance.translation_std, nuisance.translation_std, nuisance.rotation_std,
         nuisance.scale_std])
    low, high = nuisance.brightness
    gain = rng.uniform(low, high, n)
    direction = rng.uniform(0, 2 * np.pi, n)
    strength = rng.uniform(0, nuisance.illumination, n)
    lighting = np.stack([gain, strength * np.cos(direction), strength * np.sin(direction)], 1)
    return _FrameNuisance(pose.astype(np.float32), lighting.astype(np.float32),
                          int(rng.integers(2**31)))


def _resolve_pose(n: int, pose: np.ndarray | None, frame_nuisance: _FrameNuisance | None) -> np.ndarray:
    if pose is None:
        pose = np.zeros((n, 4), np.float32)
    pose = np.asarray(pose, np.float32)
    if pose.shape != (n, 4):
        raise ValueError(f"pose: expected shape [{n}, 4] ({', '.join(POSE_FIELDS)}), got "
                         f"{list(pose.shape)}")
    if frame_nuisance is not None:
        pose = pose + frame_nuisance.pose
    return pose


def _similarity(identities: Identities, pose: np.ndarray, camera_scale: float):
    """Face frame -> image (fraction of the frame): centre [N, 2], scale [N], cos, sin [N]."""
    centre = np.stack([0.5 + pose[:, 0], 0.5 + pose[:, 1]], 1)
    scale = identities.face_scale * np.exp(pose[:, 3]) * camera_scale
    return centre, scale.astype(np.float32), np.cos(pose[:, 2]), np.sin(pose[:, 2])


def _to_image(points: np.ndarray, centre, scale, cos, sin) -> np.ndarray:
    """[N, P, 2] face units -> [N, P, 2] frame fractions."""
    x, y = points[..., 0], points[..., 1]
    s, c, sn = scale[:, None], cos[:, None], sin[:, None]
    return np.stack([centre[:, 0, None] + s * (c * x - sn * y),
                     centre[:, 1, None] + s * (sn * x + c * y)], -1)


def face_landmarks(identities: Identities, au_intensities: np.ndarray, *, size: int,
                   pose: np.ndarray | None = None, nuisance: Nuisance | None = None,
                   seed: int = 0) -> np.ndarray:
    """[N, L, 2] float32 landmark positions in pixels (x, y; pixel i spans [i, i + 1)).

    Same arguments as ``render_faces``; the landmarks match its frames exactly.
    """
    landmarks = face_frame_landmarks(identities, au_intensities)
    n = len(identities)
    frame_nuisance = _sample_frame_nuisance(nuisance, n, seed) if nuisance is not None else None
    pose = _resolve_pose(n, pose, frame_nuisance)
    camera = nuisance.camera_scale if nuisance is not None else 1.0
    return (_to_image(landmarks, *_similarity(identities, pose, camera)) * size).astype(np.float32)


@dataclasses.dataclass
class _Grid:
    """Pixel centres of a window, in face units: X, Y [N, h, w]; pixel [N, 1, 1]."""

    X: np.ndarray
    Y: np.ndarray
    pixel: np.ndarray
    rows: np.ndarray  # [N, h] image row indices
    cols: np.ndarray  # [N, w] image column indices
    u: np.ndarray     # [N, w] column centres relative to the face centre (frame fraction)
    v: np.ndarray     # [N, h] row centres relative to the face centre
    rotation: tuple[np.ndarray, np.ndarray]  # cos, sin [N, 1, 1]
    inv_scale: np.ndarray  # [N, 1, 1] face units per frame fraction


def _grid(size: int, rows: np.ndarray, cols: np.ndarray, centre, scale, cos, sin) -> _Grid:
    """Face coordinates of image pixels (rows [N, h], cols [N, w]) under the inverse pose."""
    u = ((cols + 0.5) / size - centre[:, 0, None]).astype(np.float32)  # [N, w]
    v = ((rows + 0.5) / size - centre[:, 1, None]).astype(np.float32)  # [N, h]
    inv = (1.0 / scale)[:, None, None].astype(np.float32)
    c, s = cos[:, None, None].astype(np.float32), sin[:, None, None].astype(np.float32)
    X = (c * u[:, None, :] + s * v[:, :, None]) * inv
    Y = (c * v[:, :, None] - s * u[:, None, :]) * inv
    pixel = (1.0 / (scale * size))[:, None, None].astype(np.float32)
    return _Grid(X, Y, pixel, rows, cols, u, v, (c, s), inv)


def _window(size: int, box: tuple[float, float, float, float], similarity) -> tuple[np.ndarray, np.ndarray]:
    """Image rows/cols [N, h], [N, w] of a window that covers a face-frame box in every frame."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float32)
    n = similarity[0].shape[0]
    image = _to_image(np.broadcast_to(corners, (n, 4, 2)), *similarity) * size
    low = np.floor(image.min(1)).astype(np.int64) - 1
    high = np.ceil(image.max(1)).astype(np.int64) + 1
    width, height = [int(min(size, (high - low)[:, k].max())) for k in (0, 1)]
    start_col = np.clip(low[:, 0], 0, size - width)
    start_row = np.clip(low[:, 1], 0, size - height)
    return start_row[:, None] + np.arange(height), start_col[:, None] + np.arange(width)


def _gather(image: np.ndarray, grid: _Grid) -> np.ndarray:
    return image[np.arange(image.shape[0])[:, None, None], grid.rows[:, :, None], grid.cols[:, None, :]]


def _scatter(image: np.ndarray, grid: _Grid, patch: np.ndarray) -> None:
    image[np.arange(image.shape[0])[:, None, None], grid.rows[:, :, None], grid.cols[:, None, :]] = patch


def _col(values: np.ndarray) -> np.ndarray:
    """[N] -> [N, 1, 1] float32, to broadcast against pixel grids."""
    return np.asarray(values, np.float32)[:, None, None]


def _point(landmarks: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """x, y of one landmark as [N, 1, 1]."""
    p = landmarks[:, LM[name]]
    return _col(p[:, 0]), _col(p[:, 1])


def _curve(landmarks: np.ndarray, names: tuple[str, ...], dy: float = 0.0) -> raster.Curve:
    points = landmarks[:, [LM[name] for name in names]]
    return raster.Curve(points[..., 0], points[..., 1] + dy)


def _au(au: np.ndarray, name: str) -> np.ndarray:
    return _col(au[:, AU_INDEX[name]])


# ---------------------------------------------------------------------------------------
# Whole-frame layers: background, hair, ears, neck, head, forehead lines.

def _skin_texture(grid: _Grid, ident: Identities) -> np.ndarray:
    """Sum of K low-frequency plane waves fixed to the face, [N, h, w].

    A wave sin(2 pi (f . p) + phase) over face coordinates p is a plane wave over image
    coordinates (the pose is a similarity), sin(a u + b v + phase), which splits into row
    and column factors: two multiplies per pixel instead of a sine.
    """
    cos, sin = grid.rotation
    texture = 0.0
    for k in range(ident.texture_amplitude.shape[1]):
        fx = _col(ident.texture_frequency[:, k, 0]) * (2 * np.pi)
        fy = _col(ident.texture_frequency[:, k, 1]) * (2 * np.pi)
        a = ((fx * cos - fy * sin) * grid.inv_scale)[:, 0]  # [N, 1] per frame-fraction of u
        b = ((fx * sin + fy * cos) * grid.inv_scale)[:, 0]
        column_phase = a * grid.u + _col(ident.texture_phase[:, k])[:, 0]  # [N, w]
        amplitude = _col(ident.texture_amplitude[:, k])[:, 0]
        row_phase = b * grid.v  # [N, h]
        texture = texture + (
            (amplitude * np.cos(row_phase))[:, :, None] * np.sin(column_phase)[:, None, :]
            + (amplitude * np.sin(row_phase))[:, :, None] * np.cos(column_phase)[:, None, :])
    return texture


def _paint_head(grid: _Grid, lm: np.ndarray, ident: Identities, au: np.ndarray) -> np.ndarray:
    X, Y, px = grid.X, grid.Y, grid.pixel
    skin, hair = _col(ident.skin_tone), _col(ident.hair_tone)
    width = _col(0.5 * (lm[:, LM["cheekbone_r"], 0] - lm[:, LM["cheekbone_l"], 0]))
    # background: a vertical gradient, one value per image row until the first layer
    canvas = _col(ident.background_tone) * (1.0 - 0.1 * grid.v[:, :, None])
    # hair behind the head
    hair_back_alpha = raster.coverage(raster.ellipse_sd(X, Y, 0.0, -0.3, 1.12 * width, 0.84), px)
    canvas = raster.blend(canvas, hair, hair_back_alpha)
    # neck and ears, a little darker than the face
    neck_sd = np.minimum(0.42 * width - np.abs(X), Y - 0.4)
    canvas = raster.blend(canvas, 0.78 * skin, raster.coverage(neck_sd, px))
    ear_sd = raster.ellipse_sd(np.abs(X), Y, width - 0.02, 0.08, 0.09, 0.17)
    canvas = raster.blend(canvas, 0.88 * skin, raster.coverage(ear_sd, px))
    # the head: an ellipse above the cheekbones, a jaw-narrowed one below (see module doc)
    crown_y = _col(lm[:, LM["crown"], 1])
    middle_y = _col(0.5 * (lm[:, LM["cheekbone_l"], 1] + lm[:, LM["cheekbone_r"], 1]))
    chin_y = _col(lm[:, LM["chin"], 1])
    jaw_x = _col(0.5 * (lm[:, LM["jaw_r"], 0] - lm[:, LM["jaw_l"], 0]))
    jaw_y = _col(0.5 * (lm[:, LM["jaw_r"], 1] + lm[:, LM["jaw_l"], 1]))
    upper = Y < middle_y
    half_height = np.where(upper, middle_y - crown_y, chin_y - middle_y)
    v = (Y - middle_y) / half_height
    jaw_v = (jaw_y - middle_y) / (chin_y - middle_y)
    # half-width so that the outline passes through the jaw-angle landmarks
    jaw_axis = jaw_x / np.sqrt(1.0 - jaw_v ** 2)
    axis_x = np.where(upper, width, width + (jaw_axis - width) * np.clip(v / jaw_v, 0.0, 1.0))
    qx = X / axis_x
    radius = np.sqrt(qx * qx + v * v) + 1e-6
    gradient = np.sqrt((qx / axis_x) ** 2 + (v / half_height) ** 2) / radius + 1e-6
    face_alpha = raster.coverage((1.0 - radius) / gradient, px)
    # rounded shading (darker towards the sides and under the jaw) and skin texture
    below = np.clip(v, 0, 1)
    below *= below
    face_tone = skin * (1.0 - 0.28 * np.clip(qx * qx, 0, 1) - 0.12 * below * below)
    face_tone = face_tone + _skin_texture(grid, ident)
    canvas = raster.blend(canvas, face_tone, face_alpha)
    # forehead lines of AU1/AU2 (drawn under the hair)
    raise_brows = np.maximum(_au(au, "AU1"), _au(au, "AU2"))
    if np.any(raise_brows > 0):
        brow_y = _col(0.5 * (lm[:, LM["brow_l_mid"], 1] + lm[:, LM["brow_r_mid"], 1]))
        hairline_y = _col(lm[:, LM["hairline_mid"], 1])
        lines = raster.stripes(Y - brow_y, 0.055) * raster.blob(
            X, Y, 0.0, 0.5 * (brow_y + hairline_y), 0.38, 0.5 * (brow_y - hairline_y) * 0.6)
        canvas = canvas * (1.0 - 0.22 * raise_brows * lines * face_alpha)
    # hair in front: the part of the head above the hairline curve
    hairline = _curve(lm, ("hairline_l", "hairline_mid", "hairline_r"))
    # (over the head or the hair behind it, so no seam of skin shows at the head's edge)
    hair_alpha = np.minimum(np.maximum(face_alpha, hair_back_alpha),
                            raster.coverage(-raster.below_curve_sd(X, Y, hairline), px))
    return raster.blend(canvas, hair, hair_alpha)


# ---------------------------------------------------------------------------------------
# The eye window: brows, eyes, lids, glabella, crow's feet, glasses.

UPPER_BOX = (-0.7, -0.62, 0.7, 0.24)
LOWER_BOX = (-0.58, -0.04, 0.58, 1.02)


def _paint_eyes(canvas: np.ndarray, grid: _Grid, lm: np.ndarray, ident: Identities,
                au: np.ndarray) -> np.ndarray:
    X, Y, px = grid.X, grid.Y, grid.pixel
    skin, hair = _col(ident.skin_tone), _col(ident.hair_tone)
    eye_size = _col(ident.eye_size)
    brow_tone = np.minimum(hair, 0.45 * skin)
    for side in ("l", "r"):
        inner, outer = f"eye_{side}_inner", f"eye_{side}_outer"
        xi, yi = _point(lm, inner)
        xo, yo = _point(lm, outer)
        x_left, x_right = np.minimum(xi, xo), np.maximum(xi, xo)
        upper = _curve(lm, (inner, f"eye_{side}_upper", outer))
        lower = _curve(lm, (inner, f"eye_{side}_lower", outer))
        # socket shadow, then the lid crease that follows the upper lid
        cx, cy = 0.5 * (xi + xo), 0.5 * (yi + yo)
        canvas = canvas * (1.0 - 0.13 * raster.blob(X, Y, cx, cy - 0.02, 1.5 * eye_size, 0.9 * eye_size))
        crease = raster.stroke_sd(X, Y, upper.shifted(-0.3 * eye_size), 0.008, x_left, x_right, 0.8)
        canvas = raster.blend(canvas, 0.6 * skin, 0.6 * raster.coverage(crease, px))
        eye_sd = raster.band_sd(X, Y, upper, lower, x_left, x_right)
        canvas = raster.blend(canvas, 0.9, raster.coverage(eye_sd, px))
        pupil_x, pupil_y = _point(lm, f"pupil_{side}")
        iris_sd = raster.ellipse_sd(X, Y, pupil_x, pupil_y, 0.5 * eye_size, 0.5 * eye_size)
        canvas = raster.blend(canvas, _col(ident.iris_tone),
                              raster.coverage(np.minimum(iris_sd, eye_sd), px))
        pupil_sd = raster.ellipse_sd(X, Y, pupil_x, pupil_y, 0.2 * eye_size, 0.2 * eye_size)
        canvas = raster.blend(canvas, 0.03, raster.coverage(np.minimum(pupil_sd, eye_sd), px))
        lash = raster.stroke_sd(X, Y, upper, 0.014, x_left, x_right, 0.6)
        canvas = raster.blend(canvas, 0.1, raster.coverage(lash, px))
        lower_line = raster.stroke_sd(X, Y, lower, 0.006, x_left, x_right, 0.6)
        canvas = raster.blend(canvas, 0.45 * skin, 0.7 * raster.coverage(lower_line, px))
        # AU6: crow's feet beside the outer corner and the raised lower-lid bulge
        cheek_raise = _au(au, "AU6")
        if np.any(cheek_raise > 0):
            outward = 1.0 if side == "r" else -1.0
            feet = raster.stripes(Y - yo + 0.5 * outward * (X - xo), 0.035) * raster.blob(
                X, Y, xo + outward * 0.06, yo + 0.01, 0.045, 0.06)
            bulge = raster.stroke_sd(X, Y, lower.shifted(0.06), 0.01, x_left, x_right, 0.7)
            canvas = canvas * (1.0 - cheek_raise * (0.3 * feet + 0.25 * raster.coverage(bulge, px)))
        # brow: a tapered thick curve, inner end to outer end
        brow = _curve(lm, (f"brow_{side}_inner", f"brow_{side}_mid", f"brow_{side}_outer"))
        bx_inner, _ = _point(lm, f"brow_{side}_inner")
        bx_outer, _ = _point(lm, f"brow_{side}_outer")
        brow_sd = raster.stroke_sd(X, Y, brow, 0.5 * _col(ident.brow_thickness),
                                   np.minimum(bx_inner, bx_outer), np.maximum(bx_inner, bx_outer), 0.5)
        canvas = raster.blend(canvas, brow_tone, 0.92 * raster.coverage(brow_sd, px))
    # AU4: vertical furrows between the brows
    lower_brows = _au(au, "AU4")
    if np.any(lower_brows > 0):
        _, inner_y = _point(lm, "brow_l_inner")
        furrows = raster.stripes(np.abs(X) - 0.035, 0.07, 6) * raster.blob(
            X, Y, 0.0, inner_y + 0.03, 0.06, 0.06)
        canvas = canvas * (1.0 - 0.35 * lower_brows * furrows)
    glasses = ident.glasses
    if np.any(glasses):
        spacing, rim = _col(ident.eye_spacing), _col(np.where(glasses, 0.9, 0.0))
        for sign in (-1.0, 1.0):
            lens_sd = raster.ellipse_sd(X, Y, sign * spacing, EYE_LINE, 1.5 * eye_size, 1.05 * eye_size)
            canvas = raster.blend(canvas, 0.08, rim * raster.coverage(0.012 - np.abs(lens_sd), px))
        bridge_sd = np.minimum(0.012 - np.abs(Y - (EYE_LINE - 0.03)), spacing - 1.5 * eye_size - np.abs(X))
        canvas = raster.blend(canvas, 0.08, rim * raster.coverage(bridge_sd, px))
    return canvas


# ---------------------------------------------------------------------------------------
# The lower window: nose, cheeks, nasolabial folds, lips, chin.

def _paint_mouth(canvas: np.ndarray, grid: _Grid, lm: np.ndarray, ident: Identities,
                 au: np.ndarray) -> np.ndarray:
    X, Y, px = grid.X, grid.Y, grid.pixel
    skin = _col(ident.skin_tone)
    tip_x, tip_y = _point(lm, "nose_tip")
    _, bridge_y = _point(lm, "nose_bridge")
    alar_lx, alar_y = _point(lm, "alar_l")
    alar_rx, _ = _point(lm, "alar_r")
    # cheeks: a highlight that rises and brightens with AU6 (and AU12)
    cheek_raise = _au(au, "AU6")
    for side in ("l", "r"):
        cx, cy = _point(lm, f"cheek_{side}")
        canvas = canvas * (1.0 + (0.04 + 0.14 * cheek_raise) * raster.blob(X, Y, cx, cy, 0.13, 0.08))
    # nose: side shading along the bridge, tip highlight, alae, nostrils
    t = np.clip((Y - bridge_y) / (alar_y - bridge_y), 0.0, 1.0)
    side_x = 0.045 + t * (0.75 * (alar_rx - alar_lx) * 0.5 - 0.045)
    along = (Y > bridge_y + 0.04) & (Y < alar_y)
    canvas = canvas * (1.0 - 0.12 * along * np.exp(-((np.abs(X - tip_x) - side_x) / 0.022) ** 2))
    canvas = canvas * (1.0 + 0.08 * raster.blob(X, Y, tip_x, tip_y - 0.025, 0.04, 0.03))
    canvas = canvas * (1.0 - 0.15 * raster.blob(X, Y, tip_x, tip_y + 0.06, 0.1, 0.025))
    for side in ("l", "r"):
        ax, ay = _point(lm, f"alar_{side}")
        canvas = canvas * (1.0 - 0.16 * raster.blob(X, Y, ax, ay, 0.03, 0.04))
        nx, ny = _point(lm, f"nostril_{side}")
        nostril_sd = raster.ellipse_sd(X, Y, nx, ny, 0.035, 0.016)
        canvas = raster.blend(canvas, 0.25 * skin, 0.9 * raster.coverage(nostril_sd, px))
    wrinkle = _au(au, "AU9")
    if np.any(wrinkle > 0):
        lines = raster.stripes(Y - bridge_y, 0.032) * raster.blob(X, Y, tip_x, bridge_y + 0.11, 0.08, 0.06)
        canvas = canvas * (1.0 - 0.45 * wrinkle * lines)
    # nasolabial folds, alar wing to beyond the mouth corner; deeper with AU6/9/10/12
    fold_depth = 0.06 + 0.3 * np.maximum.reduce(
        [0.6 * cheek_raise, 0.7 * wrinkle, _au(au, "AU10"), _au(au, "AU12")])
    for side, sign in (("l", -1.0), ("r", 1.0)):
        ax, ay = lm[:, LM[f"alar_{side}"], 0], lm[:, LM[f"alar_{side}"], 1]
        mx, my = lm[:, LM[f"mouth_{side}"], 0], lm[:, LM[f"mouth_{side}"], 1]
        # x as a function of y (the fold is nearly vertical): swap the axes
        fold_y = np.stack([ay + 0.01, 0.5 * (ay + my) + 0.02, my + 0.07], 1)
        fold_x = np.stack([ax + sign * 0.035, 0.5 * (ax + mx) + sign * 0.09, mx + sign * 0.05], 1)
        fold = raster.Curve(fold_y, fold_x)
        fold_sd = raster.stroke_sd(Y, X, fold, 0.012, _col(fold_y[:, 0]), _col(fold_y[:, 2]), 0.7)
        canvas = canvas * (1.0 - fold_depth * raster.coverage(fold_sd, px))
    # lips, then the mouth opening and teeth
    corners = ("mouth_l", "mouth_r")
    x_left, _ = _point(lm, "mouth_l")
    x_right, _ = _point(lm, "mouth_r")
    # the upper lip's outline is two parabolas meeting in the cupid's bow
    upper = raster.SplitCurve(_curve(lm, ("mouth_l", "lip_upper_l", "lip_upper_mid")),
                              _curve(lm, ("lip_upper_mid", "lip_upper_r", "mouth_r")),
                              lm[:, LM["lip_upper_mid"], 0])
    lower = _curve(lm, ("mouth_l", "lip_lower_l", "lip_lower_mid", "lip_lower_r", "mouth_r"))
    lips_sd = raster.band_sd(X, Y, upper, lower, x_left, x_right)
    canvas = raster.blend(canvas, 0.72 * skin, raster.coverage(lips_sd, px))
    inner_upper = _curve(lm, (corners[0], "lip_inner_upper", corners[1]))
    inner_lower = _curve(lm, (corners[0], "lip_inner_lower", corners[1]))
    opening_sd = raster.band_sd(X, Y, inner_upper, inner_lower, x_left, x_right)
    canvas = raster.blend(canvas, 0.08, raster.coverage(opening_sd, px))
    teeth_sd = np.minimum(opening_sd, -raster.below_curve_sd(X, Y, inner_upper.shifted(0.035)))
    canvas = raster.blend(canvas, 0.8, raster.coverage(teeth_sd, px))
    # shadow under the lower lip; AU14 dimples; AU17 chin dimpling
    _, lower_mid_y = _point(lm, "lip_lower_mid")
    chin_raise = _au(au, "AU17")
    canvas = canvas * (1.0 - (0.1 + 0.12 * chin_raise) * raster.blob(
        X, Y, 0.0, lower_mid_y + 0.05, 0.13, 0.025))
    dimpler = _au(au, "AU14")
    if np.any(dimpler > 0):
        for side, sign in (("l", -1.0), ("r", 1.0)):
            mx, my = _point(lm, f"mouth_{side}")
            canvas = canvas * (1.0 - 0.6 * dimpler * raster.blob(X, Y, mx + sign * 0.045, my, 0.025, 0.045))
    if np.any(chin_raise > 0):
        _, chin_y = _point(lm, "chin")
        mottling = (raster.stripes(X, 0.06, 2) * raster.stripes(Y - chin_y, 0.05, 2)
                    * raster.blob(X, Y, 0.0, chin_y - 0.12, 0.12, 0.06))
        canvas = canvas * (1.0 - 0.35 * chin_raise * mottling)
    return canvas


_CHUNK_PIXELS = 1 << 17
_WORKERS = min(4, os.cpu_count() or 1)


_WINDOW_PAINTERS = ((UPPER_BOX, _paint_eyes), (LOWER_BOX, _paint_mouth))


def _paint_frames(size: int, landmarks: np.ndarray, identities: Identities, au: np.ndarray,
                  similarity, windows) -> np.ndarray:
    """[n, size, size] float32 clean frames (before light and noise).

    ``windows``: (rows, cols) of each ``_WINDOW_PAINTERS`` region for these frames.
    """
    n = len(identities)
    pixels = np.broadcast_to(np.arange(size), (n, size))
    image = _paint_head(_grid(size, pixels, pixels, *similarity), landmarks, identities, au)
    image = np.ascontiguousarray(image, np.float32)
    for (_, painter), (rows, cols) in zip(_WINDOW_PAINTERS, windows):
        grid = _grid(size, rows, cols, *similarity)
        _scatter(image, grid, painter(_gather(image, grid), grid, landmarks, identities, au))
    return image


def render_faces(identities: Identities, au_intensities: np.ndarray, *, size: int,
                 pose: np.ndarray | None = None, nuisance: Nuisance | None = None,
                 seed: int = 0, lighting: np.ndarray | None = None) -> np.ndarray:
    """Renders one grayscale frame per row: float32 [N, size, size, 1] in [0, 1].

    identities: N rows (``Identities.take`` to repeat people); au_intensities: [N, A] in
    [0, 1] (``AU_NAMES`` order); pose: [N, 4] (translate x/y as a fraction of the frame,
    rotation in radians, log scale), default centred. nuisance: ``None`` renders clean frames
    (no jitter, neutral light, no noise); a ``Nuisance`` adds per-frame pose jitter, a random
    light gradient and gain, and sensor noise, all drawn from ``seed``. lighting: optional
    [N, 3] (gain, gradient x, gradient y) that replaces the drawn light (clips keep the
    light of one scene).
    """
    if size < 16:
        raise ValueError(f"render_faces: size must be >= 16 pixels, got {size}")
    n = len(identities)
    landmarks = face_frame_landmarks(identities, au_intensities)
    au = np.asarray(au_intensities, np.float32)
    if n == 0:
        return np.zeros((0, size, size, 1), np.float32)
    frame_nuisance = _sample_frame_nuisance(nuisance, n, seed) if nuisance is not None else None
    pose = _resolve_pose(n, pose, frame_nuisance)
    camera = nuisance.camera_scale if nuisance is not None else 1.0
    similarity = _similarity(identities, pose, camera)
    # Paint in chunks of frames whose working arrays stay in the CPU cache (several times
    # faster than whole-batch arrays, which make every numpy op memory bound).
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    image = np.empty((n, size, size), np.float32)

    # Window sizes are set once for the batch, so the chunking does not change the result.
    windows = [_window(size, box, similarity) for box, _ in _WINDOW_PAINTERS]

    def paint_chunk(start: int) -> None:
        rows = slice(start, min(n, start + chunk))
        image[rows] = _paint_frames(size, landmarks[rows], identities.take(np.arange(n)[rows]),
                                    au[rows], tuple(part[rows] for part in similarity),
                                    [(r[rows], c[rows]) for r, c in windows])

    # numpy releases the GIL inside its loops, so threads use every core; each chunk writes
    # its own rows, so the result does not depend on the number of workers.
    starts = range(0, n, chunk)
    workers = min(len(starts), _WORKERS)
    if workers > 1:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(paint_chunk, starts))
    else:
        for start in starts:
            paint_chunk(start)
    if lighting is None and frame_nuisance is not None:
        lighting = frame_nuisance.lighting
    if lighting is not None:
        lighting = np.asarray(lighting, np.float32)
        if lighting.shape != (n, 3):
            raise ValueError(f"lighting: expected shape [{n}, 3] (gain, gradient x, gradient y), "
                             f"got {list(lighting.shape)}")
        ramp = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        image *= _col(lighting[:, 0]) * (1.0 + _col(lighting[:, 1]) * ramp[None, None, :]
                                         + _col(lighting[:, 2]) * ramp[None, :, None])
    if frame_nuisance is not None and nuisance.noise_std > 0:
        noise_rng = np.random.default_rng(frame_nuisance.noise_seed)
        image += nuisance.noise_std * noise_rng.standard_normal(image.shape, dtype=np.float32)
    np.clip(image, 0.0, 1.0, out=image)
    return image[..., None]
