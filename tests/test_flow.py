"""Onset-apex optical flow and strain (dface_jax/tokens/flow.py): a known translation is
recovered with its sign and size, the resized flow is in pixels of the small grid, and the
strain of an analytic flow field is its known value."""

import cv2
import numpy as np
import pytest

from dface_jax.tokens import flow as flow_lib


def _texture(size=64, seed=0):
    """A smooth random gray texture in [0.1, 0.9] (DIS needs gradients everywhere)."""
    noise = np.random.default_rng(seed).uniform(size=(size, size)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return 0.1 + 0.8 * smooth


def _translated(image, dx, dy):
    """``image`` with its content moved by (dx, dy) pixels (right, down): out(x) = in(x - d)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("dx, dy", [(1.5, -1.0), (-0.6, 0.4), (2.5, 0.0)])
def test_dense_flow_recovers_a_known_translation(dx, dy):
    onset = _texture()
    apex = _translated(onset, dx, dy)
    flow = flow_lib.dense_flow(onset[..., None], apex[..., None])
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    inner = flow[8:-8, 8:-8]  # away from the reflected border
    np.testing.assert_allclose(np.median(inner[..., 0]), dx, atol=0.1)
    np.testing.assert_allclose(np.median(inner[..., 1]), dy, atol=0.1)


def test_onset_apex_flow_is_in_pixels_of_the_small_grid_and_a_shift_has_no_strain():
    onset = np.repeat(_texture()[..., None], 3, axis=-1)  # RGB input goes through gray
    apex = np.repeat(_translated(onset[..., 0], 2.0, -1.0)[..., None], 3, axis=-1)
    flow, strain = flow_lib.onset_apex_flow(onset, apex, size=28)
    assert flow.shape == (28, 28, 2) and strain.shape == (28, 28, 1)
    assert flow.dtype == strain.dtype == np.float32
    inner = flow[4:-4, 4:-4]
    # 2 px right and 1 px up at 64 px are 2 * 28/64 and -1 * 28/64 px of the 28 px grid.
    np.testing.assert_allclose(np.median(inner[..., 0]), 2.0 * 28 / 64, atol=0.06)
    np.testing.assert_allclose(np.median(inner[..., 1]), -1.0 * 28 / 64, atol=0.06)
    # A rigid translation does not deform the face: the strain is small next to a stretch's.
    stretched = cv2.resize(onset, None, fx=1.1, fy=1.0, interpolation=cv2.INTER_CUBIC)[:, :64]
    _, stretch_strain = flow_lib.onset_apex_flow(onset, stretched, size=28)
    assert np.median(strain[4:-4, 4:-4]) < 0.02
    assert np.median(stretch_strain[4:-4, 4:16]) > 3 * np.median(strain[4:-4, 4:-4])
    # No motion: zero flow.
    still, _ = flow_lib.onset_apex_flow(onset, onset, size=28)
    assert np.abs(still).max() < 0.05


def test_optical_strain_of_analytic_flow_fields():
    yy, xx = np.mgrid[:20, :20].astype(np.float32)
    # u = 0.1 x (a horizontal stretch): strain = |u_x| = 0.1.
    stretch = np.stack([0.1 * xx, np.zeros_like(xx)], axis=-1)
    np.testing.assert_allclose(flow_lib.optical_strain(stretch), 0.1, atol=1e-6)
    # u = 0.2 y (a shear): strain = sqrt((u_y + v_x)^2 / 2) = 0.2 / sqrt(2).
    shear = np.stack([0.2 * yy, np.zeros_like(xx)], axis=-1)
    np.testing.assert_allclose(flow_lib.optical_strain(shear), 0.2 / np.sqrt(2), atol=1e-6)
    # A rotation (u = -w y, v = w x) has no infinitesimal strain.
    rotation = np.stack([-0.05 * yy, 0.05 * xx], axis=-1)
    np.testing.assert_allclose(flow_lib.optical_strain(rotation), 0.0, atol=1e-6)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="expected a frame"):
        flow_lib.to_gray_uint8(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="flow size must be >= 1"):
        flow_lib.onset_apex_flow(np.zeros((8, 8, 1)), np.zeros((8, 8, 1)), size=0)
