"""The MeshFaces head: a 3D surface sampled on a (u, v) parameter grid.

Model frame, in face units (hairline to chin is about 1): x to the head's left (image
right when frontal), y up, z towards the camera; the origin is the head centre at eye level.
The base surface is a superellipsoid (u: azimuth, v: elevation); facial features are smooth
bumps and dents added along z on its front (nose, brow ridge, eye sockets, cheeks, lips,
chin) or along its normal (hair volume, ears), then a person's global shape modes (face
width and length, jaw taper, forehead slope, a random bump) warp the whole head. Features
are written in *material* coordinates (X, Y): the base point's frontal position, which
textures and action fields share, so everything painted on the skin moves with it.

The lid openings are holes in the surface; the eyeballs (spheres, ``mesh.py``) sit behind
them, and the lids are kept in front of the eyeballs by a smooth maximum with an eyeball
dome. The mouth is a seam (``actions.py`` moves the lips apart across it); ``mesh.py``
puts a dark mouth cavity with teeth behind the lips and an elliptic-cylinder neck below.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from data_pipelines.synthetic.meshfaces.people import LOOK, SHAPE

# Superellipsoid base: half-width, half-heights above / below eye level, half-depth, and
# the exponents that flatten the front (below 1: boxier than an ellipsoid).
HEAD_A, HEAD_B_TOP, HEAD_B_BOTTOM, HEAD_C = 0.41, 0.68, 0.62, 0.52
EXP_U, EXP_V_TOP, EXP_V_BOTTOM = 0.8, 0.9, 0.72
U_RANGE = np.deg2rad(112.0)  # azimuths sampled: the back of the head is never visible
FACE_CENTRE_Y = -0.07        # midway between hairline and chin: the framing reference
FACE_HEIGHT = 0.98           # hairline to chin, for the framing
EYELID_THICKNESS = 0.010     # lids stay this far in front of the eyeball


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below edge0, 1 above edge1 (either order), cubic in between."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    """Unit-height Gaussian bump with standard deviations sx, sy."""
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def mirrored(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float,
             sy: float) -> np.ndarray:
    """A Gaussian bump on each side of the face (at +-cx)."""
    return gauss(np.abs(x), y, cx, cy, sx, sy)


def _signed_power(w: np.ndarray, e: float) -> np.ndarray:
    return np.sign(w) * np.abs(w) ** e


def base_point(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Superellipsoid point (x, y, z) at azimuth u and elevation v (radians)."""
    e = np.where(v >= 0, EXP_V_TOP, EXP_V_BOTTOM)  # a squarer jaw than crown
    cv = np.abs(np.cos(v)) ** e
    sv = _signed_power(np.sin(v), e)
    b = np.where(v >= 0, HEAD_B_TOP, HEAD_B_BOTTOM)
    return (HEAD_A * cv * _signed_power(np.sin(u), EXP_U), b * sv,
            HEAD_C * cv * _signed_power(np.cos(u), EXP_U))


