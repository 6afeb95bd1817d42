"""Pair augmentations: the same framing and appearance for both frames, local motion that
moves what it says, determinism per generator, and bad settings refused."""

import numpy as np
import pytest

from data_pipelines.talking_faces.augment import (PairAugment, augment_pair, procedural_texture,
                                                  smooth_displacement, warp_by_field)

STRONG = PairAugment(framing_scale=(0.7, 1.3), framing_shift=0.1, framing_rotation=0.3,
                     contrast=0.5, gamma=0.4, light=0.4, blur=1.5)


def _face(size=32, seed=0):
    return procedural_texture(np.random.default_rng(seed), size, 1)


def test_identity_settings_leave_the_pair_alone():
    pair = np.stack([_face(seed=1), _face(seed=2)])
    assert augment_pair(pair, np.random.default_rng(0), PairAugment()) is pair


def test_framing_and_appearance_are_shared_by_both_frames():
    """A still pair stays still: whatever framing and light it gets, both frames get it."""
    face = _face()
    for seed in range(5):
        out = augment_pair(np.stack([face, face]), np.random.default_rng(seed), STRONG)
        np.testing.assert_allclose(out[0], out[1], atol=1e-6)
        assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    moved = augment_pair(np.stack([face, face]), np.random.default_rng(0), STRONG)[0]
    assert np.abs(moved - face).mean() > 0.02  # it did change the frame


def test_sensor_noise_differs_between_the_frames():
    face = _face()
    out = augment_pair(np.stack([face, face]), np.random.default_rng(0), PairAugment(noise=0.05))
    assert np.abs(out[0] - out[1]).mean() > 1e-3


def test_the_same_generator_draws_the_same_pair():
    pair = np.stack([_face(seed=1), _face(seed=2)])
    settings = PairAugment(local_motion=0.5, texture=0.5, noise=0.02, framing_shift=0.1)
    first = augment_pair(pair, np.random.default_rng(7), settings)
    np.testing.assert_array_equal(first, augment_pair(pair, np.random.default_rng(7), settings))


def test_a_constant_field_shifts_the_content_by_the_field():
    image = _face(size=40)
    field = np.zeros((40, 40, 2), np.float32)
    field[..., 0], field[..., 1] = 2.0, -3.0  # down 2, left 3
    moved = warp_by_field(image, field)
    np.testing.assert_allclose(moved[5:-5, 5:-5], image[3:-7, 8:-2], atol=1e-5)


def test_local_motion_moves_only_its_bumps():
    rng = np.random.default_rng(3)
    field = smooth_displacement(rng, 48, max_px=3.0, num_bumps=(1, 2))
    length = np.linalg.norm(field, axis=-1)
    assert 0 < length.max() <= 3.0 + 1e-6
    assert np.mean(length < 0.05 * length.max()) > 0.3  # most of the frame stays put
    out = augment_pair(np.stack([_face(48), _face(48)]), np.random.default_rng(0),
                       PairAugment(local_motion=1.0, local_motion_px=3.0))
    assert np.abs(out[1] - out[0]).max() > 0.01


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="local_motion is a probability"):
        PairAugment(local_motion=1.5)
    with pytest.raises(ValueError, match="framing_scale"):
        PairAugment(framing_scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="blur must be >= 0"):
        PairAugment(blur=-1.0)
