"""WarpFaces action units: smooth displacement fields and wrinkle shading.

An action unit at intensity ``i`` moves the skin by ``i`` times a displacement field, a
sum of Gaussian bumps anchored at the person's keypoints (``people.keypoints``). Fields
are *forward* displacements: the skin point at ``s`` moves to ``s + D(s)``, so the fields
of several AUs add exactly (a brow raise and a lid raise together move the lid by the sum
of what each does there). The renderer inverts the field per frame (``p + D(p) = q``, a
few Newton steps) and warps the neutral canvas *backwards*, showing at output point ``q``
the canvas at ``p``, so the skin's texture, lashes and brow hairs move with the action.
Bumps are wide on the side where they compress skin, so that no single AU and no emotion
prototype folds the skin over at intensity 1 (repression comes within a few percent at
one spot); on the stretching side they may fall off fast (inside the eye opening a lid's
field drops steeply, which only reshapes the aperture).

Magnitudes (lengths in EM; pixels at 64 px for faces filling 50-90 % of the frame): at
intensity 1 an AU moves skin by at most 0.24-0.35 EM (2-6 px); the small lip actions AU14
and AU23 by 0.15-0.18 EM, and the lid AUs AU5 and AU7 by 0.11-0.17 EM, in proportion to
the eye's opening so that the lids never pass each other (1-3 px; the eye is only ~2 px
tall). At the micro-expressions' 0.3, an emotion prototype moves its region by 0.4-0.95
px typically and 0.6-2 px at most.

The lips are the one place where skin separates. A bump's ``layer`` says which side of
the lips' meeting line it moves: "both" (ordinary skin), "upper" or "lower" (AU10, AU25,
AU26). Between the mouth corners the two sides are warped separately and the gap that
opens between them shows the mouth's dark interior; beyond the corners the two fields
blend smoothly across the mouth line (the cheeks stretch instead of tearing).

Wrinkles: AU1/2 forehead lines, AU4 glabella furrows, AU6 crow's feet, AU7 the lower
lid bulge, AU9 nose-bridge wrinkles, AU10/12 the nasolabial fold, AU14 dimples, AU15
corner folds, AU17 chin dimpling, AU20 stretch lines and AU23 lip puckering are small
darkening maps scaled by the intensity (they do not move; they appear).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.synthetic.facs import AU_NAMES
from data_pipelines.synthetic.warpfaces.people import mouth_line_v
from data_pipelines.synthetic.warpfaces.texture import (
    arc, gaussian, lattice_noise, polyline_line, smoothstep)


@dataclasses.dataclass(frozen=True)
class Bump:
    """One Gaussian bump of a displacement field.

    anchor: keypoint name; "{s}" in it stands for both sides ("l", "r"), and then the
      u components of ``offset`` and ``move`` point outwards (mirrored on the left).
    sigma: (su, sv) or (su, sv above the anchor, sv below it), EM.
    move: displacement (du, dv) at the anchor at intensity 1, EM (+v = down), or in
      units of the person's ``relative_to`` parameter when that is given (a lid moves in
      proportion to the eye's opening, so it can never travel past the other lid).
    """

    anchor: str
    offset: tuple[float, float]
    sigma: tuple[float, ...]
    move: tuple[float, float]
    layer: str = "both"
    relative_to: str | None = None


AU_BUMPS: dict[str, tuple[Bump, ...]] = {
    # brows: the forehead above moves along (broad upwards); below, the motion dies out
    # before the lid margin (the lids keep their place, the skin between stretches)
    "AU1": (Bump("brow_inner_{s}", (0.0, 0.0), (0.15, 0.3, 0.12), (-0.015, -0.15)),
            Bump("brow_peak_{s}", (0.0, 0.0), (0.2, 0.3, 0.12), (0.0, -0.04)),
            Bump("glabella", (0.0, -0.25), (0.3, 0.3), (0.0, -0.05))),
    "AU2": (Bump("brow_tail_{s}", (0.0, 0.0), (0.16, 0.3, 0.12), (0.025, -0.15)),
            Bump("brow_peak_{s}", (0.0, 0.0), (0.2, 0.3, 0.12), (0.01, -0.06))),
    "AU4": (Bump("brow_inner_{s}", (0.0, 0.0), (0.26, 0.25, 0.25), (-0.08, 0.13)),
            Bump("brow_peak_{s}", (0.0, 0.0), (0.24, 0.25, 0.25), (-0.04, 0.08))),
    # lids: the field falls off quickly inside the eye opening (stretching it), so the
    # other lid stays put and more of the eyeball shows
    "AU5": (Bump("lid_upper_{s}", (0.0, 0.0), (0.2, 0.15, 0.07), (0.0, -1.3), "both",
                 "eye_opening"),),
    "AU6": (Bump("cheek_{s}", (0.05, 0.05), (0.32, 0.31), (0.0, -0.16)),
            Bump("lid_lower_{s}", (0.04, 0.02), (0.18, 0.06, 0.12), (0.0, -0.45), "both",
                 "eye_opening"),
            Bump("eye_outer_{s}", (0.1, 0.05), (0.15, 0.15), (0.01, -0.04))),
    "AU7": (Bump("lid_lower_{s}", (0.0, 0.0), (0.18, 0.07, 0.1), (0.0, -0.9), "both",
                 "eye_opening"),
            Bump("lid_upper_{s}", (0.0, 0.0), (0.18, 0.1, 0.05), (0.0, 0.3), "both",
                 "eye_opening")),
    "AU9": (Bump("nose_wing_{s}", (0.0, 0.0), (0.18, 0.32, 0.2), (0.0, -0.15)),
            Bump("nose_dorsum", (0.0, 0.0), (0.12, 0.25), (0.0, -0.05)),
            Bump("brow_inner_{s}", (0.0, 0.0), (0.18, 0.2, 0.14), (-0.03, 0.06)),
            Bump("upper_lip_top", (0.0, 0.0), (0.3, 0.12), (0.0, -0.04))),
    "AU10": (Bump("upper_lip_top", (0.0, 0.0), (0.3, 0.25, 0.13), (0.0, -0.16), "upper"),
             Bump("nose_wing_{s}", (0.0, 0.05), (0.18, 0.22), (0.02, -0.05))),
    "AU12": (Bump("mouth_corner_{s}", (0.0, 0.0), (0.27, 0.23), (0.15, -0.16)),
             Bump("cheek_{s}", (0.05, 0.15), (0.3, 0.25), (0.02, -0.05))),
    "AU14": (Bump("mouth_corner_{s}", (0.0, 0.0), (0.19, 0.16), (-0.12, -0.02)),),
    "AU15": (Bump("mouth_corner_{s}", (0.0, 0.0), (0.24, 0.24), (0.02, 0.14)),
             Bump("mouth_corner_{s}", (0.02, 0.2), (0.2, 0.2), (0.0, 0.04))),
    "AU17": (Bump("chin_boss", (0.0, 0.0), (0.4, 0.37), (0.0, -0.16)),
             Bump("lower_lip_mid", (0.0, 0.03), (0.3, 0.17, 0.12), (0.0, -0.06))),
    "AU20": (Bump("mouth_corner_{s}", (0.0, 0.0), (0.27, 0.17), (0.17, 0.03)),),
    "AU23": (Bump("mouth_corner_{s}", (0.0, 0.0), (0.19, 0.14), (-0.1, 0.0)),
             Bump("upper_lip_top", (0.0, 0.0), (0.35, 0.1, 0.14), (0.0, 0.05)),
             Bump("lower_lip_bottom", (0.0, 0.0), (0.35, 0.14, 0.1), (0.0, -0.05))),
    "AU25": (Bump("upper_lip_mid", (0.0, 0.0), (0.35, 0.12, 0.12), (0.0, -0.04), "upper"),
             Bump("lower_lip_mid", (0.0, 0.05), (0.38, 0.2, 0.25), (0.0, 0.16), "lower")),
    "AU26": (Bump("chin", (0.0, -0.35), (0.85, 0.9, 0.46), (0.0, 0.23), "lower"),),
}
LAYERS = ("both", "upper", "lower")
# Every move above times this gain: the table keeps anatomical proportions between AUs,
# the gain sets how visible the actions are overall. Calibrated with the pixel baseline
# (apex - onset CNN, LOSO, 10 epochs, honest UF1) on the composite preset at 64 px: 1.0
# gave 0.41 (micro-expressions barely learnable), 1.35 gave 0.50 (as hard as SynthFACS),
# 1.5 with the scenes' current nuisance gives 0.59 +- 0.01 (two training seeds).
MOTION_GAIN = 1.5


def _bump_field(u, v, bump: Bump, kp: dict[str, tuple[float, float]], person: dict
                ) -> np.ndarray:
    """float32 [H, W, 2]: one bump (both sides if its anchor has "{s}")."""
    out = np.zeros((*u.shape, 2), np.float32)
    unit = MOTION_GAIN * (1.0 if bump.relative_to is None else person[bump.relative_to])
    move_u, move_v = bump.move[0] * unit, bump.move[1] * unit
    sides = ((-1.0, "l"), (1.0, "r")) if "{s}" in bump.anchor else ((1.0, ""),)
    su, sv_up, sv_down = (bump.sigma + bump.sigma[-1:])[:3]
    for sign, tag in sides:
        au, av = kp[bump.anchor.replace("{s}", tag)]
        cu, cv = au + sign * bump.offset[0], av + bump.offset[1]
        sv = np.where(v < cv, sv_up, sv_down)
        weight = np.exp(-0.5 * (np.square((u - cu) / su) + np.square((v - cv) / sv)))
        out[..., 0] += sign * move_u * weight
        out[..., 1] += move_v * weight
    return out


def _line(u, v, points, width: float, amplitude: float, min_width: float) -> np.ndarray:
    """A wrinkle: a soft dark line never thinner than ``min_width`` (about half an output
    pixel), with its darkness spread (same total) when it has to be widened."""
    wide = max(width, min_width)
    return amplitude * (width / wide) * polyline_line(u, v, points, wide)


def wrinkles(au: str, u, v, kp, person: dict, min_width: float,
             rng: np.random.Generator) -> np.ndarray:
    """float32 [H, W] darkening of ``au`` at intensity 1 (negative = brightening)."""
    out = np.zeros(u.shape, np.float64)
    half, lip = person["mouth_half_width"], 1.0 - person["corner_lift"]

    def line(points, width, amplitude):
        return _line(u, v, points, width, amplitude, min_width)

    for sign, tag in ((-1.0, "l"), (1.0, "r")):
        if au == "AU2":
            peak = kp[f"brow_peak_{tag}"]
            for j in range(2):
                out += line(arc((peak[0] + sign * 0.1, peak[1] - 0.17 - 0.12 * j + 0.3),
                                0.27, 0.3, -np.pi / 2 - 0.75, -np.pi / 2 + 0.75), 0.016, 0.13)
        elif au == "AU4":
            g = kp["glabella"]
            out += line([(sign * 0.065, g[1] - 0.09), (sign * 0.05, g[1] + 0.14)], 0.016, 0.3)
        elif au == "AU6":
            corner = kp[f"eye_outer_{tag}"]
            for angle in (-0.45, 0.0, 0.45):
                start = (corner[0] + sign * 0.05, corner[1] + 0.01)
                end = (start[0] + sign * 0.15 * np.cos(angle), start[1] + 0.15 * np.sin(angle))
                out += line([start, end], 0.013, 0.22)
            pupil = kp[f"pupil_{tag}"]
            out += line(arc((pupil[0], pupil[1] - 0.05), 0.2, 0.22, 0.5, np.pi - 0.5), 0.016, 0.16)
            out -= 0.07 * gaussian(u, v, kp[f"cheek_{tag}"], 0.18, 0.12)
        elif au == "AU7":
            pupil = kp[f"pupil_{tag}"]
            lower = kp[f"lid_lower_{tag}"][1] + 0.045
            out += line(arc((pupil[0], lower - 0.12), 0.19, 0.12, 0.55, np.pi - 0.55),
                        0.014, 0.18)
        elif au == "AU9":
            wing = kp[f"nose_wing_{tag}"]
            out += line([(wing[0] + sign * 0.02, wing[1] - 0.05),
                         (wing[0] + sign * 0.09, wing[1] + 0.1)], 0.016, 0.14)
        elif au in ("AU10", "AU12"):
            top = kp[f"fold_top_{tag}"]
            ends = ([(sign * (half + 0.01), 0.88)] if au == "AU10" else
                    [(sign * (half + 0.08), 1.02), (sign * (half + 0.08), 1.18)])
            points = [top, (top[0] + sign * 0.1, top[1] + 0.12)] + ends
            out += line(points, 0.02, 0.2 if au == "AU10" else 0.24)
            if au == "AU12":
                out += line([(sign * half, lip), (sign * (half + 0.06), lip - 0.04)], 0.014, 0.15)
        elif au == "AU14":
            out += 0.25 * gaussian(u, v, (sign * (half + 0.06), lip), 0.03, 0.035)
            out += line([(sign * (half + 0.05), lip - 0.06), (sign * (half + 0.05), lip + 0.08)],
                        0.014, 0.12)
        elif au == "AU15":
            out += line([(sign * half, lip + 0.02), (sign * (half + 0.08), lip + 0.26)], 0.018, 0.2)
        elif au == "AU20":
            for dv in (-0.035, 0.035):
                out += line([(sign * (half + 0.05), lip + dv),
                             (sign * (half + 0.2), lip + 1.5 * dv)],
                            0.012, 0.12)
        elif au == "AU23":
            for du in (0.08, 0.2):
                top = 1.0 - person["upper_lip"]
                out += line([(sign * du, top - 0.08), (sign * du * 0.9, top)], 0.01, 0.12)
    if au == "AU1":
        brow = kp["glabella"][1]
        for j in range(3):
            out += line(arc((0.0, brow - 0.2 - 0.12 * j + 0.45), 0.45, 0.45,
                            -np.pi / 2 - 0.75, -np.pi / 2 + 0.75), 0.016, 0.13)
    elif au == "AU4":
        out += 0.12 * gaussian(u, v, kp["glabella"], 0.12, 0.1)
    elif au == "AU9":
        dorsum = kp["nose_dorsum"]
        for j in range(3):
            y = dorsum[1] - 0.14 + 0.07 * j
            out += line([(-0.1, y + 0.02), (0.0, y), (0.1, y + 0.02)], 0.013, 0.26)
    elif au == "AU17":
        boss = kp["chin_boss"]
        dimples = np.clip(lattice_noise(rng, u, v, 0.05, (-1, 1, 0, 3)) * 2.0, 0.0, 1.0)
        out += 0.25 * dimples * gaussian(u, v, boss, 0.22, 0.14)
        sulcus = 1.0 + person["lower_lip"] + 0.07
        out += line(arc((0.0, sulcus - 0.25), 0.24, 0.25, np.pi / 2 - 0.9, np.pi / 2 + 0.9),
                    0.018, 0.22)
    elif au == "AU23":
        out += 0.12 * polyline_line(u, v, [(-half, lip), (0, 1.0), (half, lip)],
                                    max(0.02, min_width))
    return out.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ActionFields:
    """The displacement and shading of some AUs at intensity 1, on one output grid.

    aus: int [K] indices into AU_NAMES; fields: float32 [3, K, H, W, 2] displacement per
    layer (LAYERS order), EM; shading: float32 [K, H, W]; taper, blend: [H, W] how much
    the upper and lower fields stay separate (1 between the corners) and, where they
    blend, the lower field's share (a ramp across the mouth line).
    """

    aus: np.ndarray
    fields: np.ndarray
    shading: np.ndarray
    taper: np.ndarray
    blend: np.ndarray


def action_fields(aus: np.ndarray, u, v, kp, person: dict, min_width: float,
                  rng: np.random.Generator) -> ActionFields:
    """The fields of AUs ``aus`` (indices) at grid points (u, v) for one person."""
    fields = np.zeros((len(LAYERS), len(aus), *u.shape, 2), np.float32)
    shading = np.zeros((len(aus), *u.shape), np.float32)
    for k, index in enumerate(aus):
        name = AU_NAMES[int(index)]
        for bump in AU_BUMPS[name]:
            fields[LAYERS.index(bump.layer), k] += _bump_field(u, v, bump, kp, person)
        shading[k] = wrinkles(name, u, v, kp, person, min_width, rng)
    half = person["mouth_half_width"]
    # the lips separate fully at the middle and not at all just beyond the corners; a
    # parabola (not an ellipse) keeps the field's slope finite at the corners (no folds)
    taper = np.clip(1.0 - np.square(u / (1.1 * half)), 0.0, 1.0).astype(np.float32)
    seam = mouth_line_v(u, half, person["corner_lift"])
    blend = smoothstep((v - seam + 0.25) / 0.5).astype(np.float32)
    return ActionFields(np.asarray(aus, np.int64), fields, shading, taper, blend)


def displacements(fields: ActionFields, intensities: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper-side field, lower-side field [H, W, 2]: forward displacements in EM of the
    skin above / below the lips' meeting line; darkening [H, W]) for the intensities [K]
    of ``fields.aus``."""
    both, upper, lower = (np.tensordot(intensities, f, 1) for f in fields.fields)
    taper, blend = fields.taper[..., None], fields.blend[..., None]
    mixed = (1.0 - blend) * upper + blend * lower
    shared = both + (1.0 - taper) * mixed
    return (shared + taper * upper, shared + taper * lower,
            np.tensordot(intensities, fields.shading, 1))


def mouth_split(source_upper: np.ndarray, source_lower: np.ndarray, person: dict,
                softness: float) -> tuple[np.ndarray, np.ndarray]:
    """(take the lower sample [H, W] bool, mouth opening [H, W] in [0, 1]).

    source_upper / source_lower: [H, W, 2] the canvas points (EM) the upper / lower
    side's field carries to each output point. A point whose upper-side source is below
    the lips' meeting line and whose lower-side source is above it lies in the gap that
    opened between the lips.
    """
    half, lift = person["mouth_half_width"], person["corner_lift"]
    below_upper = source_upper[..., 1] - mouth_line_v(source_upper[..., 0], half, lift)
    below_lower = source_lower[..., 1] - mouth_line_v(source_lower[..., 0], half, lift)
    opening = np.clip(np.minimum(below_upper, -below_lower) / softness, 0.0, 1.0)
    return below_upper > 0, opening.astype(np.float32)
