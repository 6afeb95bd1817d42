"""STSTNet and OFF-ApexNet: the two published optical-flow baselines, on the onset-apex
flow of the token cache (``optical_flow`` u, v and ``optical_strain``, 28 x 28; see
:mod:`dface_jax.tokens.flow`).

STSTNet (Liong, Gan, See, Khor, Huang, FG 2019, "Shallow Triple Stream Three-dimensional
CNN (STSTNet) for Micro-expression Recognition"), as in the authors' PyTorch release
(github christy1206/STSTNet ``main.py``): a 28 x 28 x 3 input (horizontal flow,
vertical flow, optical strain); three streams, each one 3x3 conv (3, 5 and 8 filters,
zero padding 2: 28 -> 30) -> ReLU -> BatchNorm -> 3x3 max pool, stride 3, padding 1
(30 -> 10) -> dropout 0.5; the 16 channels concatenated -> 2x2 average pool (10 -> 5) ->
flatten (400) -> one dense layer to the K classes. The three streams read the same input,
so they equal one conv of 16 filters; they are kept as three named convs to match the
publication.

OFF-ApexNet (Gan, Liong, Yau, Huang, Tan, Signal Processing: Image Communication 74,
2019, "OFF-ApexNet on micro-expression recognition system"): two streams, horizontal and
vertical flow, each 28 x 28 x 1 -> 5x5 conv, 6 filters -> ReLU -> 2x2 max pool -> 5x5
conv, 16 filters -> ReLU -> 2x2 max pool (7 x 7 x 16 = 784 features); both streams
concatenated (1568) -> dense 1024 -> ReLU -> dropout 0.5 -> dense 1024 -> ReLU -> dropout
0.5 -> dense K. The paper's text was not available here: the layer sizes are the ones
re-implementations give (they total 2.66 M parameters for 3 classes, the count those
re-implementations report), with "same" padding (28 -> 14 -> 7).

What differs from the publications (also in docs/results/flow_baselines.md):

- Optical flow: OpenCV's DIS (``opencv-python-headless`` has no TV-L1, which needs the
  contrib build) instead of TV-L1, between the onset and apex frames of the cache's build
  resolution, then resized to 28 x 28 (``tokens/flow.py``).
- Input scale: the publications feed 8-bit images of the normalised flow; here the float
  flow of each clip is divided per channel by its largest magnitude (:func:`unit_peak`),
  which keeps zero motion at zero.
- Training: the LOSO loop every model of ``compare`` shares (AdamW, the config's
  schedule, class-balanced cross-entropy, honest final epoch) instead of each paper's own
  (STSTNet's release: Adam 5e-5, batch 256, 800 epochs, unweighted cross-entropy).
- Widths are config fields: the CPU-scale ``synth`` config of ``loso_composite.py``
  narrows OFF-ApexNet's two dense layers (the 68 folds train at once, and 68 copies of
  2.66 M parameters with their Adam moments do not fit beside other jobs on the 2-core
  machine); the default config keeps the published 1024.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from dface_jax.configs import dataclass_from_dict
from dface_jax.models.conv import ShiftConv, avg_pool, max_pool, unit_peak

# STSTNet's fixed layer geometry (authors' release): conv padding, max pool window and
# padding, average pool window.
_STSTNET_CONV_PADDING = 2
_STSTNET_MAX_POOL, _STSTNET_MAX_POOL_PADDING = 3, 1
_STSTNET_AVG_POOL = 2
# PyTorch's BatchNorm2d defaults (momentum 0.1 of the new batch = Flax momentum 0.9).
_BATCH_NORM_MOMENTUM, _BATCH_NORM_EPSILON = 0.9, 1e-5


def _check_input(name: str, x: jax.Array, channels: int) -> None:
    if x.ndim != 4 or x.shape[-1] != channels:
        raise ValueError(f"{name} expects flow images [B, h, w, {channels}], got shape "
                         f"{tuple(x.shape)}")


@dataclasses.dataclass(frozen=True)
class STSTNetConfig:
    """Hyper-parameters of :class:`STSTNet` (defaults: the authors' release).

    Attributes:
      num_classes: number of emotion classes K.
      stream_features: filters of each stream's 3x3 conv.
      dropout: dropout rate after each stream's max pool.
    """

    num_classes: int = 3
    stream_features: tuple[int, ...] = (3, 5, 8)
    dropout: float = 0.5

    def __post_init__(self):
        # A config read back from JSON gives a list; the frozen dataclass must stay hashable.
        object.__setattr__(self, "stream_features", tuple(int(f) for f in self.stream_features))
        if not self.stream_features or min(self.stream_features) < 1:
            raise ValueError(f"STSTNetConfig.stream_features must be positive filter counts, "
                             f"got {self.stream_features}")

    @classmethod
    def from_dict(cls, values: dict) -> "STSTNetConfig":
        return dataclass_from_dict(cls, values)


class STSTNet(nn.Module):
    """(u, v, optical strain) -> class logits (module doc).

    ``__call__(flow [B, h, w, 3], *, train) -> logits [B, K]``; 28 x 28 inputs as
    published (other sizes work, the dense layer follows the size). BatchNorm keeps
    running statistics in the ``batch_stats`` collection (updated when ``train``, used
    otherwise); dropout draws from the ``"dropout"`` rng when ``train``.
    """

    config: STSTNetConfig

    @nn.compact
    def __call__(self, flow: jax.Array, *, train: bool) -> jax.Array:
        _check_input("STSTNet", flow, 3)
        x = unit_peak(flow, axis=(1, 2))
        streams = []
        for index, width in enumerate(self.config.stream_features):
            y = ShiftConv(width, 3, padding=_STSTNET_CONV_PADDING, name=f"Stream_{index}_Conv")(x)
            y = nn.BatchNorm(use_running_average=not train, momentum=_BATCH_NORM_MOMENTUM,
                             epsilon=_BATCH_NORM_EPSILON, name=f"Stream_{index}_BatchNorm")(
                                 nn.relu(y))
            y = max_pool(y, _STSTNET_MAX_POOL, _STSTNET_MAX_POOL_PADDING)
            streams.append(nn.Dropout(self.config.dropout, deterministic=not train)(y))
        x = avg_pool(jnp.concatenate(streams, axis=-1), _STSTNET_AVG_POOL)
        return nn.Dense(self.config.num_classes, name="Dense_0")(x.reshape(x.shape[0], -1))


@dataclasses.dataclass(frozen=True)
class OFFApexNetConfig:
    """Hyper-parameters of :class:`OFFApexNet` (defaults: the publication, module doc).

    Attributes:
      num_classes: number of emotion classes K.
      conv_features: filters of each stream's conv layers (each followed by a 2x2 max pool).
      kernel_size: side of those conv kernels.
      hidden: widths of the dense layers after the streams are concatenated.
      dropout: dropout rate after each hidden dense layer.
    """

    num_classes: int = 3
    conv_features: tuple[int, ...] = (6, 16)
    kernel_size: int = 5
    hidden: tuple[int, ...] = (1024, 1024)
    dropout: float = 0.5

    def __post_init__(self):
        for name in ("conv_features", "hidden"):
            object.__setattr__(self, name, tuple(int(f) for f in getattr(self, name)))
        if not self.conv_features or min(self.conv_features) < 1 or min(self.hidden, default=1) < 1:
            raise ValueError(f"OFFApexNetConfig: conv_features {self.conv_features} and hidden "
                             f"{self.hidden} must be positive widths (conv_features non-empty)")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"OFFApexNetConfig.kernel_size must be odd, got {self.kernel_size}")

    @classmethod
    def from_dict(cls, values: dict) -> "OFFApexNetConfig":
        return dataclass_from_dict(cls, values)


class OFFApexNet(nn.Module):
    """(u, v) -> class logits: one CNN stream per flow component (module doc).

    ``__call__(flow [B, h, w, 2], *, train) -> logits [B, K]``. Dropout draws from the
    ``"dropout"`` rng when ``train``.
    """

    config: OFFApexNetConfig

    @nn.compact
    def __call__(self, flow: jax.Array, *, train: bool) -> jax.Array:
        _check_input("OFFApexNet", flow, 2)
        x = unit_peak(flow, axis=(1, 2))
        features = []
        for stream, component in enumerate(("horizontal", "vertical")):
            y = x[..., stream:stream + 1]
            for index, width in enumerate(self.config.conv_features):
                y = ShiftConv(width, self.config.kernel_size, name=f"{component}_Conv_{index}")(y)
                y = max_pool(nn.relu(y), 2)
            features.append(y.reshape(y.shape[0], -1))
        x = jnp.concatenate(features, axis=-1)
        for index, width in enumerate(self.config.hidden):
            x = nn.relu(nn.Dense(width, name=f"Dense_{index}")(x))
            x = nn.Dropout(self.config.dropout, deterministic=not train)(x)
        return nn.Dense(self.config.num_classes, name="Output")(x)
