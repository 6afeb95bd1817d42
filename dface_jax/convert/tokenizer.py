"""Released ``LatentActionQuantization`` state dict -> :class:`ActionTokenizer` params.

The mapping (PyTorch key -> our parameter):

- ``to_patch_emb_first_frame.{1,2,3}`` -> ``patch_embedding.{norm_in,proj,norm_out}``
- ``spatial_rel_pos_bias.net.{i}.0`` / ``net.{last}`` -> ``spatial_position_bias.hidden_i`` /
  ``to_heads``
- ``{enc_spatial,enc_temporal,dec_spatial}_transformer`` -> ``spatial_encoder``,
  ``temporal_encoder``, ``decoder``; in each, ``layers.i.0.dsconv`` (grouped Conv3d
  [dim, 1, 3, 3, 3]) -> ``block_i.peg.kernel`` [3, 3, 3, dim]; ``layers.i.1`` / ``.2``
  -> ``self_attn`` / ``cross_attn`` (``null_kv`` [heads, 2n, dim_head], stored
  interleaved key, value, key, value, ... -> ``null_keys`` / ``null_values``);
  ``layers.i.3.{0,1,4}`` -> ``ff.{norm,proj_in,proj_out}``; ``norm_out``.
- ``vq.codebooks`` -> ``quantizer.codebook``; ``vq.project_in`` / ``project_out``;
  ``vq.cnn_encoder.{0,2,...}`` -> ``downsample_{0,1,...}``.
- ``to_pixels_first_frame.0`` -> ``to_pixels``.

Linear weights are transposed, conv weights moved to channels-last. Bias-free
LayerNorms store a zero ``beta`` buffer: it is checked to be zero and dropped. The
self-attention blocks' unused ``context_norm`` and empty ``null_kv`` are checked and dropped.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from dface_jax.convert.state_dict import (StateDictMismatchError, check_keys_and_shapes,
                                          conv_kernel, linear_kernel, strip_prefix)
from dface_jax.models.tokenizer import TokenizerConfig

TRANSFORMERS = {  # release name -> our module name
    "enc_spatial_transformer": "spatial_encoder",
    "enc_temporal_transformer": "temporal_encoder",
    "dec_spatial_transformer": "decoder",
}
POSITION_BIAS_HIDDEN_LAYERS = 2
# The configuration of the released model, whatever its sizes.
RELEASED_BEHAVIOUR = dict(released_token_layout=True, released_temporal_peg=True,
                          predict_residual=False, still_pair_reference=False,
                          decoder_warp=False, token_position_embedding=False, quantizer="nsvq")


def _inner_ff_dim(config: TokenizerConfig) -> int:
    return int(config.ff_mult * (2 / 3) * config.dim)


def _attention_shapes(prefix: str, config: TokenizerConfig, num_null_kv: int) -> dict:
    inner = config.heads * config.dim_head
    return {
        f"{prefix}.null_kv": (config.heads, 2 * num_null_kv, config.dim_head),
        f"{prefix}.q_scale": (config.dim_head,),
        f"{prefix}.k_scale": (config.dim_head,),
        f"{prefix}.norm.gamma": (config.dim,), f"{prefix}.norm.beta": (config.dim,),
        f"{prefix}.context_norm.gamma": (config.dim,),
        f"{prefix}.context_norm.beta": (config.dim,),
        f"{prefix}.to_q.weight": (inner, config.dim),
        f"{prefix}.to_kv.weight": (2 * inner, config.dim),
        f"{prefix}.to_out.weight": (config.dim, inner),
    }


def _transformer_shapes(name: str, depth: int, config: TokenizerConfig, cross: bool) -> dict:
    dim, inner_ff = config.dim, _inner_ff_dim(config)
    shapes = {}
    for index in range(depth):
        layer = f"{name}.layers.{index}"
        shapes[f"{layer}.0.dsconv.weight"] = (dim, 1, 3, 3, 3)
        shapes[f"{layer}.0.dsconv.bias"] = (dim,)
        shapes.update(_attention_shapes(f"{layer}.1", config, 0))
        if cross:
            shapes.update(_attention_shapes(f"{layer}.2", config, config.num_null_kv))
        shapes[f"{layer}.3.0.weight"] = (dim,)
        shapes[f"{layer}.3.0.bias"] = (dim,)
        shapes[f"{layer}.3.1.weight"] = (2 * inner_ff, dim)
        shapes[f"{layer}.3.4.weight"] = (dim, inner_ff)
    shapes[f"{name}.norm_out.gamma"] = (dim,)
    shapes[f"{name}.norm_out.beta"] = (dim,)
    return shapes


def released_tokenizer_shapes(config: TokenizerConfig) -> dict[str, tuple[int, ...]]:
    """Every key of the released ``LatentActionQuantization`` state dict with its PyTorch
    shape, for a model of ``config``'s sizes."""
    dim, quant, patch_dim = config.dim, config.quant_dim, config.channels * config.patch_size ** 2
    shapes = {}
    for index in range(POSITION_BIAS_HIDDEN_LAYERS):
        in_dim = 2 if index == 0 else dim
        shapes[f"spatial_rel_pos_bias.net.{index}.0.weight"] = (dim, in_dim)
        shapes[f"spatial_rel_pos_bias.net.{index}.0.bias"] = (dim,)
    last = POSITION_BIAS_HIDDEN_LAYERS
    shapes[f"spatial_rel_pos_bias.net.{last}.weight"] = (config.heads, dim)
    shapes[f"spatial_rel_pos_bias.net.{last}.bias"] = (config.heads,)
    shapes.update({
        "to_patch_emb_first_frame.1.weight": (patch_dim,),
        "to_patch_emb_first_frame.1.bias": (patch_dim,),
        "to_patch_emb_first_frame.2.weight": (dim, patch_dim),
        "to_patch_emb_first_frame.2.bias": (dim,),
        "to_patch_emb_first_frame.3.weight": (dim,),
        "to_patch_emb_first_frame.3.bias": (dim,),
    })
    shapes.update(_transformer_shapes("enc_spatial_transformer", config.spatial_depth, config, False))
    shapes.update(_transformer_shapes("enc_temporal_transformer", config.temporal_depth, config, False))
    shapes.update({
        "vq.codebooks": (config.codebook_size, quant),
        "vq.project_in.weight": (quant, dim), "vq.project_in.bias": (quant,),
        "vq.project_out.weight": (dim, quant), "vq.project_out.bias": (dim,),
    })
    for index in range(config.num_downsamples):
        # nn.Sequential(conv, ReLU, conv): convs at indices 0, 2, ...
        shapes[f"vq.cnn_encoder.{2 * index}.weight"] = (quant, quant, 3, 3)
        shapes[f"vq.cnn_encoder.{2 * index}.bias"] = (quant,)
    shapes.update(_transformer_shapes("dec_spatial_transformer", config.decoder_depth, config, True))
    shapes["to_pixels_first_frame.0.weight"] = (patch_dim, dim)
    shapes["to_pixels_first_frame.0.bias"] = (patch_dim,)
    return shapes


