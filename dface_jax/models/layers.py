"""Transformer building blocks of the C-VQ-VAE tokenizer (Flax Linen).

These follow the blocks of the authors' released model (LAPA / Phenaki style), so a
converted PyTorch state dict computes the same numbers:

- bias-free LayerNorm (eps 1e-5, exact two-pass variance, as PyTorch computes it);
- cosine-similarity attention: q and k are l2-normalised, multiplied by learned per-dim
  scales and a fixed scale of 8; cross-attention prepends learned null key/values;
- a continuous position bias MLP over signed log-distances of the patch grid;
- a PEG (position generating) depthwise 3x3x3 convolution over (time, height, width) with
  causal temporal padding, added before every block;
- a GEGLU feed-forward with inner width ``int(ff_mult * 2/3 * dim)``.

One quirk of the release is kept because the released weights were trained with it: in
self-attention the keys and values are computed from the *un-normalised* input (only the
queries see the LayerNorm), see :class:`CosineAttention`.
"""

from __future__ import annotations

import math
from typing import Sequence

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# PyTorch's LayerNorm epsilon; Flax's default (1e-6) would shift outputs by ~1e-6 relative.
TORCH_LAYER_NORM_EPS = 1e-5
# F.normalize's epsilon.
L2_NORM_EPS = 1e-12


def layer_norm(*, use_bias: bool, dtype, name: str | None = None) -> nn.LayerNorm:
    """A LayerNorm computed like PyTorch's (eps 1e-5, two-pass variance)."""
    return nn.LayerNorm(epsilon=TORCH_LAYER_NORM_EPS, use_bias=use_bias,
                        use_fast_variance=False, dtype=dtype, name=name)


def l2_normalize(x: jax.Array) -> jax.Array:
    """``x / max(|x|, 1e-12)`` over the last axis (PyTorch ``F.normalize``)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
    return x / jnp.maximum(norm, L2_NORM_EPS)


def relative_log_positions(height: int, width: int) -> np.ndarray:
    """Signed log-distances between all pairs of grid cells: float32 [h*w, h*w, 2]."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    grid = np.stack([rows.reshape(-1), cols.reshape(-1)], axis=-1).astype(np.float32)
    relative = grid[:, None, :] - grid[None, :, :]
    return (np.sign(relative) * np.log(np.abs(relative) + 1.0)).astype(np.float32)


class ContinuousPositionBias(nn.Module):
    """Attention bias from an MLP over log relative positions (Swin v2).

    Returns float32 [heads, h*w, h*w], added to the attention logits of spatial blocks.
    """

    dim: int
    heads: int
    num_hidden_layers: int = 2
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, height: int, width: int) -> jax.Array:
        hidden = jnp.asarray(relative_log_positions(height, width))
        for index in range(self.num_hidden_layers):
            hidden = nn.Dense(self.dim, dtype=self.dtype, name=f"hidden_{index}")(hidden)
            hidden = nn.leaky_relu(hidden, negative_slope=0.1)
        bias = nn.Dense(self.heads, dtype=self.dtype, name="to_heads")(hidden)
        return jnp.transpose(bias, (2, 0, 1)).astype(jnp.float32)


