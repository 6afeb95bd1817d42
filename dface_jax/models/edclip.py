"""EDCLIP: emotion prompts, the anchor-alignment loss, and the full classifier training loss.

Each emotion class gets a prompt "emotion + its facial actions" (the released prompts for
the classes the release covers, EMFACS-style action descriptions for the others). Prompts
are looked up by label *name*, so the order of a dataset's labels never has to match the
order of a prompt list. The ambiguous ``others`` class has no prompt: its samples are not
pulled towards any anchor but pushed away from all of them.

Label indices vs anchor rows: anchors hold only the emotion classes (no ``others``), in the
order of ``label_names`` with ``others`` skipped. :func:`anchor_rows` gives, for each class
index, its anchor row (or -1 for ``others``); :func:`total_loss` applies it.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

OTHERS_NAMES = ("others", "other")

# Keys are lower-case label names; synonyms used by the datasets' own sheets share a prompt.
_POSITIVE = "A positive expression with raised cheeks and pulled lip corners."
_SURPRISE = "A surprised expression with raised eyebrows and an open mouth."
_NEGATIVE = ("A negative expression with either lowered eyebrows, tightened eyelids, a raised "
             "upper lip, depressed lip corners, or a slight chin raise.")
_HAPPINESS = "A happy expression with raised cheeks and pulled lip corners."
_DISGUST = ("A disgusted expression with lowered eyebrows, tightened eyelids, a wrinkled nose, "
            "and a raised upper lip.")
_REPRESSION = "A repressed expression with depressed lip corners, and a slight chin raise."
_CONTEMPT = "A contemptuous expression with one lip corner raised slightly on one side."
_ANGER = "An angry expression with lowered brows, tightened eyelids, and pressed lips."
# Not in the release (it has no SAMM 7-class prompts); written from the EMFACS action units
# SynthFACS and the literature use: fear AU1+2+4+5+20, sadness AU1+4+15.
_FEAR = ("A fearful expression with raised and drawn together eyebrows, widened eyes, and lip "
         "corners stretched sideways.")
_SADNESS = ("A sad expression with the inner eyebrows raised and drawn together, and depressed "
            "lip corners.")

EMOTION_PROMPTS: dict[str, str] = {
    "negative": _NEGATIVE, "positive": _POSITIVE, "surprise": _SURPRISE,
    "happiness": _HAPPINESS, "happy": _HAPPINESS,
    "disgust": _DISGUST, "repression": _REPRESSION,
    "anger": _ANGER, "contempt": _CONTEMPT,
    "fear": _FEAR, "sadness": _SADNESS, "sad": _SADNESS,
}


def is_others(label_name: str) -> bool:
    """True for the class without a prompt (``others``/``other``, any case)."""
    return label_name.strip().lower() in OTHERS_NAMES


def class_prompts(label_names: Sequence[str]) -> tuple[str, ...]:
    """Prompts for the emotion classes of ``label_names``, in that order, skipping ``others``.

    Raises KeyError naming the unknown label and listing the known ones.
    """
    prompts = []
    for name in label_names:
        key = name.strip().lower()
        if key in OTHERS_NAMES:
            continue
        if key not in EMOTION_PROMPTS:
            raise KeyError(f"no EDCLIP prompt for label {name!r}; known labels are "
                           f"{sorted(EMOTION_PROMPTS)} and {list(OTHERS_NAMES)} (no prompt)")
        prompts.append(EMOTION_PROMPTS[key])
    if not prompts:
        raise ValueError(f"label_names {list(label_names)} has no emotion class with a prompt")
    return tuple(prompts)


def anchor_rows(label_names: Sequence[str]) -> np.ndarray:
    """int32 [K]: for class index k, its row in the anchors of ``class_prompts``, -1 for ``others``."""
    rows, next_row = [], 0
    for name in label_names:
        if is_others(name):
            rows.append(-1)
        else:
            rows.append(next_row)
            next_row += 1
    return np.asarray(rows, np.int32)


def edclip_loss(text_features: jax.Array, anchors: jax.Array, labels: jax.Array,
                others_mask: jax.Array, temperature: float = 0.07, others_margin: float = 0.2,
                others_weight: float = 0.2, sample_weights: jax.Array | None = None) -> jax.Array:
    """The EDCLIP alignment loss -> scalar.

    text_features [B, D] unit-norm clip embeddings; anchors [A, D] unit-norm emotion anchors
    (no ``others`` row, treated as constants); labels int [B]: anchor row of each sample
    (ignored where ``others_mask``); others_mask bool [B].
    Emotion samples: mean cross-entropy of softmax(cos / temperature) against their anchor.
    Others samples: others_weight * mean(relu(max_a cos - others_margin)).
    Either term is 0 when the batch has no sample of its kind. ``sample_weights`` [B] (0/1)
    drops samples (padding, or another fold's samples in a vmapped LOSO step).
    """
    anchors = jax.lax.stop_gradient(anchors)
    others_mask = jnp.asarray(others_mask, bool)  # a 0/1 int mask would break ``~`` below
    if sample_weights is None:
        sample_weights = jnp.ones(text_features.shape[0], text_features.dtype)
    cosine = text_features @ anchors.T  # [B, A]
    emotion_weight = sample_weights * (~others_mask)
    others_weight_per_sample = sample_weights * others_mask
    safe_labels = jnp.where(others_mask, 0, labels)
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels(cosine / temperature, safe_labels)
    supervised = jnp.sum(cross_entropy * emotion_weight) / jnp.maximum(jnp.sum(emotion_weight), 1.0)
    push_away = jax.nn.relu(jnp.max(cosine, axis=-1) - others_margin)
    others_term = jnp.sum(push_away * others_weight_per_sample) / jnp.maximum(
        jnp.sum(others_weight_per_sample), 1.0)
    return supervised + others_weight * others_term


def weighted_cross_entropy(logits: jax.Array, labels: jax.Array,
                           class_weights: jax.Array | None = None,
                           sample_weights: jax.Array | None = None) -> jax.Array:
    """PyTorch ``CrossEntropyLoss(weight=class_weights)``: sum_i w_{y_i} CE_i / sum_i w_{y_i}.

    logits [B, K], labels int [B], class_weights [K] or None (uniform), sample_weights [B]
    (0/1 mask) or None.
    """
    per_sample = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    weights = jnp.ones_like(per_sample) if class_weights is None else jnp.asarray(class_weights)[labels]
    if sample_weights is not None:
        weights = weights * sample_weights
    return jnp.sum(per_sample * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def total_loss(outputs: dict[str, jax.Array], labels: jax.Array, anchors: jax.Array | None,
               label_to_anchor: jax.Array, *, class_weights: jax.Array | None = None,
               sparsity_weight: float = 1e-3, edclip_weight: float = 0.3,
               temperature: float = 0.07, others_margin: float = 0.2, others_weight: float = 0.2,
               sample_weights: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The released training loss: CE + sparsity_weight * sparsity + edclip_weight * EDCLIP.

    outputs: the classifier's dict (logits, text_features, sparsity); labels int [B] class
    indices; anchors [A, D] or None (EDCLIP off, as when ``edclip_weight`` is 0);
    label_to_anchor int [K] from :func:`anchor_rows`. Returns (loss, dict of the terms).
    """
    label_to_anchor = jnp.asarray(label_to_anchor)
    classification = weighted_cross_entropy(outputs["logits"], labels, class_weights, sample_weights)
    if anchors is None or edclip_weight == 0:
        alignment = jnp.zeros((), classification.dtype)
    else:
        rows = label_to_anchor[labels]
        alignment = edclip_loss(outputs["text_features"], anchors, rows, rows < 0, temperature,
                                others_margin, others_weight, sample_weights)
    loss = classification + sparsity_weight * outputs["sparsity"] + edclip_weight * alignment
    return loss, {"classification": classification, "sparsity": outputs["sparsity"],
                  "edclip": alignment}
