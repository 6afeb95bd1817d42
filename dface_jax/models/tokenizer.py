"""The C-VQ-VAE action tokenizer: (source, driving) frame pair -> 16 action tokens.

Shapes (paper-scale defaults from the authors' release, every one a config field):

1. Both frames -> shared patch embedding (LayerNorm, Linear, LayerNorm) -> tokens
   [B, 2, h, w, dim] on the ``image_size / patch_size`` grid (16 x 16 at 256 px / 16).
2. Spatial Transformer on each frame (continuous position bias; its PEG is causal in
   time, so the driving frame's tokens see the source's neighbourhood), then a temporal
   Transformer across the two frames at each patch position.
3. Each frame's encoding -> ``project_in`` (dim -> quant_dim) -> stride-2 3x3 convs
   (ReLU between) down to the ``sqrt(code_seq_len)`` grid (two convs for 16 -> 4);
   action latents = driving - source, [B, 16, quant_dim].
4. Vector quantizer (32 codes) -> ``action_tokens`` int32 [B, 16] -> ``project_out``
   (quant_dim -> dim) (+ a learned position vector per token, clean default only) ->
   action vectors [B, 16, dim].
5. Decoder: the source frame's patch embeddings (stop-gradient) are the queries of a
   spatial Transformer that cross-attends to the action vectors; a linear head maps
   every token back to a pixel patch -> the driving frame [B, H, W, C].

Departures from the release, each a ``TokenizerConfig`` field (off = the release):

- ``predict_residual``: the head outputs a change added to the source frame instead of
  the frame itself. The decoder's queries start with a per-patch LayerNorm over the
  pixels, which removes each patch's brightness and contrast; a decoder that must output
  the driving frame's pixels has to recover them from the neighbours, while a residual
  decoder lets the identity come through the source unchanged and only says what moved.
- ``still_pair_reference``: the encoder is not symmetric in its two frames (the temporal
  PEG is causal), so a pair that did not move still gets a face-dependent latent. This
  subtracts the latent of the still pair (source, source): a face that did not move has
  exactly zero action and what the face looks like cancels to first order. It costs a
  second encoder pass (batched with the first).
- ``decoder_warp`` (needs ``predict_residual``): the head also outputs a displacement
  field (2 channels per pixel, in pixels: row and column offsets) and decodes
  ``warp(source, displacement) + change``. A facial action moves the face's parts, so
  its pixel change is high-frequency (every edge that moves) while its displacement
  field is smooth: a warping decoder only says how far a region moved and the source's
  own edges follow.
- ``token_position_embedding`` (default on; off in converted released models): a learned
  vector per token position, so that a clean-layout token still says where it acts.
- Token layout: the release reshapes its (B*16, 32) quantized codes to (B, 32, 16) and
  transposes, instead of (B, 16, 32): decoder context row j becomes (code_0[j],
  code_0[16+j], code_1[j], ..., code_15[16+j]), so every code is spread over all 16
  context vectors. Our default is the clean layout (context row i is code i);
  ``released_token_layout=True`` reproduces the release (the released weights need it).
- Temporal PEG: the release's temporal Transformer holds tokens as (b*h*w, t, d) but its
  PEG reshapes them straight to (b, t, h, w, d), mixing patch positions and frames.
  ``released_temporal_peg=True`` reproduces that; the clean default rearranges first.
- Quantizer: ``"straight_through"`` (default, with codebook and commitment losses) or the
  release's ``"nsvq"`` noise substitution (eval mode uses the hard codes either way).

What each departure measured on SynthFACS is in docs/results/tokenizer_runs.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

from dface_jax.configs import dataclass_from_dict
from dface_jax.models import layers, vq
from dface_jax.models.losses import tokenizer_losses

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """Hyper-parameters of :class:`ActionTokenizer` (paper scale = the released model)."""

    dim: int = 512
    quant_dim: int = 32
    codebook_size: int = 32
    image_size: int = 256
    patch_size: int = 16
    spatial_depth: int = 6
    temporal_depth: int = 6
    decoder_depth: int = 6  # the release's decoder has spatial_depth blocks
    heads: int = 8
    dim_head: int = 64
    channels: int = 3
    code_seq_len: int = 16
    ff_mult: float = 4.0
    num_null_kv: int = 2  # learned null key/values of the decoder's cross-attention
    token_position_embedding: bool = True  # learned [16, dim] added to the action vectors
    released_token_layout: bool = False
    released_temporal_peg: bool = False
    quantizer: str = "straight_through"
    commitment_beta: float = 0.25
    # The departures of the module docstring; False = the release, so that the released
    # flags alone still describe the released model.
    predict_residual: bool = False  # the head outputs driving - source
    still_pair_reference: bool = False  # action latent minus the (source, source) latent
    decoder_warp: bool = False  # the head also outputs a displacement field of the source
    dtype: str = "float32"

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of "
                             f"patch_size {self.patch_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {self.channels}")
        if self.quantizer not in vq.QUANTIZERS:
            raise ValueError(f"quantizer must be one of {vq.QUANTIZERS}, got {self.quantizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        _ = self.num_downsamples  # raises if the patch grid cannot reach the action grid
        if self.decoder_warp and not self.predict_residual:
            raise ValueError("decoder_warp needs predict_residual=True: the warped source is "
                             "the base the predicted change is added to")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TokenizerConfig":
        """Builds a config from a (config sub-)dict; unknown keys are an error."""
        return dataclass_from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def patch_grid(self) -> int:
        """Side of the patch grid (16 at 256 px / 16)."""
        return self.image_size // self.patch_size

    @property
    def action_grid(self) -> int:
        """Side of the action-token grid (4 for 16 tokens)."""
        side = math.isqrt(self.code_seq_len)
        if side * side != self.code_seq_len:
            raise ValueError(f"code_seq_len must be a square number, got {self.code_seq_len}")
        return side

    @property
    def num_downsamples(self) -> int:
        """Stride-2 convs from the patch grid to the action grid (2 for 16 -> 4)."""
        ratio, remainder = divmod(self.patch_grid, self.action_grid)
        if remainder or ratio & (ratio - 1):
            raise ValueError(
                f"the patch grid ({self.image_size} px / patch {self.patch_size} = "
                f"{self.patch_grid}) must be {self.action_grid} times a power of 2 to reach "
                f"the {self.action_grid}x{self.action_grid} action grid with stride-2 convs")
        return ratio.bit_length() - 1

    @property
    def head_channels(self) -> int:
        """Channels the decoder's head outputs per pixel: the change (or frame), plus the
        (dy, dx) displacement with ``decoder_warp``."""
        return self.channels + (2 if self.decoder_warp else 0)

    @property
    def compute_dtype(self):
        return DTYPES[self.dtype]


def patchify(frames: jax.Array, patch_size: int) -> jax.Array:
    """[B, H, W, C] -> [B, h, w, C*p*p], each patch flattened channel-major (c, p1, p2).

    Channel-major is the release's order, so its patch Linear weights apply unchanged.
    """
    return einops.rearrange(frames, "b (h p1) (w p2) c -> b h w (c p1 p2)",
                            p1=patch_size, p2=patch_size)


def unpatchify(patches: jax.Array, patch_size: int, channels: int) -> jax.Array:
    """The inverse of :func:`patchify`: [B, h, w, C*p*p] -> [B, H, W, C]."""
    return einops.rearrange(patches, "b h w (c p1 p2) -> b (h p1) (w p2) c",
                            p1=patch_size, p2=patch_size, c=channels)


def warp_frames(frames: jax.Array, displacement: jax.Array) -> jax.Array:
    """Bilinear resampling: output[b, y, x] = frames[b, y + dy, x + dx] with (dy, dx) =
    ``displacement[b, y, x]`` in pixels, edges clamped. frames [B, H, W, C], displacement
    [B, H, W, 2] -> [B, H, W, C] float32; differentiable in both arguments."""
    height, width = frames.shape[1:3]
    rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                              jnp.arange(width, dtype=jnp.float32), indexing="ij")

    def one_channel(image, flow):
        return jax.scipy.ndimage.map_coordinates(
            image, [rows + flow[..., 0], cols + flow[..., 1]], order=1, mode="nearest")

    per_channel = jax.vmap(one_channel, in_axes=(-1, None), out_axes=-1)
    return jax.vmap(per_channel)(frames.astype(jnp.float32), displacement.astype(jnp.float32))


def released_layout(codes: jax.Array) -> jax.Array:
    """The release's token reshape: [B, N, D] codes -> [B, N, D], row j channel c =
    flat code element c*N + j (a reshape to [B, D, N] then a transpose)."""
    batch, num_tokens, code_dim = codes.shape
    return jnp.swapaxes(codes.reshape(batch, code_dim, num_tokens), 1, 2)


class PatchEmbedding(nn.Module):
    """LayerNorm, Linear, LayerNorm over flattened patches: [B, H, W, C] -> [B, h, w, dim]."""

    dim: int
    patch_size: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, frames: jax.Array) -> jax.Array:
        patches = patchify(frames, self.patch_size)
        patches = layers.layer_norm(use_bias=True, dtype=self.dtype, name="norm_in")(patches)
        tokens = nn.Dense(self.dim, dtype=self.dtype, name="proj")(patches)
        return layers.layer_norm(use_bias=True, dtype=self.dtype, name="norm_out")(tokens)


class ActionTokenizer(nn.Module):
    """The C-VQ-VAE. Frames are NHWC float32 in [0, 1] with ``config.channels`` channels.

    ``__call__(source, driving, *, train)`` returns a dict:
      ``recon`` [B, H, W, C] (the driving frame decoded from the source and the
      quantizer output), ``action_tokens`` int32 [B, 16], ``action_latents``
      [B, 16, quant_dim] (pre-quantization, for dead-code restart), ``code_counts`` int32
      [K], ``losses`` dict(recon, vq, codebook, commitment, total) and ``metrics``
      dict(perplexity, codes_in_use). ``train=True`` with ``quantizer="nsvq"`` needs an
      rng named ``"nsvq"``.
    """

    config: TokenizerConfig

    def setup(self):
        config = self.config
        dtype = config.compute_dtype
        transformer = dict(dim=config.dim, heads=config.heads, dim_head=config.dim_head,
                           ff_mult=config.ff_mult, dtype=dtype)
        self.patch_embedding = PatchEmbedding(config.dim, config.patch_size, dtype=dtype)
        # One position-bias MLP, shared by the encoder's and the decoder's spatial blocks.
        self.spatial_position_bias = layers.ContinuousPositionBias(
            config.dim, config.heads, dtype=dtype)
        self.spatial_encoder = layers.Transformer(depth=config.spatial_depth,
                                                  sequence_axis="space", **transformer)
        self.temporal_encoder = layers.Transformer(
            depth=config.temporal_depth, sequence_axis="time",
            released_peg_reshape=config.released_temporal_peg, **transformer)
        self.project_in = nn.Dense(config.quant_dim, dtype=dtype)
        self.downsample = [
            nn.Conv(config.quant_dim, kernel_size=(3, 3), strides=(2, 2),
                    padding=((1, 1), (1, 1)), dtype=dtype, name=f"downsample_{index}")
            for index in range(config.num_downsamples)]
        self.quantizer = vq.VectorQuantizer(
            num_codes=config.codebook_size, code_dim=config.quant_dim,
            beta=config.commitment_beta, quantizer=config.quantizer)
        self.project_out = nn.Dense(config.dim, dtype=dtype)
        if config.token_position_embedding:
            self.token_positions = self.param("token_positions", nn.initializers.normal(0.02),
                                              (config.code_seq_len, config.dim))
        self.decoder = layers.Transformer(depth=config.decoder_depth, sequence_axis="space",
                                          has_cross_attn=True, num_null_kv=config.num_null_kv,
                                          **transformer)
        # A residual head starts near "no change" (output std ~0.1 of the default init's),
        # so the first steps already reconstruct about as well as copying the source.
        pixel_init = (nn.initializers.variance_scaling(0.01, "fan_in", "truncated_normal")
                      if config.predict_residual else nn.initializers.lecun_normal())
        self.to_pixels = nn.Dense(config.head_channels * config.patch_size ** 2, dtype=dtype,
                                  kernel_init=pixel_init)

    def _check_frames(self, name: str, frames: jax.Array) -> None:
        config = self.config
        expected = (config.image_size, config.image_size, config.channels)
        if frames.ndim != 4 or tuple(frames.shape[1:]) != expected:
            raise ValueError(f"{name} frames must be [B, {expected[0]}, {expected[1]}, "
                             f"{expected[2]}] (NHWC, from TokenizerConfig), got {frames.shape}")

    def _frame_latent(self, frame_tokens: jax.Array) -> jax.Array:
        """One frame's encoding [B, h, w, dim] -> [B, 16, quant_dim] on the action grid."""
        latent = self.project_in(frame_tokens)
        for index, conv in enumerate(self.downsample):
            if index:
                latent = nn.relu(latent)
            latent = conv(latent)
        return latent.reshape(latent.shape[0], -1, self.config.quant_dim)

    def action_latents(self, source: jax.Array, driving: jax.Array) -> jax.Array:
        """Encoder: [B, H, W, C] pair -> pre-quantization action latents [B, 16, quant_dim]."""
        self._check_frames("source", source)
        self._check_frames("driving", driving)
        if not self.config.still_pair_reference:
            return self._pair_latents(source, driving)
        batch = source.shape[0]
        latents = self._pair_latents(jnp.concatenate([source, source]),
                                     jnp.concatenate([driving, source]))
        return latents[:batch] - latents[batch:]

    def _pair_latents(self, source: jax.Array, driving: jax.Array) -> jax.Array:
        """driving - source frame latents [B, 16, quant_dim] of one encoder pass."""
        dtype = self.config.compute_dtype
        tokens = jnp.stack([self.patch_embedding(source.astype(dtype)),
                            self.patch_embedding(driving.astype(dtype))], axis=1)
        batch, frames, height, width, dim = tokens.shape
        video_shape = (batch, frames, height, width)
        spatial = tokens.reshape(batch * frames, height * width, dim)
        spatial = self.spatial_encoder(spatial, video_shape,
                                       attn_bias=self.spatial_position_bias(height, width))
        temporal = einops.rearrange(spatial, "(b t) (h w) d -> (b h w) t d",
                                    b=batch, h=height, w=width)
        temporal = self.temporal_encoder(temporal, video_shape)
        encoded = einops.rearrange(temporal, "(b h w) t d -> b t h w d",
                                   b=batch, h=height, w=width)
        source_latent = self._frame_latent(encoded[:, 0])
        driving_latent = self._frame_latent(encoded[:, 1])
        return (driving_latent - source_latent).astype(jnp.float32)

    def codes_to_action_vectors(self, codes: jax.Array) -> jax.Array:
        """Quantized codes [B, 16, quant_dim] -> decoder context [B, 16, dim]."""
        if self.config.released_token_layout:
            codes = released_layout(codes)
        vectors = self.project_out(codes.astype(self.config.compute_dtype))
        if self.config.token_position_embedding:
            vectors = vectors + self.token_positions.astype(vectors.dtype)
        return vectors

    def decode_from_action_vectors(self, source: jax.Array, action_vectors: jax.Array) -> jax.Array:
        """Decoder: source [B, H, W, C] and action vectors [B, 16, dim] -> [B, H, W, C]."""
        self._check_frames("source", source)
        config = self.config
        source_tokens = jax.lax.stop_gradient(
            self.patch_embedding(source.astype(config.compute_dtype)))
        batch, height, width, dim = source_tokens.shape
        queries = source_tokens.reshape(batch, height * width, dim)
        decoded = self.decoder(queries, (batch, 1, height, width),
                               attn_bias=self.spatial_position_bias(height, width),
                               context=action_vectors)
        patches = self.to_pixels(decoded).reshape(batch, height, width, -1)
        frames = unpatchify(patches, config.patch_size, config.head_channels).astype(jnp.float32)
        base = source.astype(jnp.float32)
        if config.decoder_warp:  # channels: the change, then (dy, dx) in pixels
            base = warp_frames(base, frames[..., config.channels:])
            frames = frames[..., :config.channels]
        if config.predict_residual:  # the patches are the change from the (warped) source
            frames = base + frames
        return frames

    def encode(self, source: jax.Array, driving: jax.Array) -> jax.Array:
        """(source, driving) [B, H, W, C] -> action tokens int32 [B, 16]."""
        latents = self.action_latents(source, driving)
        return vq.nearest_codes(latents.reshape(-1, self.config.quant_dim),
                                self.quantizer.codebook).reshape(latents.shape[:2])

    def embed_tokens(self, action_tokens: jax.Array) -> jax.Array:
        """Action tokens int [B, 16] -> hard-quantized action vectors [B, 16, dim]
        (after the configured layout, ``project_out`` and the token position embedding:
        what the decoder and the classifier read)."""
        return self.codes_to_action_vectors(self.quantizer.lookup(action_tokens))

    def decode(self, source: jax.Array, action_tokens: jax.Array) -> jax.Array:
        """Source frames [B, H, W, C] and action tokens int [B, 16] -> frames [B, H, W, C]."""
        return self.decode_from_action_vectors(source, self.embed_tokens(action_tokens))

    def __call__(self, source: jax.Array, driving: jax.Array, *, train: bool) -> dict[str, Any]:
        latents = self.action_latents(source, driving)
        quantized = self.quantizer(latents, train=train)
        recon = self.decode_from_action_vectors(
            source, self.codes_to_action_vectors(quantized["quantized"]))
        losses = tokenizer_losses(recon, driving, quantized["losses"])
        return {
            "recon": recon,
            "action_tokens": quantized["indices"],
            "action_latents": latents,
            "code_counts": quantized["code_counts"],
            "losses": losses,
            "metrics": {"perplexity": quantized["perplexity"],
                        "codes_in_use": quantized["codes_in_use"]},
        }