class CosineAttention(nn.Module):
    """Multi-head cosine-similarity attention.

    ``x`` [N, L, dim] attends to itself, or to ``context`` [N, M, dim] when given (then
    the context is LayerNorm-ed and ``num_null_kv`` learned null key/value pairs are
    prepended, so a query can attend to "nothing"). ``attn_bias`` [heads, L, L] is added
    to the logits of real keys. Returns [N, L, dim].
    """

    dim: int
    heads: int
    dim_head: int
    num_null_kv: int = 0
    scale: float = 8.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array | None = None,
                 attn_bias: jax.Array | None = None) -> jax.Array:
        inner_dim = self.heads * self.dim_head
        if context is not None:
            context = layer_norm(use_bias=False, dtype=self.dtype, name="context_norm")(context)
        # The release takes keys/values from the input *before* its LayerNorm in
        # self-attention; the released weights expect that.
        kv_input = x if context is None else context
        x = layer_norm(use_bias=False, dtype=self.dtype, name="norm")(x)
        queries = nn.Dense(inner_dim, use_bias=False, dtype=self.dtype, name="to_q")(x)
        keys_values = nn.Dense(2 * inner_dim, use_bias=False, dtype=self.dtype,
                               name="to_kv")(kv_input)
        keys, values = jnp.split(keys_values, 2, axis=-1)
        split_heads = lambda t: einops.rearrange(t, "n l (h d) -> n h l d", h=self.heads)
        queries, keys, values = map(split_heads, (queries, keys, values))

        if self.num_null_kv > 0:
            null_shape = (self.heads, self.num_null_kv, self.dim_head)
            null_keys = self.param("null_keys", nn.initializers.normal(1.0), null_shape)
            null_values = self.param("null_values", nn.initializers.normal(1.0), null_shape)
            batch = keys.shape[0]
            broadcast = lambda t: jnp.broadcast_to(t.astype(keys.dtype), (batch, *null_shape))
            keys = jnp.concatenate([broadcast(null_keys), keys], axis=2)
            values = jnp.concatenate([broadcast(null_values), values], axis=2)

        q_scale = self.param("q_scale", nn.initializers.ones, (self.dim_head,))
        k_scale = self.param("k_scale", nn.initializers.ones, (self.dim_head,))
        queries = l2_normalize(queries) * q_scale.astype(queries.dtype)
        keys = l2_normalize(keys) * k_scale.astype(keys.dtype)

        logits = jnp.einsum("nhid,nhjd->nhij", queries, keys).astype(jnp.float32) * self.scale
        if attn_bias is not None:
            # Null keys get no position bias.
            attn_bias = jnp.pad(attn_bias, ((0, 0), (0, 0), (self.num_null_kv, 0)))
            logits = logits + attn_bias
        weights = jax.nn.softmax(logits, axis=-1).astype(values.dtype)
        out = jnp.einsum("nhij,nhjd->nhid", weights, values)
        out = einops.rearrange(out, "n h l d -> n l (h d)")
        return nn.Dense(self.dim, use_bias=False, dtype=self.dtype, name="to_out")(out)


class GegluFeedForward(nn.Module):
    """LayerNorm, Linear to 2 x inner, GELU-gated linear unit, Linear back: [..., dim]."""

    dim: int
    mult: float = 4.0
    dtype: jnp.dtype = jnp.float32

    @property
    def inner_dim(self) -> int:
        return int(self.mult * (2 / 3) * self.dim)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = layer_norm(use_bias=True, dtype=self.dtype, name="norm")(x)
        hidden = nn.Dense(2 * self.inner_dim, use_bias=False, dtype=self.dtype, name="proj_in")(x)
        # The release chunks (value, gate) in this order; GELU is the exact (erf) one.
        value, gate = jnp.split(hidden, 2, axis=-1)
        hidden = jax.nn.gelu(gate, approximate=False) * value
        return nn.Dense(self.dim, use_bias=False, dtype=self.dtype, name="proj_out")(hidden)


def sequence_to_video(x: jax.Array, video_shape: Sequence[int], sequence_axis: str,
                      released_reshape: bool) -> jax.Array:
    """Lays out a block's token sequences as a video [b, t, h, w, d] for the PEG.

    ``sequence_axis="space"``: x is [(b t), (h w), d] (spatial blocks).
    ``sequence_axis="time"``: x is [(b h w), t, d] (temporal blocks); with
    ``released_reshape`` the tokens are reshaped straight to (b, t, h, w, d) as the
    release does, which scrambles positions and frames when t > 1.
    """
    b, t, h, w = video_shape
    if sequence_axis == "space" or released_reshape:
        return x.reshape(b, t, h, w, x.shape[-1])
    if sequence_axis == "time":
        return einops.rearrange(x, "(b h w) t d -> b t h w d", b=b, h=h, w=w)
    raise ValueError(f"sequence_axis must be 'space' or 'time', got {sequence_axis!r}")


def video_to_sequence(video: jax.Array, sequence_shape: Sequence[int], sequence_axis: str,
                      released_reshape: bool) -> jax.Array:
    """The inverse of :func:`sequence_to_video`: [b, t, h, w, d] -> ``sequence_shape``."""
    if sequence_axis == "space" or released_reshape:
        return video.reshape(sequence_shape)
    return einops.rearrange(video, "b t h w d -> (b h w) t d")


