"""The token classifier: a small Transformer over the 16 action vectors with attention pooling.

Shape of the released ``VQCodeTransformer`` (models/Exp_CLIP.py of the authors' code), which is
the default here and is proven equal to it by ``tests/test_parity_classifier.py``:

    action vectors [B, 16, D_in] -> Linear(D_in, dim) -> + learned position embedding [16, dim]
    -> pre-LN Transformer encoder layers (PyTorch ``TransformerEncoderLayer`` with
       norm_first=True, ReLU, dropout; no final LayerNorm, as ``nn.TransformerEncoder`` has none)
    -> attention pooling: LayerNorm, one learned query, score_i = <LN(x_i), q> / sqrt(dim),
       weights over the 16 tokens, pooled = sum_i w_i LN(x_i)
    -> class logits = Linear(dim, K)(pooled);
       text features = L2-normalise(Linear(dim, D_text)(pooled)).

Pooling weights (``ClassifierConfig.pooling``): softmax (the release), sparsemax,
entmax-1.5 or mean (the ablation); see :mod:`dface_jax.models.pooling`.

Precision (``ClassifierConfig.dtype``): "float32" everywhere (the default, the release), or
"bfloat16" for the matmuls of the token embedding and the encoder layers (the Dense layers
and the attention's dot products) on accelerators. Parameters stay float32 either way; the
residual stream, LayerNorms, attention softmax, pooling and both heads stay float32, so
only the matmuls' inputs are rounded.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dface_jax.configs import dataclass_from_dict
from dface_jax.models.pooling import POOLINGS, TORCH_LAYER_NORM_EPS, AttentionPooling

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters of :class:`TokenClassifier`; defaults are the released model.

    num_classes: K logits. seq_len: number of action tokens (16). input_dim: width of the
    action vectors the tokenizer hands over (512). dim / depth / heads / mlp_dim / dropout:
    the Transformer encoder. text_dim: width of the text anchors (768 for CLIP ViT-L/14).
    pooling: one of ``POOLINGS``. dtype: compute dtype of the encoder's matmuls (module
    docstring); parameters are float32 either way.
    """

    num_classes: int = 3
    seq_len: int = 16
    input_dim: int = 512
    dim: int = 512
    depth: int = 2
    heads: int = 8
    mlp_dim: int = 512
    dropout: float = 0.2
    text_dim: int = 768
    pooling: str = "softmax"
    dtype: str = "float32"

    def __post_init__(self):
        if self.dtype not in COMPUTE_DTYPES:
            raise ValueError(f"ClassifierConfig.dtype={self.dtype!r}; expected one of "
                             f"{tuple(COMPUTE_DTYPES)}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"ClassifierConfig.pooling={self.pooling!r}; expected one of {POOLINGS}")
        if self.dim % self.heads:
            raise ValueError(f"ClassifierConfig: dim={self.dim} is not divisible by heads={self.heads}")
        for name in ("num_classes", "seq_len", "input_dim", "dim", "depth", "heads", "mlp_dim",
                     "text_dim"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"ClassifierConfig.{name}={getattr(self, name)!r}; expected > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ClassifierConfig.dropout={self.dropout!r}; expected in [0, 1)")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ClassifierConfig":
        """Builds the config from a (config sub-)dict; unknown keys are an error naming them."""
        return dataclass_from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _dense(features: int, name: str, dtype: Any = None) -> nn.Dense:
    # The release re-initialises every Linear with Xavier-uniform weights and zero biases.
    # dtype None keeps Flax's inference from the (float32) inputs and params: the release.
    return nn.Dense(features, kernel_init=nn.initializers.xavier_uniform(),
                    bias_init=nn.initializers.zeros, dtype=dtype, name=name)


def _compute_dtype(name: str) -> Any:
    """None for float32 (the code path of the release, unchanged), else the jnp dtype."""
    return None if name == "float32" else COMPUTE_DTYPES[name]


def _layer_norm(name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=TORCH_LAYER_NORM_EPS, name=name)


class QKVProjection(nn.Module):
    """The fused q/k/v projection x @ kernel [dim_in, 3*dim] + bias [3*dim] (PyTorch's
    ``in_proj_weight`` transposed and ``in_proj_bias``), applied without the key bias.

    The key bias adds q . b_k to every score of a query, a constant that the softmax over
    keys ignores, so dropping it leaves every output unchanged (the release's numbers are
    reproduced) while its gradient becomes exactly zero instead of float round-off, which
    Adam would otherwise blow up into random updates (vmapped and sequential LOSO runs
    would then drift apart). The parameter is kept for checkpoint compatibility.
    """

    dim: int
    dtype: Any = None  # compute dtype of the projection; None = the inputs' (float32)

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        """tokens [B, L, dim_in] -> [B, L, 3*dim] (q, then k, then v)."""
        kernel = self.param("kernel", nn.initializers.xavier_uniform(),
                            (tokens.shape[-1], 3 * self.dim))
        bias = self.param("bias", nn.initializers.zeros, (3 * self.dim,))
        bias = jnp.asarray(bias).at[self.dim:2 * self.dim].set(0.0)
        if self.dtype is not None:
            tokens, kernel, bias = (x.astype(self.dtype) for x in (tokens, kernel, bias))
        return tokens @ kernel + bias


class SelfAttention(nn.Module):
    """Multi-head self-attention with PyTorch ``nn.MultiheadAttention`` semantics.

    One fused q/k/v projection (:class:`QKVProjection`), scaled dot products, dropout on the
    attention weights, output projection.
    """

    dim: int
    heads: int
    dropout: float
    dtype: Any = None  # compute dtype of the matmuls; None = the inputs' (float32)

    @nn.compact
    def __call__(self, tokens: jax.Array, *, train: bool) -> jax.Array:
        """tokens [B, L, dim] -> [B, L, dim]."""
        batch, length, _ = tokens.shape
        head_dim = self.dim // self.heads
        qkv = QKVProjection(self.dim, dtype=self.dtype, name="qkv")(tokens)
        qkv = qkv.reshape(batch, length, 3, self.heads, head_dim)
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        scores = jnp.einsum("bqhd,bkhd->bhqk", query, key) / math.sqrt(head_dim)
        if self.dtype is not None:  # the softmax in float32: bf16 would round the weights
            scores = scores.astype(jnp.float32)
        weights = jax.nn.softmax(scores, axis=-1)
        weights = nn.Dropout(self.dropout, deterministic=not train)(weights)
        if self.dtype is not None:
            weights = weights.astype(self.dtype)
        attended = jnp.einsum("bhqk,bkhd->bqhd", weights, value).reshape(batch, length, self.dim)
        return _dense(self.dim, "out", self.dtype)(attended)


class EncoderLayer(nn.Module):
    """PyTorch ``TransformerEncoderLayer(norm_first=True, activation=relu)``.

    x = x + Dropout(SelfAttention(LN1(x)));  x = x + Dropout(W2 Dropout(ReLU(W1 LN2(x)))).
    """

    dim: int
    heads: int
    mlp_dim: int
    dropout: float
    dtype: Any = None  # compute dtype of the matmuls; None = the inputs' (float32)

    @nn.compact
    def __call__(self, tokens: jax.Array, *, train: bool) -> jax.Array:
        """tokens [B, L, dim] -> [B, L, dim] (float32 residual stream whatever ``dtype``)."""
        deterministic = not train
        attended = SelfAttention(self.dim, self.heads, self.dropout, self.dtype, name="self_attn")(
            _layer_norm("norm1")(tokens), train=train)
        tokens = tokens + nn.Dropout(self.dropout, deterministic=deterministic)(attended)
        hidden = nn.relu(_dense(self.mlp_dim, "linear1", self.dtype)(_layer_norm("norm2")(tokens)))
        hidden = nn.Dropout(self.dropout, deterministic=deterministic)(hidden)
        hidden = _dense(self.dim, "linear2", self.dtype)(hidden)
        return tokens + nn.Dropout(self.dropout, deterministic=deterministic)(hidden)


def l2_normalize(vectors: jax.Array, axis: int = -1) -> jax.Array:
    """vectors / ||vectors|| along ``axis`` (a 1e-12 floor on the norm avoids 0/0)."""
    squared = jnp.sum(vectors ** 2, axis=axis, keepdims=True)
    return vectors * jax.lax.rsqrt(jnp.maximum(squared, 1e-24))


class TokenClassifier(nn.Module):
    """The released token classifier (see the module docstring)."""

    config: ClassifierConfig

    @nn.compact
    def __call__(self, action_vectors: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        """action_vectors [B, seq_len, input_dim] float -> dict(
        logits [B, K], text_features [B, text_dim] (unit norm), attention [B, seq_len],
        pooling_entropy scalar (mean entropy of the pooling weights)).

        ``train=True`` enables dropout and needs a ``"dropout"`` RNG.
        """
        config = self.config
        if action_vectors.ndim != 3 or action_vectors.shape[1:] != (config.seq_len, config.input_dim):
            raise ValueError(
                f"TokenClassifier expects action_vectors [B, {config.seq_len}, {config.input_dim}], "
                f"got {tuple(action_vectors.shape)}")
        dtype = _compute_dtype(config.dtype)
        # float32 residual stream: a bf16 matmul's output is added to float32 values.
        tokens = _dense(config.dim, "token_embed", dtype)(action_vectors).astype(jnp.float32)
        # torch.randn(1, seq_len, dim) in the release.
        position_embedding = self.param("pos_embed", nn.initializers.normal(stddev=1.0),
                                        (1, config.seq_len, config.dim))
        tokens = tokens + position_embedding
        for index in range(config.depth):
            tokens = EncoderLayer(config.dim, config.heads, config.mlp_dim, config.dropout,
                                  dtype, name=f"layers_{index}")(tokens, train=train)
        # "sparse_pool" is the release's name for these parameters (checkpoint import).
        pooled, attention, pooling_entropy = AttentionPooling(
            config.dim, config.pooling, name="sparse_pool")(tokens)
        logits = _dense(config.num_classes, "cls_proj")(pooled)
        text_features = l2_normalize(_dense(config.text_dim, "clip_proj")(pooled))
        return {"logits": logits, "text_features": text_features, "attention": attention,
                "pooling_entropy": pooling_entropy}
