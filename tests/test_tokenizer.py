"""The C-VQ-VAE action tokenizer at a tiny size: shapes, layouts, losses, gradients."""

import dataclasses

import einops
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dface_jax.models import layers, vq
from dface_jax.configs import ConfigError
from dface_jax.models import losses
from dface_jax.models import tokenizer as tok

TINY = tok.TokenizerConfig(dim=32, quant_dim=16, codebook_size=16, image_size=32, patch_size=8,
                           spatial_depth=1, temporal_depth=1, decoder_depth=1, heads=2,
                           dim_head=8, channels=1)


def _frames(config: tok.TokenizerConfig, seed: int, batch: int = 2) -> jax.Array:
    shape = (batch, config.image_size, config.image_size, config.channels)
    return jax.random.uniform(jax.random.PRNGKey(seed), shape)


@pytest.fixture(scope="module")
def tiny_params():
    return tok.init_tokenizer(TINY, jax.random.PRNGKey(0))["params"]


def test_config_defaults_are_paper_scale_and_from_dict_rejects_typos():
    config = tok.TokenizerConfig()
    assert (config.dim, config.quant_dim, config.codebook_size, config.image_size,
            config.patch_size, config.spatial_depth, config.temporal_depth, config.decoder_depth,
            config.heads, config.dim_head, config.channels, config.code_seq_len) == (
                512, 32, 32, 256, 16, 6, 6, 6, 8, 64, 3, 16)
    assert not config.released_token_layout and config.quantizer == "straight_through"
    assert tok.TokenizerConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ConfigError, match="dimm"):
        tok.TokenizerConfig.from_dict({"dimm": 3})


@pytest.mark.parametrize("image_size,patch_size,convs", [(256, 16, 2), (64, 4, 2), (64, 8, 1),
                                                         (32, 8, 0)])
def test_downsampling_reaches_a_4x4_action_grid(image_size, patch_size, convs):
    config = tok.TokenizerConfig(image_size=image_size, patch_size=patch_size)
    assert config.num_downsamples == convs
    assert config.patch_grid // 2 ** convs == 4


def test_bad_grid_is_rejected():
    with pytest.raises(ValueError, match="power of 2"):
        tok.TokenizerConfig(image_size=96, patch_size=8)


def test_patchify_round_trip_and_channel_major_order():
    frames = _frames(dataclasses.replace(TINY, channels=3), 1)
    patches = tok.patchify(frames, 8)
    assert patches.shape == (2, 4, 4, 3 * 64)
    np.testing.assert_array_equal(tok.unpatchify(patches, 8, 3), frames)
    # The first 64 entries of a patch are its channel 0, row-major.
    np.testing.assert_array_equal(patches[0, 1, 2, :64], frames[0, 8:16, 16:24, 0].reshape(-1))


@pytest.fixture(scope="module")
def tiny_training(tiny_params):
    """15 jit-compiled Adam steps on fixed pairs (driving = source shifted by 2 px).

    Returns the first step's outputs and gradients and the loss of every step."""
    source = _frames(TINY, 1, batch=4)
    driving = jnp.roll(source, 2, axis=2)
    model = tok.ActionTokenizer(TINY)
    optimizer = optax.adam(3e-3)

    def loss_fn(params):
        outputs = model.apply({"params": params}, source, driving, train=True)
        return outputs["losses"]["total"], outputs

    @jax.jit
    def step(params, opt_state):
        (loss, outputs), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, outputs, grads

    params, opt_state = tiny_params, optimizer.init(tiny_params)
    losses, first = [], None
    for _ in range(15):
        params, opt_state, outputs, grads = step(params, opt_state)
        first = first or {"outputs": outputs, "grads": grads}
        losses.append(float(outputs["losses"]["total"]))
    return {**first, "losses": losses, "source": source, "driving": driving}