class PositionGenerator(nn.Module):
    """PEG: depthwise 3x3x3 convolution over [b, t, h, w, d] with zero padding.

    With ``causal`` the time axis is padded by 2 frames in front and none behind, so frame
    t only sees frames t-2..t. Returns the same shape (the caller adds the residual).
    Parameters: ``kernel`` [3, 3, 3, d] (time, height, width, channel) and ``bias`` [d].

    Computed as a sum of 27 shifted, per-channel scaled copies: the same numbers as a
    grouped convolution, but XLA's CPU grouped 3D convolution (and its gradient) is more
    than 10x slower than this on the tokenizer's shapes.
    """

    dim: int
    causal: bool = True
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, video: jax.Array) -> jax.Array:
        # Fan-in 27 per channel, as Flax initialises a grouped conv.
        depthwise_init = nn.initializers.lecun_normal(in_axis=(0, 1, 2), out_axis=(), batch_axis=3)
        kernel = self.param("kernel", depthwise_init, (3, 3, 3, self.dim))
        bias = self.param("bias", nn.initializers.zeros, (self.dim,))
        frames, height, width = video.shape[1:4]
        time_padding = (2, 0) if self.causal else (1, 1)
        padded = jnp.pad(video, ((0, 0), time_padding, (1, 1), (1, 1), (0, 0)))
        # Offsets whose window lies entirely in the zero padding add nothing (e.g. the
        # first two time offsets for a single causal frame); skipping them keeps the
        # compiled program small.
        useful_time = [dt for dt in range(3) if dt + frames > time_padding[0]
                       and dt < time_padding[0] + frames]
        useful_height = [dh for dh in range(3) if dh + height > 1 and dh < 1 + height]
        useful_width = [dw for dw in range(3) if dw + width > 1 and dw < 1 + width]
        out = jnp.broadcast_to(bias.astype(self.dtype), video.shape)
        for dt in useful_time:
            for dh in useful_height:
                for dw in useful_width:
                    window = padded[:, dt:dt + frames, dh:dh + height, dw:dw + width]
                    out = out + window.astype(self.dtype) * kernel[dt, dh, dw].astype(self.dtype)
        return out


class TransformerBlock(nn.Module):
    """PEG, self-attention, optional cross-attention, GEGLU feed-forward; all residual."""

    dim: int
    heads: int
    dim_head: int
    has_cross_attn: bool = False
    num_null_kv: int = 2
    ff_mult: float = 4.0
    sequence_axis: str = "space"
    released_peg_reshape: bool = False
    peg_causal: bool = True
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, video_shape: Sequence[int],
                 attn_bias: jax.Array | None = None,
                 context: jax.Array | None = None) -> jax.Array:
        video = sequence_to_video(x, video_shape, self.sequence_axis, self.released_peg_reshape)
        video = PositionGenerator(self.dim, causal=self.peg_causal, dtype=self.dtype,
                                  name="peg")(video)
        x = x + video_to_sequence(video, x.shape, self.sequence_axis, self.released_peg_reshape)
        x = x + CosineAttention(self.dim, self.heads, self.dim_head, num_null_kv=0,
                                dtype=self.dtype, name="self_attn")(x, attn_bias=attn_bias)
        if self.has_cross_attn:
            if context is None:
                raise ValueError("a block with cross-attention needs a context")
            x = x + CosineAttention(self.dim, self.heads, self.dim_head,
                                    num_null_kv=self.num_null_kv, dtype=self.dtype,
                                    name="cross_attn")(x, context=context)
        return x + GegluFeedForward(self.dim, self.ff_mult, dtype=self.dtype, name="ff")(x)


class Transformer(nn.Module):
    """``depth`` :class:`TransformerBlock` s and a final bias-free LayerNorm.

    ``x`` is [N, L, dim] laid out as ``sequence_axis`` says (see
    :func:`sequence_to_video`), ``video_shape`` = (b, t, h, w). Returns [N, L, dim].
    """

    dim: int
    depth: int
    heads: int
    dim_head: int
    has_cross_attn: bool = False
    num_null_kv: int = 2
    ff_mult: float = 4.0
    sequence_axis: str = "space"
    released_peg_reshape: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, video_shape: Sequence[int],
                 attn_bias: jax.Array | None = None,
                 context: jax.Array | None = None) -> jax.Array:
        if math.prod(video_shape) * x.shape[-1] != x.size:
            raise ValueError(f"tokens {x.shape} do not hold a video of shape {tuple(video_shape)}")
        for index in range(self.depth):
            x = TransformerBlock(
                self.dim, self.heads, self.dim_head, has_cross_attn=self.has_cross_attn,
                num_null_kv=self.num_null_kv, ff_mult=self.ff_mult,
                sequence_axis=self.sequence_axis, released_peg_reshape=self.released_peg_reshape,
                dtype=self.dtype, name=f"block_{index}")(x, video_shape, attn_bias, context)
        return layer_norm(use_bias=False, dtype=self.dtype, name="norm_out")(x)
