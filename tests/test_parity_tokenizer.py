"""Our tokenizer, given the released weights through the converter, computes what the
authors' PyTorch ``LatentActionQuantization`` computed (tests/fixtures/README in
../shared/fixtures: released_dface_parity_small.npz)."""

import dataclasses
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dface_jax.convert import state_dict as state_dict_lib
from dface_jax.convert import tokenizer as convert
from dface_jax.models import tokenizer as tok

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "released_dface_parity_small.npz"


@pytest.fixture(scope="module")
def release():
    with np.load(FIXTURE) as arrays:
        reference = {key: arrays[key] for key in arrays.files if not key.startswith("classifier")}
    video = reference["video"]  # [B, C, T, H, W]
    reference["source"] = jnp.asarray(np.transpose(video[:, :, 0], (0, 2, 3, 1)))
    reference["driving"] = jnp.asarray(np.transpose(video[:, :, 1], (0, 2, 3, 1)))
    reference["state_dict"] = state_dict_lib.load_state_dict(FIXTURE, prefix="tokenizer/")
    params, config = convert.convert_tokenizer_state_dict(reference["state_dict"], source=str(FIXTURE))
    reference["params"], reference["config"] = params, config
    return reference


def _nchw(frames: jax.Array) -> np.ndarray:
    return np.transpose(np.asarray(frames), (0, 3, 1, 2))


def test_inferred_config_is_the_fixture_config(release):
    config = release["config"]
    assert (config.dim, config.quant_dim, config.codebook_size, config.image_size,
            config.patch_size, config.spatial_depth, config.temporal_depth, config.decoder_depth,
            config.heads, config.dim_head, config.channels) == (64, 32, 32, 64, 4, 2, 2, 2, 4, 16, 3)
    assert config.released_token_layout and config.released_temporal_peg
    assert config.num_downsamples == 2  # 16x16 patch grid -> 4x4, as the release's two convs


def test_indices_equal_the_release(release):
    indices = tok.encode_actions(release["params"], release["config"], release["source"],
                                 release["driving"])
    np.testing.assert_array_equal(np.asarray(indices), release["indices"])


def test_reconstructions_equal_the_release(release):
    params, config = release["params"], release["config"]
    # The whole eval forward pass (not just encode + decode) reproduces `inference(video)`.
    outputs = jax.jit(lambda p, s, d: tok.ActionTokenizer(config).apply(
        {"params": p}, s, d, train=False))(params, release["source"], release["driving"])
    np.testing.assert_array_equal(np.asarray(outputs["action_tokens"]), release["indices"])
    np.testing.assert_allclose(_nchw(outputs["recon"]), release["recon"], atol=1e-4, rtol=0)
    given = jnp.asarray(release["given_indices"], jnp.int32)
    recon_given = tok.decode_actions(params, config, release["source"], given)
    np.testing.assert_allclose(_nchw(recon_given), release["recon_given"], atol=1e-4, rtol=0)


def test_clean_flags_do_not_reproduce_the_release(release):
    """Parity depends on the released-behaviour flags: the clean token layout decodes the
    given tokens differently, the clean temporal PEG encodes the frames differently."""
    params, config = release["params"], release["config"]
    given = jnp.asarray(release["given_indices"], jnp.int32)
    clean_layout = dataclasses.replace(config, released_token_layout=False)
    recon = _nchw(tok.decode_actions(params, clean_layout, release["source"], given))
    assert np.abs(recon - release["recon_given"]).max() > 1e-2
    clean_peg = dataclasses.replace(config, released_temporal_peg=False)
    latents = {
        cfg.released_temporal_peg: jax.jit(lambda p, s, d, cfg=cfg: tok.ActionTokenizer(cfg).apply(
            {"params": p}, s, d, method=tok.ActionTokenizer.action_latents))(
                params, release["source"], release["driving"])
        for cfg in (config, clean_peg)}
    assert float(jnp.abs(latents[True] - latents[False]).max()) > 1e-3


def test_renamed_key_is_refused_with_its_name(release):
    state_dict = dict(release["state_dict"])
    state_dict["vq.codebook"] = state_dict.pop("vq.codebooks")
    with pytest.raises(state_dict_lib.StateDictMismatchError) as error:
        convert.convert_tokenizer_state_dict(state_dict, release["config"], source="vae.pt")
    message = str(error.value)
    assert "vae.pt" in message
    assert "missing key 'vq.codebooks'" in message and "unexpected key 'vq.codebook'" in message


def test_wrong_shape_is_refused_with_its_name(release):
    state_dict = dict(release["state_dict"])
    key = "dec_spatial_transformer.layers.1.2.to_kv.weight"
    state_dict[key] = np.zeros((128, 32), np.float32)
    with pytest.raises(state_dict_lib.StateDictMismatchError,
                       match=rf"key '{key}' has shape \(128, 32\), expected \(128, 64\)"):
        convert.convert_tokenizer_state_dict(state_dict, release["config"])


def test_nonzero_bias_of_a_bias_free_norm_is_refused(release):
    state_dict = dict(release["state_dict"])
    key = "enc_temporal_transformer.norm_out.beta"
    state_dict[key] = np.full_like(state_dict[key], 0.5)
    with pytest.raises(state_dict_lib.StateDictMismatchError, match=key):
        convert.convert_tokenizer_state_dict(state_dict, release["config"])


def test_module_prefix_and_file_formats(release, tmp_path):
    """A DataParallel ``module.`` prefix is stripped; .npz and .safetensors give the same."""
    from safetensors.numpy import save_file

    prefixed = {f"module.{key}": value for key, value in release["state_dict"].items()
                if value.size}  # safetensors cannot store the empty null_kv tensors
    save_file(prefixed, str(tmp_path / "vae.safetensors"))
    np.savez(tmp_path / "vae.npz", **prefixed)
    for name in ("vae.safetensors", "vae.npz"):
        loaded = state_dict_lib.load_state_dict(tmp_path / name)
        assert set(loaded) == {key[len("module."):] for key in prefixed}
        for key, value in loaded.items():
            np.testing.assert_array_equal(value, release["state_dict"][key])


def test_unknown_format_and_missing_torch_give_clear_errors(tmp_path, monkeypatch):
    (tmp_path / "w.ckpt2").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unknown state dict format '\.ckpt2'"):
        state_dict_lib.load_state_dict(tmp_path / "w.ckpt2")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails, as without it
    (tmp_path / "vae.pt").write_bytes(b"not a pickle")
    with pytest.raises(state_dict_lib.StateDictError,
                       match=r"vae\.pt needs PyTorch: pip install dface-jax\[torch\]"):
        state_dict_lib.load_state_dict(tmp_path / "vae.pt")
