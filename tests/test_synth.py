"""SynthFACS: determinism, action units, identity invariance, micro range, presets, CLI."""

import collections
import re

import numpy as np
import pytest

from data_pipelines import synthetic
from data_pipelines.synthetic import (
    AU_DISPLACEMENTS, AU_MOVED_GROUPS, AU_NAMES, EMOTION_AUS, LANDMARK_GROUPS, LANDMARK_NAMES,
    MICRO_MAX_INTENSITY, MICRO_MAX_PIXELS_AT_128, Nuisance, face_frame_landmarks, face_landmarks,
    expression_bursts, intensity_vector, me_clips, render_faces, sample_identities, talking_clips)
from data_pipelines.synthetic.synthfacs import raster

NUM_AUS = len(AU_NAMES)


def _one_hot(name: str, value: float = 1.0) -> np.ndarray:
    return intensity_vector({name: value})[None]


def test_rendering_is_deterministic_per_seed():
    ids = sample_identities(3, 4)
    au = np.random.default_rng(0).uniform(0, 1, (4, NUM_AUS)).astype(np.float32)
    first = render_faces(ids, au, size=32, nuisance=Nuisance(), seed=5)
    again = render_faces(sample_identities(3, 4), au, size=32, nuisance=Nuisance(), seed=5)
    other_seed = render_faces(ids, au, size=32, nuisance=Nuisance(), seed=6)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other_seed).mean() > 1e-3
    assert np.abs(first - render_faces(sample_identities(4, 4), au, size=32)).mean() > 1e-2
    a, b = talking_clips(7, 2, 5, 24), talking_clips(7, 2, 5, 24)
    for key in ("frames", "au_intensities", "identity"):
        np.testing.assert_array_equal(a[key], b[key])
    first_set, second_set = (me_clips("smic", size=16, seed=3, frames_per_clip=3) for _ in range(2))
    assert [c.clip_id for c in first_set] == [c.clip_id for c in second_set]
    np.testing.assert_array_equal(np.stack([c.frames for c in first_set]),
                                  np.stack([c.frames for c in second_set]))
    other = me_clips("smic", size=16, seed=4, frames_per_clip=3)
    assert [c.clip_id for c in other] != [c.clip_id for c in first_set]


def test_chunked_threaded_painting_equals_one_chunk(monkeypatch):
    from data_pipelines.synthetic.synthfacs import render

    ids = sample_identities(3, 5)
    au = np.random.default_rng(1).uniform(0, 1, (5, NUM_AUS)).astype(np.float32)
    one_chunk = render_faces(ids, au, size=32, nuisance=Nuisance(), seed=2)
    monkeypatch.setattr(render, "_CHUNK_PIXELS", 32 * 32 * 2)  # chunks of 2 frames
    monkeypatch.setattr(render, "_WORKERS", 2)
    np.testing.assert_array_equal(render_faces(ids, au, size=32, nuisance=Nuisance(), seed=2),
                                  one_chunk)


def test_zero_nuisance_equals_no_nuisance_and_nuisance_moves_the_face():
    ids = sample_identities(0, 3)
    au = np.zeros((3, NUM_AUS), np.float32)
    np.testing.assert_array_equal(render_faces(ids, au, size=32, nuisance=Nuisance.none(), seed=9),
                                  render_faces(ids, au, size=32))
    jitter = Nuisance(translation_std=0.03, rotation_std=0.1, illumination=0.0,
                      brightness=(1.0, 1.0), noise_std=0.0)
    moved = face_landmarks(ids, au, size=64, nuisance=jitter, seed=1)
    still = face_landmarks(ids, au, size=64)
    assert np.abs(moved - still).max() > 1.0


