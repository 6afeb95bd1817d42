"""sparsemax / entmax-1.5 against references computed by bisection on the threshold."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dface_jax.models.pooling import entmax15, sparsemax


def _bisect_threshold(scores: np.ndarray, mass) -> float:
    """tau with sum(mass(scores - tau)) == 1, by bisection in float64 (mass is increasing)."""
    low, high = scores.max() - 1.0 - 1e-9, scores.max()
    for _ in range(200):
        mid = 0.5 * (low + high)
        if mass(scores - mid).sum() > 1.0:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def sparsemax_reference(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, np.float64)
    tau = _bisect_threshold(scores, lambda d: np.maximum(d, 0.0))
    return np.maximum(scores - tau, 0.0)


def entmax15_reference(scores: np.ndarray) -> np.ndarray:
    half = np.asarray(scores, np.float64) / 2.0
    # sum max(half - tau, 0)^2 == 1 needs tau in [max - 1, max].
    tau = _bisect_threshold(half, lambda d: np.maximum(d, 0.0) ** 2)
    return np.maximum(half - tau, 0.0) ** 2


MAPS = [(sparsemax, sparsemax_reference), (entmax15, entmax15_reference)]


@pytest.mark.parametrize("fn,reference", MAPS, ids=["sparsemax", "entmax15"])
def test_matches_bisection_reference(fn, reference):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(32, 16)).astype(np.float32) * rng.uniform(0.1, 4.0, size=(32, 1))
    ours = np.asarray(fn(jnp.asarray(scores)))
    expected = np.stack([reference(row) for row in scores])
    np.testing.assert_allclose(ours, expected, atol=2e-6)
    np.testing.assert_allclose(ours.sum(-1), 1.0, atol=1e-6)
    assert (ours >= 0).all()
    # Wide score ranges must give exact zeros, where the reference has zeros.
    assert ((ours == 0) == (expected == 0)).all()
    assert (ours == 0).any(axis=-1).mean() > 0.5


def test_known_values_and_limits():
    # sparsemax of (1, 0.5, -1): tau = 0.25 -> (0.75, 0.25, 0).
    np.testing.assert_allclose(sparsemax(jnp.array([1.0, 0.5, -1.0])), [0.75, 0.25, 0.0], atol=1e-7)
    # Ties give uniform weights; a dominant score gives a one-hot vector.
    np.testing.assert_allclose(entmax15(jnp.zeros(4)), np.full(4, 0.25), atol=1e-7)
    assert list(np.asarray(entmax15(jnp.array([10.0, 0.0, 0.0])))) == [1.0, 0.0, 0.0]
    assert list(np.asarray(sparsemax(jnp.array([0.0, 3.0, 0.0])))) == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("fn", [sparsemax, entmax15], ids=["sparsemax", "entmax15"])
def test_axis_argument(fn):
    scores = jax.random.normal(jax.random.PRNGKey(1), (3, 5, 4))
    np.testing.assert_allclose(fn(scores, axis=1), jnp.swapaxes(fn(jnp.swapaxes(scores, 1, 2)), 1, 2),
                               atol=1e-7)


@pytest.mark.parametrize("fn,reference", MAPS, ids=["sparsemax", "entmax15"])
def test_jacobian_matches_finite_differences(fn, reference):
    # A point with some zeros but away from support changes, so central differences are exact.
    scores = np.array([1.2, 0.9, 0.1, -0.4, 0.6, -2.0], np.float64)
    probs = reference(scores)
    assert (probs == 0).any() and (probs > 0).sum() >= 3
    step = 1e-5
    numeric = np.stack([(reference(scores + step * e) - reference(scores - step * e)) / (2 * step)
                        for e in np.eye(len(scores))], axis=1)
    forward = np.asarray(jax.jacfwd(fn)(jnp.asarray(scores, jnp.float32)))
    backward = np.asarray(jax.jacrev(fn)(jnp.asarray(scores, jnp.float32)))
    np.testing.assert_allclose(forward, numeric, atol=1e-4)
    np.testing.assert_allclose(backward, numeric, atol=1e-4)


def test_gradient_through_weighted_sum_under_jit():
    values = jnp.arange(6.0)

    def loss(scores):
        return jnp.sum(entmax15(scores) * values) + jnp.sum(sparsemax(scores) * values ** 2)

    scores = jnp.array([0.3, 0.1, 0.2, -1.0, 0.25, 0.0])
    grad = jax.jit(jax.grad(loss))(scores)
    step = 1e-3
    numeric = np.array([(loss(scores + step * e) - loss(scores - step * e)) / (2 * step)
                        for e in np.eye(6)])
    np.testing.assert_allclose(grad, numeric, atol=2e-2)
    assert np.abs(grad).max() > 0.1
