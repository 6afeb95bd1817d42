"""TokenClassifier: shapes, pooling variants, dropout, config errors, and a learnable task."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dface_jax.models.pooling import POOLINGS, AttentionPooling, attention_entropy, sparsemax
from dface_jax.configs import ConfigError
from dface_jax.models.token_classifier import ClassifierConfig, TokenClassifier

TINY = dict(num_classes=3, seq_len=16, input_dim=8, dim=16, depth=1, heads=2, mlp_dim=32,
            text_dim=12)
_VARIABLES = {}


def _init(config, batch=4):
    """Model, variables and inputs; the variables (the same for every pooling) are made once."""
    model = TokenClassifier(config)
    inputs = jax.random.normal(jax.random.PRNGKey(1), (batch, config.seq_len, config.input_dim))
    sizes = {key: value for key, value in config.to_dict().items() if key in TINY}
    key = tuple(sorted(sizes.items()))
    if key not in _VARIABLES:
        _VARIABLES[key] = jax.jit(TokenClassifier(ClassifierConfig(**sizes)).init)(
            jax.random.PRNGKey(0), inputs)
    return model, _VARIABLES[key], inputs


@pytest.mark.parametrize("pooling", POOLINGS)
def test_output_shapes_and_invariants(pooling):
    config = ClassifierConfig(**TINY, pooling=pooling)
    model, variables, inputs = _init(config)
    outputs = model.apply(variables, inputs)
    assert outputs["logits"].shape == (4, 3)
    assert outputs["text_features"].shape == (4, 12)
    assert outputs["attention"].shape == (4, 16)
    assert outputs["pooling_entropy"].shape == ()
    np.testing.assert_allclose(jnp.linalg.norm(outputs["text_features"], axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(outputs["attention"].sum(-1), 1.0, atol=1e-5)
    assert (outputs["attention"] >= 0).all()
    np.testing.assert_allclose(outputs["pooling_entropy"], attention_entropy(outputs["attention"]),
                               atol=1e-6)
    if pooling == "mean":
        np.testing.assert_allclose(outputs["attention"], 1 / 16, atol=1e-7)
        np.testing.assert_allclose(outputs["pooling_entropy"], np.log(16), atol=1e-5)


def test_released_default_sizes():
    config = ClassifierConfig()
    model = TokenClassifier(config)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((2, 16, 512)))["params"]
    assert shapes["layers_1"]["self_attn"]["qkv"]["kernel"].shape == (512, 1536)
    assert shapes["layers_1"]["linear1"]["kernel"].shape == (512, 512)
    assert shapes["clip_proj"]["kernel"].shape == (512, 768)
    assert "layers_2" not in shapes and config.heads == 8 and config.dropout == 0.2


def test_pooling_is_the_weighted_sum_of_layer_normed_tokens():
    tokens = jax.random.normal(jax.random.PRNGKey(3), (2, 16, 8)) * 3 + 1
    module = AttentionPooling(8, "sparsemax")
    variables = {"params": {"ln": {"scale": jnp.ones(8), "bias": jnp.zeros(8)},
                            "query": jnp.arange(8.0) * 4}}  # sharp scores -> exact zeros
    pooled, weights, _ = module.apply(variables, tokens)
    mean = tokens.mean(-1, keepdims=True)
    normed = (tokens - mean) / jnp.sqrt(tokens.var(-1, keepdims=True) + 1e-5)
    scores = normed @ variables["params"]["query"] / np.sqrt(8)
    assert (np.asarray(weights) == 0).any()
    np.testing.assert_allclose(weights, sparsemax(scores), atol=1e-6)
    np.testing.assert_allclose(pooled, jnp.einsum("bl,bld->bd", weights, normed), atol=1e-5)


def test_dropout_only_in_training():
    config = ClassifierConfig(**TINY)
    model, variables, inputs = _init(config)
    eval_a = model.apply(variables, inputs, train=False)["logits"]
    eval_b = model.apply(variables, inputs, train=False)["logits"]
    np.testing.assert_array_equal(eval_a, eval_b)
    train_a = model.apply(variables, inputs, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    train_b = model.apply(variables, inputs, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    assert not np.allclose(train_a["logits"], train_b["logits"])


def test_key_bias_changes_nothing_and_gets_exactly_zero_gradient():
    config = ClassifierConfig(**TINY)
    model, variables, inputs = _init(config)
    qkv_bias = variables["params"]["layers_0"]["self_attn"]["qkv"]["bias"]
    shifted = jax.tree.map(lambda x: x, variables)
    shifted["params"]["layers_0"]["self_attn"]["qkv"]["bias"] = qkv_bias.at[16:32].add(5.0)
    np.testing.assert_allclose(model.apply(shifted, inputs)["logits"],
                               model.apply(variables, inputs)["logits"], atol=1e-5)
    grads = jax.grad(lambda v: model.apply(v, inputs)["logits"].sum())(variables)
    bias_grad = np.asarray(grads["params"]["layers_0"]["self_attn"]["qkv"]["bias"])
    assert (bias_grad[16:32] == 0).all()
    assert np.abs(bias_grad[:16]).max() > 0 and np.abs(bias_grad[32:]).max() > 0


def test_wrong_input_shape_is_an_error():
    config = ClassifierConfig(**TINY)
    model, variables, _ = _init(config)
    with pytest.raises(ValueError, match=r"expects action_vectors \[B, 16, 8\], got \(2, 15, 8\)"):
        model.apply(variables, jnp.zeros((2, 15, 8)))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="pooling='topk'"):
        ClassifierConfig(pooling="topk")
    with pytest.raises(ValueError, match="dim=10 is not divisible by heads=4"):
        ClassifierConfig(dim=10, heads=4)
    with pytest.raises(ConfigError, match="no field.*'hidden'"):
        ClassifierConfig.from_dict({"hidden": 3})
    assert ClassifierConfig.from_dict(ClassifierConfig(**TINY).to_dict()) == ClassifierConfig(**TINY)


def test_learns_a_position_dependent_task():
    """The class is the sign pattern of one token position: only learnable through attention."""
    config = ClassifierConfig(**{**TINY, "num_classes": 2}, pooling="entmax15", dropout=0.0)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(64, 16, 8)).astype(np.float32)
    labels = (inputs[:, 5, 0] > 0).astype(np.int32)
    model = TokenClassifier(config)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), inputs[:1])["params"]
    optimizer = optax.adam(3e-3)
    state = optimizer.init(params)

    def loss_fn(params):
        logits = model.apply({"params": params}, inputs)["logits"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = optimizer.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    first = float(jax.jit(loss_fn)(params))
    for _ in range(100):
        params, state, loss = step(params, state)
    assert float(loss) < 0.5 * first


def test_bfloat16_compute_is_close_to_float32_and_keeps_float32_params():
    # Released sizes (dim 512, 2 layers, 8 heads) on random action vectors: bf16 rounds the
    # matmuls' inputs to 8 bits of mantissa (relative 2^-9 = 0.2%) over 2 layers.
    sizes = dict(num_classes=3, seq_len=16, input_dim=512, text_dim=64)
    inputs = jax.random.normal(jax.random.PRNGKey(1), (32, 16, 512))
    full = TokenClassifier(ClassifierConfig(**sizes))
    half = TokenClassifier(ClassifierConfig(**sizes, dtype="bfloat16"))
    variables = full.init(jax.random.PRNGKey(0), inputs)
    # Same parameter tree, all float32, whatever the compute dtype.
    half_shapes = jax.eval_shape(half.init, jax.random.PRNGKey(0), inputs)
    assert jax.tree.structure(half_shapes) == jax.tree.structure(variables)
    assert {leaf.dtype for leaf in jax.tree.leaves(half_shapes)} == {jnp.dtype(jnp.float32)}
    reference, rounded = full.apply(variables, inputs), half.apply(variables, inputs)
    for name in ("logits", "text_features", "attention"):
        assert rounded[name].dtype == jnp.float32, name
    scale = float(jnp.max(jnp.abs(reference["logits"])))
    error = float(jnp.max(jnp.abs(rounded["logits"] - reference["logits"])))
    assert 0 < error < 0.03 * scale, (error, scale)  # stated tolerance: 3% of the logits' range
    np.testing.assert_allclose(rounded["attention"], reference["attention"], atol=0.02)
    assert np.mean(np.argmax(rounded["logits"], -1) == np.argmax(reference["logits"], -1)) >= 0.9


def test_compute_dtype_defaults_to_float32_and_refuses_others():
    # float32 equals the release bit for bit: tests/test_parity_classifier.py.
    assert ClassifierConfig().dtype == "float32"
    with pytest.raises(ConfigError, match="dtype"):
        ClassifierConfig.from_dict(dict(TINY, dtype="float16"))
