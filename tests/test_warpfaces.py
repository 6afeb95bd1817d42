"""WarpFaces: determinism, output contract, actions in their regions, nuisance
independence, people and dataset styles, the composite preset, bad inputs."""

import functools
import pathlib
import re

import cv2
import numpy as np
import pytest

from data_pipelines.synthetic import (
    AU_NAMES, EMOTION_AUS, NUM_AUS, get_renderer, intensity_vector, me_clips)
from data_pipelines.synthetic.warpfaces import (
    DATASET_STYLES, WARPFACES, face_to_frame, keypoints, keypoints_px, sample_people)
from data_pipelines.synthetic.warpfaces import renderer
from data_pipelines.synthetic.warpfaces.actions import action_fields, displacements
from data_pipelines.synthetic.warpfaces.background import frame_grid

SIZE = 64


def _render(people, au, scenes, size=SIZE, seed=0):
    return WARPFACES.render(people, np.asarray(au, np.float32), scenes, size=size, seed=seed)


def _one_person(seed: int, rows: int, index: int = 0):
    return WARPFACES.sample_people(seed, index + 1).take([index] * rows)


def test_registered_and_deterministic_per_seed():
    assert get_renderer("warpfaces") is WARPFACES
    people = WARPFACES.sample_people(3, 4)
    scenes = WARPFACES.sample_scenes(np.random.default_rng(0), 4, "smic")
    au = np.random.default_rng(1).uniform(0, 0.5, (4, NUM_AUS))
    first = _render(people, au, scenes, size=32, seed=5)
    again = _render(WARPFACES.sample_people(3, 4), au,
                    WARPFACES.sample_scenes(np.random.default_rng(0), 4, "smic"), size=32, seed=5)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - _render(people, au, scenes, size=32, seed=6)).mean() > 1e-3
    assert first.shape == (4, 32, 32, 1) and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 1.0


def test_intensity_zero_is_the_neutral_face_exactly():
    people = _one_person(2, 3)
    scenes = WARPFACES.sample_scenes(np.random.default_rng(4), 1, "casme2").take([0, 0, 0])
    zeros = np.zeros((3, NUM_AUS))
    mixed = np.stack([np.zeros(NUM_AUS), intensity_vector(AU12=1.0, AU26=1.0),
                      intensity_vector(AU1=1e-4)])
    neutral = _render(people, zeros, scenes)
    with_actions = _render(people, mixed, scenes)
    # a neutral row is the same whatever the other rows of its (person, scene) group do
    np.testing.assert_array_equal(with_actions[0], neutral[0])
    # a vanishing intensity changes the face by a vanishing amount (cv2.remap places
    # samples on a 1/32 pixel grid, so a sharp edge may still move by one such step)
    change = np.abs(with_actions[2] - neutral[2])
    assert change.max() < 0.02 and change.mean() < 2e-4


# Each AU's region: a band of heights (face units, see people.py: pupils at v = 0,
# mouth line at v = 1) that should hold most of what the AU changes at intensity 1.
AU_BANDS = {
    "AU1": (-1.0, 0.2), "AU2": (-1.0, 0.2), "AU4": (-1.0, 0.25), "AU5": (-0.45, 0.2),
    "AU6": (-0.45, 0.85), "AU7": (-0.35, 0.35), "AU9": (-0.6, 1.0), "AU10": (0.35, 1.3),
    "AU12": (0.4, 1.45), "AU14": (0.6, 1.4), "AU15": (0.6, 1.6), "AU17": (0.75, 2.1),
    "AU20": (0.6, 1.4), "AU23": (0.6, 1.4), "AU25": (0.6, 1.6), "AU26": (0.6, 2.2),
}
UPPER_FACE_AUS = ("AU1", "AU2", "AU4", "AU5", "AU7")
LOWER_FACE_AUS = ("AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26")


def _row_of_v(people, scenes, v: float) -> float:
    """Output row (pixel centre units) of face height ``v`` on a clean (upright) scene."""
    _, y = face_to_frame(np.zeros(1), np.full(1, v), people.take([0]), scenes.take([0]))
    return float((y[0] + 0.5) * SIZE - 0.5)


