"""MeshFaces actions: each FACS action unit is a smooth 3D displacement field of the skin.

``action_fields`` gives, for points with material coordinates (X, Y) and neutral positions
P, the displacement [dx, dy, dz] (face units) of every AU at intensity 1; a frame's surface
is P + sum_k intensity_k * field_k (a linear blendshape model). Fields are smooth bumps
placed on the person's own features (``head.Layout``), so a wide mouth is pulled at its
own corners. Two places are cut: the lid openings are holes, and across the lip seam the
fields of AU10, AU25 and AU26 differ, which parts the lips and shows the mouth cavity.
Wrinkles (forehead lines, glabella furrows, nose bridge lines, crow's feet, dimples, chin
dimpling) are small relief terms of the same fields, so they show through the shading.

Magnitudes (after ``ACTION_SCALE``): a clean-scene face is about 40 px tall in a 64 px
frame, so 0.025 face units is about 1 px. At intensity 1 the moving features travel up to
0.05-0.13 units (2-5 px at 64 px; the lids of AU5 and AU7 and the corners of AU14 and
AU23, which are small, 1.5-2 px); at the micro-expression intensity 0.3 every emotion
prototype moves its region by about 0.6-1.2 px (90th percentile of the moving points),
1-1.8 px at most.
"""

from __future__ import annotations

import numpy as np

from data_pipelines.synthetic.facs import AU_INDEX, NUM_AUS
from data_pipelines.synthetic.meshfaces.head import Layout, gauss, mirrored, smoothstep

JAW_HINGE = np.array([0.0, -0.06, -0.02])  # the jaw's rotation axis (along x) passes here
JAW_ANGLE = 0.085                          # radians at AU26 intensity 1
# One gain on every field, calibrated with the pixel baseline only (a small CNN on the
# 32 px apex - onset difference): micro-expressions visible but not trivial.
ACTION_SCALE = 1.65


def _asym_y(y: np.ndarray, cy: float, below: float, above: float) -> np.ndarray:
    """Gaussian profile in y with different widths below and above cy."""
    s = np.where(y < cy, below, above)
    return np.exp(-0.5 * ((y - cy) / s) ** 2)


def nasolabial_fold(X: np.ndarray, Y: np.ndarray, lay: Layout) -> np.ndarray:
    """Unit ridge along each side's fold, from the nose wing to beside the mouth corner."""
    start = np.array([lay.nose_w + 0.014, lay.nose_tip_y - 0.006])
    end = np.array([lay.mouth_w + 0.028, lay.mouth_y - 0.04])
    seg = end - start
    px, py = np.abs(X) - start[0], Y - start[1]
    t = np.clip((px * seg[0] + py * seg[1]) / (seg @ seg), 0.0, 1.0)
    dist = np.hypot(px - t * seg[0], py - t * seg[1])
    return np.exp(-0.5 * (dist / 0.008) ** 2) * np.sin(np.pi * np.clip(t * 0.9 + 0.05, 0, 1))


def _wrinkles(y: np.ndarray, period: float) -> np.ndarray:
    return np.sin(2 * np.pi * y / period)


def jaw_weight(X: np.ndarray, Y: np.ndarray, z: np.ndarray, lay: Layout) -> np.ndarray:
    """How much of the jaw's motion each head point follows (1: lower lip, chin, jaw)."""
    line = lay.lip_line(X)
    base = smoothstep(lay.mouth_y + 0.02, lay.mouth_y - 0.1, Y) * smoothstep(-0.12, 0.02, z)
    span = lay.mouth_span(X)
    lower = Y < line
    return np.where(lower, base + span * (1.0 - base), base * (1.0 - span))


