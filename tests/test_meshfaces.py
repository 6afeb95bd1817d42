"""MeshFaces, the held-out 3D face renderer: the FaceRenderer contract, where each action
unit moves the face, nuisance independence, people and dataset styles, bad inputs."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from data_pipelines.synthetic import get_renderer, me_clips
from data_pipelines.synthetic.facs import AU_NAMES, EMOTION_AUS, NUM_AUS, intensity_vector
from data_pipelines.synthetic.meshfaces import MESHFACES, head
from data_pipelines.synthetic.meshfaces.mesh import build_mesh
from data_pipelines.synthetic.meshfaces.renderer import mesh_spacing, posed_mesh
from data_pipelines.synthetic.meshfaces.scenes import CLEAN, FIELD

SIZE = 64
UPPER_AUS = ("AU1", "AU2", "AU4", "AU5", "AU7")
LOWER_AUS = ("AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26")


def _clean_row(model_y: float, size: int) -> int:
    """Image row of material height ``model_y`` in a clean (frontal, centred) scene."""
    frac = 0.5 - (model_y - head.FACE_CENTRE_Y) / head.FACE_HEIGHT * CLEAN["face_height"]
    return int(round(frac * size))


def _centred(scenes):
    """The scenes with a frontal head at the frame centre (light, noise, jitter kept)."""
    values = scenes.values.copy()
    for name in ("yaw", "pitch", "roll"):
        values[:, FIELD[name]] = 0.0
    values[:, FIELD["centre_x"]] = values[:, FIELD["centre_y"]] = 0.5
    values[:, FIELD["face_height"]] = CLEAN["face_height"]
    return type(scenes)(values, scenes.bg_seed)


@pytest.fixture(scope="module")
def au_renders() -> np.ndarray:
    """[people 2, 1 + A, SIZE, SIZE]: clean neutral, then each AU alone at intensity 1."""
    people = MESHFACES.sample_people(3, 2)
    au = np.zeros((1 + NUM_AUS, NUM_AUS), np.float32)
    au[np.arange(1, 1 + NUM_AUS), np.arange(NUM_AUS)] = 1.0
    rows = np.repeat(np.arange(2), 1 + NUM_AUS)
    frames = MESHFACES.render(people.take(rows), np.tile(au, (2, 1)),
                              MESHFACES.clean_scenes(len(rows)), size=SIZE, seed=0)
    return frames[..., 0].reshape(2, 1 + NUM_AUS, SIZE, SIZE)


def test_shape_dtype_range_and_determinism_per_seed():
    people = MESHFACES.sample_people(0, 3)
    scenes = MESHFACES.sample_scenes(np.random.default_rng(0), 3, "smic")
    au = np.stack([intensity_vector(AU12=0.3), intensity_vector(), intensity_vector(AU4=1.0)])
    first = MESHFACES.render(people, au, scenes, size=32, seed=5)
    assert first.shape == (3, 32, 32, 1) and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() <= 1.0 and first.std() > 0.05
    np.testing.assert_array_equal(first, MESHFACES.render(people, au, scenes, size=32, seed=5))
    assert np.abs(first - MESHFACES.render(people, au, scenes, size=32, seed=6)).mean() > 1e-3


def test_people_are_deterministic_and_do_not_depend_on_count():
    few, more = MESHFACES.sample_people(4, 3), MESHFACES.sample_people(4, 5).take([0, 1, 2])
    np.testing.assert_array_equal(few.shape, more.shape)
    np.testing.assert_array_equal(few.look, more.look)
    np.testing.assert_array_equal(few.key, more.key)


@pytest.mark.parametrize("au_name", AU_NAMES)
def test_each_au_changes_the_face_in_its_region(au_renders, au_name):
    k = 1 + AU_NAMES.index(au_name)
    upper_end, middle_end = _clean_row(-0.06, SIZE), _clean_row(-0.24, SIZE)
    for person in range(2):
        diff = np.abs(au_renders[person, k] - au_renders[person, 0])
        upper, middle, lower = (diff[:upper_end].sum(), diff[upper_end:middle_end].sum(),
                                diff[middle_end:].sum())
        assert diff.max() > 0.05, f"{au_name} barely changes the face"
        if au_name in UPPER_AUS:
            assert upper > 10 * (middle + lower), (au_name, upper, middle, lower)
        elif au_name in LOWER_AUS:
            assert lower > 3 * (upper + middle), (au_name, upper, middle, lower)
        elif au_name == "AU6":   # cheeks and lower lids
            assert upper + middle > 10 * lower, (au_name, upper, middle, lower)
        else:                    # AU9: the nose, per image row, more than above or below
            rows = (upper_end, middle_end - upper_end, SIZE - middle_end)
            per_row = np.array([upper, middle, lower]) / rows
            assert per_row.argmax() == 1, (au_name, per_row)


def test_zero_intensity_is_the_neutral_mesh_and_frames_do_not_leak_between_rows():
    people = MESHFACES.sample_people(1, 1)
    mesh = build_mesh(people.shape[0], people.look[0], int(people.key[0]), mesh_spacing(32))
    points, normals, shadow = posed_mesh(mesh, np.zeros(NUM_AUS, np.float32))
    assert points is mesh.points and normals is mesh.normals and shadow is None
    moved, _, _ = posed_mesh(mesh, intensity_vector(AU26=0.3))
    assert np.abs(moved - mesh.points).max() > 0.005
    scenes = MESHFACES.clean_scenes(3)
    au = np.stack([intensity_vector(), intensity_vector(AU26=1.0, AU12=1.0), intensity_vector()])
    frames = MESHFACES.render(people.take([0, 0, 0]), au, scenes, size=32, seed=0)
    np.testing.assert_array_equal(frames[0], frames[2])
    assert np.abs(frames[1] - frames[0]).max() > 0.1


def test_same_nuisance_for_neutral_and_action_renders():
    """Same people, scenes and seed: only the action's region differs (noise, jitter,
    light and background are shared), even under a noisy dataset style."""
    people = MESHFACES.sample_people(2, 4)
    scenes = _centred(MESHFACES.sample_scenes(np.random.default_rng(1), 4, "smic"))
    neutral = MESHFACES.render(people, np.zeros((4, NUM_AUS), np.float32), scenes, size=SIZE,
                               seed=9)
    mouth = MESHFACES.render(people, np.tile(intensity_vector(AU12=0.3, AU25=0.3), (4, 1)),
                             scenes, size=SIZE, seed=9)
    diff = np.abs(mouth - neutral)[..., 0]
    # above the eyes nothing changes at all; the change is below the nose tip
    np.testing.assert_array_equal(diff[:, :_clean_row(0.0, SIZE)], 0.0)
    below_nose = _clean_row(-0.18, SIZE)
    assert diff[:, below_nose:].sum() > 10 * diff[:, :below_nose].sum()
    assert diff[:, below_nose:].max() > 0.03
    brows = MESHFACES.render(people, np.tile(intensity_vector(AU1=0.3, AU4=0.3), (4, 1)),
                             scenes, size=SIZE, seed=9)
    diff = np.abs(brows - neutral)[..., 0]
    np.testing.assert_array_equal(diff[:, _clean_row(-0.16, SIZE):], 0.0)
    assert diff.max() > 0.03


@pytest.mark.parametrize("emotion", sorted(EMOTION_AUS))
def test_micro_expressions_are_visible_but_local(emotion):
    people = MESHFACES.sample_people(5, 2)
    au = np.stack([intensity_vector(), intensity_vector({a: 0.3 for a in EMOTION_AUS[emotion]})])
    frames = MESHFACES.render(people.take([0, 0, 1, 1]), np.tile(au, (2, 1)),
                              MESHFACES.clean_scenes(4), size=SIZE, seed=0)[..., 0]
    for neutral, apex in ((frames[0], frames[1]), (frames[2], frames[3])):
        diff = np.abs(apex - neutral)
        assert diff.max() > 0.04, emotion
        assert (diff > 0.01).mean() < 0.12, emotion  # a small part of the frame moves


def test_people_differ():
    people = MESHFACES.sample_people(7, 5)
    frames = MESHFACES.render(people, np.zeros((5, NUM_AUS), np.float32),
                              MESHFACES.clean_scenes(5), size=32, seed=0)[..., 0]
    for i in range(5):
        for j in range(i):
            assert np.abs(frames[i] - frames[j]).mean() > 0.02, (i, j)


def test_dataset_styles_differ_in_brightness_noise_and_framing():
    people = MESHFACES.sample_people(8, 1).take(np.zeros(12, int))
    zeros = np.zeros((12, NUM_AUS), np.float32)
    stats = {}
    for dataset in ("casme2", "samm", "smic", None):
        scenes = MESHFACES.sample_scenes(np.random.default_rng(3), 12, dataset)
        heights = scenes.field("face_height")
        assert 0.45 <= heights.min() and heights.max() <= 0.8
        one = MESHFACES.render(people, zeros, scenes, size=32, seed=1)
        two = MESHFACES.render(people, zeros, scenes, size=32, seed=2)
        # two seeds differ by sensor noise (and jitter, at edges only): the median
        # absolute difference measures the noise
        stats[dataset] = (one.mean(), np.median(np.abs(one - two)), heights.mean())
    assert stats["smic"][0] < stats["casme2"][0]      # darker
    assert stats["smic"][1] > 1.5 * stats["casme2"][1]  # noisier
    assert stats["smic"][2] < stats["casme2"][2] < stats["samm"][2]  # far, close, closest
    centres = MESHFACES.sample_scenes(np.random.default_rng(0), 50, None).field("centre_x")
    assert np.abs(centres - 0.5).max() > 0.08        # faces sit off-centre


def test_composite_preset_has_the_composite_shape():
    clips = me_clips("composite", 32, 0, renderer="meshfaces")
    assert len(clips) == 442
    assert len({(c.dataset, c.subject) for c in clips}) == 68
    assert all(c.frames.shape == (9, 32, 32, 1) for c in clips)
    apex = clips[0].frames[clips[0].apex_index]
    assert np.abs(apex - clips[0].frames[0]).max() > 0.0


def test_bad_inputs_are_rejected_with_a_clear_message():
    people = MESHFACES.sample_people(0, 2)
    scenes = MESHFACES.clean_scenes(2)
    with pytest.raises(ValueError, match="au_intensities: expected shape"):
        MESHFACES.render(people, np.zeros((2, NUM_AUS - 1)), scenes, size=32, seed=0)
    with pytest.raises(ValueError, match="au_intensities: expected finite values"):
        MESHFACES.render(people, np.full((2, NUM_AUS), 2.0), scenes, size=32, seed=0)
    with pytest.raises(ValueError, match="size must be an integer >= 16"):
        MESHFACES.render(people, np.zeros((2, NUM_AUS)), scenes, size=8, seed=0)
    with pytest.raises(ValueError, match="one scene row per frame"):
        MESHFACES.render(people, np.zeros((2, NUM_AUS)), MESHFACES.clean_scenes(3), size=32,
                         seed=0)
    with pytest.raises(ValueError, match="unknown dataset style"):
        MESHFACES.sample_scenes(np.random.default_rng(0), 2, "mmew")


def test_registered_and_independent_of_synthfacs():
    assert get_renderer("meshfaces") is MESHFACES
    package = pathlib.Path(head.__file__).parent
    for source in package.glob("*.py"):
        assert "synthfacs" not in source.read_text().replace("SynthFACS", ""), source.name
