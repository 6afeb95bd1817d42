"""Pixel baseline: a small CNN on the apex-minus-onset frame difference.

STSTNet and OFF-ApexNet (:mod:`dface_jax.models.flow_baselines`) read the optical flow
between onset and apex; this baseline reads the plain difference image instead (no flow),
so it shows what the action tokens add over raw pixels on the same folds. It is
deliberately small (three conv blocks, global average pooling, one dense layer) because
LOSO training sets hold only a few hundred clips.

The convs and pools are the shift-and-matmul ones of :mod:`dface_jax.models.conv` (why:
there).

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
from dface_jax.models.conv import ShiftConv, max_pool, unit_peak


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


class PixelBaselineCNN(nn.Module):
    """Apex-minus-onset image -> class logits.

    ``__call__(frame_difference [B, h, w, C], *, train) -> logits [B, K]``. The input is a
    signed difference in [-1, 1]; it is rescaled per sample to unit maximum magnitude
    because micro-expression motion is a few grey levels and its scale varies by camera.
    Each block is 3x3 conv -> ReLU -> 2x2 max pool (the first conv with ``stem_stride``).
    Dropout draws from the ``"dropout"`` rng when ``train``.
    """

    config: PixelBaselineConfig

    @nn.compact
    def __call__(self, frame_difference: jax.Array, *, train: bool) -> jax.Array:
        if frame_difference.ndim != 4:
            raise ValueError(f"PixelBaselineCNN expects frame_difference [B, h, w, C], got "
                             f"shape {tuple(frame_difference.shape)}")
        x = unit_peak(frame_difference, axis=(1, 2, 3))
        for index, width in enumerate(self.config.features):
            stride = self.config.stem_stride if index == 0 else 1
            x = ShiftConv(width, 3, stride, name=f"Conv_{index}")(x)
            x = max_pool(nn.relu(x), 2)
        x = jnp.mean(x, axis=(1, 2))  # global average pooling -> [B, features[-1]]
        x = nn.Dropout(self.config.dropout, deterministic=not train)(x)
        return nn.Dense(self.config.num_classes, name="Dense_0")(x)
