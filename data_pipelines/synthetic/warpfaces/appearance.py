"""A WarpFaces person's neutral appearance: one shaded image per (person, light).

The canvas is an image of the head in face coordinates (EM, see ``people.py``) at a
working resolution ``density`` (pixels per EM): skin albedo with blotches and pores,
lit by a key light and ambient light through the surface normals of a smooth relief
(``features.relief``), with eyes, brow hairs, nose, lips, hair with strands, ears, neck
and clothing. It carries three layers the renderer warps together (shaded gray,
eye aperture, coverage) and, separately, the eyeballs, which stay put when the lids move.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.synthetic.warpfaces import features
from data_pipelines.synthetic.warpfaces.features import CANVAS_EXTENT, canvas_grid
from data_pipelines.synthetic.warpfaces.texture import (
    draw_strokes, fractal_noise, gaussian, lattice_noise, smoothstep, soft_step)

_TEXTURE_SALT = 0x5A17


@dataclasses.dataclass(frozen=True)
class Canvas:
    """A person's neutral image in face coordinates.

    layers: float32 [Hc, Wc, 3]: shaded gray (the whole person, eyes included), eye
      aperture in [0, 1], coverage alpha in [0, 1] (0 = background shows).
    eyeball: float32 [Hc, Wc]: the shaded eyeballs, shown through the warped aperture.
    density: canvas pixels per EM.
    light_level: the mean light on the face (the mouth interior's scale).
    """

    layers: np.ndarray
    eyeball: np.ndarray
    density: float
    light_level: float


def head_half_width(v: np.ndarray, person: dict) -> np.ndarray:
    """Half-width (EM) of the head outline at height ``v``: an elliptic cranium above the
    brows, then cheekbones, jaw angle and chin. Negative above the crown and below the
    chin, so ``half_width - |u|`` is a signed distance-like field."""
    chin, crown = person["chin_v"], person["chin_v"] - person["head_height"]
    width = person["cheek_half_width"]
    jaw = person["jaw_ratio"] * width
    chin_width = person["chin_half_width"]
    brow_line, skull = -0.3, 0.98 * width
    t = 1.0 - np.square((v - brow_line) / (brow_line - crown))
    cranium = skull * np.sign(t) * np.sqrt(np.abs(t))
    knots_v = [brow_line, 0.3, 0.75, chin - 0.55, chin - 0.28, chin - 0.08, chin + 0.05]
    knots_w = [skull, width, 0.5 * (width + jaw) + 0.03, jaw, 0.5 * (jaw + chin_width),
               chin_width, -0.2]
    return np.where(v < brow_line, cranium, np.interp(v, knots_v, knots_w))


def neutral_canvas(person: dict, kp: features.Keypoints, light: dict, density: float) -> Canvas:
    """The person's neutral canvas under ``light`` (see :func:`features.lambert`)."""
    rng = np.random.default_rng([_TEXTURE_SALT, person["texture_seed"]])
    u, v = canvas_grid(density)
    # the outline row by row, smoothed so the piecewise-linear knots leave no corners
    rows_v = v[:, 0]
    half_width = head_half_width(rows_v, person)
    kernel = np.exp(-0.5 * np.square(np.arange(-30, 31) / (0.07 * density)))
    padded = np.pad(half_width, 30, mode="edge")
    half_width = np.convolve(padded, kernel / kernel.sum(), mode="valid")[:, None]
    edge = max(0.02, 0.8 / density)
    head = soft_step(half_width - np.abs(u), edge)

    # face: albedo with features, times light
    albedo = features.skin_albedo(rng, u, v, person, kp, CANVAS_EXTENT)
    lip, mouth_line = features.lips(u, v, person, density)
    albedo *= 1.0 - lip * (1.0 - person["lip_tone"]) * np.where(v < 1.0, 1.08, 0.95)
    brow_hair = features.brows(rng, u, v, person, kp, density)
    brow_tone = min(0.06 + 0.5 * person["hair_albedo"], 0.55 * person["skin_albedo"])
    albedo = albedo * (1.0 - brow_hair) + brow_tone * brow_hair
    if person["stubble"] > 0:
        albedo *= 1.0 - _stubble(rng, u, v, person, lip)
    lid_dark, aperture, eyeball = features.eyes(rng, u, v, person, kp, density, light)
    albedo *= (1.0 - lid_dark) * (1.0 - features.nose_marks(u, v, person, kp))
    albedo *= 1.0 - mouth_line
    shade = features.lambert(features.relief(u, v, person, kp), density, light)
    face = albedo * shade
    face = face * (1.0 - aperture) + eyeball * aperture

    # back to front: long hair behind the head, body (neck, clothes), ears, face, and the
    # hair cap over the forehead
    hair_gray, hair_front, hair_back = _hair(rng, u, v, person, light, density, half_width)
    gray, alpha = hair_gray * hair_back, hair_back
    body_gray, body_alpha = _body(rng, u, v, person, light, density)
    gray, alpha = _over(gray, alpha, body_gray, body_alpha)
    if person["ears"] > 0:
        ear, ear_alpha = _ears(u, v, person, light, edge)
        gray, alpha = _over(gray, alpha, ear, ear_alpha)
    gray, alpha = _over(gray, alpha, face, head)
    gray, alpha = _over(gray, alpha, hair_gray, hair_front)
    aperture = aperture * head * (1.0 - hair_front)
    layers = np.stack([gray, aperture, alpha], -1).astype(np.float32)
    light_level = (1 - light["directional"]) + light["directional"] * light["direction"][2]
    return Canvas(layers, eyeball.astype(np.float32), density, float(light_level))


def _over(gray, alpha, top, top_alpha):
    """``top`` (coverage ``top_alpha``) composited over (gray, alpha)."""
    return gray * (1 - top_alpha) + top * top_alpha, alpha + (1 - alpha) * top_alpha


def _body(rng, u, v, person: dict, light: dict, density: float):
    """Neck (in the chin's shadow) and clothed shoulders below the head."""
    chin = person["chin_v"]
    neck_half = 0.55 * person["cheek_half_width"] * (0.85 + 0.2 * person["jaw_ratio"])
    shoulders = chin + 0.55
    half = neck_half + 2.6 * smoothstep((v - shoulders) / 0.8) ** 0.6
    body = soft_step(half - np.abs(u), 0.03) * soft_step(v - (chin - 0.9), 0.05)
    cylinder = np.sqrt(np.clip(1.0 - np.square(u / np.maximum(half, 1e-3)), 0.05, 1.0))
    level = (1 - light["directional"]) * (0.7 + 0.3 * cylinder) + light["directional"] * 1.1 * (
        np.maximum(0.0, light["direction"][0] * u / np.maximum(half, 1e-3) + light["direction"][2]
                   * cylinder))
    under_chin = 0.6 + 0.4 * smoothstep((v - chin + 0.05) / 0.45)
    neck = person["skin_albedo"] * 0.95 * under_chin
    collar = chin + 0.55 + 0.6 * np.clip(0.4 - np.abs(u), 0, None)
    extent = CANVAS_EXTENT
    fabric = person["cloth_albedo"] * (0.9 + 0.25 * lattice_noise(rng, u, v, 0.5, extent)
                                       + 0.08 * lattice_noise(rng, u * 3, v, 0.05, extent))
    cloth = soft_step(v - collar, 0.03)
    gray = (neck * (1 - cloth) + fabric * cloth) * level
    return gray.astype(np.float32), body.astype(np.float32)


def _ears(u, v, person: dict, light: dict, edge: float):
    """Ears beside the cheeks, behind the face outline, with a darker concha."""
    gray = np.zeros(u.shape, np.float32)
    alpha = np.zeros(u.shape, np.float32)
    level = (1 - light["directional"]) * 0.8 + light["directional"] * 0.9
    for side in (-1.0, 1.0):
        cu = side * (0.97 * person["cheek_half_width"] + 0.07)
        ellipse = np.hypot((u - cu) / 0.14, (v - 0.2) / 0.3)
        ear = soft_step(1.0 - ellipse, edge / 0.14)
        concha = gaussian(u, v, (cu + side * 0.015, 0.25), 0.05, 0.12)
        tone = person["skin_albedo"] * 0.93 * (1.0 - 0.35 * concha) * level
        gray = gray * (1 - ear) + tone * ear
        alpha = np.maximum(alpha, ear)
    return gray, alpha


def _hair(rng, u, v, person: dict, light: dict, density: float, head_half: np.ndarray):
    """(gray, front coverage, back coverage): a cap above the hairline and, for long
    hair, a curtain behind the head to the shoulders; strands radiate from the parting."""
    style = person["hair_style"]
    width, volume = person["cheek_half_width"], person["hair_volume"]
    crown = person["chin_v"] - person["head_height"]
    outline = soft_step(head_half + volume - np.abs(u), 0.04) * soft_step(v - crown + volume, 0.04)
    top = person["hairline_v"]
    sideburn = {0: 0.12, 1: 0.45, 2: -0.15}[style]
    au = np.abs(u)
    hairline = np.interp(au, [0.0, 0.5 * width, 0.8 * width, 0.95 * width, 3.0],
                         [top, top + 0.07, top + 0.3, sideburn, sideburn])
    # the fringe line wanders a little (no ruler-straight hairlines)
    hairline = hairline + 0.02 * lattice_noise(rng, u, u, 0.12, CANVAS_EXTENT)
    front = outline * soft_step(hairline - v, 0.035)
    front = front * np.where(au < 0.93 * width, 1.0, soft_step(0.18 - v, 0.05))
    back = np.zeros(u.shape, np.float32)
    if style == 1:
        # falls from the skull's widest point, widening a little towards the shoulders
        curtain_half = (np.maximum.accumulate(head_half, axis=0) + volume + 0.06
                        + 0.12 * np.clip(v - 0.3, 0, None))
        bottom = person["chin_v"] + 0.75
        back = soft_step(curtain_half - au, 0.05) * soft_step(bottom - v, 0.12) * soft_step(
            v - crown, 0.1)
    # strands: fine streaks around the parting plus drawn hairs
    part = (person["hair_part"], crown + 0.3)
    theta = np.arctan2(v - part[1], u - part[0])
    radius = np.hypot(u - part[0], v - part[1])
    streaks = lattice_noise(rng, theta * 40.0, radius * 3.0, 1.0, (-130, 130, 0, 20))
    count = 450
    angle = rng.uniform(-np.pi * 0.05, np.pi * 1.05, count)
    start = rng.uniform(0.05, 1.0 if style != 1 else 3.2, count)
    length = rng.uniform(0.2, 0.55, count)
    bend = rng.normal(0, 0.15, count)
    tones = rng.uniform(0.3, 1.0, count)
    steps = np.linspace(0, 1, 4)
    radii = start[:, None] + length[:, None] * steps
    angles = angle[:, None] + bend[:, None] * steps ** 2
    strokes = np.stack([part[0] + radii * np.cos(angles), part[1] + radii * np.sin(angles)], -1)
    x, y = features.em_to_canvas_px(strokes[..., 0], strokes[..., 1], density)
    split = len(strokes) // 2
    dark = draw_strokes(u.shape, np.stack([x, y], -1)[:split], tones[:split])
    bright = draw_strokes(u.shape, np.stack([x, y], -1)[split:], tones[split:])
    albedo = person["hair_albedo"] * (0.85 + 0.35 * streaks) * (1 - 0.45 * dark) + 0.12 * bright
    dome = 1.0 * np.sqrt(np.clip(1.0 - np.square(u / (width + volume + 0.2))
                                 - np.square((v - 0.5 * (crown + person["chin_v"]))
                                             / (0.5 * person["head_height"] + volume + 0.2)),
                                 0.0, None))
    shade = features.lambert(dome + 0.02 * fractal_noise(rng, u, v, 0.3, CANVAS_EXTENT, 2),
                             density, light)
    return (albedo * shade).astype(np.float32), front.astype(np.float32), back.astype(np.float32)


def _stubble(rng, u, v, person: dict, lip: np.ndarray) -> np.ndarray:
    """Darkening of a short beard: fine dots over the upper lip, chin and jaw."""
    dots = np.clip(lattice_noise(rng, u, v, 0.025, CANVAS_EXTENT) * 1.5, 0, 1)
    region = soft_step(v - person["nose_base_v"] - 0.06, 0.05) * (1 - lip)
    region *= soft_step(0.85 * person["cheek_half_width"] - np.abs(u) + 0.3 * (v - 0.8), 0.1)
    return 0.4 * person["stubble"] * region * (0.4 + 0.6 * dots)
