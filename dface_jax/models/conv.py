"""Convolution and pooling for the small image baselines (pixel CNN, STSTNet, OFF-ApexNet),
written for the fold-vmapped LOSO sweep on CPU.

Formulation (decision, for speed): a k x k conv is "shift and matmul": the k*k shifted
copies of the zero-padded input are concatenated on the channel axis ([B, h, w, k*k*C])
and multiplied by the kernel reshaped to [k*k*C, C_out]. This is exactly ``nn.Conv`` with
the same explicit padding (same ``kernel`` [k, k, C, C_out] and ``bias`` parameters, same
initialisers, equal outputs to float rounding; tests check it), but under ``jax.vmap``
over folds it lowers to slices, a concat and one batched GEMM [F, B*h*w, k*k*C] x
[F, k*k*C, C_out] instead of a grouped convolution, which XLA:CPU runs an order of
magnitude slower (and whose weight gradient is slower still).
``conv_general_dilated_patches`` is not used because it is itself a convolution. Pooling
windows do not overlap (window = stride, as in all three networks) and are a reshape plus
a max or mean over the blocks, for the same reason (no reduce_window).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class ShiftConv(nn.Module):
    """A k x k convolution zero-padded by ``padding`` pixels on every side, as
    shift-and-matmul (module doc): ``nn.Conv(features, (k, k), strides=stride,
    padding=((p, p), (p, p)))``. ``padding=None`` is ``(k - 1) // 2``, which for an odd k
    at stride 1 keeps the size (``padding="SAME"``).

    ``__call__(x [B, h, w, C]) -> [B, (h + 2p - k) // s + 1, (w + 2p - k) // s + 1,
    features]``; parameters ``kernel`` [k, k, C, features] (LeCun normal) and ``bias``
    [features] (zeros), as ``nn.Conv``.
    """

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        size, step = self.kernel_size, self.stride
        pad = (size - 1) // 2 if self.padding is None else self.padding
        channels = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (size, size, channels, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        out_h = (x.shape[1] + 2 * pad - size) // step + 1
        out_w = (x.shape[2] + 2 * pad - size) // step + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(f"ShiftConv: a {size}x{size} kernel with padding {pad} does not fit "
                             f"an input of {x.shape[1]}x{x.shape[2]}")
        padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        # Channel block (dy * k + dx) holds the input shifted by (dy - p, dx - p): the
        # same order as kernel.reshape(k * k * C, features) reads the kernel taps.
        shifted = [padded[:, dy:dy + (out_h - 1) * step + 1:step,
                          dx:dx + (out_w - 1) * step + 1:step, :]
                   for dy in range(size) for dx in range(size)]
        patches = jnp.concatenate(shifted, axis=-1)
        return patches @ kernel.reshape(size * size * channels, self.features) + bias


def _blocks(x: jax.Array, window: int, padding: int, fill: float) -> jax.Array:
    """[B, h, w, C] -> [B, h', window, w', window, C], the non-overlapping windows of
    ``x`` padded by ``padding`` with ``fill``; h' = (h + 2p - window) // window + 1 (the
    edge that does not fill a window is dropped, as PyTorch and ``nn.max_pool`` do)."""
    if padding:
        x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)),
                    constant_values=fill)
    batch, height, width, channels = x.shape
    out_h, out_w = (height - window) // window + 1, (width - window) // window + 1
    x = x[:, :out_h * window, :out_w * window, :]
    return x.reshape(batch, out_h, window, out_w, window, channels)


def max_pool(x: jax.Array, window: int, padding: int = 0) -> jax.Array:
    """Max over non-overlapping ``window`` x ``window`` blocks (stride = window), padded
    with -inf: ``nn.max_pool(x, (k, k), strides=(k, k), padding=((p, p), (p, p)))``,
    PyTorch's ``MaxPool2d(k, k, padding=p)``."""
    return _blocks(x, window, padding, -jnp.inf).max(axis=(2, 4))


def avg_pool(x: jax.Array, window: int) -> jax.Array:
    """Mean over non-overlapping ``window`` x ``window`` blocks, no padding
    (``nn.avg_pool(x, (k, k), strides=(k, k))``, PyTorch's ``AvgPool2d(k, k)``)."""
    return _blocks(x, window, 0, 0.0).mean(axis=(2, 4))


def unit_peak(x: jax.Array, axis: tuple[int, ...]) -> jax.Array:
    """``x`` divided by its largest magnitude over ``axis`` (so each sample, or each
    sample's channel, peaks at 1 with zero kept at zero): micro-expression motion is a few
    grey levels or a fraction of a pixel and its scale varies by camera and clip."""
    magnitude = jnp.max(jnp.abs(x), axis=axis, keepdims=True)
    return x / (magnitude + 1e-6)
