"""MeshFaces appearance: gray albedo and specular maps painted on the surface.

Everything is defined on the material coordinates of ``head.py`` (X, Y and the azimuth u),
so the paint moves with the skin when an action unit deforms it. Noise is drawn at a
fixed canonical resolution and resized to the mesh's grid, so a person looks the same at
every render size. Albedos are linear gray reflectances in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

from data_pipelines.synthetic.meshfaces.head import Layout, gauss, mirrored, smoothstep
from data_pipelines.synthetic.meshfaces.people import LOOK

CANONICAL = 256  # texels along u and v of the canonical noise


def smooth_noise(rng: np.random.Generator, cells: int, shape: tuple[int, int]) -> np.ndarray:
    """Zero-mean, unit-std random field [shape] with about ``cells`` blobs across."""
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    field = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def strands(rng: np.random.Generator, along_v: float, along_u: float) -> np.ndarray:
    """[CANONICAL, CANONICAL] hair-like streaks in [0, 1]: noise smeared along one axis."""
    noise = rng.standard_normal((CANONICAL, CANONICAL)).astype(np.float32)
    field = cv2.GaussianBlur(noise, (0, 0), sigmaX=along_u, sigmaY=along_v)
    return np.clip(0.5 + field / (3.0 * field.std() + 1e-6), 0.0, 1.0)


def to_grid(field: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A canonical texture resized to the mesh grid [Nv, Nu]."""
    shrink = shape[0] < field.shape[0]
    return cv2.resize(field, (shape[1], shape[0]),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def spots(rng: np.random.Generator, density: float, radius: float) -> np.ndarray:
    """[CANONICAL, CANONICAL] sparse soft dots in [0, 1] (freckles, stubble)."""
    dots = (rng.random((CANONICAL, CANONICAL)) < density).astype(np.float32)
    if radius > 0:
        dots = cv2.GaussianBlur(dots, (0, 0), radius)
        dots /= max(float(dots.max()), 1e-6)
    return dots


def hair_tone(look: np.ndarray) -> float:
    """Gray albedo of the person's hair: mostly dark, some brown, blond or gray."""
    t = float(look[LOOK["hair_tone"]])
    if float(look[LOOK["age"]]) > 0.88:
        return 0.5
    return 0.035 + 0.5 * t ** 2.2


def head_albedo(X: np.ndarray, Y: np.ndarray, U: np.ndarray, hair: np.ndarray, ear: np.ndarray,
                lay: Layout, look: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Albedo and specular weight [Nv, Nu] of the head from its material coordinates."""
    shape = X.shape
    lk = lambda name: float(look[LOOK[name]])  # noqa: E731
    ax = np.abs(X)
    front = smoothstep(0.1, 0.4, np.cos(U))
    skin = 0.3 + 0.45 * lk("skin_tone")
    blotch = 0.03 + 0.08 * lk("blotches")
    albedo = skin * (1.0 + blotch * to_grid(smooth_noise(rng, 10, (CANONICAL,) * 2), shape)
                     + 0.035 * to_grid(smooth_noise(rng, 40, (CANONICAL,) * 2), shape)
                     + 0.05 * to_grid(smooth_noise(rng, CANONICAL - 1, (CANONICAL,) * 2), shape))
    spec = 0.1 + 0.12 * gauss(X, Y, 0.0, 0.0, 0.06, 0.35) * front       # T-zone shine
    albedo *= 1.0 - 0.05 * mirrored(X, Y, 0.2, -0.13, 0.06, 0.05) * front  # redder cheeks
    albedo *= 1.0 - 0.1 * mirrored(X, Y, lay.eye_x, lay.eye_y - 0.01, 0.07, 0.04) * front
    albedo *= 1.0 - 0.08 * ear
    if lk("freckles") > 0.55:
        zone = (mirrored(X, Y, 0.14, -0.1, 0.1, 0.07) + gauss(X, Y, 0, -0.08, 0.04, 0.08)) * front
        albedo *= 1.0 - 0.3 * zone * to_grid(spots(rng, 0.02 * (lk("freckles") - 0.5), 1.0), shape)
    for _ in range(int(lk("moles") * 4)):  # up to three moles
        mx, my = rng.uniform(-0.3, 0.3), rng.uniform(-0.5, 0.3)
        albedo *= 1.0 - 0.5 * gauss(X, Y, mx, my, 0.005, 0.005) * front
    if lk("age") > 0.5:  # static forehead lines and crow's feet shadows in older faces
        lines = 0.5 + 0.5 * np.sin(2 * np.pi * (Y - lay.brow_y) / 0.032)
        albedo *= 1.0 - 0.08 * (lk("age") - 0.5) * lines * gauss(X, Y, 0, 0.22, 0.14, 0.06) * front
    # lips: darker red between the vermilion borders (cupid's bow on the upper one)
    line = lay.lip_line(X)
    span = lay.mouth_span(X * 0.97)
    bow = 1.0 - 0.3 * np.exp(-0.5 * (X / 0.012) ** 2)
    upper_border = line + lay.lip_up * span ** 0.6 * bow
    lower_border = line - lay.lip_lo * span ** 0.7
    lips = smoothstep(upper_border + 0.004, upper_border - 0.002, Y) * smoothstep(
        lower_border - 0.004, lower_border + 0.002, Y) * (span > 0) * front
    albedo *= 1.0 - (0.32 + 0.2 * lk("lip_tone")) * lips
    # the shadowed seam between the lips and the small dark pits at the mouth corners
    seam = np.exp(-0.5 * ((Y - line) / 0.005) ** 2)
    albedo *= 1.0 - 0.5 * lay.mouth_span(X) ** 0.5 * seam * front
    albedo *= 1.0 - 0.35 * mirrored(X, Y - line, lay.mouth_w, 0.0, 0.009, 0.007) * front
    spec += 0.15 * lips
    # eyelids: dark lash lines along the lid edges, a shadow in the lid crease
    upper, lower, profile = lay.lid_edges(X)
    lids = smoothstep(0.0, 0.1, profile) * front
    albedo *= 1.0 - 0.75 * lids * np.exp(-0.5 * ((Y - upper - 0.002) / 0.0045) ** 2)
    albedo *= 1.0 - 0.35 * lids * np.exp(-0.5 * ((Y - lower + 0.002) / 0.003) ** 2)
    albedo *= 1.0 - 0.12 * lids * np.exp(-0.5 * ((Y - upper - 0.016) / 0.005) ** 2)
    # nostrils, under the nose tip
    albedo *= 1.0 - 0.85 * mirrored(X, Y, 0.017, lay.nose_tip_y - 0.03, 0.008, 0.005) * front
    # stubble or a beard on the lower face (moustache, chin, jaw, under the chin)
    hair_t = hair_tone(look)
    top = np.interp(ax, [0.0, 0.09, 0.2, 0.3, 0.4], [lay.nose_tip_y - 0.045,
                    lay.nose_tip_y - 0.05, lay.mouth_y + 0.04, -0.22, -0.12])
    beard_zone = smoothstep(top + 0.01, top - 0.015, Y) * (1.0 - lips) * smoothstep(
        1.5, 1.25, np.abs(U))
    if lk("beard") > 0.87:
        streak = to_grid(strands(rng, 2.0, 0.7), shape)
        albedo = albedo + (hair_t * (0.5 + 0.8 * streak) - albedo) * 0.9 * beard_zone
    elif lk("stubble") > 0.5:
        dots = to_grid(spots(rng, 0.25, 0.5), shape)
        albedo *= 1.0 - 0.6 * (lk("stubble") - 0.5) * beard_zone * dots
    # eyebrows: a band of hair strands above each eye, thick at the head, thin at the tail
    t = np.clip((ax - 0.045) / 0.22, 0.0, 1.0)
    centre = (lay.eye_y + lay.brow_y + lay.brow_arch * np.sin(np.pi * np.clip(t * 1.1, 0, 1))
              - 0.01 * t)
    half = (0.6 + 0.5 * lk("brow_thick")) * (0.014 - 0.007 * t)
    band = (smoothstep(half + 0.003, half - 0.003, np.abs(Y - centre))
            * smoothstep(0.04, 0.055, ax) * smoothstep(0.275, 0.25, ax) * front)
    brow_strands = to_grid(strands(rng, 0.7, 2.5), shape)
    brow_tone = min(hair_t, 0.2) * (1.1 - 0.6 * lk("brow_dark"))
    density = band * (0.55 + 0.45 * brow_strands) * (0.75 + 0.25 * lk("brow_dark"))
    albedo = albedo + (brow_tone - albedo) * np.clip(density, 0.0, 1.0)
    # scalp hair: streaks running down the head
    hair_streaks = to_grid(strands(rng, 5.0, 0.6), shape)
    hair_albedo = hair_t * (0.7 + 0.6 * hair_streaks)
    albedo = albedo + (hair_albedo - albedo) * hair
    spec = spec * (1.0 - hair) + 0.06 * hair
    return np.clip(albedo, 0.0, 1.0).astype(np.float32), spec.astype(np.float32)


def eyeball_albedo(directions: np.ndarray, gaze: np.ndarray, radius: float, look: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Albedo [...] of eyeball points with unit directions [..., 3] from the eye centre:
    sclera, a streaked iris with a dark limbal ring, the pupil."""
    cos = np.clip(directions @ gaze, -1.0, 1.0)
    arc = radius * np.arccos(cos)  # distance from the gaze point along the ball
    # angle around the gaze axis, for the iris streaks
    ref = np.cross(gaze, [0.0, 1.0, 0.0])
    ref /= np.linalg.norm(ref)
    phi = np.arctan2(directions @ np.cross(gaze, ref), directions @ ref)
    iris_r, pupil_r = 0.029, 0.0105
    iris_tone = 0.09 + 0.42 * float(look[LOOK["iris_tone"]]) ** 2
    streaks = 1.0 + 0.25 * np.cos(13 * phi + rng.uniform(0, 6)) * np.cos(7 * phi)
    iris = iris_tone * streaks * (1.0 - 0.5 * smoothstep(iris_r - 0.007, iris_r, arc))
    sclera = 0.82 - 0.18 * smoothstep(0.03, 0.07, arc)
    albedo = np.where(arc < iris_r, iris, sclera)
    albedo = np.where(arc < pupil_r, 0.03, albedo)
    return albedo.astype(np.float32)


def interior_albedo(X: np.ndarray, Y: np.ndarray, lay: Layout) -> np.ndarray:
    """Albedo of the mouth cavity: dark, upper and lower teeth rows, tongue."""
    line = lay.lip_line(X)
    gaps = 1.0 - 0.35 * np.exp(-0.5 * ((np.mod(X + 0.009, 0.019) - 0.0095) / 0.0015) ** 2)
    upper_teeth = ((Y > line - 0.022) & (Y < line + 0.012) & (np.abs(X) < 0.085)) * gaps
    lower_teeth = ((Y > line - 0.06) & (Y < line - 0.033) & (np.abs(X) < 0.075)) * gaps
    albedo = 0.06 + 0.68 * upper_teeth + 0.58 * lower_teeth
    albedo = np.where((Y < line - 0.06) & (np.abs(X) < 0.07), 0.2, albedo)
    return albedo.astype(np.float32)