def test_each_action_unit_changes_its_own_region():
    for person in range(3):
        people = _one_person(11, NUM_AUS + 1, person)
        scenes = WARPFACES.clean_scenes(NUM_AUS + 1)
        au = np.concatenate([np.zeros((1, NUM_AUS)), np.eye(NUM_AUS)])
        frames = _render(people, au, scenes)[..., 0]
        rows = np.repeat(np.arange(SIZE)[:, None], SIZE, axis=1)
        eyes_row = _row_of_v(people, scenes, 0.0)
        mouth_row = _row_of_v(people, scenes, 1.0)
        upper_end = _row_of_v(people, scenes, 0.3)     # brows, eyes, nose root
        lower_start = _row_of_v(people, scenes, 0.55)  # nose base, mouth, chin
        for k, name in enumerate(AU_NAMES):
            change = np.abs(frames[k + 1] - frames[0])
            total = change.sum()
            assert change.max() > 0.1, f"{name}: no visible change (max {change.max():.3f})"
            low, high = (_row_of_v(people, scenes, b) for b in AU_BANDS[name])
            inside = change[(rows >= low) & (rows <= high)].sum()
            assert inside > 0.8 * total, f"{name}: only {inside / total:.0%} in its band"
            upper = change[rows < upper_end].sum()
            lower = change[rows > lower_start].sum()
            if name in UPPER_FACE_AUS:
                assert upper > 4 * lower, f"{name}: upper {upper:.2f} vs lower {lower:.2f}"
            if name in LOWER_FACE_AUS:
                assert lower > 4 * upper, f"{name}: lower {lower:.2f} vs upper {upper:.2f}"
        assert eyes_row < upper_end < lower_start < mouth_row


def test_keypoints_are_where_the_features_are():
    people = WARPFACES.sample_people(11, 3)
    scenes = WARPFACES.clean_scenes(3)
    frames = _render(people, np.zeros((3, NUM_AUS)), scenes)[..., 0]
    points = keypoints_px(people, scenes, SIZE)
    for i in range(3):
        x, y = np.floor(points["pupil_l"][i]).astype(int)
        skin_x, skin_y = np.floor(points["cheek_l"][i]).astype(int)
        darkest = frames[i, y - 1:y + 2, x - 1:x + 2].min()
        assert darkest < frames[i, skin_y, skin_x] - 0.05  # the pupil is dark
    assert set(keypoints(people)) == set(points)


def _motion_px(upper, lower, px_per_em: float) -> tuple[float, float]:
    """(largest, typical) motion in pixels: typical = median over the points moving more
    than a fifth of the largest motion (the moving region)."""
    magnitude = np.maximum(np.linalg.norm(upper, axis=-1), np.linalg.norm(lower, axis=-1))
    largest = magnitude.max()
    return largest * px_per_em, np.median(magnitude[magnitude > 0.2 * largest]) * px_per_em


def test_micro_expressions_move_about_a_pixel():
    """At micro intensity (0.3) every emotion moves its region by ~0.3-1.5 px (typical)
    and nothing by more than 2 px at 64 px, for a face 70 % of the frame; full single
    AUs move 1-5 px at most, the lid AUs (AU5, AU7) in proportion to the eye's opening,
    itself only ~2 px tall."""
    people = sample_people(5, 4)
    kps = keypoints(people)
    u, v = np.meshgrid(np.linspace(-1.6, 1.6, 81), np.linspace(-1.3, 2.3, 91))
    px_per_em = 0.7 * SIZE / people.params["head_height"]
    for i in range(len(people)):
        person = people.row(i)
        kp = {name: tuple(p[i]) for name, p in kps.items()}
        fields = action_fields(np.arange(NUM_AUS), u, v, kp, person, 0.03,
                               np.random.default_rng(0))
        for k, name in enumerate(AU_NAMES):
            largest, _ = _motion_px(*displacements(fields, np.eye(NUM_AUS)[k])[:2], px_per_em[i])
            low = 0.6 if name in ("AU5", "AU7") else 1.0
            assert low < largest < 5.0, f"{name} moves {largest:.2f} px"
        for emotion, aus in EMOTION_AUS.items():
            micro = intensity_vector({a: 0.3 for a in aus})
            largest, typical = _motion_px(*displacements(fields, micro)[:2], px_per_em[i])
            assert largest < 2.0, f"{emotion} at 0.3 moves up to {largest:.2f} px"
            assert 0.3 < typical < 1.5, f"{emotion} at 0.3 moves typically {typical:.2f} px"


