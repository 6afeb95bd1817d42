"""WarpFaces facial features, painted on the person's canvas in face coordinates (EM).

Each function takes the canvas grid ``u``, ``v`` (float32 [Hc, Wc], EM), the person (a
dict of floats, see :class:`~.people.People`), its keypoints (name -> (u, v)) and
returns maps of the canvas's shape. ``density`` is canvas pixels per EM; soft edges are
never narrower than about a canvas pixel, so features stay antialiased at any size.
"""

from __future__ import annotations

import numpy as np

from data_pipelines.synthetic.warpfaces.people import mouth_line_v
from data_pipelines.synthetic.warpfaces.texture import (
    arc, draw_strokes, gaussian, lattice_noise, polyline_line, smoothstep, soft_step)

Keypoints = dict[str, tuple[float, float]]

# The face canvas covers u0..u1, v0..v1 (EM): the whole head with hair, ears, neck and
# shoulders; the renderer replicates its border rows (shoulders) beyond it.
CANVAS_EXTENT = (-2.8, 2.8, -2.7, 3.6)


def relief(u: np.ndarray, v: np.ndarray, person: dict, kp: Keypoints) -> np.ndarray:
    """Height of the face surface towards the camera (EM), smooth: the skull's dome, eye
    sockets, brow ridge, nose, cheekbones, lips and chin. Only its slopes matter (shading)."""
    width, half_height = 1.06 * person["cheek_half_width"], 0.53 * person["head_height"]
    centre_v = person["chin_v"] - 0.5 * person["head_height"]
    h = 0.95 * np.sqrt(np.maximum(0.0, 1.0 - np.square(u / width)
                                  - np.square((v - centre_v) / half_height)))
    nose_base = person["nose_base_v"]
    for tag in ("l", "r"):
        pu, pv = kp[f"pupil_{tag}"]
        h -= 0.11 * gaussian(u, v, (pu, pv + 0.02), 0.24, 0.16)             # eye socket
        h += 0.05 * gaussian(u, v, (0.9 * pu, kp[f"brow_peak_{tag}"][1] + 0.04), 0.3, 0.07)
        h += 0.07 * gaussian(u, v, kp[f"cheek_{tag}"], 0.24, 0.2)            # cheekbone
        h += 0.07 * gaussian(u, v, kp[f"nose_wing_{tag}"], 0.08, 0.07)       # alar wing
    # nose: a ridge widening from the bridge to the tip, and the tip's ball
    along = smoothstep((v + 0.05) / (nose_base + 0.05))
    ridge_width = 0.085 + 0.06 * along
    on_nose = soft_step(nose_base - 0.04 - v, 0.05) * soft_step(v + 0.12, 0.1)
    h += person["nose_relief"] * (0.35 + 0.65 * along) * on_nose * np.exp(
        -0.5 * np.square(u / ridge_width))
    h += 0.4 * person["nose_relief"] * gaussian(u, v, kp["nose_tip"], 0.09, 0.07)
    h += 0.06 * gaussian(u, v, (0.0, 1.0), 0.8 * person["mouth_half_width"], 0.13)  # lips
    h -= 0.03 * gaussian(u, v, (0.0, 1.0 + person["lower_lip"] + 0.08), 0.25, 0.05)
    h += 0.08 * gaussian(u, v, kp["chin_boss"], 0.28, 0.18)
    return h


def lambert(h: np.ndarray, density: float, light: dict) -> np.ndarray:
    """Diffuse light level of a surface of height ``h`` (EM) plus a faint specular sheen.

    light: ``direction`` (3 floats: u, v, towards the camera; unit) and ``directional``
    (the key light's share). A surface facing the camera under frontal light gets ~1.
    """
    dh_dv, dh_du = np.gradient(h, 1.0 / density)
    norm = np.sqrt(1.0 + dh_du * dh_du + dh_dv * dh_dv)
    nu, nv, nz = -dh_du / norm, -dh_dv / norm, 1.0 / norm
    lu, lv, lz = light["direction"]
    key = np.maximum(0.0, nu * lu + nv * lv + nz * lz)
    share = light["directional"]
    diffuse = (1.0 - share) * (0.55 + 0.45 * nz) + share * 1.15 * key
    half = np.array([lu, lv, lz + 1.0]) / np.linalg.norm([lu, lv, lz + 1.0])
    specular = 0.07 * np.power(np.maximum(0.0, nu * half[0] + nv * half[1] + nz * half[2]), 24)
    return (diffuse + specular).astype(np.float32)


