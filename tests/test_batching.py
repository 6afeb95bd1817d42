import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dface_jax.runtime.batching import apply_in_batches


def test_apply_in_batches_equals_one_call_and_compiles_once():
    traces = []

    @jax.jit
    def fn(a, b):
        traces.append(a.shape)
        return {"sum": a + b, "norm": jnp.linalg.norm(a, axis=-1)}

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(11, 3)), rng.normal(size=(11, 3))
    chunked = apply_in_batches(fn, a, b, batch_size=4)
    np.testing.assert_allclose(chunked["sum"], a + b, rtol=1e-6)
    np.testing.assert_allclose(chunked["norm"], np.linalg.norm(a, axis=-1), rtol=1e-6)
    # 11 rows in chunks of 4: the last chunk of 3 is padded, so one shape is traced.
    assert traces == [(4, 3)]


def test_apply_in_batches_single_short_chunk_is_not_padded():
    shapes = []
    out = apply_in_batches(lambda x: shapes.append(x.shape) or x * 2, np.ones((3, 2)),
                           batch_size=8)
    assert shapes == [(3, 2)] and out.shape == (3, 2)


def test_apply_in_batches_refuses_misaligned_inputs():
    with pytest.raises(ValueError, match="differ in batch size"):
        apply_in_batches(lambda a, b: a, np.ones((4, 2)), np.ones((5, 2)), batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        apply_in_batches(lambda a: a, np.ones((4, 2)), batch_size=0)