def _arc_uniform(points: np.ndarray, params: np.ndarray, spacing: float) -> np.ndarray:
    """Parameters along a finely sampled curve [K, D] at equal arc-length steps <= spacing."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    count = int(np.ceil(arc[-1] / spacing)) + 1
    return np.interp(np.linspace(0.0, arc[-1], count), arc, params)


@functools.lru_cache(maxsize=8)
def head_grid(spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Azimuths u [Nu] and elevations v [Nv] (radians) whose base points are about
    ``spacing`` face units apart along the front's centre lines."""
    fine = np.linspace(-np.pi / 2, np.pi / 2, 4001)
    _, y, z = base_point(np.zeros_like(fine), fine)
    v = _arc_uniform(np.stack([y, z], 1), fine, spacing)
    fine_u = np.linspace(-U_RANGE, U_RANGE, 4001)
    x, _, z = base_point(fine_u, np.zeros_like(fine_u))
    u = _arc_uniform(np.stack([x, z], 1), fine_u, spacing)
    return u, v


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one person's features sit, in face units (material coordinates)."""

    eye_x: float       # |X| of the eye centres
    eye_y: float
    eye_w: float       # half-width of the lid opening
    eye_up: float      # upper lid edge above eye_y (at the eye centre)
    eye_lo: float      # lower lid edge below eye_y
    eye_r: float       # eyeball radius
    brow_y: float      # brow line above eye_y
    brow_arch: float
    nose_root_y: float
    nose_tip_y: float
    nose_out: float    # tip protrusion
    nose_w: float      # |X| of the nose wings
    mouth_y: float     # lip line at the centre
    mouth_w: float     # |X| of the mouth corners
    lip_up: float      # vermilion height of the upper lip
    lip_lo: float
    chin_y: float
    hairline_y: float

    def lip_line(self, x: np.ndarray) -> np.ndarray:
        """Y of the seam between the lips (corners slightly lower)."""
        return self.mouth_y - 0.006 * np.clip(x / self.mouth_w, -1.3, 1.3) ** 2

    def mouth_span(self, x: np.ndarray) -> np.ndarray:
        """1 at the mouth's middle, 0 at and beyond the corners (how far the seam opens)."""
        return np.sqrt(np.clip(1.0 - (x / self.mouth_w) ** 2, 0.0, 1.0))

    def lid_edges(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Upper and lower lid edge Y at X, and the opening's profile (0 outside)."""
        profile = np.clip(1.0 - ((np.abs(x) - self.eye_x) / self.eye_w) ** 2, 0.0, 1.0) ** 0.75
        return self.eye_y + self.eye_up * profile, self.eye_y - self.eye_lo * profile, profile


def person_layout(shape: np.ndarray, look: np.ndarray) -> Layout:
    """The feature positions of one person from shape [S] and look [L] rows."""
    s = lambda name: float(shape[SHAPE[name]])  # noqa: E731
    size = 1.0 + 0.08 * s("eye_size")
    tip_y = -0.175 - 0.015 * s("nose_length")
    return Layout(
        eye_x=0.163 + 0.009 * s("eye_spacing"), eye_y=0.0, eye_w=0.066 * size,
        eye_up=0.025 * size, eye_lo=0.016 * size, eye_r=0.058,
        brow_y=0.085 + 0.01 * float(look[LOOK["brow_arch"]] - 0.5),
        brow_arch=0.012 + 0.02 * float(look[LOOK["brow_arch"]]),
        nose_root_y=0.03, nose_tip_y=tip_y, nose_out=0.13 + 0.018 * s("nose_protrusion"),
        nose_w=0.045 + 0.005 * s("nose_width"),
        mouth_y=-0.335 - 0.012 * s("face_length"), mouth_w=0.115 + 0.01 * s("mouth_width"),
        lip_up=0.022 * (1.0 + 0.18 * s("lip_upper")), lip_lo=0.03 * (1.0 + 0.18 * s("lip_lower")),
        chin_y=-0.56 - 0.015 * s("face_length"),
        hairline_y=0.40 + 0.07 * float(look[LOOK["hairline"]]))


def feature_relief(X: np.ndarray, Y: np.ndarray, lay: Layout, shape: np.ndarray) -> np.ndarray:
    """Height [same shape as X] added along z on the front of the face, before the lids."""
    s = lambda name: float(shape[SHAPE[name]])  # noqa: E731
    ax = np.abs(X)
    z = 0.015 * gauss(X, Y, 0.0, 0.26, 0.2, 0.12)                          # forehead
    z += (0.028 + 0.007 * s("brow_ridge")) * np.exp(
        -0.5 * ((Y - lay.eye_y - 0.075) / 0.032) ** 2 - 0.5 * (X / 0.24) ** 4)  # brow ridge
    z -= 0.012 * gauss(X, Y, 0.0, lay.eye_y + 0.035, 0.03, 0.03)            # nasal root dip
    z -= 0.05 * mirrored(X, Y, lay.eye_x, lay.eye_y, 0.062, 0.042)          # eye sockets
    z += (0.028 + 0.008 * s("cheeks")) * mirrored(X, Y, 0.19, lay.eye_y - 0.14, 0.075, 0.07)
    z += 0.014 * mirrored(X, Y, 0.235, lay.eye_y - 0.06, 0.055, 0.035)       # cheekbones
    z -= 0.02 * mirrored(X, Y, 0.34, 0.15, 0.05, 0.08)                       # temples
    # nose: a ridge from the root to the tip, growing wider and higher, then the tip bulb,
    # the wings, and the groove around each wing
    t = np.clip((lay.nose_root_y - Y) / (lay.nose_root_y - lay.nose_tip_y), 0.0, 1.0)
    width = (0.013 + 0.017 * t) * (1.0 + 0.08 * s("nose_width"))
    above = lay.nose_out * (0.12 + 0.88 * t ** 1.6)
    below = lay.nose_out * np.exp(-0.5 * ((Y - lay.nose_tip_y) / 0.021) ** 2)
    ridge = np.where(Y >= lay.nose_tip_y, above, below)
    fade_top = smoothstep(lay.nose_root_y + 0.05, lay.nose_root_y, Y)
    z += ridge * fade_top * np.exp(-0.5 * (X / width) ** 2)
    scale = lay.nose_out / 0.13
    z += 0.016 * scale * gauss(X, Y, 0.0, lay.nose_tip_y + 0.004, 0.021, 0.018)
    z += 0.038 * scale * mirrored(X, Y, lay.nose_w, lay.nose_tip_y - 0.014, 0.016, 0.015)
    z -= 0.006 * np.exp(-0.5 * ((np.hypot((ax - lay.nose_w) / 1.1, Y - lay.nose_tip_y + 0.014)
                                  - 0.024) / 0.005) ** 2)
    # mouth: the tooth arch pushes the muzzle forward; lips are two rolls either side of
    # the seam; below them the mentolabial fold and the chin
    z += 0.034 * gauss(X, Y, 0.0, lay.mouth_y + 0.015, 0.13, 0.085)
    span = lay.mouth_span(X * 0.95)
    line = lay.lip_line(X)
    z += (0.018 + 0.004 * s("lip_upper")) * span * np.exp(
        -0.5 * ((Y - line - 0.55 * lay.lip_up) / (0.5 * lay.lip_up)) ** 2)
    z += (0.022 + 0.005 * s("lip_lower")) * span * np.exp(
        -0.5 * ((Y - line + 0.5 * lay.lip_lo) / (0.5 * lay.lip_lo)) ** 2)
    z -= 0.003 * span * np.exp(-0.5 * ((Y - line) / 0.004) ** 2)
    z -= 0.012 * gauss(X, Y, 0.0, lay.mouth_y - lay.lip_lo - 0.03, 0.055, 0.016)
    z += (0.03 + 0.008 * s("chin")) * gauss(X, Y, 0.0, lay.chin_y + 0.075, 0.065, 0.045)
    # upper lid crease
    upper, _, profile = lay.lid_edges(X)
    z -= 0.004 * profile * np.exp(-0.5 * ((Y - upper - 0.016) / 0.004) ** 2)
    return z


def hair_boundary(u: np.ndarray, lay: Layout, look: np.ndarray) -> np.ndarray:
    """Lowest Y of the hair at azimuth u: hairline in front, sideburns, nape (or long hair)."""
    style = float(look[LOOK["hair_style"]])
    au = np.rad2deg(np.abs(u))
    knots = np.array([0.0, 40.0, 62.0, 78.0, 88.0, 100.0, 112.0])
    if style < 0.14:   # receding: hair only around the sides and back
        values = [0.58, 0.52, 0.30, 0.12, 0.10, 0.0, -0.30]
    elif style < 0.72:  # short
        values = [lay.hairline_y, lay.hairline_y - 0.02, lay.hairline_y - 0.1, -0.06, 0.06,
                  0.0, -0.35]
    else:              # long: falls past the jaw at the sides
        values = [lay.hairline_y - 0.03, lay.hairline_y - 0.05, lay.hairline_y - 0.12, -0.62,
                  -0.66, -0.66, -0.66]
    return np.interp(au, knots, values)


def hair_mask(u: np.ndarray, Y: np.ndarray, lay: Layout, look: np.ndarray) -> np.ndarray:
    """[Nv, Nu] soft hair coverage in [0, 1] (u [1 or Nv, Nu], Y [Nv, 1 or Nu])."""
    return smoothstep(-0.012, 0.018, Y - hair_boundary(u, lay, look))


def ear_relief(U: np.ndarray, Y: np.ndarray, lay: Layout, shape: np.ndarray) -> np.ndarray:
    """Outward height [Nv, Nu] of the ears on the sides of the head: a raised oval with a
    hollow (concha) and a rim (helix)."""
    size = 1.0 + 0.1 * float(shape[SHAPE["ears"]])
    relief = np.zeros_like(Y)
    for side in (-1.0, 1.0):
        q = np.hypot((U - side * (np.pi / 2 + 0.1)) * HEAD_A / (0.045 * size),
                     (Y - lay.eye_y + 0.045) / (0.1 * size))
        relief += (0.035 * smoothstep(1.0, 0.75, q) * (1.0 - 0.45 * np.exp(-0.5 * (q / 0.4) ** 2))
                   + 0.01 * np.exp(-0.5 * ((q - 0.85) / 0.08) ** 2))
    return relief


def scalp_lift(U: np.ndarray, Y: np.ndarray, hair: np.ndarray, ear: np.ndarray,
               look: np.ndarray) -> np.ndarray:
    """Outward offset [Nv, Nu]: the ears where there is no hair, the hair's volume (long
    hair also hangs out beside the jaw)."""
    thickness = 0.012 + 0.035 * float(look[LOOK["hair_volume"]])
    if float(look[LOOK["hair_style"]]) >= 0.72:
        hang = smoothstep(0.05, -0.45, Y) * smoothstep(1.2, 1.45, np.abs(U))
        thickness = thickness + 0.05 * hang
    return ear * (1.0 - hair) + hair * thickness


def identity_warp(points: np.ndarray, X: np.ndarray, Y: np.ndarray, shape: np.ndarray,
                  front: np.ndarray) -> np.ndarray:
    """A person's global shape modes applied to points [..., 3] with material X, Y [...]."""
    s = lambda name: float(shape[SHAPE[name]])  # noqa: E731
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    jaw = (0.1 + 0.045 * s("jaw_width")) * smoothstep(-0.1, -0.62, Y)
    x = x * (1.0 + 0.045 * s("face_width")) * (1.0 - jaw)
    y = y + 0.035 * s("face_length") * np.minimum(Y, 0.0) / 0.6
    z = z * np.where(z < 0, 1.0 + 0.05 * s("head_depth"), 1.0)
    z = z - 0.025 * s("forehead") * smoothstep(0.12, 0.5, Y) * front
    z = z + 0.01 * s("bump_amplitude") * front * gauss(
        X, Y, 0.12 * s("bump_x"), -0.1 + 0.12 * s("bump_y"), 0.08, 0.08)
    return np.stack([x, y, z], -1)


def grid_normals(points: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """Unit normals [H, W, 3] of a surface grid (axis 0 upwards, axis 1 rightwards), by
    central differences; ``fallback`` where the grid degenerates (poles)."""
    du = np.empty_like(points)
    dv = np.empty_like(points)
    du[:, 1:-1] = points[:, 2:] - points[:, :-2]
    du[:, 0] = points[:, 1] - points[:, 0]
    du[:, -1] = points[:, -1] - points[:, -2]
    dv[1:-1] = points[2:] - points[:-2]
    dv[0] = points[1] - points[0]
    dv[-1] = points[-1] - points[-2]
    n = np.stack([du[..., 1] * dv[..., 2] - du[..., 2] * dv[..., 1],
                  du[..., 2] * dv[..., 0] - du[..., 0] * dv[..., 2],
                  du[..., 0] * dv[..., 1] - du[..., 1] * dv[..., 0]], -1)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    if fallback is not None:
        bad = norm[..., 0] < 1e-10
        n[bad] = fallback[bad]
        norm[bad] = 1.0
    return n / np.maximum(norm, 1e-12)