@functools.lru_cache(maxsize=32)
def _compiled(config: TokenizerConfig, method_name: str):
    """``ActionTokenizer(config).apply`` of one method, jit-compiled once per config."""
    model = ActionTokenizer(config)
    method = getattr(ActionTokenizer, method_name)
    return jax.jit(lambda params, *args: model.apply({"params": params}, *args, method=method))


def encode_actions(params, config: TokenizerConfig, source: jax.Array,
                   driving: jax.Array) -> jax.Array:
    """Action tokens int32 [B, 16] of (source, driving) frames [B, H, W, C] (eval mode)."""
    return _compiled(config, "encode")(params, source, driving)


def decode_actions(params, config: TokenizerConfig, source: jax.Array,
                   tokens: jax.Array) -> jax.Array:
    """Frames [B, H, W, C] decoded from source frames and action tokens int [B, 16]."""
    return _compiled(config, "decode")(params, source, tokens)


def decode_action_vectors(params, config: TokenizerConfig, source: jax.Array,
                          action_vectors: jax.Array) -> jax.Array:
    """Frames [B, H, W, C] decoded from source frames and decoder context [B, 16, dim]
    (e.g. :func:`embed_actions` of tokens, or rows of several such contexts)."""
    return _compiled(config, "decode_from_action_vectors")(params, source, action_vectors)


def embed_actions(params, config: TokenizerConfig, tokens: jax.Array) -> jax.Array:
    """Action vectors [B, 16, dim] (hard codes after project_out) of tokens int [B, 16]."""
    return _compiled(config, "embed_tokens")(params, tokens)


def init_tokenizer(config: TokenizerConfig, rng: jax.Array, batch_size: int = 1) -> dict:
    """Initial variables (``{"params": ...}``) for ``config``."""
    return _compiled_init(config, batch_size)(rng)


@functools.lru_cache(maxsize=8)
def _compiled_init(config: TokenizerConfig, batch_size: int):
    frames = jnp.zeros((batch_size, config.image_size, config.image_size, config.channels),
                       jnp.float32)
    return jax.jit(lambda key: ActionTokenizer(config).init({"params": key}, frames, frames,
                                                            train=False))
