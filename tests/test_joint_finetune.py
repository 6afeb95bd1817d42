"""Joint tokenizer fine-tuning during LOSO: the two losses reach only their own module, the
vmapped sweep equals the sequential reference, each fold's tokenizer moves on its own, and
the `loso` command and `load_classifier` work on such a run."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dface_jax.models.edclip import anchor_rows
from dface_jax.models.joint import TokenizerAndClassifier
from dface_jax.models.token_classifier import ClassifierConfig, TokenClassifier
from dface_jax.models.tokenizer import ActionTokenizer, TokenizerConfig, init_tokenizer
from dface_jax.loso import step, sweep
from dface_jax.tokens import cache as cache_lib, extract

TOKENIZER = TokenizerConfig(image_size=16, patch_size=4, dim=16, quant_dim=8, spatial_depth=1,
                            temporal_depth=1, decoder_depth=1, heads=2, dim_head=8, channels=1,
                            codebook_size=8, commitment_beta=0.25)
CLASSIFIER = ClassifierConfig(num_classes=3, input_dim=16, dim=8, depth=1, heads=2, mlp_dim=16,
                              dropout=0.0, text_dim=8)
LABEL_NAMES = ("negative", "positive", "surprise")


def _pairs(num_clips, seed=0):
    rng = np.random.default_rng(seed)
    onset = rng.random((num_clips, 16, 16, 1), np.float32)
    apex = np.clip(onset + 0.2 * rng.normal(size=onset.shape), 0, 1).astype(np.float32)
    return np.stack([onset, apex], axis=1)


@pytest.fixture(scope="module")
def pretrained():
    return init_tokenizer(TOKENIZER, jax.random.PRNGKey(7))["params"]


def _joint_model(pretrained):
    return step.LosoModel(TokenizerAndClassifier(TOKENIZER, CLASSIFIER), 3, {"tokenizer": pretrained})


def test_each_loss_reaches_only_its_own_module(pretrained):
    model = _joint_model(pretrained)
    pairs = jnp.asarray(_pairs(4))
    params = model.init_params(jax.random.PRNGKey(0), pairs[:1])
    jax.tree.map(np.testing.assert_array_equal, params["tokenizer"], pretrained)
    labels = jnp.asarray([0, 1, 2, 0])
    anchors = jnp.eye(3, 8)
    weights = jnp.ones(3)

    def total(params, weight):
        config = step.LosoTrainConfig(tokenizer_loss_weight=weight)
        outputs = model.apply(params, pairs, train=True, dropout_key=jax.random.PRNGKey(1))
        return step.loss_terms(outputs, labels, weights, anchors, anchor_rows(LABEL_NAMES), config)[0]

    gradient = jax.jit(jax.grad(total), static_argnums=1)
    grads = gradient(params, 0.1)
    # Reference for the tokenizer: 0.1 x the gradient of its own loss, computed directly.
    tokenizer_grads = jax.jit(jax.grad(lambda p: 0.1 * ActionTokenizer(TOKENIZER).apply(
        {"params": p}, pairs[:, 0], pairs[:, 1], train=True)["losses"]["total"]))(pretrained)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                 grads["tokenizer"], tokenizer_grads)
    # Reference for the classifier: its loss on the tokenizer's hard action vectors.
    vectors = ActionTokenizer(TOKENIZER).apply(
        {"params": pretrained}, ActionTokenizer(TOKENIZER).apply(
            {"params": pretrained}, pairs[:, 0], pairs[:, 1], method="encode"), method="embed_tokens")
    classifier_only = step.LosoModel(TokenClassifier(CLASSIFIER), 3)

    def classifier_loss(p):
        outputs = classifier_only.apply(p, vectors, train=True, dropout_key=jax.random.PRNGKey(1))
        return step.loss_terms(outputs, labels, weights, anchors, anchor_rows(LABEL_NAMES),
                              step.LosoTrainConfig())[0]

    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                 grads["classifier"], jax.jit(jax.grad(classifier_loss))(params["classifier"]))
    # Without the tokenizer term nothing reaches the tokenizer: the classifier's input is detached.
    assert all(float(jnp.abs(g).max()) == 0.0
               for g in jax.tree.leaves(gradient(params, 0.0)["tokenizer"]))


def test_joint_sweep_equals_sequential_and_every_fold_tunes_its_own_tokenizer(pretrained):
    pairs = _pairs(9, seed=1)
    subjects = np.asarray([f"s{i % 3}" for i in range(9)])
    labels = np.asarray([0, 1, 2, 1, 2, 0, 2, 0, 1], np.int32)
    data = step.LosoData(jnp.asarray(pairs), jnp.asarray(labels), jnp.asarray(anchor_rows(LABEL_NAMES)))
    model = _joint_model(pretrained)
    config = step.LosoTrainConfig(epochs=2, batch_size=3, learning_rate=1e-3, edclip_weight=0.0,
                                 tokenizer_loss_weight=0.1, seed=2)
    vmapped = sweep.train_folds(model, config, data, subjects)
    sequential = sweep.train_folds_sequential(model, config, data, subjects)
    np.testing.assert_allclose(vmapped.epoch_logits, sequential.epoch_logits, atol=1e-4)
    np.testing.assert_allclose(vmapped.train_loss, sequential.train_loss, atol=1e-5)
    decoder = lambda params: np.asarray(params["tokenizer"]["to_pixels"]["kernel"])
    tuned = decoder(vmapped.fold_params)
    np.testing.assert_allclose(tuned, decoder(sequential.fold_params), atol=1e-4)
    assert tuned.shape[0] == 3
    assert not np.allclose(tuned[0], pretrained["to_pixels"]["kernel"], atol=1e-5)  # it trained
    assert not np.allclose(tuned[0], tuned[1], atol=1e-5)             # each fold its own copy


def test_joint_config_errors(pretrained):
    with pytest.raises(ValueError, match="input_dim 32 != tokenizer dim 16"):
        TokenizerAndClassifier(TOKENIZER, ClassifierConfig(input_dim=32, text_dim=8)).init(
            jax.random.PRNGKey(0), jnp.zeros((1, 2, 16, 16, 1)))
    with pytest.raises(ValueError, match=r"pairs \[B, 2, H, W, C\]"):
        TokenizerAndClassifier(TOKENIZER, CLASSIFIER).init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))
    with pytest.raises(KeyError, match="'decoder_typo'.*do not belong"):
        step.LosoModel(TokenizerAndClassifier(TOKENIZER, CLASSIFIER), 3,
                      {"decoder_typo": pretrained}).init_params(jax.random.PRNGKey(0),
                                                                jnp.zeros((1, 2, 16, 16, 1)))


def test_loso_command_fine_tunes_the_tokenizer(tmp_path, pretrained):
    from dface_jax import cli
    from dface_jax.analysis import load_classifier
    from dface_jax.workdir import write_tokenizer

    write_tokenizer(tmp_path / "tok", pretrained,
                    ml_collections.ConfigDict({"tokenizer": TOKENIZER.to_dict()}), "test")
    pairs = _pairs(8, seed=3)
    samples = [{"onset": pair[0], "apex": pair[1], "label": i % 3, "subject": f"casme2/s{i % 4}",
                "dataset": "casme2", "clip_id": f"c{i}"} for i, pair in enumerate(pairs)]
    plain = extract.extract_tokens(pretrained, TOKENIZER, samples, label_names=LABEL_NAMES,
                                   batch_size=4, tokenizer_workdir=str(tmp_path / "tok"))
    cache_lib.save_token_cache(tmp_path / "plain.npz", plain)
    cache = extract.extract_tokens(pretrained, TOKENIZER, samples, label_names=LABEL_NAMES,
                                   batch_size=4, tokenizer_workdir=str(tmp_path / "tok"),
                                   keep_frames=True)
    assert cache["pair_frames"].shape == (8, 2, 16, 16, 1) and cache["pair_frames"].dtype == np.float16
    np.testing.assert_allclose(cache["pair_frames"], pairs, atol=2.5e-4)
    cache_lib.save_token_cache(tmp_path / "tokens.npz", cache)
    np.testing.assert_array_equal(cache_lib.load_token_cache(tmp_path / "tokens.npz")["pair_frames"],
                                  cache["pair_frames"])
    arguments = ["loso", "--config", "loso_composite.py:tiny", "--workdir", str(tmp_path / "run"),
                 "--config.finetune_tokenizer=True", "--config.train.epochs=2"]
    assert cli.main(arguments + ["--tokens", str(tmp_path / "plain.npz")]) == 2
    assert cli.main(arguments + ["--tokens", str(tmp_path / "tokens.npz")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["finetune_tokenizer"] is True and results["tokenizer_loss_weight"] == 0.1
    predictions = np.load(tmp_path / "run" / "predictions.npz")
    # The analysis loader gives the fold's own fine-tuned tokenizer with its classifier and
    # reproduces the run's predictions for that fold's held-out clips from the frames.
    classifier = load_classifier(tmp_path / "run", fold=1)
    held_out = predictions["subjects"] == classifier.held_out_subject
    frames = cache["pair_frames"][held_out].astype(np.float32)
    tokens = classifier.tokenizer.encode(frames[:, 0], frames[:, 1])
    np.testing.assert_allclose(classifier.logits(tokens), predictions["logits"][held_out], atol=1e-4)
