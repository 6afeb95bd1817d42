"""STSTNet and OFF-ApexNet (dface_jax/models/flow_baselines.py): the published layer
shapes, training lowers the loss on a tiny batch (through the LOSO loop's model wrapper,
BatchNorm statistics included), the LOSO experiment reads the cache's flow, and `compare`
lists both baselines."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dface_jax.loso import experiment as experiment_lib, step
from dface_jax.models.flow_baselines import OFFApexNet, OFFApexNetConfig, STSTNet, STSTNetConfig
from dface_jax.tokens import cache as cache_lib
from test_loso import _random_cache  # the same 12-clip cache the LOSO tests use

LABEL_NAMES = ("negative", "positive", "surprise")


def _flow_batch(batch=8, channels=3, seed=0):
    """Flow images whose class is the sign pattern of the mean horizontal motion (learnable)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(batch) % 3
    flow = rng.normal(0, 0.3, (batch, 28, 28, channels)).astype(np.float32)
    flow[:, 7:21, 7:21, 0] += (labels[:, None, None] - 1.0) * 1.5
    return jnp.asarray(flow), jnp.asarray(labels, jnp.int32)


def _param_shapes(params):
    return {"/".join(k.key for k in path): leaf.shape
            for path, leaf in jax.tree_util.tree_leaves_with_path(params)}


def test_ststnet_layers_as_published():
    module = STSTNet(STSTNetConfig(num_classes=3))
    flow, _ = _flow_batch()
    variables = module.init(jax.random.PRNGKey(0), flow, train=False)
    shapes = _param_shapes(variables["params"])
    # Three streams of 3, 5 and 8 3x3 filters on (u, v, strain); 16 x 5 x 5 = 400 features.
    assert shapes["Stream_0_Conv/kernel"] == (3, 3, 3, 3)
    assert shapes["Stream_1_Conv/kernel"] == (3, 3, 3, 5)
    assert shapes["Stream_2_Conv/kernel"] == (3, 3, 3, 8)
    assert shapes["Dense_0/kernel"] == (400, 3)
    assert set(variables) == {"params", "batch_stats"}
    assert module.apply(variables, flow, train=False).shape == (8, 3)
    with pytest.raises(ValueError, match=r"STSTNet expects flow images \[B, h, w, 3\]"):
        module.apply(variables, flow[..., :2], train=False)


def test_off_apexnet_layers_as_published():
    module = OFFApexNet(OFFApexNetConfig(num_classes=3))
    flow, _ = _flow_batch(channels=2)
    params = module.init(jax.random.PRNGKey(0), flow, train=False)["params"]
    shapes = _param_shapes(params)
    for stream in ("horizontal", "vertical"):  # one 1-channel stream per flow component
        assert shapes[f"{stream}_Conv_0/kernel"] == (5, 5, 1, 6)
        assert shapes[f"{stream}_Conv_1/kernel"] == (5, 5, 6, 16)
    # 2 streams x 7 x 7 x 16 = 1568 -> 1024 -> 1024 -> 3: 2.66 M parameters in all.
    assert shapes["Dense_0/kernel"] == (1568, 1024)
    assert shapes["Dense_1/kernel"] == (1024, 1024)
    assert shapes["Output/kernel"] == (1024, 3)
    assert sum(p.size for p in jax.tree.leaves(params)) == 2_664_475
    assert module.apply({"params": params}, flow, train=False).shape == (8, 3)
    # The flow is scaled per clip: the logits do not depend on the motion's amplitude.
    np.testing.assert_allclose(module.apply({"params": params}, 4.0 * flow, train=False),
                               module.apply({"params": params}, flow, train=False), atol=1e-4)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        OFFApexNetConfig(kernel_size=4)