@pytest.mark.parametrize("size", [64, 128])
def test_shapes_range_and_anti_aliasing(size):
    ids = sample_identities(1, 2)
    frames = render_faces(ids, np.zeros((2, NUM_AUS), np.float32), size=size,
                          nuisance=Nuisance(), seed=0)
    assert frames.shape == (2, size, size, 1) and frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    # a clean face on a flat background: the row through the neck crosses two vertical
    # edges; placed half a pixel off the grid, each must show an intermediate gray level
    one = ids.take([0]).replace(background_tone=np.array([0.95], np.float32),
                                skin_tone=np.array([0.5], np.float32),
                                texture_amplitude=np.zeros((1, 4), np.float32))
    neck_half_width = 0.42 * one.face_width[0] * one.face_scale[0] * size  # pixels
    neck_row = int(size * (0.5 + 1.12 * one.face_scale[0]))
    for side in (-1, 1):
        edge = size / 2 + side * neck_half_width
        shift = (np.floor(edge) + 0.5 - edge) / size  # moves this edge to a pixel's middle
        pose = np.array([[shift, 0.0, 0.0, 0.0]], np.float32)
        row = render_faces(one, np.zeros((1, NUM_AUS), np.float32), size=size,
                           pose=pose)[0, neck_row, :, 0]
        background, neck = row[0], row[size // 2]
        assert abs(background - neck) > 0.2
        low, high = sorted((background, neck))
        intermediate = np.flatnonzero((row > low + 0.05) & (row < high - 0.05))
        assert np.any(side * (intermediate - size / 2) > 0), (side, row)


def test_disk_coverage_has_the_disk_area():
    size = 40
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    sd = raster.ellipse_sd(x[None], y[None], 20.3, 19.7, 7.5, 7.5)
    alpha = raster.coverage(sd, np.ones((1, 1, 1), np.float32))
    assert abs(alpha.sum() - np.pi * 7.5 ** 2) < 0.01 * np.pi * 7.5 ** 2
    assert np.count_nonzero((alpha > 0.05) & (alpha < 0.95)) > 20


@pytest.mark.parametrize("au_name", AU_NAMES)
def test_each_au_moves_its_landmarks_and_no_others(au_name):
    ids = sample_identities(2, 5)
    neutral = face_landmarks(ids, np.zeros((5, NUM_AUS), np.float32), size=64)
    acted = face_landmarks(ids, np.repeat(_one_hot(au_name), 5, 0), size=64)
    motion = np.linalg.norm(acted - neutral, axis=-1)  # [5, L] pixels
    expected = {name for group in AU_MOVED_GROUPS[au_name] for name in LANDMARK_GROUPS[group]}
    for group in AU_MOVED_GROUPS[au_name]:
        indices = [LANDMARK_NAMES.index(n) for n in LANDMARK_GROUPS[group]]
        assert motion[:, indices].max(axis=1).min() > 0.4, (au_name, group)
    still = [i for i, name in enumerate(LANDMARK_NAMES) if name not in expected]
    assert motion[:, still].max() < 1e-3, [LANDMARK_NAMES[i] for i in still
                                           if motion[:, i].max() >= 1e-3]
    # visible at 64 px: the largest motion is at least 1.5 px, and the picture changes
    assert motion.max(axis=1).min() >= 1.5
    before = render_faces(ids, np.zeros((5, NUM_AUS), np.float32), size=64)
    after = render_faces(ids, np.repeat(_one_hot(au_name), 5, 0), size=64)
    assert (np.abs(after - before) > 0.05).sum(axis=(1, 2, 3)).min() >= 5


def test_shading_actions_change_pixels_where_landmarks_do_not_move_much():
    ids = sample_identities(0, 3)
    base = render_faces(ids, np.zeros((3, NUM_AUS), np.float32), size=64)
    for name in ("AU6", "AU9"):
        shaded = render_faces(ids, np.repeat(_one_hot(name), 3, 0), size=64)
        assert np.abs(shaded - base).sum(axis=(1, 2, 3)).min() > 3.0, name


def test_identity_changes_pixels_but_not_the_normalised_action_field():
    ids = sample_identities(11, 6)
    au = np.repeat(intensity_vector(AU6=0.7, AU12=1.0, AU1=0.4, AU26=0.5)[None], 6, 0)
    zero = np.zeros_like(au)
    pose = np.array([[0.02, -0.01, 0.1, 0.05]] * 6, np.float32)
    size = 96
    displacement = face_landmarks(ids, au, size=size, pose=pose) - face_landmarks(
        ids, zero, size=size, pose=pose)
    # undo the pose rotation and the identity's face size: face units
    angle = pose[0, 2]
    rotate_back = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    face_units = displacement @ rotate_back.T / (ids.face_scale * np.exp(pose[0, 3]) * size)[:, None, None]
    np.testing.assert_allclose(face_units, np.broadcast_to(face_units[0], face_units.shape), atol=1e-4)
    np.testing.assert_allclose(face_units[0], np.einsum("a,alc->lc", au[0], AU_DISPLACEMENTS), atol=1e-4)
    # ... while the people look different, and pixel displacements differ with face size
    frames = render_faces(ids, au, size=size, pose=pose)
    for i in range(1, 6):
        assert np.abs(frames[i] - frames[0]).mean() > 0.02
    assert np.ptp(np.abs(displacement).max(axis=(1, 2))) > 0.1
    # and the face-frame landmarks of the neutral face do depend on identity
    assert np.abs(face_frame_landmarks(ids, zero)[1] - face_frame_landmarks(ids, zero)[0]).max() > 0.01


def test_micro_intensity_moves_landmarks_within_the_documented_range():
    ids = sample_identities(5, 64)
    zero = np.zeros((64, NUM_AUS), np.float32)
    neutral = face_landmarks(ids, zero, size=128)
    combinations = [(name,) for name in AU_NAMES] + list(EMOTION_AUS.values())
    largest = 0.0
    for aus in combinations:
        au = np.repeat(intensity_vector({a: MICRO_MAX_INTENSITY for a in aus})[None], 64, 0)
        motion = np.linalg.norm(face_landmarks(ids, au, size=128) - neutral, axis=-1).max()
        assert motion <= MICRO_MAX_PIXELS_AT_128, (aus, motion)
        largest = max(largest, motion)
    assert largest > 0.5 * MICRO_MAX_PIXELS_AT_128  # the bound is tight, not vacuous


def test_bad_intensities_and_pose_are_rejected():
    ids = sample_identities(0, 2)
    with pytest.raises(ValueError, match=r"au_intensities: expected shape \[2, 16\]"):
        render_faces(ids, np.zeros((3, NUM_AUS), np.float32), size=32)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        render_faces(ids, np.full((2, NUM_AUS), 1.5, np.float32), size=32)
    with pytest.raises(ValueError, match=r"pose: expected shape \[2, 4\]"):
        render_faces(ids, np.zeros((2, NUM_AUS), np.float32), size=32, pose=np.zeros((2, 3)))
    with pytest.raises(KeyError, match="AU99"):
        intensity_vector(AU99=1.0)


def test_talking_clips_have_smooth_actions_and_speech():
    clips = talking_clips(0, 6, 24, 32)
    assert clips["frames"].shape == (6, 24, 32, 32, 1)
    assert clips["au_intensities"].shape == (6, 24, NUM_AUS)
    assert clips["identity"].dtype == np.int32 and clips["identity"].shape == (6,)
    au = clips["au_intensities"]
    assert 0.0 <= au.min() and au.max() <= 1.0
    speech = [AU_NAMES.index("AU25"), AU_NAMES.index("AU26")]
    face = [a for a in range(NUM_AUS) if a not in speech]
    # knots 12 frames apart: at most 1.3 * 2 * (pi / 2) / 12 = 0.34 per frame
    assert np.abs(np.diff(au[:, :, face], axis=1)).max() < 0.35  # smooth trajectories
    jaw = au[:, :, AU_NAMES.index("AU26")]
    assert (jaw.max(axis=1) - jaw.min(axis=1)).max() > 0.2  # the mouth opens and closes
    assert (np.count_nonzero(au.max(axis=1) > 0.05, axis=1) >= 3).all()  # several AUs active
    frames = clips["frames"]
    assert np.abs(frames[:, 1:] - frames[:, :-1]).mean() > 1e-3


SMIC_ID = re.compile(r"^s\d+_(ne|po|sur)_\d{2}$")
CASME2_ID = re.compile(r"^EP\d{2}_\d{2}f?$")
SAMM_ID = re.compile(r"^\d{3}_\d_\d+$")


def test_composite_preset_has_the_shape_of_the_composite_set():
    clips = me_clips("composite", size=16, seed=0, frames_per_clip=5)
    assert len(clips) == 442
    assert len({(c.dataset, c.subject) for c in clips}) == 68
    counts = collections.Counter((c.dataset, c.composite_label) for c in clips)
    assert counts == {("smic", "negative"): 70, ("smic", "positive"): 51, ("smic", "surprise"): 43,
                      ("casme2", "negative"): 88, ("casme2", "positive"): 32, ("casme2", "surprise"): 25,
                      ("samm", "negative"): 92, ("samm", "positive"): 26, ("samm", "surprise"): 15}
    subjects = collections.defaultdict(set)
    for c in clips:
        subjects[c.dataset].add(c.subject)
    assert {k: len(v) for k, v in subjects.items()} == {"smic": 16, "casme2": 24, "samm": 28}
    words = {d: {c.emotion for c in clips if c.dataset == d} for d in subjects}
    assert words["smic"] == {"negative", "positive", "surprise"}
    assert words["casme2"] == {"disgust", "repression", "happiness", "surprise"}
    assert words["samm"] == {"Anger", "Contempt", "Disgust", "Fear", "Sadness", "Happiness", "Surprise"}
    patterns = {"smic": SMIC_ID, "casme2": CASME2_ID, "samm": SAMM_ID}
    for c in clips:
        assert patterns[c.dataset].match(c.clip_id), c.clip_id
    assert len({(c.dataset, c.subject, c.clip_id) for c in clips}) == 442
    assert all(re.fullmatch(r"s\d+", s) for s in subjects["smic"])
    assert all(re.fullmatch(r"sub\d{2}", s) for s in subjects["casme2"])
    assert all(re.fullmatch(r"\d{3}", s) for s in subjects["samm"])
    for c in clips[:40]:
        assert c.frames.shape == (5, 16, 16, 1)
        assert (c.onset_index, c.apex_index, c.offset_index) == (0, 2, 4)
        peak = c.au_intensities.max(axis=1)
        assert peak[0] == 0 and peak[4] < 1e-6 and peak[2] == peak.max() > 0
        assert c.au_intensities.max() <= MICRO_MAX_INTENSITY
        active = {f"AU{n}" for n in c.action_units.split("+")}
        assert active == {AU_NAMES[a] for a in np.flatnonzero(c.au_intensities.max(axis=0) > 0)}


def test_emotions_follow_their_action_units_without_idiosyncrasy():
    clips = me_clips("samm", size=16, seed=1, frames_per_clip=3, idiosyncrasy=0.0)
    for c in clips:
        if c.emotion != "Other":
            assert c.action_units == "+".join(a[2:] for a in EMOTION_AUS[c.emotion.lower()])
        else:
            assert c.composite_label is None and len(c.action_units.split("+")) == 1
    assert collections.Counter(c.emotion for c in clips)["Other"] == 26


def test_casme2_preset_has_five_classes_with_others():
    clips = me_clips("casme2", size=16, seed=0, frames_per_clip=3)
    counts = collections.Counter(c.emotion for c in clips)
    assert counts == {"happiness": 32, "disgust": 63, "repression": 27, "surprise": 25, "others": 99}
    assert all((c.composite_label is None) == (c.emotion == "others") for c in clips)
    assert len({c.subject for c in clips}) == 26


def test_label_noise_and_idiosyncrasy_are_controllable():
    clean = me_clips("smic", size=16, seed=2, frames_per_clip=3, idiosyncrasy=0.0)
    noisy = me_clips("smic", size=16, seed=2, frames_per_clip=3, idiosyncrasy=0.0, label_noise=0.5)
    flipped = sum(a.emotion != b.emotion for a, b in zip(clean, noisy))
    assert 0.3 * len(clean) < flipped < 0.7 * len(clean)
    assert [a.action_units for a in clean] == [b.action_units for b in noisy]
    varied = me_clips("smic", size=16, seed=2, frames_per_clip=3, idiosyncrasy=1.0)
    positive = {c.action_units for c in varied if c.emotion == "positive"}
    assert positive != {"6+12"}  # some subjects substitute an action unit


def test_npz_round_trip(tmp_path):
    clips = me_clips("smic", size=16, seed=0, frames_per_clip=3)[:5]
    synthetic.save_me_clips_npz(clips, tmp_path / "c.npz")
    back = synthetic.load_me_clips_npz(tmp_path / "c.npz")
    for a, b in zip(clips, back):
        np.testing.assert_array_equal(a.frames, b.frames)
        assert (a.emotion, a.subject, a.clip_id, a.composite_label, a.apex_index) == (
            b.emotion, b.subject, b.clip_id, b.composite_label, b.apex_index)


def test_synth_command_writes_grid_npz_and_shards(tmp_path):
    from dface_jax import cli

    assert cli.main(["synth", "--preset", "grid", "--out", str(tmp_path / "g" / "grid.png"),
                     "--image-size", "32"]) == 0
    from PIL import Image
    grid = Image.open(tmp_path / "g" / "grid.png")
    assert grid.size[0] == 32 * (NUM_AUS + 1)
    assert cli.main(["synth", "--preset", "smic", "--out", str(tmp_path / "m" / "smic.npz"),
                     "--image-size", "16", "--frames-per-clip", "3"]) == 0
    assert len(synthetic.load_me_clips_npz(tmp_path / "m" / "smic.npz")) == 164
    from data_pipelines.talking_faces.shards import clip_source, decode_clip, read_metadata
    from dface_jax.configs import load_config
    from dface_jax.pretrain.data import synthetic_talking_chunks

    # --preset talking writes exactly the clips `pretrain` renders from the same config.
    overrides = ["--config.data.num_clips=3", "--config.data.num_frames=4"]
    assert cli.main(["synth", "--preset", "talking", "--data-dir", str(tmp_path / "t"),
                     "--config", "pretrain_synthetic.py:tiny", *overrides]) == 0
    assert read_metadata(tmp_path / "t")["num_clips"] == 3
    config = load_config("pretrain_synthetic.py:tiny", overrides)
    expected = next(synthetic_talking_chunks(config.data, config.tokenizer.image_size))["frames"]
    source = clip_source(tmp_path / "t")
    written = np.stack([decode_clip(source[i]) for i in range(3)]) / 255.0
    np.testing.assert_allclose(written, expected, atol=0.5 / 255 + 1e-6)


IDENTITY_FACTORS = ("face_scale", "face_width", "jaw_width", "skin_tone", "texture_amplitude",
                    "eye_size", "eye_spacing", "brow_thickness", "brow_height", "nose_length",
                    "nose_width", "mouth_width", "lip_thickness", "hairline_height", "hair_tone",
                    "iris_tone", "background_tone", "glasses")


@pytest.mark.parametrize("factor", IDENTITY_FACTORS)
def test_each_identity_factor_alone_changes_pixels_not_the_action_field(factor):
    from data_pipelines.synthetic.synthfacs.face_model import IDENTITY_RANGES

    base = sample_identities(21, 1)
    value = getattr(base, factor)
    if factor == "glasses":
        other = ~value
    else:  # move the factor to the far end of its range
        low, high = IDENTITY_RANGES[factor]
        other = np.where(value - low > high - value, low, high).astype(np.float32)
    changed = base.replace(**{factor: other})
    au = intensity_vector(AU1=1.0, AU12=1.0, AU26=1.0)[None]
    zero = np.zeros_like(au)
    pixels = np.abs(render_faces(changed, au, size=64) - render_faces(base, au, size=64))
    assert np.count_nonzero(pixels > 0.02) >= 3, factor
    field_base = face_frame_landmarks(base, au) - face_frame_landmarks(base, zero)
    field_changed = face_frame_landmarks(changed, au) - face_frame_landmarks(changed, zero)
    np.testing.assert_allclose(field_changed, field_base, atol=1e-6)


def test_landmarks_sit_on_the_rendered_features():
    ids = sample_identities(8, 4).replace(glasses=np.zeros(4, bool))
    au = np.zeros((4, NUM_AUS), np.float32)
    pose = np.array([[0.03, -0.02, 0.15, 0.1]] * 4, np.float32)
    frames = render_faces(ids, au, size=128, pose=pose)[..., 0]
    points = face_landmarks(ids, au, size=128, pose=pose)
    for name in ("pupil_l", "pupil_r", "nostril_l", "nostril_r"):
        x, y = points[:, LANDMARK_NAMES.index(name)].T
        values = frames[np.arange(4), y.astype(int), x.astype(int)]
        assert (values < 0.5 * ids.skin_tone).all(), (name, values)


def test_talking_clips_speech_and_action_tempo_are_settable():
    silent = talking_clips(0, 6, 24, 16, speech_probability=0.0)["au_intensities"]
    for au in ("AU25", "AU26"):
        assert silent[:, :, AU_NAMES.index(au)].max() == 0.0
    face = [a for a in range(NUM_AUS) if AU_NAMES[a] not in ("AU25", "AU26")]
    slow = np.abs(np.diff(talking_clips(0, 6, 24, 16)["au_intensities"][:, :, face], axis=1))
    fast = np.abs(np.diff(talking_clips(0, 6, 24, 16, action_knot_spacing=4.0)
                          ["au_intensities"][:, :, face], axis=1))
    assert fast.mean() > 1.5 * slow.mean()  # knots 4 frames apart instead of 12
    with pytest.raises(ValueError, match="action_knot_spacing"):
        talking_clips(0, 1, 4, 16, action_knot_spacing=0.0)
    with pytest.raises(ValueError, match="speech_probability"):
        talking_clips(0, 1, 4, 16, speech_probability=1.5)


def test_expression_bursts_rise_from_rest_to_an_apex_and_come_back():
    levels = expression_bursts(np.random.default_rng(0), 200, 40, 14, 1)
    assert levels.shape == (200, 14, 40) and levels.min() >= 0.0 and levels.max() <= 1.0
    active = levels.max(axis=-1) > 0
    assert active.sum(-1).max() <= 3 and active.sum(-1).mean() > 1.5  # 1-3 actions a burst
    # bursts wholly inside the clip: rest at both ends, apex 0.5-1.0 reached 1-3 frames
    # after leaving rest (onsets of 2-4 frames), all actions of a burst in step
    inside = (levels[:, :, 0].max(-1) == 0) & (levels[:, :, -1].max(-1) == 0) & active.any(-1)
    assert inside.sum() > 50
    for clip in np.flatnonzero(inside):
        curves = levels[clip][active[clip]]
        assert 0.5 - 1e-6 <= curves.max(-1).min() and curves.max() <= 1.0
        first = np.argmax(curves > 0, axis=-1)
        peak = np.argmax(curves, axis=-1)
        assert len(set(first)) == 1 and len(set(peak)) == 1, clip
        assert 1 <= peak[0] - first[0] <= 3, (clip, first, peak)


def test_expression_bursts_apex_range_sets_the_peak_levels():
    levels = expression_bursts(np.random.default_rng(1), 300, 40, 14, 1, apex_range=(0.1, 0.3))
    inside = (levels[:, :, 0].max(-1) == 0) & (levels[:, :, -1].max(-1) == 0)
    peaks = levels[inside].max(-1)
    peaks = peaks[peaks > 0]
    assert peaks.size > 100 and peaks.min() >= 0.1 - 1e-6 and peaks.max() <= 0.3 + 1e-6
    assert np.ptp(peaks) > 0.15  # drawn across the range, not at one level
    with pytest.raises(ValueError, match="apex_range"):
        expression_bursts(np.random.default_rng(1), 2, 10, 14, 1, apex_range=(0.6, 0.4))


def test_talking_clips_bursts_make_large_action_changes_between_nearby_frames():
    face = [a for a in range(NUM_AUS) if AU_NAMES[a] not in ("AU25", "AU26")]

    def large_change_share(**kwargs):
        au = talking_clips(3, 40, 16, 16, speech_probability=0.0, **kwargs)["au_intensities"]
        change = np.abs(au[:, 6:, face] - au[:, :-6, face])  # pairs 6 frames apart
        return float((change > 0.5).mean())

    assert large_change_share(bursts_per_clip=2) > 3 * large_change_share()
    with pytest.raises(ValueError, match="bursts_per_clip"):
        talking_clips(0, 1, 4, 16, bursts_per_clip=-1)


def test_talking_clips_placement_moves_each_clip_but_not_its_frames():
    still = dict(nuisance=Nuisance.none(), drift=0.0, speech_probability=0.0, active_aus=(0, 0))
    centred = talking_clips(2, 6, 3, 48, **still)
    placed = talking_clips(2, 6, 3, 48, placement=3.0, **still)
    np.testing.assert_array_equal(centred["au_intensities"], placed["au_intensities"])
    moved = np.abs(placed["frames"] - centred["frames"]).mean(axis=(1, 2, 3, 4))
    assert (moved > 0.005).all(), moved  # every clip's face is somewhere else...
    assert np.abs(np.diff(placed["frames"], axis=1)).max() < 1e-6  # ...and stays there
    with pytest.raises(ValueError, match="placement"):
        talking_clips(0, 1, 4, 16, placement=-1.0)


def test_talking_clips_camera_scales_frame_each_clip_as_a_camera_scale_would():
    still = dict(drift=0.0, speech_probability=0.0, active_aus=(0, 0))
    # A one-point range is the nuisance's camera scale, computed through the pose instead.
    by_range = talking_clips(3, 4, 2, 48, nuisance=Nuisance.none(), camera_scales=(0.85, 0.85),
                             **still)
    by_camera = talking_clips(3, 4, 2, 48, nuisance=Nuisance.none(camera_scale=0.85), **still)
    np.testing.assert_allclose(by_range["frames"], by_camera["frames"], atol=1e-5)
    # A range gives each clip its own face size, the same in all its frames.
    ranged = talking_clips(3, 4, 2, 48, nuisance=Nuisance.none(), camera_scales=(0.8, 1.2),
                           **still)
    unscaled = talking_clips(3, 4, 2, 48, nuisance=Nuisance.none(), **still)
    moved = np.abs(ranged["frames"] - unscaled["frames"]).mean(axis=(1, 2, 3, 4))
    assert (moved > 0.002).all() and np.ptp(moved) > 0.002, moved
    assert np.abs(np.diff(ranged["frames"], axis=1)).max() < 1e-6
    with pytest.raises(ValueError, match="camera_scales"):
        talking_clips(0, 1, 4, 16, camera_scales=(1.2, 0.8))