def skin_albedo(rng: np.random.Generator, u, v, person: dict, kp: Keypoints,
                extent) -> np.ndarray:
    """Skin albedo with blotches (large, soft), pores (fine) and a few moles."""
    blotch = lattice_noise(rng, u, v, 0.4, extent) + 0.5 * lattice_noise(rng, u, v, 0.17, extent)
    pores = (lattice_noise(rng, u, v, 0.045, extent)
             + 0.6 * lattice_noise(rng, u, v, 0.022, extent))
    # noise std ~0.85: blotches vary the albedo by 1-5 %, pores by 1.5-4.5 %
    albedo = person["skin_albedo"] * (1.0 + 0.6 * person["blotchiness"] * blotch
                                      + 0.5 * person["skin_roughness"] * pores)
    for tag in ("l", "r"):  # darker skin under the eyes and in the inner eye corners
        pu, pv = kp[f"pupil_{tag}"]
        albedo *= 1.0 - 0.07 * gaussian(u, v, (pu, pv + 0.17), 0.2, 0.06)
    for _ in range(int(rng.integers(0, 4))):  # moles
        centre = (rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 1.5))
        size = rng.uniform(0.012, 0.03)
        albedo *= 1.0 - rng.uniform(0.25, 0.5) * gaussian(u, v, centre, size, size)
    return albedo.astype(np.float32)


def window(u: np.ndarray, v: np.ndarray, centre, half_u: float, half_v: float
           ) -> tuple[slice, slice]:
    """(rows, cols) of the canvas grid (u, v) within a box around ``centre``: features
    are painted there only (they are zero further out), which keeps painting cheap."""
    c0, c1 = np.searchsorted(u[0], [centre[0] - half_u, centre[0] + half_u])
    r0, r1 = np.searchsorted(v[:, 0], [centre[1] - half_v, centre[1] + half_v])
    return slice(int(r0), int(r1)), slice(int(c0), int(c1))


