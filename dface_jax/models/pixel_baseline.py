"""Pixel baseline: a small CNN on the apex-minus-onset frame difference.

The OFF-ApexNet family reads the optical flow between onset and apex; this baseline reads
the plain difference image instead (no flow), so it shows what the action tokens add over
raw pixels on the same folds. It is deliberately small (three conv blocks, global average
pooling, one dense layer) because LOSO training sets hold only a few hundred clips.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class PixelBaselineConfig:
    """Hyper-parameters of :class:`PixelBaselineCNN`.

    Attributes:
      num_classes: number of emotion classes K.
      features: output channels of each 3x3 conv block (each block halves the resolution).
      dropout: dropout rate before the classification layer.
    """

    num_classes: int = 3
    features: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.2

    @classmethod
    def from_dict(cls, values: dict) -> "PixelBaselineConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"PixelBaselineConfig has no fields {unknown}; fields are {sorted(known)}")
        values = dict(values)
        if "features" in values:
            values["features"] = tuple(int(f) for f in values["features"])
        return cls(**values)


class PixelBaselineCNN(nn.Module):
    """Apex-minus-onset image -> class logits.

    ``__call__(frame_difference [B, h, w, C], *, train) -> logits [B, K]``. The input is a
    signed difference in [-1, 1]; it is rescaled per sample to unit maximum magnitude
    because micro-expression motion is a few grey levels and its scale varies by camera.
    Dropout draws from the ``"dropout"`` rng when ``train``.
    """

    config: PixelBaselineConfig

    @nn.compact
    def __call__(self, frame_difference: jax.Array, *, train: bool) -> jax.Array:
        magnitude = jnp.max(jnp.abs(frame_difference), axis=(1, 2, 3), keepdims=True)
        x = frame_difference / (magnitude + 1e-6)
        for width in self.config.features:
            x = nn.Conv(width, (3, 3), padding="SAME")(x)
            x = nn.relu(x)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = jnp.mean(x, axis=(1, 2))  # global average pooling -> [B, features[-1]]
        x = nn.Dropout(self.config.dropout, deterministic=not train)(x)
        return nn.Dense(self.config.num_classes)(x)
