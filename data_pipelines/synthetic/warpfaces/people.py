"""WarpFaces people: the person parameters and the keypoint layout they imply.

Face coordinates (``u``, ``v``) in *eye-mouth units* (EM): the origin is the midpoint
between the pupils, ``u`` points to the image right, ``v`` points down, and one unit is
the vertical distance from the pupil line to the mouth line (the lips' meeting line lies
at ``v = 1`` for everybody). Every length of a person is measured in EM, so a person is
a shape and an appearance; how large the face is in the frame belongs to the scene.
The proportions follow adult anthropometry (pupil to stomion ~6.5 cm): pupils about
0.5 EM from the midline, brows 0.3 EM above them, nose base at 0.6-0.7 EM, chin at
1.6-1.85 EM, crown-to-chin head height 3.3-3.75 EM.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# (low, high) of each person parameter, drawn uniformly; lengths in EM, tones in [0, 1].
PERSON_RANGES: dict[str, tuple[float, float]] = {
    "chin_v": (1.6, 1.85),            # chin tip below the pupil line
    "head_height": (3.3, 3.75),       # crown to chin
    "cheek_half_width": (1.0, 1.2),   # half face width at the cheekbones
    "jaw_ratio": (0.66, 0.88),        # jaw-angle half-width / cheek half-width
    "chin_half_width": (0.2, 0.34),
    "hairline_v": (-1.5, -1.1),       # hairline at the midline
    "pupil_half_distance": (0.45, 0.55),
    "eye_half_width": (0.2, 0.25),
    "eye_opening": (0.065, 0.095),    # upper lid height above the pupil
    "canthal_tilt": (-0.05, 0.14),    # radians, outer corner up
    "brow_gap": (0.27, 0.38),         # brow above the pupil line
    "brow_arch": (0.015, 0.07),
    "brow_weight": (0.55, 1.0),       # thickness and hair count
    "nose_base_v": (0.6, 0.7),
    "nose_half_width": (0.21, 0.29),
    "nose_relief": (0.16, 0.28),      # how far the nose stands out (for shading)
    "mouth_half_width": (0.36, 0.47),
    "corner_lift": (-0.03, 0.035),    # mouth corners above (+) the mouth line centre
    "upper_lip": (0.07, 0.12),        # vermilion heights
    "lower_lip": (0.09, 0.15),
    "lip_tone": (0.55, 0.78),         # lip albedo / skin albedo
    "skin_albedo": (0.38, 0.85),
    "skin_roughness": (0.03, 0.09),   # pore-scale texture amplitude
    "blotchiness": (0.02, 0.08),      # large-scale albedo variation
    "iris_albedo": (0.12, 0.5),
    "hair_albedo": (0.05, 0.65),
    "hair_volume": (0.08, 0.25),      # hair thickness over the skull
    "hair_part": (-0.35, 0.35),       # u of the parting
    "cloth_albedo": (0.1, 0.9),
    "asymmetry": (-0.02, 0.02),       # right-minus-left height of brow and eye
}
HAIR_STYLES = ("short", "long", "receding")
HAIR_STYLE_PROBABILITIES = (0.5, 0.35, 0.15)
EAR_PROBABILITY = 0.75     # ears drawn (long hair may still cover them)
STUBBLE_PROBABILITY = 0.2


@dataclasses.dataclass(frozen=True)
class People:
    """People as a struct of arrays: every field is [n]; row i of every field is person i.

    ``params`` maps each :data:`PERSON_RANGES` key to float64 [n]; ``hair_style`` is an
    index into :data:`HAIR_STYLES`; ``ears`` and ``stubble`` are in [0, 1] (0: none);
    ``texture_seed`` seeds the person's skin, hair and brow texture.
    """

    params: dict[str, np.ndarray]
    hair_style: np.ndarray    # int64 [n]
    ears: np.ndarray          # float64 [n]
    stubble: np.ndarray       # float64 [n]
    texture_seed: np.ndarray  # int64 [n]

    def __len__(self) -> int:
        return int(self.texture_seed.shape[0])

    def take(self, rows: np.ndarray | list[int]) -> "People":
        """The people at ``rows`` (repeats allowed), e.g. one row per rendered frame."""
        rows = np.asarray(rows, np.int64)
        return People({k: v[rows] for k, v in self.params.items()}, self.hair_style[rows],
                      self.ears[rows], self.stubble[rows], self.texture_seed[rows])

    def matrix(self) -> np.ndarray:
        """float64 [n, P]: every parameter as a column (equal rows = the same person)."""
        columns = [self.params[k] for k in PERSON_RANGES]
        columns += [self.hair_style, self.ears, self.stubble, self.texture_seed]
        return np.stack([np.asarray(c, np.float64) for c in columns], 1)

    def row(self, i: int) -> dict[str, float]:
        """Person ``i`` as plain floats (the painter's input)."""
        out = {k: float(v[i]) for k, v in self.params.items()}
        out.update(hair_style=int(self.hair_style[i]), ears=float(self.ears[i]),
                   stubble=float(self.stubble[i]), texture_seed=int(self.texture_seed[i]))
        return out


def sample_people(seed: int, count: int, salt: int = 0) -> People:
    """``count`` people, deterministic per (``seed``, ``salt``)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = np.random.default_rng(np.random.SeedSequence([salt, seed % 2**32, seed // 2**32 % 2**32]))
    params = {k: rng.uniform(lo, hi, count) for k, (lo, hi) in PERSON_RANGES.items()}
    hair_style = rng.choice(len(HAIR_STYLES), size=count, p=HAIR_STYLE_PROBABILITIES)
    # receding hair lifts the hairline; long hair leaves the brow region unchanged
    params["hairline_v"] = np.where(hair_style == 2, params["hairline_v"] - 0.35,
                                    params["hairline_v"])
    ears = (rng.uniform(size=count) < EAR_PROBABILITY).astype(np.float64)
    stubble = np.where(rng.uniform(size=count) < STUBBLE_PROBABILITY,
                       rng.uniform(0.3, 1.0, count), 0.0)
    texture_seed = rng.integers(0, 2**31, count)
    return People(params, hair_style.astype(np.int64), ears, stubble, texture_seed)


# The keypoints actions are anchored at. Pairs are (image-left, image-right).
KEYPOINT_NAMES: tuple[str, ...] = (
    "pupil_l", "pupil_r", "eye_inner_l", "eye_inner_r", "eye_outer_l", "eye_outer_r",
    "lid_upper_l", "lid_upper_r", "lid_lower_l", "lid_lower_r",
    "brow_inner_l", "brow_inner_r", "brow_peak_l", "brow_peak_r", "brow_tail_l", "brow_tail_r",
    "glabella", "nose_dorsum", "nose_tip", "nose_wing_l", "nose_wing_r",
    "cheek_l", "cheek_r", "fold_top_l", "fold_top_r",
    "mouth_corner_l", "mouth_corner_r", "upper_lip_top", "upper_lip_mid", "lower_lip_mid",
    "lower_lip_bottom", "chin_boss", "chin", "jaw_l", "jaw_r", "forehead", "crown",
)

def keypoints(people: People) -> dict[str, np.ndarray]:
    """Neutral keypoints in face coordinates: name -> float64 [n, 2] (u, v) in EM."""
    p = people.params
    n = len(people)
    out: dict[str, np.ndarray] = {}

    def put(name: str, u, v) -> None:
        out[name] = np.stack(np.broadcast_arrays(np.asarray(u, np.float64),
                                                 np.asarray(v, np.float64)), -1).reshape(n, 2)

    for side, tag in ((-1.0, "l"), (1.0, "r")):
        # person's asymmetry: the image-right brow and eye sit a little higher or lower
        lift = 0.5 * side * p["asymmetry"]
        cu = side * p["pupil_half_distance"]
        ew, tilt = p["eye_half_width"], p["canthal_tilt"]
        put(f"pupil_{tag}", cu, lift)
        put(f"eye_inner_{tag}", cu - side * ew * np.cos(tilt), lift + ew * np.sin(tilt) * 0.6)
        put(f"eye_outer_{tag}", cu + side * ew * np.cos(tilt), lift - ew * np.sin(tilt))
        put(f"lid_upper_{tag}", cu - side * 0.1 * ew, lift - p["eye_opening"])
        put(f"lid_lower_{tag}", cu + side * 0.1 * ew, lift + 0.8 * p["eye_opening"])
        brow_v = lift - p["brow_gap"]
        put(f"brow_inner_{tag}", side * (p["pupil_half_distance"] - 1.05 * ew), brow_v + 0.03)
        put(f"brow_peak_{tag}", cu + side * 0.35 * ew, brow_v - p["brow_arch"])
        put(f"brow_tail_{tag}", cu + side * 1.45 * ew, brow_v + 0.05)
        put(f"nose_wing_{tag}", side * p["nose_half_width"], p["nose_base_v"] - 0.07)
        put(f"cheek_{tag}", side * (p["pupil_half_distance"] + 0.05), 0.38)
        put(f"fold_top_{tag}", side * (p["nose_half_width"] + 0.05), p["nose_base_v"] - 0.1)
        put(f"mouth_corner_{tag}", side * p["mouth_half_width"], 1.0 - p["corner_lift"])
        put(f"jaw_{tag}", side * p["jaw_ratio"] * p["cheek_half_width"], p["chin_v"] - 0.6)
    put("glabella", 0.0, -p["brow_gap"] + 0.04)
    put("nose_dorsum", 0.0, 0.5 * (p["nose_base_v"] - 0.1))
    put("nose_tip", 0.0, p["nose_base_v"] - 0.08)
    put("upper_lip_top", 0.0, 1.0 - p["upper_lip"])
    put("upper_lip_mid", 0.0, 1.0 - 0.5 * p["upper_lip"])
    put("lower_lip_mid", 0.0, 1.0 + 0.5 * p["lower_lip"])
    put("lower_lip_bottom", 0.0, 1.0 + p["lower_lip"])
    put("chin_boss", 0.0, p["chin_v"] - 0.28)
    put("chin", 0.0, p["chin_v"])
    put("forehead", 0.0, 0.5 * (p["hairline_v"] - p["brow_gap"]))
    put("crown", 0.0, p["chin_v"] - p["head_height"])
    return {name: out[name] for name in KEYPOINT_NAMES}


def head_centre_v(people: People) -> np.ndarray:
    """float64 [n]: v of the midpoint between crown and chin (what the scene places)."""
    return people.params["chin_v"] - 0.5 * people.params["head_height"]


def mouth_line_v(u: np.ndarray, mouth_half_width: float, corner_lift: float) -> np.ndarray:
    """v of the line where the lips meet, at each u (constant beyond the corners)."""
    x = np.clip(np.asarray(u) / mouth_half_width, -1.0, 1.0)
    return 1.0 - corner_lift * x * x
