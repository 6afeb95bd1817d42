"""The vector quantizer: lookup, gradients, losses, NSVQ, dead-code restart."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dface_jax.models import vq

NUM_CODES, CODE_DIM = 8, 4


def _latents(seed: int = 0, n: int = 24) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), (2, n // 2, CODE_DIM))


def _init(quantizer: vq.VectorQuantizer, latents: jax.Array) -> dict:
    return quantizer.init(jax.random.PRNGKey(1), latents, train=False)


def test_nearest_codes_match_brute_force_distances():
    latents = np.random.default_rng(0).normal(size=(50, CODE_DIM)).astype(np.float32)
    codebook = np.random.default_rng(1).normal(size=(NUM_CODES, CODE_DIM)).astype(np.float32)
    distances = np.linalg.norm(latents[:, None] - codebook[None], axis=-1)
    got = vq.nearest_codes(jnp.asarray(latents), jnp.asarray(codebook))
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), distances.argmin(axis=1))


def test_outputs_shapes_and_eval_returns_hard_codes():
    quantizer = vq.VectorQuantizer(NUM_CODES, CODE_DIM)
    latents = _latents()
    variables = _init(quantizer, latents)
    out = quantizer.apply(variables, latents, train=False)
    codebook = variables["params"]["codebook"]
    assert out["indices"].shape == (2, 12) and out["indices"].dtype == jnp.int32
    np.testing.assert_array_equal(out["quantized"], codebook[out["indices"]])
    assert int(out["code_counts"].sum()) == 24


def test_usage_metrics_uniform_and_single_code():
    uniform = vq.code_usage_metrics(jnp.arange(16) % NUM_CODES, NUM_CODES)
    np.testing.assert_allclose(uniform["perplexity"], NUM_CODES, rtol=1e-5)
    assert int(uniform["codes_in_use"]) == NUM_CODES
    single = vq.code_usage_metrics(jnp.full((16,), 3), NUM_CODES)
    np.testing.assert_allclose(single["perplexity"], 1.0, rtol=1e-5)
    assert int(single["codes_in_use"]) == 1


def test_straight_through_gradient_is_identity_on_latents():
    quantizer = vq.VectorQuantizer(NUM_CODES, CODE_DIM)
    latents = _latents()
    variables = _init(quantizer, latents)
    upstream = jax.random.normal(jax.random.PRNGKey(5), latents.shape)

    def decoder_side(z):
        return jnp.sum(upstream * quantizer.apply(variables, z, train=True)["quantized"])

    np.testing.assert_allclose(jax.grad(decoder_side)(latents), upstream, atol=1e-6)


def test_codebook_and_commitment_losses_have_the_right_gradients():
    quantizer = vq.VectorQuantizer(NUM_CODES, CODE_DIM, beta=0.25)
    latents = _latents()
    params = _init(quantizer, latents)["params"]

    def loss(name, params, z):
        return quantizer.apply({"params": params}, z, train=True)["losses"][name]

    # The codebook loss trains only the codebook; commitment only the encoder side.
    assert np.abs(jax.grad(loss, argnums=2)("codebook", params, latents)).max() == 0
    assert np.abs(jax.grad(loss, argnums=1)("commitment", params, latents)["codebook"]).max() == 0
    out = quantizer.apply({"params": params}, latents, train=True)
    hard = out["hard_quantized"]
    np.testing.assert_allclose(out["losses"]["commitment"],
                               0.25 * np.mean((latents - hard) ** 2), rtol=1e-5)


def test_codebook_loss_moves_codes_toward_encoder_outputs():
    quantizer = vq.VectorQuantizer(NUM_CODES, CODE_DIM)
    latents = _latents()
    params = _init(quantizer, latents)["params"]
    vq_loss = lambda p: quantizer.apply({"params": p}, latents, train=True)["losses"]["vq"]
    before = float(vq_loss(params))
    for _ in range(20):
        grads = jax.grad(vq_loss)(params)
        params = jax.tree_util.tree_map(lambda p, g: p - 2.0 * g, params, grads)
    assert float(vq_loss(params)) < 0.5 * before


def test_restart_dead_codes_replaces_only_dead_codes():
    codebook = jnp.arange(NUM_CODES * CODE_DIM, dtype=jnp.float32).reshape(NUM_CODES, CODE_DIM)
    params = {"quantizer": {"codebook": codebook}, "other": {"w": jnp.ones(3)}}
    counts = jnp.array([5, 0, 3, 0, 0, 1, 9, 2])
    latents = -1.0 - jax.random.uniform(jax.random.PRNGKey(0), (3, 5, CODE_DIM))
    new_params, restarted = vq.restart_dead_codes(
        params, counts, latents, jax.random.PRNGKey(1), min_count=1)
    new_codebook = np.asarray(new_params["quantizer"]["codebook"])
    dead = np.asarray(counts) < 1
    assert int(restarted) == dead.sum()
    np.testing.assert_array_equal(new_codebook[~dead], np.asarray(codebook)[~dead])
    flat = np.asarray(latents).reshape(-1, CODE_DIM)
    for row in new_codebook[dead]:
        assert np.any(np.all(flat == row, axis=1)), "a restarted code is not an encoder output"
    np.testing.assert_array_equal(new_params["other"]["w"], params["other"]["w"])


def test_nsvq_noise_has_the_quantization_error_norm_and_gradients():
    quantizer = vq.VectorQuantizer(NUM_CODES, CODE_DIM, quantizer="nsvq")
    latents = _latents()
    params = _init(quantizer, latents)["params"]
    rngs = {vq.NSVQ_RNG: jax.random.PRNGKey(3)}
    out = quantizer.apply({"params": params}, latents, train=True, rngs=rngs)
    noise_norm = np.linalg.norm(out["quantized"] - latents, axis=-1)
    error_norm = np.linalg.norm(out["hard_quantized"] - latents, axis=-1)
    np.testing.assert_allclose(noise_norm, error_norm, rtol=1e-4)

    def decoder_side(p, z):
        return jnp.sum(quantizer.apply({"params": p}, z, train=True, rngs=rngs)["quantized"] ** 2)

    grad_params, grad_latents = jax.grad(decoder_side, argnums=(0, 1))(params, latents)
    assert np.abs(grad_params["codebook"]).max() > 0 and np.abs(grad_latents).max() > 0
    eval_out = quantizer.apply({"params": params}, latents, train=False)
    np.testing.assert_array_equal(eval_out["quantized"], eval_out["hard_quantized"])
    with pytest.raises(Exception, match="nsvq"):
        quantizer.apply({"params": params}, latents, train=True)


def test_bad_options_are_rejected():
    latents = _latents()
    with pytest.raises(ValueError, match="quantizer must be one of"):
        _init(vq.VectorQuantizer(quantizer="gumbel"), latents)