def test_the_warp_inverts_the_displacement_fields():
    """Each output point shows the skin point p with p + D(p) = q: checked on the skin
    (outside the eye openings, where the lids may squeeze the map) for every AU and
    emotion prototype at full intensity."""
    people = WARPFACES.sample_people(7, 2)
    scenes = WARPFACES.sample_scenes(np.random.default_rng(0), 2, None)
    kps = keypoints(people)
    actions = {**EMOTION_AUS, **{name: (name,) for name in AU_NAMES}}
    for i in range(2):
        person, scene = people.row(i), scenes.row(i)
        kp = {name: tuple(p[i]) for name, p in kps.items()}
        x, y = frame_grid(SIZE)
        u, v = renderer._frame_to_face(x, y, person, scene, np.zeros(4))
        px_per_em = scene["face_height"] * SIZE / person["head_height"]
        to_grid = functools.partial(renderer._face_to_pixel, person=person, scene=scene,
                                    size=SIZE)
        roll = scene["roll"]
        axes = px_per_em * np.array([[np.cos(roll), np.sin(roll)], [-np.sin(roll), np.cos(roll)]])
        skin = np.ones(u.shape, bool)
        for side in "lr":
            cu, cv = kp[f"pupil_{side}"]
            skin &= np.hypot((u - cu) / (1.2 * person["eye_half_width"]),
                             (v - cv - 0.02) / (4 * person["eye_opening"])) > 1
        for name, aus in actions.items():
            fields = action_fields(np.array([AU_NAMES.index(a) for a in aus]), u, v, kp,
                                   person, 0.03, np.random.default_rng(0))
            for field in displacements(fields, np.ones(len(aus)))[:2]:
                source = renderer._preimage(u, v, field, to_grid, axes)
                gx, gy = (c.astype(np.float32) for c in to_grid(source[..., 0], source[..., 1]))
                moved = cv2.remap(field, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                error = np.hypot(source[..., 0] + moved[..., 0] - u,
                                 source[..., 1] + moved[..., 1] - v)[skin] * px_per_em
                assert error.max() < 0.25, f"{name}: inverted to {error.max():.3f} px"
                assert np.percentile(error, 99) < 0.05, name


def test_nuisance_is_independent_of_the_actions():
    people = _one_person(8, 4)
    scenes = WARPFACES.sample_scenes(np.random.default_rng(2), 4, "smic")
    neutral = _render(people, np.zeros((4, NUM_AUS)), scenes, seed=3)[..., 0]
    smiling = _render(people, np.tile(intensity_vector(AU12=1.0, AU26=1.0), (4, 1)), scenes,
                      seed=3)[..., 0]
    x, y = np.meshgrid((np.arange(SIZE) + 0.5) / SIZE - 0.5, (np.arange(SIZE) + 0.5) / SIZE - 0.5)
    for r in range(4):
        # far from the mouth (above the brows, in the head's own frame) nothing differs
        scene, person = scenes.row(r), people.row(r)
        scale = scene["face_height"] / person["head_height"]
        dx, dy = x - scene["centre_x"], y - scene["centre_y"]
        v_face = ((-np.sin(scene["roll"]) * dx + np.cos(scene["roll"]) * dy) / scale
                  + person["chin_v"] - 0.5 * person["head_height"])
        far = v_face < -0.6
        assert far.sum() > 200
        np.testing.assert_allclose(smiling[r][far], neutral[r][far], atol=1e-4)
        assert np.abs(smiling[r] - neutral[r]).max() > 0.1
    # other rows, other draws: the same face in the same scene gets its own noise per row
    assert np.abs(neutral[0] - neutral[1]).mean() > 0.005


def test_people_differ_and_are_deterministic():
    people = WARPFACES.sample_people(0, 6)
    again = WARPFACES.sample_people(0, 6)
    np.testing.assert_array_equal(people.matrix(), again.matrix())
    assert not np.allclose(people.matrix(), WARPFACES.sample_people(1, 6).matrix())
    faces = _render(people, np.zeros((6, NUM_AUS)), WARPFACES.clean_scenes(6))[..., 0]
    for i in range(6):
        for j in range(i + 1, 6):
            assert np.abs(faces[i] - faces[j]).mean() > 0.02, (i, j)


def test_dataset_styles_differ():
    rng = np.random.default_rng(0)
    styles = {name: WARPFACES.sample_scenes(rng, 300, name).values for name in DATASET_STYLES}
    height = {k: v["face_height"].mean() for k, v in styles.items()}
    assert height["smic"] < height["casme2"] < height["samm"]
    def relative_noise(name):  # sensor noise against the exposure it rides on
        return np.mean(styles[name]["noise_std"] / styles[name]["gain"])

    assert relative_noise("smic") > 1.5 * relative_noise("casme2")
    assert styles["smic"]["blur"].mean() > 1.2 * styles["casme2"]["blur"].mean()
    assert styles["samm"]["gradient"].mean() > 3 * styles["casme2"]["gradient"].mean()
    for values in styles.values():
        assert values["face_height"].min() >= 0.5 and values["face_height"].max() <= 0.9
        assert np.abs(values["roll"]).max() <= np.radians(15.5)
    # some talking-style faces sit off-centre enough for the frame edge to crop them
    talking = styles[None]
    reach = np.maximum(np.abs(talking["centre_x"]) + 0.33 * talking["face_height"],
                       np.abs(talking["centre_y"]) + 0.5 * talking["face_height"])
    assert np.mean(reach > 0.5) > 0.05
    with pytest.raises(ValueError, match="unknown dataset style"):
        WARPFACES.sample_scenes(rng, 2, "ck+")
    # rendered: SMIC-like frames are darker and noisier than CASME II-like ones
    people = WARPFACES.sample_people(4, 8)
    frames = {name: _render(people, np.zeros((8, NUM_AUS)),
                            WARPFACES.sample_scenes(np.random.default_rng(1), 8, name), size=32)
              for name in ("smic", "casme2")}
    assert frames["smic"].mean() < frames["casme2"].mean() - 0.1


def test_clean_scenes_are_centred_and_noiseless():
    people = _one_person(6, 2)
    first = _render(people, np.zeros((2, NUM_AUS)), WARPFACES.clean_scenes(2), seed=1)
    second = _render(people, np.zeros((2, NUM_AUS)), WARPFACES.clean_scenes(2), seed=9)
    np.testing.assert_array_equal(first[0], first[1])   # no per-row noise or jitter
    np.testing.assert_array_equal(first, second)


def test_composite_preset_has_the_real_shape():
    clips = me_clips("composite", size=32, seed=0, renderer="warpfaces")
    assert len(clips) == 442
    assert len({(c.dataset, c.subject) for c in clips}) == 68
    clip = clips[0]
    assert clip.frames.shape == (9, 32, 32, 1) and clip.frames.dtype == np.float32
    for c in clips[:40]:
        assert c.au_intensities[c.apex_index].max() > 0 and c.au_intensities[0].max() == 0
    # one scene per clip: onset and offset (both at rest) differ only by jitter and noise,
    # while two clips differ by person, framing and light
    within = np.mean([np.abs(c.frames[-1] - c.frames[0]).mean() for c in clips])
    between = np.mean([np.abs(a.frames[0] - b.frames[0]).mean()
                       for a, b in zip(clips[:-1:7], clips[1::7])])
    assert within < 0.04 and between > 3 * within


def test_bad_inputs_raise_clear_errors():
    people = WARPFACES.sample_people(0, 2)
    scenes = WARPFACES.clean_scenes(2)
    with pytest.raises(ValueError, match="au_intensities: expected shape"):
        _render(people, np.zeros((2, NUM_AUS - 1)), scenes)
    with pytest.raises(ValueError, match="au_intensities: expected shape"):
        _render(people, np.zeros((3, NUM_AUS)), scenes)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        _render(people, np.full((2, NUM_AUS), 1.5), scenes)
    with pytest.raises(ValueError, match="size must be an integer >= 16"):
        _render(people, np.zeros((2, NUM_AUS)), scenes, size=8)
    with pytest.raises(ValueError, match="one row per frame"):
        _render(people, np.zeros((2, NUM_AUS)), WARPFACES.clean_scenes(3))


def test_shares_no_code_with_synthfacs():
    package = pathlib.Path(WARPFACES.render.__code__.co_filename).parent
    for path in package.glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import)\s+(\S+)", path.read_text(), re.M)
        assert not [m for m in imports if "synthfacs" in m], path.name