def test_call_shapes_dtypes_and_losses(tiny_training):
    out, driving = tiny_training["outputs"], tiny_training["driving"]
    assert out["recon"].shape == driving.shape and out["recon"].dtype == jnp.float32
    assert out["action_tokens"].shape == (4, 16) and out["action_tokens"].dtype == jnp.int32
    assert out["action_latents"].shape == (4, 16, TINY.quant_dim)
    assert out["code_counts"].shape == (TINY.codebook_size,)
    assert int(out["code_counts"].sum()) == 4 * 16
    losses = out["losses"]
    np.testing.assert_allclose(losses["total"], losses["recon"] + losses["vq"], rtol=1e-6)
    np.testing.assert_allclose(losses["recon"], np.mean((out["recon"] - driving) ** 2), rtol=1e-5)
    assert 1 <= int(out["metrics"]["codes_in_use"]) <= TINY.codebook_size
    assert 1.0 <= float(out["metrics"]["perplexity"]) <= TINY.codebook_size


def test_rgb_frames_give_rgb_reconstructions_and_16_tokens():
    """Shapes only (abstract evaluation); the RGB numbers are checked against the release
    in test_parity_tokenizer.py."""
    config = dataclasses.replace(TINY, channels=3)
    variables = jax.eval_shape(lambda key: tok.ActionTokenizer(config).init(
        key, _frames(config, 1), _frames(config, 2), train=False), jax.random.PRNGKey(0))
    assert variables["params"]["to_pixels"]["kernel"].shape == (TINY.dim, 3 * 8 * 8)
    out = jax.eval_shape(lambda v: tok.ActionTokenizer(config).apply(
        v, _frames(config, 1), _frames(config, 2), train=True), variables)
    assert out["recon"].shape == (2, 32, 32, 3)
    assert out["action_tokens"].shape == (2, 16) and out["action_tokens"].dtype == jnp.int32


def test_reconstruction_loss_falls_on_a_learnable_task(tiny_training):
    losses = tiny_training["losses"]
    assert losses[-1] < 0.7 * losses[0], losses


def test_straight_through_training_reaches_encoder_and_codebook(tiny_training, tiny_params):
    grads = tiny_training["grads"]
    for path in (("spatial_encoder",), ("temporal_encoder",), ("project_in",),
                 ("quantizer", "codebook"), ("decoder",), ("to_pixels",)):
        subtree = grads
        for key in path:
            subtree = subtree[key]
        norm = sum(float(jnp.abs(g).sum()) for g in jax.tree_util.tree_leaves(subtree))
        assert norm > 0, f"no gradient reaches {path}"
    # The decoder's queries are the stop-gradient source embeddings: the only path from
    # the source to the output is the residual skip (gradient exactly 1 per pixel), and a
    # frame-predicting (released) decoder has none.
    for predict_residual, expected in ((True, 1.0), (False, 0.0)):
        model = tok.ActionTokenizer(dataclasses.replace(TINY, predict_residual=predict_residual))
        decode_sum = lambda s, model=model: model.apply(
            {"params": tiny_params}, s, jnp.ones((4, 16, TINY.dim)),
            method=tok.ActionTokenizer.decode_from_action_vectors).sum()
        source_grads = jax.jit(jax.grad(decode_sum))(tiny_training["source"])
        np.testing.assert_array_equal(source_grads, np.full(source_grads.shape, expected))


def test_pure_functions_agree_with_the_forward_pass(tiny_training, tiny_params):
    """encode/decode/embed as separate compiled functions give what one training forward
    pass computed (there the straight-through output equals the hard codes numerically)."""
    params = tiny_params
    out = tiny_training["outputs"]
    source, driving = tiny_training["source"], tiny_training["driving"]
    tokens = tok.encode_actions(params, TINY, source, driving)
    np.testing.assert_array_equal(tokens, out["action_tokens"])
    np.testing.assert_allclose(tok.decode_actions(params, TINY, source, tokens), out["recon"],
                               atol=1e-5)
    vectors = tok.embed_actions(params, TINY, tokens)
    codebook = params["quantizer"]["codebook"]
    projection = params["project_out"]
    expected = (codebook[tokens] @ projection["kernel"] + projection["bias"]
                + params["token_positions"])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_released_token_layout_spreads_every_code_over_all_context_rows(tiny_params):
    tokens = jnp.zeros((1, 16), jnp.int32).at[0, 5].set(0)
    changed = tokens.at[0, 5].set(3)
    for released, expected_rows in ((False, [5]), (True, list(range(16)))):
        config = dataclasses.replace(TINY, released_token_layout=released)
        before = tok.embed_actions(tiny_params, config, tokens)[0]
        after = tok.embed_actions(tiny_params, config, changed)[0]
        rows = np.flatnonzero(np.abs(np.asarray(after - before)).max(axis=1) > 1e-6)
        assert rows.tolist() == expected_rows, f"released_token_layout={released}"