def _count_layers(state_dict: Mapping[str, np.ndarray], transformer: str) -> int:
    prefix = f"{transformer}.layers."
    return len({key[len(prefix):].split(".")[0] for key in state_dict if key.startswith(prefix)})


def tokenizer_config_from_state_dict(state_dict: Mapping[str, np.ndarray],
                                     **overrides) -> TokenizerConfig:
    """The :class:`TokenizerConfig` (with the released-behaviour flags) whose shapes match
    a released state dict. ``overrides`` set fields the weights do not determine (e.g.
    ``quantizer="straight_through"`` to fine-tune, ``dtype``).

    The patch size and channel count follow from the patch vector length C*p*p (it is a
    square for gray and 3 times a square for RGB, never both); the image size from the
    number of stride-2 convs, which maps the patch grid to the 4x4 action grid.
    """
    state_dict = strip_prefix(state_dict)
    needed = ("to_patch_emb_first_frame.2.weight", "vq.codebooks",
              "enc_spatial_transformer.layers.0.1.q_scale",
              "enc_spatial_transformer.layers.0.1.null_kv",
              "dec_spatial_transformer.layers.0.2.null_kv")
    missing = [key for key in needed if key not in state_dict]
    if missing:
        raise StateDictMismatchError(
            f"not a LatentActionQuantization state dict: missing {missing} "
            f"(first keys: {sorted(state_dict)[:5]})")
    dim, patch_dim = state_dict["to_patch_emb_first_frame.2.weight"].shape
    channels = 3 if patch_dim % 3 == 0 and _is_square(patch_dim // 3) else 1
    if not _is_square(patch_dim // channels):
        raise StateDictMismatchError(
            f"patch vector length {patch_dim} is neither p*p (gray) nor 3*p*p (RGB)")
    patch_size = int(round(np.sqrt(patch_dim // channels)))
    code_seq_len = overrides.get("code_seq_len", 16)
    action_grid = int(round(np.sqrt(code_seq_len)))
    num_convs = len({key.split(".")[2] for key in state_dict
                     if key.startswith("vq.cnn_encoder.") and key.endswith(".weight")})
    codebook_size, quant_dim = state_dict["vq.codebooks"].shape
    heads, null_slots, dim_head = state_dict["dec_spatial_transformer.layers.0.2.null_kv"].shape
    inferred = dict(
        dim=int(dim), quant_dim=int(quant_dim), codebook_size=int(codebook_size),
        image_size=action_grid * 2 ** num_convs * patch_size, patch_size=patch_size,
        spatial_depth=_count_layers(state_dict, "enc_spatial_transformer"),
        temporal_depth=_count_layers(state_dict, "enc_temporal_transformer"),
        decoder_depth=_count_layers(state_dict, "dec_spatial_transformer"),
        heads=int(heads), dim_head=int(dim_head), channels=channels,
        code_seq_len=code_seq_len, num_null_kv=int(null_slots) // 2, **RELEASED_BEHAVIOUR)
    inferred.update(overrides)
    return TokenizerConfig(**inferred)


def _is_square(value: int) -> bool:
    root = int(round(np.sqrt(value)))
    return root * root == value


def _dense(state_dict, key: str, bias: bool = True) -> dict:
    params = {"kernel": linear_kernel(state_dict[f"{key}.weight"])}
    if bias:
        params["bias"] = np.asarray(state_dict[f"{key}.bias"], np.float32)
    return params


def _layer_norm(state_dict, key: str) -> dict:
    return {"scale": np.asarray(state_dict[f"{key}.weight"], np.float32),
            "bias": np.asarray(state_dict[f"{key}.bias"], np.float32)}


def _bias_free_norm(state_dict, key: str) -> dict:
    beta = np.asarray(state_dict[f"{key}.beta"])
    if np.any(beta != 0):
        raise StateDictMismatchError(
            f"{key}.beta is not zero (max |beta| {np.abs(beta).max():.3g}); the released "
            f"LayerNorm is bias-free and our model has no bias to put it in")
    return {"scale": np.asarray(state_dict[f"{key}.gamma"], np.float32)}


def _attention(state_dict, key: str, num_null_kv: int, cross: bool) -> dict:
    params = {
        "norm": _bias_free_norm(state_dict, f"{key}.norm"),
        "to_q": _dense(state_dict, f"{key}.to_q", bias=False),
        "to_kv": _dense(state_dict, f"{key}.to_kv", bias=False),
        "to_out": _dense(state_dict, f"{key}.to_out", bias=False),
        "q_scale": np.asarray(state_dict[f"{key}.q_scale"], np.float32),
        "k_scale": np.asarray(state_dict[f"{key}.k_scale"], np.float32),
    }
    if cross:
        params["context_norm"] = _bias_free_norm(state_dict, f"{key}.context_norm")
    else:
        _bias_free_norm(state_dict, f"{key}.context_norm")  # unused, but must be bias-free
    if num_null_kv:
        # [heads, (n r), d] with r = (key, value) innermost.
        null_kv = np.asarray(state_dict[f"{key}.null_kv"], np.float32)
        params["null_keys"] = np.ascontiguousarray(null_kv[:, 0::2])
        params["null_values"] = np.ascontiguousarray(null_kv[:, 1::2])
    return params


def _transformer(state_dict, name: str, depth: int, config: TokenizerConfig, cross: bool) -> dict:
    params = {}
    for index in range(depth):
        layer = f"{name}.layers.{index}"
        block = {
            # Grouped Conv3d [dim, 1, t, h, w] -> depthwise kernel [t, h, w, dim].
            "peg": {"kernel": conv_kernel(state_dict[f"{layer}.0.dsconv.weight"])[..., 0, :],
                    "bias": np.asarray(state_dict[f"{layer}.0.dsconv.bias"], np.float32)},
            "self_attn": _attention(state_dict, f"{layer}.1", 0, cross=False),
            "ff": {"norm": _layer_norm(state_dict, f"{layer}.3.0"),
                   "proj_in": _dense(state_dict, f"{layer}.3.1", bias=False),
                   "proj_out": _dense(state_dict, f"{layer}.3.4", bias=False)},
        }
        if cross:
            block["cross_attn"] = _attention(state_dict, f"{layer}.2", config.num_null_kv, cross=True)
        params[f"block_{index}"] = block
    params["norm_out"] = _bias_free_norm(state_dict, f"{name}.norm_out")
    return params


def convert_tokenizer_state_dict(state_dict: Mapping[str, np.ndarray],
                                 config: TokenizerConfig | None = None, *,
                                 source: str = "tokenizer state dict") -> tuple[dict, TokenizerConfig]:
    """Maps a released state dict to our params, after checking every key and shape.

    Args:
      state_dict: key -> array in PyTorch layout (``module.`` prefixes are removed).
      config: the config to convert for; inferred from the weights when None.
      source: names the checkpoint in error messages.
    Returns:
      (params pytree of float32 numpy arrays for ``ActionTokenizer(config)``, config).
    Raises:
      StateDictMismatchError listing the first missing / unexpected / mis-shaped keys.
    """
    state_dict = strip_prefix(state_dict)
    if config is None:
        config = tokenizer_config_from_state_dict(state_dict)
    if config.token_position_embedding:
        raise ValueError("the released model has no token position embedding: convert with "
                         "token_position_embedding=False")
    check_keys_and_shapes(released_tokenizer_shapes(config), state_dict, source)
    sd = state_dict
    last = POSITION_BIAS_HIDDEN_LAYERS
    position_bias = {f"hidden_{index}": _dense(sd, f"spatial_rel_pos_bias.net.{index}.0")
                     for index in range(POSITION_BIAS_HIDDEN_LAYERS)}
    position_bias["to_heads"] = _dense(sd, f"spatial_rel_pos_bias.net.{last}")
    params = {
        "patch_embedding": {"norm_in": _layer_norm(sd, "to_patch_emb_first_frame.1"),
                            "proj": _dense(sd, "to_patch_emb_first_frame.2"),
                            "norm_out": _layer_norm(sd, "to_patch_emb_first_frame.3")},
        "spatial_position_bias": position_bias,
        "spatial_encoder": _transformer(sd, "enc_spatial_transformer", config.spatial_depth,
                                        config, cross=False),
        "temporal_encoder": _transformer(sd, "enc_temporal_transformer", config.temporal_depth,
                                         config, cross=False),
        "project_in": _dense(sd, "vq.project_in"),
        "quantizer": {"codebook": np.asarray(sd["vq.codebooks"], np.float32)},
        "project_out": _dense(sd, "vq.project_out"),
        "decoder": _transformer(sd, "dec_spatial_transformer", config.decoder_depth, config,
                                cross=True),
        "to_pixels": _dense(sd, "to_pixels_first_frame.0"),
    }
    for index in range(config.num_downsamples):
        params[f"downsample_{index}"] = {
            "kernel": conv_kernel(sd[f"vq.cnn_encoder.{2 * index}.weight"]),
            "bias": np.asarray(sd[f"vq.cnn_encoder.{2 * index}.bias"], np.float32)}
    return params, config