def _jaw_motion(points: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Displacement [..., 3] of a rotation about the hinge (plus a small glide) x weight."""
    c, s = np.cos(JAW_ANGLE), np.sin(JAW_ANGLE)
    rel = points - JAW_HINGE
    rotated_y = rel[..., 1] * c - rel[..., 2] * s
    rotated_z = rel[..., 1] * s + rel[..., 2] * c
    d = np.stack([np.zeros_like(rotated_y), rotated_y - rel[..., 1] - 0.022,
                  rotated_z - rel[..., 2] + 0.006], -1)
    return d * weight[..., None]


def action_fields(X: np.ndarray, Y: np.ndarray, points: np.ndarray, lay: Layout) -> np.ndarray:
    """float32 [A, *X.shape, 3]: each AU's displacement at intensity 1 (AU_NAMES order).

    X, Y: material coordinates of the head's points; points: their neutral positions
    [*X.shape, 3] (the jaw rotates those, the other fields need only X, Y).
    """
    side = np.sign(X)
    ax = np.abs(X)
    fields = np.zeros((NUM_AUS, *X.shape, 3), np.float32)
    brow = lay.eye_y + lay.brow_y
    upper_edge, lower_edge, profile = lay.lid_edges(X)
    lid_span = np.clip(1.0 - ((ax - lay.eye_x) / (1.25 * lay.eye_w)) ** 2, 0.0, 1.0)
    upper_lid = lid_span * smoothstep(upper_edge + 0.03, upper_edge, Y) * (Y > lay.eye_y)
    lower_lid = lid_span * smoothstep(lower_edge - 0.03, lower_edge, Y) * (Y < lay.eye_y)
    fold = nasolabial_fold(X, Y, lay)
    line = lay.lip_line(X)
    span = lay.mouth_span(X)
    upper_side = Y >= line

    def put(au: str, dx=0.0, dy=0.0, dz=0.0) -> None:
        f = fields[AU_INDEX[au]]
        f[..., 0] += dx
        f[..., 1] += dy
        f[..., 2] += dz

    # AU1: the inner brows and the middle of the forehead rise; forehead lines appear
    w = gauss(ax, 0.0, lay.eye_x - 0.08, 0.0, 0.05, 1.0) * _asym_y(Y, brow + 0.01, 0.035, 0.09)
    forehead = gauss(X, Y, 0.0, brow + 0.13, 0.11, 0.05)
    put("AU1", dy=0.065 * w, dz=0.004 * w + 0.007 * forehead * _wrinkles(Y - brow, 0.032))
    # AU2: the outer brows rise (and spread a little); lateral forehead lines
    w = gauss(ax, 0.0, lay.eye_x + 0.065, 0.0, 0.055, 1.0) * _asym_y(Y, brow, 0.035, 0.08)
    lateral = mirrored(X, Y, 0.2, brow + 0.11, 0.07, 0.045)
    put("AU2", dx=0.012 * side * w, dy=0.064 * w,
        dz=0.007 * lateral * _wrinkles(Y - brow, 0.03))
    # AU4: the inner brows come down and together, bulge, and the glabella furrows
    w = mirrored(X, Y, lay.eye_x - 0.085, brow, 0.055, 0.045)
    furrows = (np.exp(-0.5 * ((ax - 0.022) / 0.006) ** 2)
               * gauss(0.0, Y, 0.0, lay.eye_y + 0.065, 1.0, 0.035))
    put("AU4", dx=-0.03 * side * w, dy=-0.048 * w,
        dz=0.008 * w - 0.013 * furrows + 0.004 * gauss(X, Y, 0.0, lay.eye_y + 0.03, 0.02, 0.012))
    # AU5: the upper lids retract upwards (over the eyeball), showing sclera above the iris
    put("AU5", dy=0.03 * upper_lid, dz=-0.012 * upper_lid)
    # AU6: the cheeks rise and bulge, pushing the lower lids up; crow's feet; brow tails drop
    cheek = mirrored(X, Y, lay.eye_x + 0.02, lay.eye_y - 0.1, 0.065, 0.05)
    corner_x, corner_y = lay.eye_x + lay.eye_w + 0.025, lay.eye_y
    angle = np.arctan2(Y - corner_y, ax - corner_x)
    crows = mirrored(X, Y, corner_x, corner_y, 0.022, 0.025) * np.cos(5.0 * angle)
    put("AU6", dy=0.05 * cheek + 0.014 * lower_lid
        - 0.01 * mirrored(X, Y, lay.eye_x + 0.05, brow, 0.05, 0.03),
        dz=0.018 * cheek + 0.005 * lower_lid - 0.006 * crows)
    # AU7: the lids tighten: the lower lid rises and bulges, the upper lid drops a little
    put("AU7", dy=0.026 * lower_lid - 0.009 * upper_lid, dz=0.006 * lower_lid + 0.004 * upper_lid)
    # AU9: the nose wings and upper lip rise, the bridge skin bunches into lines, the inner
    # brows drop, the nasolabial folds deepen
    wings = mirrored(X, Y, lay.nose_w, lay.nose_tip_y - 0.012, 0.03, 0.03)
    bridge = gauss(X, Y, 0.0, lay.eye_y - 0.035, 0.032, 0.04)
    lip_middle = gauss(X, Y, 0.0, lay.mouth_y + 0.02, 0.07, 0.03)
    put("AU9", dy=0.058 * wings - 0.014 * bridge + 0.018 * lip_middle + 0.012 * cheek
        - 0.02 * mirrored(X, Y, lay.eye_x - 0.08, brow, 0.05, 0.04),
        dz=0.006 * wings + 0.007 * bridge * _wrinkles(Y - lay.eye_y, 0.018) - 0.01 * fold)
    # AU10: the upper lip rises (more at its sides), parting from the lower lip over the
    # teeth; the nasolabial folds deepen
    w = (mirrored(X, Y, 0.045, lay.mouth_y + 0.03, 0.04, 0.035)
         + 0.5 * gauss(X, Y, 0.0, lay.mouth_y + 0.03, 0.05, 0.035))
    w = np.where(upper_side, w, w * (1.0 - span))
    put("AU10", dy=0.038 * w + 0.01 * wings, dz=0.008 * w - 0.014 * fold)
    # AU12: the lip corners go up, out and back along the cheek; the cheeks bulge
    corners = (mirrored(X, Y, lay.mouth_w, lay.mouth_y, 0.045, 0.04)
               + 0.5 * mirrored(X, Y, lay.mouth_w + 0.04, lay.mouth_y + 0.05, 0.05, 0.05))
    cheek_bulge = mirrored(X, Y, lay.mouth_w + 0.065, lay.mouth_y + 0.09, 0.05, 0.05)
    put("AU12", dx=0.03 * side * corners, dy=0.036 * corners + 0.015 * cheek_bulge,
        dz=-0.015 * corners + 0.018 * cheek_bulge - 0.012 * fold)
    # AU14: the corners tighten back into the cheeks with a dimple beside them
    tight = mirrored(X, Y, lay.mouth_w, lay.mouth_y, 0.03, 0.03)
    put("AU14", dx=0.025 * side * tight, dy=0.008 * tight,
        dz=-0.03 * tight - 0.012 * mirrored(X, Y, lay.mouth_w + 0.03, lay.mouth_y, 0.01, 0.016)
        + 0.006 * mirrored(X, Y, lay.mouth_w + 0.055, lay.mouth_y, 0.02, 0.03))
    # AU15: the corners are pulled down (from below, by the depressor)
    w = (mirrored(X, Y, lay.mouth_w, lay.mouth_y, 0.04, 0.035)
         + 0.6 * mirrored(X, Y, lay.mouth_w - 0.01, lay.mouth_y - 0.05, 0.035, 0.04))
    put("AU15", dx=0.008 * side * w, dy=-0.042 * w, dz=0.004 * w)
    # AU17: the chin boss pushes the lower lip (and with it the upper) up and out; the chin
    # skin dimples and the mentolabial fold deepens
    chin = gauss(X, Y, 0.0, lay.chin_y + 0.07, 0.06, 0.05)
    lip = gauss(X, Y, 0.0, lay.mouth_y - 0.03, 0.08, 0.035)
    dimpling = np.sin(X / 0.011) * np.sin((Y - lay.chin_y) / 0.011)
    put("AU17", dy=0.05 * chin + 0.035 * lip,
        dz=0.02 * chin + 0.014 * lip + 0.005 * chin * dimpling
        - 0.006 * gauss(X, Y, 0.0, lay.mouth_y - lay.lip_lo - 0.03, 0.05, 0.012))
    # AU20: the lips stretch sideways (corners out, slightly down and back) and flatten
    lips_zone = gauss(0.0, Y, 0.0, lay.mouth_y, 1.0, 0.045)
    stretch = np.clip(X / lay.mouth_w, -1.0, 1.0) * lips_zone * gauss(ax, 0.0, 0.0, 0.0, 0.16, 1.0)
    put("AU20", dx=0.05 * stretch + 0.01 * side * corners,
        dy=-0.01 * corners - 0.2 * (Y - line) * lips_zone * span,
        dz=-0.012 * corners)
    # AU23: the lips tighten: the red of both lips narrows towards the seam, the corners
    # come in, the lips press back and the skin around them bulges
    lips_red = lay.mouth_span(X * 0.9) * np.exp(-0.5 * ((Y - line) / 0.035) ** 2)
    ring = gauss(X, Y, 0.0, lay.mouth_y, 0.13, 0.07) - lips_red
    put("AU23", dx=-0.03 * side * tight, dy=-0.75 * (Y - line) * lips_red,
        dz=-0.01 * lips_red + 0.006 * np.clip(ring, 0.0, 1.0))
    # AU25: the lips part along the seam (mostly the lower lip going down)
    up = span * smoothstep(line + 0.07, line + 0.01, Y) * upper_side
    down = span * smoothstep(line - 0.11, line - 0.02, Y) * ~upper_side
    put("AU25", dy=0.012 * up - 0.04 * down, dz=-0.005 * down)
    # AU26: the jaw drops: lower lip, chin and jaw rotate about the hinge
    fields[AU_INDEX["AU26"]] += _jaw_motion(points, jaw_weight(X, Y, points[..., 2], lay))
    return fields * ACTION_SCALE


def interior_fields(X: np.ndarray, Y: np.ndarray, points: np.ndarray, lay: Layout) -> np.ndarray:
    """float32 [A, *X.shape, 3] for the mouth cavity: its lower half (lower teeth, tongue)
    follows the jaw (AU26); nothing else moves it (it is seen only between the lips)."""
    fields = np.zeros((NUM_AUS, *X.shape, 3), np.float32)
    lower = smoothstep(lay.lip_line(X) - 0.008, lay.lip_line(X) - 0.03, Y)
    fields[AU_INDEX["AU26"]] = _jaw_motion(points, lower)
    return fields * ACTION_SCALE
