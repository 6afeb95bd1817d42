"""The released VQCodeTransformer's outputs, reproduced from its weights through our converter."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dface_jax.convert.classifier import (classifier_config_from_state_dict, convert_classifier,
                                          expected_classifier_shapes, load_released_classifier)
from dface_jax.convert.state_dict import load_state_dict
from dface_jax.models.token_classifier import TokenClassifier

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "released_dface_parity_small.npz"
FIXTURE_HEADS = 4  # the fixture's README: dim 64, depth 2, heads 4, mlp_dim 128


@pytest.fixture(scope="module")
def fixture():
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def released_state_dict():
    return load_state_dict(FIXTURE, prefix="classifier/")


def test_converted_classifier_matches_release(fixture, released_state_dict):
    config = classifier_config_from_state_dict(released_state_dict, heads=FIXTURE_HEADS)
    assert (config.num_classes, config.dim, config.depth, config.mlp_dim, config.text_dim) == (
        3, 64, 2, 128, 768)
    variables = convert_classifier(released_state_dict, config)
    model = TokenClassifier(config)
    # The converted tree has exactly the structure and shapes our module initialises.
    initial = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 512)))
    assert jax.tree.structure(initial) == jax.tree.structure(variables)
    assert jax.tree.leaves(jax.tree.map(lambda a, b: a.shape == b.shape, initial, variables)) == [
        True] * len(jax.tree.leaves(initial))

    outputs = model.apply(variables, jnp.asarray(fixture["classifier_input"]), train=False)
    np.testing.assert_allclose(outputs["logits"], fixture["classifier_logits"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(outputs["text_features"], fixture["classifier_text_features"],
                               atol=1e-5, rtol=0)
    np.testing.assert_allclose(outputs["attention"], fixture["classifier_attention"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(outputs["pooling_entropy"], fixture["classifier_sparsity"], atol=1e-5,
                               rtol=0)


def test_load_released_classifier_from_file(fixture):
    config, variables = load_released_classifier(FIXTURE, heads=FIXTURE_HEADS, prefix="classifier/",
                                                 pooling="softmax")
    outputs = TokenClassifier(config).apply(variables, jnp.asarray(fixture["classifier_input"]))
    np.testing.assert_allclose(outputs["logits"], fixture["classifier_logits"], atol=1e-5, rtol=0)


def test_dataparallel_prefix_is_accepted(fixture, released_state_dict):
    config = classifier_config_from_state_dict(released_state_dict, heads=FIXTURE_HEADS)
    prefixed = {"module." + key: value for key, value in released_state_dict.items()}
    plain = convert_classifier(released_state_dict, config)
    from_prefixed = convert_classifier(prefixed, config)
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, plain, from_prefixed)))


def test_renamed_key_is_refused_with_its_name(released_state_dict):
    config = classifier_config_from_state_dict(released_state_dict, heads=FIXTURE_HEADS)
    renamed = dict(released_state_dict)
    renamed["transformer.layers.1.linear9.weight"] = renamed.pop("transformer.layers.1.linear1.weight")
    with pytest.raises(ValueError) as error:
        convert_classifier(renamed, config)
    assert "missing key 'transformer.layers.1.linear1.weight'" in str(error.value)
    assert "unexpected key 'transformer.layers.1.linear9.weight'" in str(error.value)


def test_wrong_shape_is_refused(released_state_dict):
    config = classifier_config_from_state_dict(released_state_dict, heads=FIXTURE_HEADS)
    wrong = dict(released_state_dict)
    wrong["sparse_pool.query"] = np.zeros(65, np.float32)
    with pytest.raises(ValueError, match=r"'sparse_pool.query' has shape \(65,\), expected \(64,\)"):
        convert_classifier(wrong, config)


def test_release_scale_key_set():
    from dface_jax.models.token_classifier import ClassifierConfig
    shapes = expected_classifier_shapes(ClassifierConfig())
    assert shapes["transformer.layers.1.self_attn.in_proj_weight"] == (1536, 512)
    assert shapes["clip_proj.0.weight"] == (768, 512)
    assert len(shapes) == 10 + 2 * 12
