"""Vector quantizer of the action tokenizer (Flax Linen) and its codebook maintenance.

Codebook ``K x D`` (default 32 x 32), nearest code by squared Euclidean distance. The
gradient through the quantizer is one of

- ``"straight_through"`` (default): the decoder gets ``z + stop_gradient(q - z)``, so the
  encoder receives the decoder's gradient unchanged; the codebook learns from the codebook
  loss ``|sg(z) - q|^2`` and the encoder is held near its code by the commitment loss
  ``beta |z - sg(q)|^2``;
- ``"nsvq"``: noise substitution, as in the released model: ``z + (|z - q| / |v| + eps) v``
  with ``v ~ N(0, I)``; the codebook learns through ``|z - q|`` and no extra loss is added
  (the release adds none). Needs an rng named ``"nsvq"`` when ``train=True``.

In eval mode (``train=False``) both return the hard codes ``q``.

Dead codes: :func:`restart_dead_codes` is a pure function the training loop calls on a
schedule with the code counts it summed over a window (``code_counts`` of each step) and
current encoder outputs (``action_latents``).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

NSVQ_RNG = "nsvq"
# The release's epsilon in the NSVQ noise scale and in the perplexity log.
NSVQ_EPS = 1e-12
QUANTIZERS = ("straight_through", "nsvq")


def nearest_codes(latents: jax.Array, codebook: jax.Array) -> jax.Array:
    """Index of the nearest codebook row for each latent: [N, D], [K, D] -> int32 [N].

    Computed as |z|^2 - 2 z.c + |c|^2 in float32 at full matmul precision (the release's
    formula, so the argmin agrees with it exactly; ties go to the lowest index).
    """
    latents = latents.astype(jnp.float32)
    codebook = codebook.astype(jnp.float32)
    cross = jnp.matmul(latents, codebook.T, precision=jax.lax.Precision.HIGHEST)
    distances = (jnp.sum(latents ** 2, axis=1, keepdims=True) - 2.0 * cross
                 + jnp.sum(codebook ** 2, axis=1)[None, :])
    return jnp.argmin(distances, axis=1).astype(jnp.int32)


def code_usage_metrics(indices: jax.Array, num_codes: int) -> dict[str, jax.Array]:
    """Per-batch usage: ``code_counts`` int32 [K], ``perplexity`` and ``codes_in_use``.

    Perplexity is exp(entropy) of the batch's code histogram: K when every code is used
    equally, 1 when one code takes everything.
    """
    counts = jnp.bincount(indices.reshape(-1), length=num_codes).astype(jnp.int32)
    probs = counts.astype(jnp.float32) / jnp.maximum(indices.size, 1)
    perplexity = jnp.exp(-jnp.sum(probs * jnp.log(probs + NSVQ_EPS)))
    return {"code_counts": counts, "perplexity": perplexity,
            "codes_in_use": jnp.sum(counts > 0).astype(jnp.int32)}


class VectorQuantizer(nn.Module):
    """Quantizes latents [..., D] against a K x D codebook.

    Returns a dict: ``quantized`` [..., D] (what the decoder gets: straight-through or
    NSVQ output in training, hard codes in eval), ``hard_quantized`` [..., D], ``indices``
    int32 [...], ``losses`` (``codebook``, ``commitment``, ``vq`` = their sum; zeros where
    the mode has none), ``code_counts`` int32 [K], ``perplexity``, ``codes_in_use``.
    """

    num_codes: int = 32
    code_dim: int = 32
    beta: float = 0.25
    quantizer: str = "straight_through"

    def setup(self):
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}")
        # N(0, 1) codes as in the release.
        self.codebook = self.param("codebook", nn.initializers.normal(1.0),
                                   (self.num_codes, self.code_dim))

    def lookup(self, indices: jax.Array) -> jax.Array:
        """Codebook rows of ``indices`` int [...] -> [..., D]."""
        return jnp.take(self.codebook, indices, axis=0)

    def __call__(self, latents: jax.Array, *, train: bool) -> dict[str, Any]:
        batch_shape = latents.shape[:-1]
        flat_latents = latents.reshape(-1, self.code_dim).astype(jnp.float32)
        indices = nearest_codes(flat_latents, self.codebook)
        hard = jnp.take(self.codebook, indices, axis=0)
        zero = jnp.zeros((), jnp.float32)
        codebook_loss = commitment_loss = zero

        if self.quantizer == "nsvq":
            quantized = hard
            if train:
                noise = jax.random.normal(self.make_rng(NSVQ_RNG), flat_latents.shape)
                residual_norm = jnp.linalg.norm(flat_latents - hard, axis=1, keepdims=True)
                noise_norm = jnp.linalg.norm(noise, axis=1, keepdims=True)
                quantized = flat_latents + (residual_norm / noise_norm + NSVQ_EPS) * noise
        else:
            codebook_loss = jnp.mean(jnp.square(jax.lax.stop_gradient(flat_latents) - hard))
            commitment_loss = self.beta * jnp.mean(
                jnp.square(flat_latents - jax.lax.stop_gradient(hard)))
            quantized = hard
            if train:
                quantized = flat_latents + jax.lax.stop_gradient(hard - flat_latents)

        usage = code_usage_metrics(indices, self.num_codes)

        return {
            "quantized": quantized.reshape(*batch_shape, self.code_dim),
            "hard_quantized": hard.reshape(*batch_shape, self.code_dim),
            "indices": indices.reshape(batch_shape),
            "losses": {"codebook": codebook_loss, "commitment": commitment_loss,
                       "vq": codebook_loss + commitment_loss},
            **usage,
        }


def _get_path(tree: dict, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def _replace_path(tree: dict, path: tuple[str, ...], value) -> dict:
    """A copy of the nested dict ``tree`` with ``tree[path]`` set to ``value``."""
    if not path:
        return value
    head, *rest = path
    if head not in tree:
        raise KeyError(f"no {head!r} in the tree (keys: {sorted(tree)})")
    return {**tree, head: _replace_path(tree[head], tuple(rest), value)}


def restart_dead_codes(params: dict, code_counts: jax.Array, latents: jax.Array,
                       rng: jax.Array, *, min_count: int = 1,
                       path: tuple[str, ...] = ("quantizer",)) -> tuple[dict, jax.Array]:
    """Replaces codes used fewer than ``min_count`` times by random current encoder outputs.

    Args:
      params: the model params; the codebook is at ``path + ("codebook",)`` [K, D].
      code_counts: int [K], how often each code was picked over the window (the sum of
        the steps' ``code_counts``).
      latents: [..., D] current encoder outputs (``action_latents`` of a batch).
      rng: picks which latents (with replacement, so it works for any batch size).
      min_count: codes with fewer uses are dead.
    Returns:
      (new params, number of restarted codes int32). Live codes
      are returned unchanged. Jit-friendly (no data-dependent shapes).
    """
    codebook = _get_path(params, path + ("codebook",))
    flat_latents = latents.reshape(-1, codebook.shape[1]).astype(codebook.dtype)
    picks = jax.random.randint(rng, (codebook.shape[0],), 0, flat_latents.shape[0])
    dead = code_counts < min_count
    new_codebook = jnp.where(dead[:, None], flat_latents[picks], codebook)
    params = _replace_path(params, path + ("codebook",), new_codebook)
    return params, jnp.sum(dead).astype(jnp.int32)
