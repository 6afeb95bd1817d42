"""The SynthFACS landmark face model: identities, neutral landmarks and FACS action units.

Coordinates. Landmarks live in a *face-normalised frame*: the origin is the face centre,
x points right, y points down, and one unit is the face half-height (crown at y = -1,
chin at y = +1). Identity sets where the features sit in this frame (eye spacing, nose
length, ...) and how big the face is in the image (``face_scale``: face half-height as a
fraction of the frame). Actions are *additive displacements in this frame*, one fixed
``[L, 2]`` field per action unit, so

    landmarks_face = neutral_landmarks(identity) + sum_a intensity_a * AU_DISPLACEMENTS[a]

and the displacement of an action, measured in face units, is the same for every person
(in pixels it scales with ``face_scale * size``). The pose (translation, rotation, scale)
maps the face frame to the image.

Motion scale: at intensity 1 every action unit moves some landmark by 0.07 to 0.18 face
units, i.e. 1.6 to 4.7 px at 64 px (3.2 to 9.4 px at 128 px) depending on the face size,
plus the shading of AU1/2/4/6/9/14/17 (tested: >= 1.5 px at 64 px for every AU). With
every action unit at intensity <= 0.3 (micro-expressions) no landmark of any emotion's
combination moves more than ``MICRO_MAX_PIXELS_AT_128`` = 3 px at 128 px (tested).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.synthetic.facs import AU_INDEX, AU_NAMES, NUM_AUS, check_intensities

# ---------------------------------------------------------------------------------------
# Landmarks: names in a fixed order; left = image left.
LANDMARK_NAMES: tuple[str, ...] = (
    # brows: inner, middle, outer
    "brow_l_inner", "brow_l_mid", "brow_l_outer",
    "brow_r_inner", "brow_r_mid", "brow_r_outer",
    # eyes: inner corner, outer corner, upper lid middle, lower lid middle, pupil
    "eye_l_inner", "eye_l_outer", "eye_l_upper", "eye_l_lower", "pupil_l",
    "eye_r_inner", "eye_r_outer", "eye_r_upper", "eye_r_lower", "pupil_r",
    # nose
    "nose_bridge", "nose_tip", "nostril_l", "nostril_r", "alar_l", "alar_r",
    # cheeks (malar eminence)
    "cheek_l", "cheek_r",
    # lips, outer contour: corners, upper peaks, cupid's bow dip, lower sides, lower middle
    "mouth_l", "mouth_r", "lip_upper_l", "lip_upper_mid", "lip_upper_r",
    "lip_lower_l", "lip_lower_mid", "lip_lower_r",
    # lips, inner contour (the mouth opening) middles
    "lip_inner_upper", "lip_inner_lower",
    # face outline
    "crown", "temple_l", "temple_r", "cheekbone_l", "cheekbone_r",
    "jaw_l", "jaw_r", "chin_l", "chin_r", "chin",
    # hairline
    "hairline_l", "hairline_mid", "hairline_r",
)
LANDMARK_INDEX: dict[str, int] = {name: i for i, name in enumerate(LANDMARK_NAMES)}
NUM_LANDMARKS = len(LANDMARK_NAMES)

# Named groups, used to document (and test) which landmarks each action unit moves.
LANDMARK_GROUPS: dict[str, tuple[str, ...]] = {
    "brow_inner": ("brow_l_inner", "brow_r_inner"),
    "brow_mid": ("brow_l_mid", "brow_r_mid"),
    "brow_outer": ("brow_l_outer", "brow_r_outer"),
    "upper_lid": ("eye_l_upper", "eye_r_upper"),
    "lower_lid": ("eye_l_lower", "eye_r_lower"),
    "eye_corner_outer": ("eye_l_outer", "eye_r_outer"),
    "nose_tip": ("nose_tip",),
    "nostrils": ("nostril_l", "nostril_r", "alar_l", "alar_r"),
    "cheeks": ("cheek_l", "cheek_r"),
    "mouth_corners": ("mouth_l", "mouth_r"),
    "upper_lip": ("lip_upper_l", "lip_upper_mid", "lip_upper_r"),
    "lower_lip": ("lip_lower_l", "lip_lower_mid", "lip_lower_r"),
    "inner_upper_lip": ("lip_inner_upper",),
    "inner_lower_lip": ("lip_inner_lower",),
    "chin": ("chin", "chin_l", "chin_r"),
    "jaw": ("jaw_l", "jaw_r"),
}



# What each action unit does in SynthFACS: landmark motion plus shading (rendered).
AU_DESCRIPTIONS: dict[str, str] = {
    "AU1": "inner brow raiser: inner brows up, brow middles up a little; forehead lines",
    "AU2": "outer brow raiser: outer brows up, brow middles up a little; forehead lines",
    "AU4": "brow lowerer: inner brows down and together, middles down; vertical glabella furrows",
    "AU5": "upper lid raiser: upper lids up (eyes wider)",
    "AU6": "cheek raiser: cheeks and lower lids up, outer eye corners up; brighter raised "
           "cheeks, crow's feet, deeper nasolabial folds",
    "AU7": "lid tightener: lower lids up, upper lids slightly down (narrowed eyes)",
    "AU9": "nose wrinkler: nostrils and alae up, nose tip up, inner brows down, upper lip up; "
           "horizontal wrinkles on the nose bridge",
    "AU10": "upper lip raiser: upper lip up (outer and inner), nostrils slightly up; deeper "
            "nasolabial folds",
    "AU12": "lip corner puller: mouth corners up and outward, lower lip sides up, cheeks up a "
            "little; deeper nasolabial folds",
    "AU14": "dimpler: mouth corners inward and slightly up; dimples beside the corners",
    "AU15": "lip corner depressor: mouth corners down, lower lip sides down",
    "AU17": "chin raiser: chin and lower lip up; dimpled chin",
    "AU20": "lip stretcher: mouth corners outward and slightly down, lips thinner",
    "AU23": "lip tightener: mouth narrower, lips thinner (upper lip down, lower lip up)",
    "AU25": "lips part: inner upper lip up, inner and outer lower lip down (mouth opens)",
    "AU26": "jaw drop: lower lip, chin and jaw down (mouth opens wide)",
}

# Landmark groups each action unit is documented to move (the rest stay put).
AU_MOVED_GROUPS: dict[str, tuple[str, ...]] = {
    "AU1": ("brow_inner", "brow_mid"),
    "AU2": ("brow_outer", "brow_mid"),
    "AU4": ("brow_inner", "brow_mid"),
    "AU5": ("upper_lid",),
    "AU6": ("cheeks", "lower_lid", "eye_corner_outer"),
    "AU7": ("lower_lid", "upper_lid"),
    "AU9": ("nostrils", "nose_tip", "brow_inner", "upper_lip", "inner_upper_lip"),
    "AU10": ("upper_lip", "inner_upper_lip", "nostrils"),
    "AU12": ("mouth_corners", "lower_lip", "cheeks"),
    "AU14": ("mouth_corners",),
    "AU15": ("mouth_corners", "lower_lip"),
    "AU17": ("chin", "lower_lip", "inner_lower_lip"),
    "AU20": ("mouth_corners", "upper_lip", "lower_lip"),
    "AU23": ("mouth_corners", "upper_lip", "lower_lip"),
    "AU25": ("inner_upper_lip", "inner_lower_lip", "lower_lip"),
    "AU26": ("inner_lower_lip", "lower_lip", "chin", "jaw"),
}

# Largest motion of a micro-expression (every AU <= facs.MICRO_MAX_INTENSITY), in pixels.
MICRO_MAX_PIXELS_AT_128 = 3.0


def _mirror_name(name: str) -> str:
    """``eye_l_upper`` -> ``eye_r_upper``; names without an ``l`` part are their own mirror."""
    return "_".join("r" if part == "l" else part for part in name.split("_"))


def _displacement_table() -> np.ndarray:
    """[A, L, 2] displacement (face units, y down) of each AU at intensity 1.

    Bilateral motions are written for the image-left landmark with ``outward`` meaning away
    from the midline; the right side mirrors x.
    """
    table = np.zeros((NUM_AUS, NUM_LANDMARKS, 2), np.float64)

    def move(au: str, landmark: str, dx_outward: float, dy: float):
        a, right = AU_INDEX[au], _mirror_name(landmark)
        if right != landmark:  # a left/right pair: outward is -x on the left, +x on the right
            table[a, LANDMARK_INDEX[landmark]] += (-dx_outward, dy)
            table[a, LANDMARK_INDEX[right]] += (dx_outward, dy)
        else:
            table[a, LANDMARK_INDEX[landmark]] += (dx_outward, dy)

    move("AU1", "brow_l_inner", 0.0, -0.16)
    move("AU1", "brow_l_mid", 0.0, -0.07)
    move("AU2", "brow_l_outer", 0.01, -0.16)
    move("AU2", "brow_l_mid", 0.0, -0.08)
    move("AU4", "brow_l_inner", -0.06, 0.10)
    move("AU4", "brow_l_mid", -0.02, 0.06)
    move("AU5", "eye_l_upper", 0.0, -0.1)
    move("AU6", "cheek_l", 0.0, -0.12)
    move("AU6", "eye_l_lower", 0.0, -0.035)
    move("AU6", "eye_l_outer", 0.0, -0.02)
    move("AU7", "eye_l_lower", 0.0, -0.075)
    move("AU7", "eye_l_upper", 0.0, 0.02)
    move("AU9", "nostril_l", 0.0, -0.06)
    move("AU9", "alar_l", 0.01, -0.1)
    move("AU9", "nose_tip", 0.0, -0.03)
    move("AU9", "brow_l_inner", -0.01, 0.05)
    move("AU9", "lip_upper_l", 0.0, -0.04)
    move("AU9", "lip_upper_mid", 0.0, -0.04)
    move("AU9", "lip_inner_upper", 0.0, -0.03)
    move("AU10", "lip_upper_l", 0.0, -0.10)
    move("AU10", "lip_upper_mid", 0.0, -0.09)
    move("AU10", "lip_inner_upper", 0.0, -0.07)
    move("AU10", "nostril_l", 0.0, -0.025)
    move("AU10", "alar_l", 0.0, -0.025)
    move("AU12", "mouth_l", 0.12, -0.12)
    move("AU12", "lip_lower_l", 0.04, -0.04)
    move("AU12", "cheek_l", 0.0, -0.04)
    move("AU14", "mouth_l", -0.065, -0.03)
    move("AU15", "mouth_l", 0.02, 0.12)
    move("AU15", "lip_lower_l", 0.01, 0.04)
    move("AU17", "chin", 0.0, -0.1)
    move("AU17", "chin_l", 0.0, -0.05)
    move("AU17", "lip_lower_mid", 0.0, -0.1)
    move("AU17", "lip_lower_l", 0.0, -0.05)
    move("AU17", "lip_inner_lower", 0.0, -0.04)
    move("AU20", "mouth_l", 0.14, 0.02)
    move("AU20", "lip_upper_mid", 0.0, 0.02)
    move("AU20", "lip_upper_l", 0.03, 0.02)
    move("AU20", "lip_lower_mid", 0.0, -0.03)
    move("AU20", "lip_lower_l", 0.04, -0.02)
    move("AU23", "mouth_l", -0.1, 0.0)
    move("AU23", "lip_upper_l", -0.02, 0.035)
    move("AU23", "lip_upper_mid", 0.0, 0.03)
    move("AU23", "lip_lower_l", -0.02, -0.035)
    move("AU23", "lip_lower_mid", 0.0, -0.04)
    move("AU25", "lip_inner_upper", 0.0, -0.04)
    move("AU25", "lip_inner_lower", 0.0, 0.1)
    move("AU25", "lip_lower_mid", 0.0, 0.06)
    move("AU25", "lip_lower_l", 0.0, 0.04)
    move("AU26", "lip_inner_lower", 0.0, 0.16)
    move("AU26", "lip_lower_mid", 0.0, 0.16)
    move("AU26", "lip_lower_l", 0.0, 0.12)
    move("AU26", "chin", 0.0, 0.18)
    move("AU26", "chin_l", 0.0, 0.16)
    move("AU26", "jaw_l", 0.0, 0.05)
    return table


# [A, L, 2] float32, read-only: the action displacement fields in face units.
AU_DISPLACEMENTS: np.ndarray = _displacement_table().astype(np.float32)
AU_DISPLACEMENTS.setflags(write=False)


@dataclasses.dataclass(frozen=True)
class Identities:
    """People as a struct of arrays; row ``i`` of every field is person ``i``.

    Lengths are face units (face half-height = 1) unless said otherwise; tones are gray
    levels in [0, 1].
    """

    face_scale: np.ndarray        # [n] face half-height as a fraction of the frame
    face_width: np.ndarray        # [n] half-width at the cheekbones
    jaw_width: np.ndarray         # [n] jaw-angle half-width as a fraction of face_width
    skin_tone: np.ndarray         # [n]
    texture_amplitude: np.ndarray  # [n, K] skin texture: K low-frequency waves
    texture_frequency: np.ndarray  # [n, K, 2] cycles per face unit (x, y)
    texture_phase: np.ndarray     # [n, K] radians
    eye_size: np.ndarray          # [n] eye half-width
    eye_spacing: np.ndarray       # [n] eye centre distance from the midline
    brow_thickness: np.ndarray    # [n]
    brow_height: np.ndarray       # [n] brow height above the eye line
    nose_length: np.ndarray       # [n] eye line to nose tip
    nose_width: np.ndarray        # [n] alar half-width
    mouth_width: np.ndarray       # [n] mouth half-width
    lip_thickness: np.ndarray     # [n]
    hairline_height: np.ndarray   # [n] y of the hairline middle (negative: above the eyes)
    hair_tone: np.ndarray         # [n]
    iris_tone: np.ndarray         # [n]
    background_tone: np.ndarray   # [n]
    glasses: np.ndarray           # [n] bool

    def __len__(self) -> int:
        return int(self.face_scale.shape[0])

    def take(self, rows: np.ndarray | list[int]) -> "Identities":
        """The people at ``rows`` (repeats allowed), e.g. one row per rendered frame."""
        rows = np.asarray(rows, np.int64)
        return Identities(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})

    def replace(self, **fields: np.ndarray) -> "Identities":
        return dataclasses.replace(self, **fields)


NUM_TEXTURE_WAVES = 4
GLASSES_PROBABILITY = 0.2

# (low, high) of each uniformly drawn identity factor (units as in ``Identities``).
IDENTITY_RANGES: dict[str, tuple[float, float]] = {
    "face_scale": (0.36, 0.41),
    "face_width": (0.70, 0.84),
    "jaw_width": (0.62, 0.86),
    "skin_tone": (0.45, 0.80),
    "texture_amplitude": (0.005, 0.025),
    "texture_frequency": (-2.5, 2.5),
    "texture_phase": (0.0, 2 * np.pi),
    "eye_size": (0.12, 0.155),
    "eye_spacing": (0.29, 0.35),
    "brow_thickness": (0.03, 0.06),
    "brow_height": (0.14, 0.21),
    "nose_length": (0.27, 0.37),
    "nose_width": (0.09, 0.13),
    "mouth_width": (0.20, 0.28),
    "lip_thickness": (0.04, 0.065),
    "hairline_height": (-0.72, -0.48),
    "hair_tone": (0.05, 0.45),
    "iris_tone": (0.10, 0.40),
    "background_tone": (0.15, 0.95),
}


def sample_identities(seed: int, n: int) -> Identities:
    """Draws ``n`` people; deterministic per ``seed``. Factors are independent uniforms."""
    if n < 0:
        raise ValueError(f"sample_identities: n must be >= 0, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5FAC5]))

    def uniform(low: float, high: float, shape=()) -> np.ndarray:
        return rng.uniform(low, high, (n, *shape)).astype(np.float32)

    scalar_factors = {name: uniform(*IDENTITY_RANGES[name]) for name in IDENTITY_RANGES
                      if not name.startswith("texture_")}
    return Identities(
        texture_amplitude=uniform(*IDENTITY_RANGES["texture_amplitude"], (NUM_TEXTURE_WAVES,)),
        texture_frequency=uniform(*IDENTITY_RANGES["texture_frequency"], (NUM_TEXTURE_WAVES, 2)),
        texture_phase=uniform(*IDENTITY_RANGES["texture_phase"], (NUM_TEXTURE_WAVES,)),
        **scalar_factors,
        glasses=rng.uniform(size=n) < GLASSES_PROBABILITY,
    )


EYE_LINE = -0.02  # y of the eye centres in face units


def neutral_landmarks(identities: Identities) -> np.ndarray:
    """[n, L, 2] float32 landmarks of the relaxed face in face units."""
    i = identities
    n = len(i)
    points = np.zeros((n, NUM_LANDMARKS, 2), np.float32)

    def put(name: str, x, y):
        points[:, LANDMARK_INDEX[name], 0] = x
        points[:, LANDMARK_INDEX[name], 1] = y

    def put_pair(left: str, x_outward, y):
        put(left, -np.asarray(x_outward), y)
        put(_mirror_name(left), x_outward, y)

    ey = EYE_LINE
    sp, es = i.eye_spacing, i.eye_size
    brow_y = ey - i.brow_height
    put_pair("brow_l_inner", sp - 0.85 * es, brow_y + 0.01)
    put_pair("brow_l_mid", sp + 0.1 * es, brow_y - 0.035)
    put_pair("brow_l_outer", sp + 1.3 * es, brow_y + 0.02)
    put_pair("eye_l_inner", sp - es, ey + 0.006)
    put_pair("eye_l_outer", sp + es, ey - 0.006)
    put_pair("eye_l_upper", sp, ey - 0.62 * es)
    put_pair("eye_l_lower", sp, ey + 0.42 * es)
    put_pair("pupil_l", sp, ey - 0.08 * es)
    tip_y = ey + i.nose_length
    put("nose_bridge", 0.0, ey)
    put("nose_tip", 0.0, tip_y)
    put_pair("nostril_l", 0.45 * i.nose_width, tip_y + 0.035)
    put_pair("alar_l", i.nose_width, tip_y + 0.0)
    put_pair("cheek_l", sp + 0.08, ey + 0.25)
    mouth_y = np.minimum(tip_y + 0.24, 0.66)
    mw, lt = i.mouth_width, i.lip_thickness
    put_pair("mouth_l", mw, mouth_y)
    put_pair("lip_upper_l", 0.38 * mw, mouth_y - lt)
    put("lip_upper_mid", 0.0, mouth_y - 0.72 * lt)
    put_pair("lip_lower_l", 0.5 * mw, mouth_y + 1.05 * lt)
    put("lip_lower_mid", 0.0, mouth_y + 1.3 * lt)
    put("lip_inner_upper", 0.0, mouth_y)
    put("lip_inner_lower", 0.0, mouth_y)
    fw, jw = i.face_width, i.face_width * i.jaw_width
    put("crown", 0.0, -1.0)
    put_pair("temple_l", 0.93 * fw, -0.42)
    put_pair("cheekbone_l", fw, 0.0)
    put_pair("jaw_l", jw, 0.62)
    put_pair("chin_l", 0.42 * jw, 0.93)
    put("chin", 0.0, 1.0)
    put_pair("hairline_l", 0.62 * fw, i.hairline_height + 0.14)
    put("hairline_mid", 0.0, i.hairline_height)
    return points


def face_frame_landmarks(identities: Identities, au_intensities: np.ndarray) -> np.ndarray:
    """[N, L, 2] float32 landmarks in face units (no pose): neutral plus action displacements.

    ``au_intensities`` is [N, A] in [0, 1], one row per identity row.
    """
    au = check_intensities(au_intensities, len(identities))
    displacement = np.einsum("na,alc->nlc", au, AU_DISPLACEMENTS)
    return neutral_landmarks(identities) + displacement