def eyes(rng: np.random.Generator, u, v, person: dict, kp: Keypoints, density: float,
         light: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lid darkening, aperture, eyeball), each [Hc, Wc].

    The aperture (1 inside the lid opening) is what the eyeball shows through; the
    eyeball (sclera, iris, pupil, catchlight) is drawn over a wider area than the
    opening, so raising a lid reveals more of it.
    """
    dark = np.zeros(u.shape, np.float32)
    aperture = np.zeros(u.shape, np.float32)
    eyeball = np.full(u.shape, 0.75, np.float32)
    half_width, opening = person["eye_half_width"], person["eye_opening"]
    tilt = person["canthal_tilt"]
    edge = max(0.01, 0.8 / density)
    lashes = []
    for side, tag in ((-1.0, "l"), (1.0, "r")):
        cu, cv = kp[f"pupil_{tag}"]
        box = window(u, v, (cu, cv), 2.0 * half_width, 2.0 * half_width)
        uu, vv = u[box], v[box]
        axis = (side * np.cos(tilt), -np.sin(tilt))      # outward along the eye
        down = (side * np.sin(tilt), np.cos(tilt))
        a = (uu - cu) * axis[0] + (vv - cv) * axis[1]
        b = (uu - cu) * down[0] + (vv - cv) * down[1]
        x = a / half_width
        inside = np.clip(1.0 - x * x, 0.0, None)
        upper = -opening * inside * (1.0 - 0.15 * x)     # peak slightly towards the nose
        lower = 0.8 * opening * inside * (1.0 + 0.15 * x)
        across = soft_step(1.0 - np.abs(x), edge / half_width)
        aperture[box] += soft_step(b - upper, edge) * soft_step(lower - b, edge) * across
        # lash line (thicker outwards), lid crease and lower lid line on the skin
        lash_line = np.exp(-0.5 * np.square((b - upper + 0.012) / 0.014))
        lid = (0.55 + 0.25 * x) * lash_line * soft_step(1.06 - np.abs(x), 0.05)
        lid += 0.2 * np.exp(-0.5 * np.square((b - upper * 1.1 + 0.075) / 0.014)) * soft_step(
            0.85 - np.abs(x), 0.1)
        lid += 0.18 * np.exp(-0.5 * np.square((b - lower - 0.012) / 0.011)) * across
        dark[box] += lid
        # eyeball: sclera darkening towards the corners, iris with streaks, pupil, catchlight
        r = np.hypot(uu - cu, vv - cv)
        iris_r = 0.4 * half_width
        sclera = 0.8 * (1.0 - 0.35 * np.clip(x * x, 0, 1))
        theta = np.arctan2(vv - cv, uu - cu)
        streaks = lattice_noise(rng, theta * 9.0, r / iris_r * 2.0, 1.0, (-30, 30, 0, 4))
        iris = person["iris_albedo"] * (0.8 + 0.3 * streaks) * (
            1.0 - 0.55 * smoothstep((r / iris_r - 0.7) / 0.3))
        iris = np.where(r < 0.38 * iris_r, 0.04, iris)
        on_iris = soft_step(iris_r - r, edge)
        ball = sclera * (1 - on_iris) + iris * on_iris
        glint_centre = (cu - 0.35 * iris_r * light["direction"][0],
                        cv - 0.35 * iris_r * light["direction"][1])
        glint = gaussian(uu, vv, glint_centre, 0.16 * iris_r, 0.16 * iris_r)
        ball = ball + (0.95 - ball) * glint
        near = gaussian(uu, vv, (cu, cv), 1.3 * half_width, 1.3 * half_width)
        eyeball[box] = eyeball[box] * (1 - near) + ball * near
        # lashes: short curved strokes along the upper lid, longer outwards
        t = rng.uniform(-0.55, 1.0, 18)
        angle = -np.pi / 2 + 0.9 * t + rng.normal(0, 0.12, 18)   # up, fanning outwards
        length = (0.035 + 0.03 * np.clip(t, 0, None)) * rng.uniform(0.8, 1.2, 18)
        root_a = t * half_width
        root_b = -opening * (1 - t * t) * (1 - 0.15 * t) - 0.008
        pa = np.stack([root_a, root_a + 0.5 * length * np.cos(angle),
                       root_a + length * np.cos(angle + 0.3)], 1)
        pb = np.stack([root_b, root_b + 0.5 * length * np.sin(angle) - 0.004,
                       root_b + length * np.sin(angle + 0.3)], 1)
        lashes.append(np.stack([cu + pa * axis[0] + pb * down[0],
                                cv + pa * axis[1] + pb * down[1]], -1))
    lashes = np.concatenate(lashes)
    lash_mask = _strokes_on_canvas(u, density, lashes, np.full(len(lashes), 0.9))
    shade = (1 - light["directional"]) + light["directional"] * light["direction"][2]
    return (np.clip(dark + 0.8 * lash_mask, 0, 0.9), np.clip(aperture, 0, 1),
            (eyeball * shade).astype(np.float32))


def brows(rng: np.random.Generator, u, v, person: dict, kp: Keypoints,
          density: float) -> np.ndarray:
    """Brow hair coverage in [0, 1]: many short strokes along each brow, rising at the
    inner end and lying outwards along the rest, on a faint soft base."""
    coverage = np.zeros(u.shape, np.float32)
    strokes, tones = [], []
    weight = person["brow_weight"]
    count = int(170 * weight)
    for side, tag in ((-1.0, "l"), (1.0, "r")):
        p0, peak, p2 = (np.array(kp[f"brow_{k}_{tag}"]) for k in ("inner", "peak", "tail"))
        control = 2.0 * peak - 0.5 * (p0 + p2)   # the quadratic Bezier passes the peak

        def curve(t: np.ndarray) -> np.ndarray:
            t = t[:, None]
            return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * control + t ** 2 * p2

        # soft base: the skin under the hairs looks darker, thicker at the inner end
        centre = 0.5 * (p0 + p2)
        box = window(u, v, centre, 0.5 * abs(p2[0] - p0[0]) + 0.2, 0.3)
        along = curve(np.linspace(0, 1, 9))
        base = polyline_line(u[box], v[box], along, 0.03 * weight + 0.01)
        coverage[box] = np.maximum(coverage[box], 0.35 * base)
        # hairs: roots spread across the brow's thickness
        t = rng.uniform(size=count) ** 0.85
        offset = rng.uniform(-0.5, 0.5, count) * weight * (0.12 - 0.075 * t)
        length = rng.uniform(0.06, 0.11, count) * (1 - 0.3 * t)
        tones.append(rng.uniform(0.55, 1.0, count))
        tangent = 2 * (1 - t)[:, None] * (control - p0) + 2 * t[:, None] * (p2 - control)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1) * side   # points down
        root = curve(t) + normal * offset[:, None]
        rising = np.array([side * 0.35, -0.94])
        lying = tangent + np.array([0.0, -0.25]) - normal * offset[:, None] * 4.0
        mix = smoothstep(t / 0.25)[:, None]
        direction = rising * (1 - mix) + lying * mix
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        bend = np.stack([-direction[:, 1], direction[:, 0]], 1) * side * 0.012
        reach = length[:, None] * direction
        strokes.append(np.stack([root, root + 0.5 * reach + bend, root + reach], 1))
    hairs = _strokes_on_canvas(u, density, np.concatenate(strokes), np.concatenate(tones))
    return np.maximum(coverage, hairs)


def nose_marks(u, v, person: dict, kp: Keypoints) -> np.ndarray:
    """Darkening of the nostrils, alar creases and the shadow under the nose tip."""
    dark = np.zeros(u.shape, np.float32)
    base, half = person["nose_base_v"], person["nose_half_width"]
    for side, tag in ((-1.0, "l"), (1.0, "r")):
        cu, cv = side * 0.5 * half, base - 0.035
        rot = side * 0.35
        a = (u - cu) * np.cos(rot) + (v - cv) * np.sin(rot)
        b = -(u - cu) * np.sin(rot) + (v - cv) * np.cos(rot)
        dark += 0.75 * soft_step(1.0 - np.hypot(a / 0.07, b / 0.032), 0.35)
        wing = kp[f"nose_wing_{tag}"]
        start, stop = (-2.2, 1.4) if side > 0 else (np.pi + 2.2, np.pi - 1.4)
        crease = arc((wing[0] - side * 0.01, wing[1]), 0.085, 0.09, start, stop)
        dark += 0.22 * polyline_line(u, v, crease, 0.014)
    dark += 0.12 * gaussian(u, v, (0.0, base + 0.015), 0.14, 0.025)
    return np.clip(dark, 0, 0.85)


def lips(u, v, person: dict, density: float) -> tuple[np.ndarray, np.ndarray]:
    """(lip coverage, mouth-line darkening): the vermilion of both lips with a cupid's
    bow, and the dark line where they meet, darkest at the corners."""
    half = person["mouth_half_width"]
    x = np.clip(u / half, -1.0, 1.0)
    seam = mouth_line_v(u, half, person["corner_lift"])
    body = np.clip(1.0 - x * x, 0.0, None)
    bow = (1.0 + 0.18 * np.exp(-0.5 * np.square((np.abs(u) - 0.28 * half) / (0.12 * half)))
           - 0.22 * np.exp(-0.5 * np.square(u / (0.07 * half))))
    top = seam - person["upper_lip"] * body ** 0.6 * bow
    bottom = seam + person["lower_lip"] * body ** 0.55
    edge = max(0.012, 0.8 / density)
    across = soft_step(half - np.abs(u), edge)
    lip = soft_step(v - top, edge) * soft_step(bottom - v, edge) * across
    line_width = max(0.011, 0.6 / density)
    line = np.exp(-0.5 * np.square((v - seam) / line_width)) * soft_step(
        1.04 * half - np.abs(u), edge) * (0.55 + 0.3 * x * x)
    for side in (-1.0, 1.0):
        corner = (side * half, 1.0 - person["corner_lift"])
        line += 0.35 * gaussian(u, v, corner, 0.03, 0.025)
    return lip.astype(np.float32), np.clip(line, 0, 0.85).astype(np.float32)


def em_to_canvas_px(u: np.ndarray, v: np.ndarray, density: float) -> tuple[np.ndarray, np.ndarray]:
    """Canvas pixel coordinates (x, y; pixel centres at integers) of face points (EM)."""
    return (u - CANVAS_EXTENT[0]) * density - 0.5, (v - CANVAS_EXTENT[2]) * density - 0.5


def canvas_grid(density: float) -> tuple[np.ndarray, np.ndarray]:
    """Face coordinates (u, v) float32 [Hc, Wc] of the canvas pixel centres."""
    cols = int(round((CANVAS_EXTENT[1] - CANVAS_EXTENT[0]) * density))
    rows = int(round((CANVAS_EXTENT[3] - CANVAS_EXTENT[2]) * density))
    u = CANVAS_EXTENT[0] + (np.arange(cols, dtype=np.float32) + 0.5) / density
    v = CANVAS_EXTENT[2] + (np.arange(rows, dtype=np.float32) + 0.5) / density
    return np.meshgrid(u, v)


def _strokes_on_canvas(u: np.ndarray, density: float, strokes, tones) -> np.ndarray:
    """Strokes given as [S, P, 2] EM polylines, drawn on the canvas of grid ``u``."""
    strokes = np.asarray(strokes, np.float64).reshape(len(strokes), -1, 2)
    x, y = em_to_canvas_px(strokes[..., 0], strokes[..., 1], density)
    return draw_strokes(u.shape, np.stack([x, y], -1), tones)