@pytest.mark.parametrize("name", ["ststnet", "off_apexnet"])
def test_training_lowers_the_loss_on_a_tiny_batch(name):
    if name == "ststnet":
        module, channels = STSTNet(STSTNetConfig(num_classes=3)), 3
    else:
        module = OFFApexNet(OFFApexNetConfig(num_classes=3, hidden=(32,)))
        channels = 2
    model = step.LosoModel(module, 3)
    flow, labels = _flow_batch(channels=channels)
    params, model_state = model.init_variables(jax.random.PRNGKey(0), flow)
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)

    def loss_fn(params, model_state, key):
        outputs = model.apply(params, flow, train=True, dropout_key=key, model_state=model_state)
        loss = optax.softmax_cross_entropy_with_integer_labels(outputs["logits"], labels).mean()
        return loss, outputs.get("model_state", model_state)

    @jax.jit
    def train_step(params, opt_state, model_state, key):
        (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, model_state, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, model_state, loss

    def eval_loss(params, model_state):
        logits = model.apply(params, flow, train=False, model_state=model_state)["logits"]
        return float(optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean())

    before = eval_loss(params, model_state)
    for index in range(40):
        params, opt_state, new_state, _ = train_step(params, opt_state, model_state,
                                                     jax.random.PRNGKey(index))
        if name == "ststnet":  # BatchNorm's running statistics move with training
            assert set(new_state) == {"batch_stats"}
        model_state = new_state
    after = eval_loss(params, model_state)
    assert after < 0.5 * before, (before, after)


def test_experiment_reads_the_flow_and_refuses_a_cache_without_it():
    from dface_jax.configs import load_config

    cache = _random_cache()
    for model, channels in (("ststnet", 3), ("off_apexnet", 2)):
        config = load_config("loso_composite.py:tiny", [f"--config.model={model}",
                                                        "--config.train.edclip_weight=0"])
        built = experiment_lib.build_experiment(config, cache)
        assert built.data.inputs.shape == (12, 28, 28, channels) and built.anchors is None
        np.testing.assert_array_equal(built.data.inputs[..., :2], cache["optical_flow"])
    np.testing.assert_array_equal(built.data.inputs[..., :2], cache["optical_flow"])
    old = {k: v for k, v in cache.items() if k not in cache_lib.FLOW_FIELDS}
    with pytest.raises(cache_lib.TokenCacheError, match="old.npz: no optical flow"):
        experiment_lib.build_experiment(config, old, source="old.npz")
    with pytest.raises(ValueError, match="ststnet baseline has no text head"):
        experiment_lib.build_experiment(
            load_config("loso_composite.py:tiny", ["--config.model=ststnet"]), cache)


@pytest.mark.slow
def test_compare_lists_the_flow_baselines_on_a_synthfacs_cache(tmp_path):
    """Real SynthFACS clips through extract_tokens (tiny random tokenizer: the flow is
    computed from the frames whatever the tokens are), then `compare` with both baselines."""
    from data_pipelines.synthetic import me_clips
    from dface_jax import cli
    from dface_jax.models.tokenizer import TokenizerConfig, init_tokenizer
    from dface_jax.tokens import extract

    clips = [c for c in me_clips(preset="composite", size=32, seed=0)
             if c.dataset == "casme2" and c.composite_label is not None][:16]
    tokenizer = TokenizerConfig(image_size=32, patch_size=8, dim=16, spatial_depth=1,
                                temporal_depth=1, decoder_depth=1, heads=2, dim_head=8,
                                channels=1, codebook_size=8)
    params = init_tokenizer(tokenizer, jax.random.PRNGKey(0))["params"]
    samples = [{"onset": c.frames[c.onset_index], "apex": c.frames[c.apex_index],
                "label": LABEL_NAMES.index(c.composite_label),
                "subject": f"{c.dataset}/{c.subject}", "dataset": c.dataset, "clip_id": c.clip_id}
               for c in clips]
    cache = extract.extract_tokens(params, tokenizer, samples, label_names=LABEL_NAMES,
                                   difference_size=8)
    assert cache["optical_flow"].shape == (16, 28, 28, 2)
    assert np.abs(cache["optical_flow"]).max() > 0.01  # the synthetic faces move
    cache_lib.save_token_cache(tmp_path / "tokens.npz", cache)
    assert cli.main(["compare", "--config", "loso_composite.py:tiny", "--tokens",
                     str(tmp_path / "tokens.npz"), "--workdir", str(tmp_path / "cmp"),
                     "--seeds", "0", "--variants", "dface,ststnet,off_apexnet"]) == 0
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert {"ststnet", "off_apexnet"} <= set(comparison["rows"])
    assert "DIS optical flow" in comparison["flow_method"]
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| STSTNet (onset-apex flow and strain) |" in table
    assert "| OFF-ApexNet (onset-apex flow) |" in table
    results = json.loads((tmp_path / "cmp" / "ststnet" / "results.json").read_text())
    assert results["model"] == "ststnet" and results["text_encoder"] is None
    assert "Text encoder: none (the ststnet model reads no text)" in (
        tmp_path / "cmp" / "ststnet" / "results.md").read_text()