def test_without_position_embedding_the_clean_decoder_ignores_token_order(tiny_params):
    """Cross-attention has no position bias over its context, so without the token
    position embedding a permutation of the 16 clean tokens decodes to the same frame."""
    source = _frames(TINY, 1, batch=1)
    tokens = jnp.arange(16, dtype=jnp.int32)[None] % TINY.codebook_size
    permuted = tokens[:, ::-1]
    for embedding, order_matters in ((False, False), (True, True)):
        config = dataclasses.replace(TINY, token_position_embedding=embedding)
        params = tiny_params if embedding else {
            k: v for k, v in tiny_params.items() if k != "token_positions"}
        recon = tok.decode_actions(params, config, jnp.concatenate([source, source]),
                                   jnp.concatenate([tokens, permuted]))
        difference = float(jnp.abs(recon[0] - recon[1]).max())
        assert (difference > 1e-5) == order_matters, (embedding, difference)


def test_released_layout_is_the_release_reshape():
    codes = jnp.arange(2 * 16 * 8, dtype=jnp.float32).reshape(2, 16, 8)
    flat = np.asarray(codes).reshape(2, -1)  # (B*16, D) codes, per batch concatenated
    got = np.asarray(tok.released_layout(codes))
    for row in range(16):
        for channel in range(8):
            assert got[1, row, channel] == flat[1, channel * 16 + row]


def _random_peg_params(dim: int, seed: int = 2) -> dict:
    kernel_key, bias_key = jax.random.split(jax.random.PRNGKey(seed))
    return {"params": {"kernel": jax.random.normal(kernel_key, (3, 3, 3, dim)),
                       "bias": jax.random.normal(bias_key, (dim,))}}


def test_clean_temporal_peg_only_mixes_spatial_neighbours():
    """Temporal blocks hold tokens as (b h w, t, d). Perturbing the tokens at one patch
    position changes the clean PEG residual only within its 3x3 spatial neighbourhood;
    the released reshape spreads it to positions far away."""
    batch, frames, height, width, dim = 1, 2, 4, 4, 8
    video = jax.random.normal(jax.random.PRNGKey(0), (batch, frames, height, width, dim))
    perturbed = video.at[:, :, 0, 0].add(1.0)
    to_sequence = lambda v: einops.rearrange(v, "b t h w d -> (b h w) t d")
    peg, params = layers.PositionGenerator(dim), _random_peg_params(dim)
    for released in (False, True):
        def peg_residual(sequence):
            as_video = layers.sequence_to_video(sequence, (1, 2, 4, 4), "time", released)
            return layers.video_to_sequence(peg.apply(params, as_video), sequence.shape,
                                            "time", released)

        outputs = jax.jit(lambda a, b: [peg_residual(to_sequence(v)) for v in (a, b)])(
            video, perturbed)
        changed = np.abs(np.asarray(outputs[1] - outputs[0])).max(axis=(1, 2)).reshape(4, 4) > 1e-6
        far = changed.copy()
        far[:2, :2] = False  # the 3x3 neighbourhood of (0, 0)
        assert far.any() == released, f"released_peg_reshape={released}: changed\n{changed}"
        if not released:
            assert changed[:2, :2].all()


@pytest.mark.parametrize("causal,frames,height", [(True, 2, 5), (False, 2, 5), (True, 1, 1)])
def test_peg_equals_a_grouped_3d_convolution(causal, frames, height):
    video = jax.random.normal(jax.random.PRNGKey(0), (2, frames, height, 4, 6))
    peg, params = layers.PositionGenerator(6, causal=causal), _random_peg_params(6)
    padded = jnp.pad(video, ((0, 0), (2, 0) if causal else (1, 1), (1, 1), (1, 1), (0, 0)))
    kernel = params["params"]["kernel"][:, :, :, None, :]  # DHWIO with I = 1 per group
    expected = jax.lax.conv_general_dilated(
        padded, kernel, (1, 1, 1), "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
        feature_group_count=6) + params["params"]["bias"]
    np.testing.assert_allclose(jax.jit(peg.apply)(params, video), expected, atol=1e-5)


