"""Pixel baseline: a small CNN on the apex-minus-onset frame difference.

The OFF-ApexNet family reads the optical flow between onset and apex; this baseline reads
the plain difference image instead (no flow), so it shows what the action tokens add over
raw pixels on the same folds. It is deliberately small (three conv blocks, global average
pooling, one dense layer) because LOSO training sets hold only a few hundred clips.

Formulation (decision, for speed of the fold-vmapped LOSO sweep on CPU): each 3x3 conv is
written as "shift and matmul": the 9 shifted copies of the zero-padded input are
concatenated on the channel axis ([B, h, w, 9*C]) and multiplied by the kernel reshaped to
[9*C, C_out]. This is exactly ``nn.Conv(C_out, (3, 3), padding="SAME")`` (same ``kernel``
[3, 3, C, C_out] and ``bias`` parameters, same initialisers, equal outputs to float
rounding; tests check it), but under ``jax.vmap`` over folds it lowers to slices, a concat
and one batched GEMM [F, B*h*w, 9C] x [F, 9C, C_out] instead of a grouped convolution,
which XLA:CPU runs an order of magnitude slower (and whose weight gradient is slower still).
``conv_general_dilated_patches`` is not used because it is itself a convolution. Max
pooling is a reshape + max over the 2x2 blocks, for the same reason (no reduce_window).

``stem_stride=2`` (the CPU-scale ``synth`` configs) evaluates the first conv at every
second pixel, as a ResNet-style strided stem: the first conv still reads every pixel of
the 32 px difference image, and the network costs ~4x fewer FLOPs (166k instead of 660k
multiply-adds per 32 px clip with 8/16/32 channels), which is what lets the 68-fold sweep
of the quickstart fit in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from dface_jax.configs import dataclass_from_dict


@dataclasses.dataclass(frozen=True)
class PixelBaselineConfig:
    """Hyper-parameters of :class:`PixelBaselineCNN`.

    Attributes:
      num_classes: number of emotion classes K.
      features: output channels of each 3x3 conv block (each block halves the resolution).
      dropout: dropout rate before the classification layer.
      stem_stride: stride of the first conv (1 or 2; see the module doc).
    """

    num_classes: int = 3
    features: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.2
    stem_stride: int = 1

    def __post_init__(self):
        if self.stem_stride not in (1, 2):
            raise ValueError(f"PixelBaselineConfig.stem_stride={self.stem_stride!r}; expected 1 or 2")
        if not self.features:
            raise ValueError("PixelBaselineConfig.features must name at least one conv block")

    @classmethod
    def from_dict(cls, values: dict) -> "PixelBaselineConfig":
        values = dict(values)
        if "features" in values:
            values["features"] = tuple(int(f) for f in values["features"])
        return dataclass_from_dict(cls, values)


class Conv3x3(nn.Module):
    """A 3x3 convolution zero-padded by one pixel on every side, as shift-and-matmul
    (module doc): ``nn.Conv(features, (3, 3), strides=stride, padding=((1, 1), (1, 1)))``,
    which for stride 1 is ``padding="SAME"``. With stride s, output (i, j) is centred on
    input pixel (s*i, s*j).

    ``__call__(x [B, h, w, C]) -> [B, ceil(h / s), ceil(w / s), features]``; parameters
    ``kernel`` [3, 3, C, features] (LeCun normal) and ``bias`` [features] (zeros), as
    ``nn.Conv``.
    """

    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (3, 3, channels, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        height, width = x.shape[1], x.shape[2]
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        # Channel block (dy * 3 + dx) holds the input shifted by (dy - 1, dx - 1): the
        # same order as kernel.reshape(9 * C, features) reads the kernel taps.
        step = self.stride
        shifted = [padded[:, dy:dy + height:step, dx:dx + width:step, :]
                   for dy in range(3) for dx in range(3)]
        patches = jnp.concatenate(shifted, axis=-1)
        return patches @ kernel.reshape(9 * channels, self.features) + bias


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """[B, h, w, C] -> [B, h // 2, w // 2, C], the max of each 2x2 block (odd edges dropped,
    as ``nn.max_pool(x, (2, 2), strides=(2, 2))`` with VALID padding)."""
    batch, height, width, channels = x.shape
    x = x[:, :height // 2 * 2, :width // 2 * 2, :]
    blocks = x.reshape(batch, height // 2, 2, width // 2, 2, channels)
    return blocks.max(axis=(2, 4))


class PixelBaselineCNN(nn.Module):
    """Apex-minus-onset image -> class logits.

    ``__call__(frame_difference [B, h, w, C], *, train) -> logits [B, K]``. The input is a
    signed difference in [-1, 1]; it is rescaled per sample to unit maximum magnitude
    because micro-expression motion is a few grey levels and its scale varies by camera.
    Each block is Conv3x3 -> ReLU -> 2x2 max pool (the first conv with ``stem_stride``). Dropout draws from the ``"dropout"``
    rng when ``train``.
    """

    config: PixelBaselineConfig

    @nn.compact
    def __call__(self, frame_difference: jax.Array, *, train: bool) -> jax.Array:
        if frame_difference.ndim != 4:
            raise ValueError(f"PixelBaselineCNN expects frame_difference [B, h, w, C], got "
                             f"shape {tuple(frame_difference.shape)}")
        magnitude = jnp.max(jnp.abs(frame_difference), axis=(1, 2, 3), keepdims=True)
        x = frame_difference / (magnitude + 1e-6)
        for index, width in enumerate(self.config.features):
            stride = self.config.stem_stride if index == 0 else 1
            x = Conv3x3(width, stride, name=f"Conv_{index}")(x)
            x = max_pool_2x2(nn.relu(x))
        x = jnp.mean(x, axis=(1, 2))  # global average pooling -> [B, features[-1]]
        x = nn.Dropout(self.config.dropout, deterministic=not train)(x)
        return nn.Dense(self.config.num_classes, name="Dense_0")(x)
