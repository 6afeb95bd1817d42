"""The losses of the two models, side by side.

Tokenizer (C-VQ-VAE): the pixel reconstruction error of the driving frame plus the
quantizer's loss. Token classifier: class-weighted cross-entropy, the pooling-entropy
penalty, and EDCLIP, which pulls each clip embedding towards its emotion's text anchor
and pushes clips of the ambiguous ``others`` class away from every anchor.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def reconstruction_loss(recon: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error over all pixels, in float32: scalar."""
    error = recon.astype(jnp.float32) - target.astype(jnp.float32)
    return jnp.mean(jnp.square(error))


def tokenizer_losses(recon: jax.Array, driving: jax.Array,
                     vq_losses: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """The tokenizer's losses: ``recon``, the quantizer's ``vq`` (= ``codebook`` +
    ``commitment``), and ``total`` = recon + vq, the scalar a train step minimises."""
    recon_value = reconstruction_loss(recon, driving)
    return {"recon": recon_value, "vq": vq_losses["vq"], "codebook": vq_losses["codebook"],
            "commitment": vq_losses["commitment"], "total": recon_value + vq_losses["vq"]}


def edclip_loss(text_features: jax.Array, anchors: jax.Array, labels: jax.Array,
                others_mask: jax.Array, temperature: float = 0.07, others_margin: float = 0.2,
                others_weight: float = 0.2) -> jax.Array:
    """The EDCLIP alignment loss -> scalar.

    text_features [B, D] unit-norm clip embeddings; anchors [A, D] unit-norm emotion anchors
    (no ``others`` row, treated as constants); labels int [B]: anchor row of each sample
    (ignored where ``others_mask``); others_mask bool [B].
    Emotion samples: mean cross-entropy of softmax(cos / temperature) against their anchor.
    Others samples: others_weight * mean(relu(max_a cos - others_margin)).
    Either term is 0 when the batch has no sample of its kind.
    """
    anchors = jax.lax.stop_gradient(anchors)
    others_mask = jnp.asarray(others_mask, bool)  # a 0/1 int mask would break ``~`` below
    cosine = text_features @ anchors.T  # [B, A]
    emotion_weight = (~others_mask).astype(text_features.dtype)
    others_weight_per_sample = others_mask.astype(text_features.dtype)
    safe_labels = jnp.where(others_mask, 0, labels)
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels(cosine / temperature, safe_labels)
    supervised = jnp.sum(cross_entropy * emotion_weight) / jnp.maximum(jnp.sum(emotion_weight), 1.0)
    push_away = jax.nn.relu(jnp.max(cosine, axis=-1) - others_margin)
    others_term = jnp.sum(push_away * others_weight_per_sample) / jnp.maximum(
        jnp.sum(others_weight_per_sample), 1.0)
    return supervised + others_weight * others_term


def weighted_cross_entropy(logits: jax.Array, labels: jax.Array,
                           class_weights: jax.Array | None = None) -> jax.Array:
    """PyTorch ``CrossEntropyLoss(weight=class_weights)``: sum_i w_{y_i} CE_i / sum_i w_{y_i}.

    logits [B, K], labels int [B], class_weights [K] or None (uniform).
    """
    per_sample = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    weights = jnp.ones_like(per_sample) if class_weights is None else jnp.asarray(class_weights)[labels]
    return jnp.sum(per_sample * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def classifier_loss(outputs: dict[str, jax.Array], labels: jax.Array, anchors: jax.Array | None,
                    label_to_anchor: jax.Array, *, class_weights: jax.Array | None = None,
                    pooling_entropy_weight: float = 1e-3, edclip_weight: float = 0.3,
                    temperature: float = 0.07, others_margin: float = 0.2,
                    others_weight: float = 0.2) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The released training loss: CE + pooling_entropy_weight * pooling entropy +
    edclip_weight * EDCLIP.

    outputs: the classifier's dict (logits, text_features, pooling_entropy); labels int [B]
    class indices; anchors [A, D] or None (EDCLIP off, as when ``edclip_weight`` is 0);
    label_to_anchor int [K] from ``edclip.anchor_rows``. Returns (loss, dict of the terms).
    """
    label_to_anchor = jnp.asarray(label_to_anchor)
    classification = weighted_cross_entropy(outputs["logits"], labels, class_weights)
    if anchors is None or edclip_weight == 0:
        alignment = jnp.zeros((), classification.dtype)
    else:
        rows = label_to_anchor[labels]
        alignment = edclip_loss(outputs["text_features"], anchors, rows, rows < 0, temperature,
                                others_margin, others_weight)
    entropy = outputs["pooling_entropy"]
    loss = classification + pooling_entropy_weight * entropy + edclip_weight * alignment
    return loss, {"classification": classification, "pooling_entropy": entropy,
                  "edclip": alignment}
