"""EDCLIP prompts by name, the alignment loss by hand, and the others push-away gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dface_jax.models.edclip import EMOTION_PROMPTS, anchor_rows, class_prompts
from dface_jax.models.losses import classifier_loss, edclip_loss, weighted_cross_entropy


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_prompts_follow_label_names_not_positions():
    composite = class_prompts(("negative", "positive", "surprise"))
    permuted = class_prompts(("Surprise", "NEGATIVE", "positive"))
    assert permuted == (composite[2], composite[0], composite[1])
    assert composite[1] == "A positive expression with raised cheeks and pulled lip corners."
    assert composite[2] == "A surprised expression with raised eyebrows and an open mouth."
    assert composite[0].startswith("A negative expression with either lowered eyebrows")


@pytest.mark.parametrize("labels,num_prompts", [
    (("happiness", "disgust", "repression", "surprise", "others"), 4),
    (("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"), 7),
    (("negative", "positive", "surprise"), 3),
])
def test_every_supported_label_set(labels, num_prompts):
    prompts = class_prompts(labels)
    assert len(prompts) == num_prompts and len(set(prompts)) == num_prompts
    rows = anchor_rows(labels)
    assert rows.tolist()[:num_prompts] == list(range(num_prompts))
    assert rows[-1] == (-1 if num_prompts < len(labels) else num_prompts - 1)


def test_others_in_the_middle_maps_to_no_anchor():
    labels = ("happiness", "others", "surprise")
    assert anchor_rows(labels).tolist() == [0, -1, 1]
    assert class_prompts(labels) == (EMOTION_PROMPTS["happiness"], EMOTION_PROMPTS["surprise"])


def test_unknown_label_lists_known_ones():
    with pytest.raises(KeyError, match=r"no EDCLIP prompt for label 'joy'; known labels are \[.*'anger'"):
        class_prompts(("joy", "surprise"))


def test_cross_entropy_part_matches_hand_computation():
    features = _unit([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3], [0.0, 0.0, 1.0]])
    anchors = _unit([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = np.array([0, 0, 1])
    cos = features @ anchors.T
    hand = []
    for i in range(3):
        logits = cos[i] / 0.07
        hand.append(np.log(np.exp(logits).sum()) - logits[labels[i]])
    loss = edclip_loss(jnp.asarray(features), jnp.asarray(anchors), jnp.asarray(labels),
                       jnp.zeros(3, bool))
    np.testing.assert_allclose(loss, np.mean(hand), rtol=1e-5)


def test_others_term_matches_hand_computation_and_margin():
    anchors = _unit([[1.0, 0.0], [0.0, 1.0]])
    features = _unit([[0.9, 0.1], [-1.0, -1.0]])  # near anchor 0; far from both
    others = jnp.array([True, True])
    loss = edclip_loss(jnp.asarray(features), jnp.asarray(anchors), jnp.array([0, 0]), others)
    cos_max = (features @ anchors.T).max(-1)
    np.testing.assert_allclose(loss, 0.2 * np.mean(np.maximum(cos_max - 0.2, 0.0)), rtol=1e-6)
    assert cos_max[1] < 0.2  # the second sample is already beyond the margin: no loss from it


def test_others_gradient_moves_feature_away_from_nearest_anchor():
    anchors = jnp.asarray(_unit([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    raw = jnp.array([[0.8, 0.5, 0.1]])

    def loss_fn(raw):
        features = raw / jnp.linalg.norm(raw, axis=-1, keepdims=True)
        return edclip_loss(features, anchors, jnp.array([0]), jnp.array([True]))

    grad = jax.grad(loss_fn)(raw)
    moved = raw - 0.1 * grad
    before = (raw / jnp.linalg.norm(raw)) @ anchors.T
    after = (moved / jnp.linalg.norm(moved)) @ anchors.T
    assert float(after[0, 0]) < float(before[0, 0])  # the nearest anchor
    assert float(after.max()) < float(before.max())


def test_masks_and_empty_terms():
    features = jnp.asarray(_unit([[1.0, 0.0], [0.0, 1.0]]))
    anchors = jnp.asarray(_unit([[1.0, 0.0], [0.0, 1.0]]))
    as_ints = edclip_loss(features, anchors, jnp.array([1, 0]), jnp.array([0, 1]))
    as_bools = edclip_loss(features, anchors, jnp.array([1, 0]), jnp.array([False, True]))
    np.testing.assert_allclose(as_ints, as_bools, rtol=1e-6)
    # Only others samples, all beyond the margin: the loss is exactly zero, not NaN.
    far = jnp.asarray(_unit([[-1.0, -1.0]]))
    assert float(edclip_loss(far, anchors, jnp.array([0]), jnp.array([True]))) == 0.0


def test_weighted_cross_entropy_is_torch_weighted_mean():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = jnp.array([0, 1, 1])
    weights = jnp.array([3.0, 0.5])
    per = -jax.nn.log_softmax(logits)[jnp.arange(3), labels]
    expected = (3.0 * per[0] + 0.5 * per[1] + 0.5 * per[2]) / 4.0
    np.testing.assert_allclose(weighted_cross_entropy(logits, labels, weights), expected, rtol=1e-6)


def test_classifier_loss_maps_class_labels_to_anchor_rows():
    label_names = ("happiness", "others", "surprise")
    anchors = jnp.asarray(_unit([[1.0, 0.0], [0.0, 1.0]]))
    outputs = {"logits": jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 2.0, 0.0]]),
               "text_features": jnp.asarray(_unit([[1.0, 0.1], [0.2, 1.0], [1.0, 1.0]])),
               "pooling_entropy": jnp.array(2.0)}
    labels = jnp.array([0, 2, 1])
    loss, terms = classifier_loss(outputs, labels, anchors, anchor_rows(label_names))
    expected_edclip = (
        (edclip_loss(outputs["text_features"][:2], anchors, jnp.array([0, 1]), jnp.array([False, False]))
         * 1.0)
        + 0.2 * (jnp.max(outputs["text_features"][2] @ anchors.T) - 0.2))
    np.testing.assert_allclose(terms["edclip"], expected_edclip, rtol=1e-5)
    np.testing.assert_allclose(
        loss, terms["classification"] + 1e-3 * 2.0 + 0.3 * terms["edclip"], rtol=1e-6)
    no_edclip, terms_off = classifier_loss(outputs, labels, None, anchor_rows(label_names))
    assert float(terms_off["edclip"]) == 0.0
    np.testing.assert_allclose(no_edclip, terms["classification"] + 2e-3, rtol=1e-6)
