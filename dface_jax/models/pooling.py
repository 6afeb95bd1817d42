"""Attention pooling of the token classifier, and the sparse maps it can use.

:class:`AttentionPooling` pools the 16 token embeddings with one learned query. Its
weights over the tokens come from the scores by ``pooling``:

- ``"softmax"``: the release; the training loss penalises the weights' entropy (weight
  1e-3 in the release), so they become peaked but never exactly zero.
- ``"sparsemax"`` / ``"entmax15"``: exactly sparse weights (below).
- ``"mean"``: uniform weights (the mean-pooling ablation).

Its third output is that entropy, -sum_i w_i log(w_i + 1e-8) averaged over the batch (the
release calls it "sparsity"), for every pooling, so the numbers compare across ablations.

Sparsemax and entmax-1.5 map scores ``z`` to a probability vector that can hold exact
zeros:

- sparsemax (Martins & Astudillo, 2016): ``p = max(z - tau, 0)``, the Euclidean projection
  of ``z`` onto the simplex.
- entmax-1.5 (Peters, Niculae & Martins, 2019): ``p = max(z / 2 - tau, 0) ** 2``.

The threshold ``tau`` is found exactly by sorting (no iterations), so the output sums to 1
to float precision and the zeros are exact. The derivatives are given in closed form with
``jax.custom_jvp`` (reverse mode follows by transposition); differentiating through the
sort would give the right answer only almost everywhere and wastes work.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

POOLINGS = ("softmax", "sparsemax", "entmax15", "mean")
# PyTorch's LayerNorm default; Flax's is 1e-6, which would break parity with the release.
TORCH_LAYER_NORM_EPS = 1e-5
ENTROPY_EPS = 1e-8


def _sparsemax_last(scores: jax.Array) -> jax.Array:
    """Sparsemax over the last axis by sorting."""
    num = scores.shape[-1]
    sorted_desc = -jnp.sort(-scores, axis=-1)
    ranks = jnp.arange(1, num + 1, dtype=scores.dtype)
    cumulative = jnp.cumsum(sorted_desc, axis=-1)
    # Coordinate k (1-based, in sorted order) is in the support iff 1 + k z_(k) > sum_{j<=k} z_(j).
    in_support = 1.0 + ranks * sorted_desc > cumulative
    support_size = jnp.sum(in_support, axis=-1, keepdims=True)
    support_sum = jnp.take_along_axis(cumulative, support_size - 1, axis=-1)
    threshold = (support_sum - 1.0) / support_size.astype(scores.dtype)
    return jnp.maximum(scores - threshold, 0.0)


@jax.custom_jvp
def _sparsemax(scores: jax.Array) -> jax.Array:
    return _sparsemax_last(scores)


@_sparsemax.defjvp
def _sparsemax_jvp(primals, tangents):
    (scores,), (scores_dot,) = primals, tangents
    probs = _sparsemax(scores)
    # The Jacobian is diag(s) - s s^T / |s| with s the support indicator.
    support = (probs > 0).astype(scores.dtype)
    tangent_on_support = support * scores_dot
    mean_on_support = jnp.sum(tangent_on_support, axis=-1, keepdims=True) / jnp.sum(
        support, axis=-1, keepdims=True)
    return probs, tangent_on_support - support * mean_on_support


def _entmax15_last(scores: jax.Array) -> jax.Array:
    """Entmax-1.5 over the last axis by sorting (exact threshold)."""
    num = scores.shape[-1]
    # Shifting by the max does not change the result and keeps the squares small.
    halved = (scores - jnp.max(scores, axis=-1, keepdims=True)) / 2.0
    sorted_desc = -jnp.sort(-halved, axis=-1)
    ranks = jnp.arange(1, num + 1, dtype=scores.dtype)
    mean = jnp.cumsum(sorted_desc, axis=-1) / ranks
    mean_of_squares = jnp.cumsum(sorted_desc ** 2, axis=-1) / ranks
    # With the top-k coordinates in the support, sum_i (z_i - tau)^2 = 1 gives
    # tau_k = mean_k - sqrt((1 - k * var_k) / k); k is valid iff tau_k <= z_(k).
    discriminant = (1.0 - ranks * (mean_of_squares - mean ** 2)) / ranks
    candidate_thresholds = mean - jnp.sqrt(jnp.maximum(discriminant, 0.0))
    in_support = candidate_thresholds <= sorted_desc
    support_size = jnp.sum(in_support, axis=-1, keepdims=True)
    threshold = jnp.take_along_axis(candidate_thresholds, support_size - 1, axis=-1)
    return jnp.maximum(halved - threshold, 0.0) ** 2


@jax.custom_jvp
def _entmax15(scores: jax.Array) -> jax.Array:
    return _entmax15_last(scores)


@_entmax15.defjvp
def _entmax15_jvp(primals, tangents):
    (scores,), (scores_dot,) = primals, tangents
    probs = _entmax15(scores)
    # On the support p_i = (z_i/2 - tau)^2, so dp_i = sqrt(p_i) (dz_i - 2 dtau), and
    # sum_i dp_i = 0 fixes dtau: dp = g * (dz - <g, dz> / sum(g)) with g = sqrt(p).
    root = jnp.sqrt(probs)
    weighted = root * scores_dot
    shift = jnp.sum(weighted, axis=-1, keepdims=True) / jnp.sum(root, axis=-1, keepdims=True)
    return probs, weighted - root * shift


def sparsemax(scores: jax.Array, axis: int = -1) -> jax.Array:
    """Sparsemax of ``scores`` along ``axis``: same shape, non-negative, sums to 1, exact zeros."""
    moved = jnp.moveaxis(scores, axis, -1)
    return jnp.moveaxis(_sparsemax(moved), -1, axis)


def entmax15(scores: jax.Array, axis: int = -1) -> jax.Array:
    """Entmax-1.5 of ``scores`` along ``axis``: same shape, non-negative, sums to 1, exact zeros."""
    moved = jnp.moveaxis(scores, axis, -1)
    return jnp.moveaxis(_entmax15(moved), -1, axis)


def pooling_weights(scores: jax.Array, pooling: str) -> jax.Array:
    """Weights over tokens from scores [B, L] by ``pooling`` (one of ``POOLINGS``) -> [B, L]."""
    if pooling == "softmax":
        return jax.nn.softmax(scores, axis=-1)
    if pooling == "sparsemax":
        return sparsemax(scores, axis=-1)
    if pooling == "entmax15":
        return entmax15(scores, axis=-1)
    if pooling == "mean":
        return jnp.full_like(scores, 1.0 / scores.shape[-1])
    raise ValueError(f"pooling={pooling!r}; expected one of {POOLINGS}")


def attention_entropy(weights: jax.Array) -> jax.Array:
    """Mean over the batch of -sum_i w_i log(w_i + 1e-8) for weights [B, L] -> scalar;
    exact zeros contribute 0."""
    return -jnp.mean(jnp.sum(weights * jnp.log(weights + ENTROPY_EPS), axis=-1))


class AttentionPooling(nn.Module):
    """Pools tokens [B, L, dim] with one learned query into [B, dim].

    Returns (pooled [B, dim], weights [B, L], entropy of the weights, a scalar). The pooled
    vector is the weighted sum of the LayerNorm-ed tokens, as in the release.
    """

    dim: int
    pooling: str = "softmax"

    @nn.compact
    def __call__(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        normed = nn.LayerNorm(epsilon=TORCH_LAYER_NORM_EPS, name="ln")(tokens)
        # torch.randn(dim) in the release.
        query = self.param("query", nn.initializers.normal(stddev=1.0), (self.dim,))
        scores = normed @ query / math.sqrt(self.dim)
        weights = pooling_weights(scores, self.pooling)
        pooled = jnp.einsum("bl,bld->bd", weights, normed)
        return pooled, weights, attention_entropy(weights)