def test_sequence_video_round_trip():
    video = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 3, 4, 5))
    for axis, pattern in (("space", "b t h w d -> (b t) (h w) d"),
                          ("time", "b t h w d -> (b h w) t d")):
        sequence = einops.rearrange(video, pattern)
        as_video = layers.sequence_to_video(sequence, (2, 2, 3, 4), axis, False)
        np.testing.assert_array_equal(as_video, video)
        np.testing.assert_array_equal(
            layers.video_to_sequence(as_video, sequence.shape, axis, False), sequence)


def test_nsvq_training_needs_its_rng_and_adds_no_vq_loss(tiny_params):
    source, driving = _frames(TINY, 1), _frames(TINY, 2)
    model = tok.ActionTokenizer(dataclasses.replace(TINY, quantizer="nsvq"))
    with pytest.raises(Exception, match="nsvq"):
        jax.eval_shape(lambda p: model.apply({"params": p}, source, driving, train=True),
                       tiny_params)
    losses = jax.eval_shape(lambda p, key: model.apply(
        {"params": p}, source, driving, train=True, rngs={vq.NSVQ_RNG: key})["losses"],
        tiny_params, jax.random.PRNGKey(4))
    assert set(losses) == {"recon", "vq", "codebook", "commitment", "total"}


def test_bfloat16_compute_runs_and_tokens_stay_int32(tiny_params):
    config = dataclasses.replace(TINY, dtype="bfloat16")
    tokens = jax.jit(lambda p, s, d: tok.encode_actions(p, config, s, d))(
        tiny_params, _frames(TINY, 1), _frames(TINY, 2))
    assert tokens.dtype == jnp.int32 and tokens.shape == (2, 16)


def test_wrong_frame_shape_names_the_expected_shape(tiny_params):
    with pytest.raises(ValueError, match=r"source frames must be \[B, 32, 32, 1\]"):
        jax.eval_shape(lambda p: tok.encode_actions(p, TINY, jnp.zeros((2, 32, 32, 3)),
                                                    jnp.zeros((2, 32, 32, 3))), tiny_params)


def test_reconstruction_loss_is_the_mean_squared_error():
    recon = jnp.array([[0.0, 1.0], [2.0, 3.0]])
    target = jnp.zeros((2, 2))
    np.testing.assert_allclose(losses.reconstruction_loss(recon, target), 14.0 / 4)
    vq_losses = {"vq": jnp.float32(0.5), "codebook": jnp.float32(0.4),
                 "commitment": jnp.float32(0.1)}
    total = losses.tokenizer_losses(recon, target, vq_losses)
    np.testing.assert_allclose(total["total"], 14.0 / 4 + 0.5)
    with pytest.raises(ConfigError, match="recon_loss"):
        tok.TokenizerConfig.from_dict({"recon_loss": "l1"})


def test_residual_decoder_adds_its_patches_to_the_source(tiny_params):
    """predict_residual: decode = source + what the frame-predicting decoder outputs."""
    source = _frames(TINY, 3)
    vectors = jax.random.normal(jax.random.PRNGKey(4), (2, 16, TINY.dim))
    decode = lambda config: tok.ActionTokenizer(config).apply(
        {"params": tiny_params}, source, vectors,
        method=tok.ActionTokenizer.decode_from_action_vectors)
    residual_config = dataclasses.replace(TINY, predict_residual=True)
    residual = decode(residual_config)
    frame = decode(TINY)
    np.testing.assert_allclose(residual, source + frame, atol=1e-6)
    # A freshly initialised residual head starts near "no change": its output is close
    # to the source, much closer than a frame head's output is to anything.
    fresh = tok.init_tokenizer(residual_config, jax.random.PRNGKey(0))["params"]
    fresh_change = tok.ActionTokenizer(residual_config).apply(
        {"params": fresh}, source, vectors,
        method=tok.ActionTokenizer.decode_from_action_vectors) - source
    assert float(jnp.abs(fresh_change).mean()) < 0.1 * float(jnp.abs(frame).mean())


def test_still_pair_reference_gives_a_still_face_zero_action(tiny_params):
    """With still_pair_reference the latent of (source, source) is exactly zero (one code
    for every position), and a moving pair's latent is its plain latent minus the still
    pair's, each computed by the plain encoder."""
    config = dataclasses.replace(TINY, still_pair_reference=True)
    source, driving = _frames(TINY, 5), _frames(TINY, 6)
    latents = lambda cfg, s, d: tok.ActionTokenizer(cfg).apply(
        {"params": tiny_params}, s, d, method=tok.ActionTokenizer.action_latents)
    still = latents(config, source, source)
    np.testing.assert_array_equal(still, np.zeros_like(still))
    still_tokens = tok.encode_actions(tiny_params, config, source, source)
    assert np.unique(np.asarray(still_tokens)).size == 1
    expected = latents(TINY, source, driving) - latents(TINY, source, source)
    assert float(jnp.abs(expected).max()) > 1e-3  # the plain encoder's still latent is not 0
    np.testing.assert_allclose(latents(config, source, driving), expected, atol=1e-5)


def test_warp_frames_resamples_bilinearly_and_differentiates_in_the_displacement():
    image = jax.random.uniform(jax.random.PRNGKey(7), (1, 6, 5, 2))
    flow = lambda dy, dx: jnp.broadcast_to(jnp.array([dy, dx], jnp.float32), (1, 6, 5, 2))
    np.testing.assert_allclose(tok.warp_frames(image, flow(0.0, 0.0)), image, atol=1e-6)
    one_right = tok.warp_frames(image, flow(0.0, 1.0))
    np.testing.assert_allclose(one_right[:, :, :-1], image[:, :, 1:], atol=1e-6)
    np.testing.assert_allclose(one_right[:, :, -1], image[:, :, -1], atol=1e-6)  # clamped
    half_down = tok.warp_frames(image, flow(0.5, 0.0))
    np.testing.assert_allclose(half_down[:, :-1], (image[:, :-1] + image[:, 1:]) / 2, atol=1e-6)
    # Between two pixels the output is linear in the offset, slope = their difference.
    slope = jax.grad(lambda dx: tok.warp_frames(image, flow(0.0, dx))[0, 2, 1, 0])(0.3)
    np.testing.assert_allclose(slope, image[0, 2, 2, 0] - image[0, 2, 1, 0], rtol=1e-5)


def test_warping_decoder_moves_the_source_along_its_displacement(tiny_params):
    """decoder_warp: output = warp(source, displacement) + change, both from the head."""
    with pytest.raises(ValueError, match="needs predict_residual"):
        dataclasses.replace(TINY, decoder_warp=True)
    config = dataclasses.replace(TINY, decoder_warp=True, predict_residual=True)
    params = tok.init_tokenizer(config, jax.random.PRNGKey(0))["params"]
    patch_pixels = TINY.patch_size ** 2
    assert params["to_pixels"]["kernel"].shape == (TINY.dim, (TINY.channels + 2) * patch_pixels)
    source, vectors = _frames(TINY, 3), jax.random.normal(jax.random.PRNGKey(4), (2, 16, TINY.dim))

    def decode_with_head(bias):  # a head that outputs `bias` whatever the tokens say
        head = {"kernel": jnp.zeros_like(params["to_pixels"]["kernel"]), "bias": bias}
        return tok.ActionTokenizer(config).apply(
            {"params": {**params, "to_pixels": head}}, source, vectors,
            method=tok.ActionTokenizer.decode_from_action_vectors)

    bias = jnp.zeros_like(params["to_pixels"]["bias"])
    np.testing.assert_allclose(decode_with_head(bias), source, atol=1e-6)
    # Channel-major head: the change, then the row offsets, then the column offsets.
    shifted = decode_with_head(bias.at[(TINY.channels + 1) * patch_pixels:].set(1.0))
    np.testing.assert_allclose(shifted[:, :, :-1], source[:, :, 1:], atol=1e-6)
    brighter = decode_with_head(bias.at[:patch_pixels].set(0.25))
    np.testing.assert_allclose(brighter, source + 0.25, atol=1e-6)
    # Training reaches the displacement channels of the head.
    grads = jax.grad(lambda p: jnp.mean((tok.ActionTokenizer(config).apply(
        {"params": p}, source, vectors, method=tok.ActionTokenizer.decode_from_action_vectors)
        - jnp.roll(source, 1, axis=2)) ** 2))(params)
    flow_grads = grads["to_pixels"]["kernel"][:, TINY.channels * patch_pixels:]
    assert float(jnp.abs(flow_grads).sum()) > 0
