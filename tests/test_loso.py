"""LOSO: the vmapped all-folds sweep against the sequential reference, minibatch sampling,
a learnable task, the oracle-epoch protocol, the `loso` command's workdir, the comparison."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dface_jax import metrics
from dface_jax.models.edclip import anchor_rows
from dface_jax.models.token_classifier import ClassifierConfig, TokenClassifier
from dface_jax.loso import compare, experiment as experiment_lib, protocol, step, sweep
from dface_jax.report import tables
from dface_jax.loso import folds as folds_lib
from dface_jax.tokens import cache as cache_lib

LABEL_NAMES = ("negative", "positive", "surprise")


def _tiny_classifier(input_dim, text_dim=8, pooling="softmax"):
    config = ClassifierConfig(num_classes=3, input_dim=input_dim, dim=8, depth=1, heads=2,
                              mlp_dim=16, dropout=0.2, text_dim=text_dim, pooling=pooling)
    return step.LosoModel(TokenClassifier(config), 3)


def _random_task(num_subjects=5, clips_per_subject=3, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    num_clips = num_subjects * clips_per_subject
    subjects = np.asarray([f"s{i % num_subjects}" for i in range(num_clips)])
    labels = rng.integers(0, 3, num_clips).astype(np.int32)
    vectors = rng.normal(size=(num_clips, 16, dim)).astype(np.float32)
    data = step.LosoData(jnp.asarray(vectors), jnp.asarray(labels), jnp.asarray(anchor_rows(LABEL_NAMES)))
    return data, subjects


def test_make_folds_hold_out_each_subject_once():
    held_out, folds = folds_lib.make_folds(["b", "a", "b", "c", "a", "b"])
    assert held_out == ["a", "b", "c"]
    assert folds.test_index.shape == (3, 3)  # subject b has the most clips (3)
    np.testing.assert_array_equal(folds.test_valid.sum(1), [2, 3, 1])
    np.testing.assert_array_equal(folds.train_mask[0], [True, False, True, True, False, True])
    tested = np.concatenate([folds.test_index[f][folds.test_valid[f]] for f in range(3)])
    assert sorted(tested.tolist()) == list(range(6))  # every clip is tested exactly once
    with pytest.raises(ValueError, match="at least 2 subjects"):
        folds_lib.make_folds(["a", "a"])


def test_epoch_batches_use_only_training_clips():
    train_mask = jnp.asarray([1, 1, 1, 1, 1, 0, 1, 1, 1, 0], bool)
    permuted = folds_lib.epoch_batches(jax.random.PRNGKey(0), train_mask, 2, 4)
    # 8 training clips, 2 steps of 4: each training clip exactly once per epoch.
    assert sorted(np.asarray(permuted).ravel().tolist()) == [0, 1, 2, 3, 4, 6, 7, 8]
    # 3 steps of 4 = 12 positions: the permutation, then its first 4 clips again.
    longer = np.asarray(folds_lib.epoch_batches(jax.random.PRNGKey(0), train_mask, 3, 4)).ravel()
    assert sorted(longer[:8].tolist()) == [0, 1, 2, 3, 4, 6, 7, 8]
    np.testing.assert_array_equal(longer[8:], longer[:4])


def test_class_weights_balance_the_training_classes():
    labels = jnp.asarray([0, 0, 0, 0, 0, 0, 1, 1, 2, 2], jnp.int32)
    train_mask = jnp.asarray([1, 1, 1, 1, 1, 0, 1, 1, 1, 0], bool)
    # training counts 5, 2, 1 of 8 clips: n_train / (K n_c)
    np.testing.assert_allclose(folds_lib.class_weights(train_mask, labels, 3),
                               [8 / 15, 8 / 6, 8 / 3], rtol=1e-6)
    only_two = jnp.asarray([1, 1, 0, 0, 0, 0, 1, 0, 0, 0], bool)  # no class-2 clip trains
    np.testing.assert_allclose(folds_lib.class_weights(only_two, labels, 3),
                               [3 / 6, 3 / 3, 0.0], rtol=1e-6)


def test_vmapped_sweep_equals_sequential_reference():
    data, subjects = _random_task()
    anchors = jnp.asarray(np.linalg.qr(np.random.default_rng(1).normal(size=(8, 3)))[0].T,
                          jnp.float32)
    model = _tiny_classifier(data.inputs.shape[-1])
    config = step.LosoTrainConfig(epochs=2, batch_size=4, seed=3)
    vmapped = sweep.train_folds(model, config, data, subjects, anchors)
    sequential = sweep.train_folds_sequential(model, config, data, subjects, anchors)
    assert vmapped.held_out_subjects == sequential.held_out_subjects == ["s0", "s1", "s2", "s3", "s4"]
    assert vmapped.epoch_logits.shape == (2, 15, 3) and vmapped.attention.shape == (15, 16)
    np.testing.assert_allclose(vmapped.epoch_logits, sequential.epoch_logits, atol=2e-5)
    np.testing.assert_allclose(vmapped.train_loss, sequential.train_loss, atol=2e-5)
    np.testing.assert_allclose(vmapped.attention, sequential.attention, atol=2e-5)
    steps = config.epochs * vmapped.steps_per_epoch
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(vmapped.fold_params),
                            jax.tree.leaves(sequential.fold_params)):
        assert a.shape[0] == 5
        if "qkv" in jax.tree_util.keystr(path) and a.ndim == 2:
            # The key bias has a zero gradient (softmax ignores a shift shared by all keys),
            # so Adam turns float rounding noise into steps of up to lr: compare it at that
            # scale, and the query and value biases exactly like everything else.
            key_bias = slice(8, 16)
            np.testing.assert_allclose(a[:, key_bias], b[:, key_bias], atol=2 * steps * config.learning_rate)
            a, b = np.delete(a, np.s_[8:16], axis=1), np.delete(b, np.s_[8:16], axis=1)
        np.testing.assert_allclose(a, b, atol=2e-5)
    # Folds really differ (own rng, own training set): not one model copied five times.
    kernel = jax.tree.leaves(vmapped.fold_params)[0]
    assert not np.allclose(kernel[0], kernel[1])


def test_cosine_schedule_sweep_equals_sequential_and_decays_the_steps():
    # loso_composite.py:synth_cosine30 trains with it: the vmapped sweep must agree with the
    # reference there too, and the schedule must actually shrink the late updates.
    data, subjects = _random_task(num_subjects=3)
    model = _tiny_classifier(data.inputs.shape[-1])
    runs = {}
    for schedule in ("constant", "cosine"):
        config = step.LosoTrainConfig(epochs=3, batch_size=4, seed=3, edclip_weight=0.0,
                                      lr_schedule=schedule, learning_rate=1e-2)
        runs[schedule] = sweep.train_folds(model, config, data, subjects)
    sequential = sweep.train_folds_sequential(model, config, data, subjects)
    np.testing.assert_allclose(runs["cosine"].epoch_logits, sequential.epoch_logits, atol=2e-5)
    change = {name: np.abs(np.diff(run.epoch_logits, axis=0)[-1]).mean()
              for name, run in runs.items()}
    # The last epoch's lr averages ~0.07 of the peak under cosine over 3 epochs.
    assert change["cosine"] < 0.5 * change["constant"], change


def test_pad_folds_repeats_fold_zero_up_to_a_multiple():
    held_out, folds = folds_lib.make_folds(["a", "b", "c", "a", "b"])
    keys = folds_lib.fold_keys(0, 3)
    padded_keys, padded = sweep.pad_folds(keys, folds, 4)
    assert padded_keys.shape == (4, 2) and padded.train_mask.shape == (4, 5)
    np.testing.assert_array_equal(padded_keys[:3], keys)
    np.testing.assert_array_equal(padded_keys[3], keys[0])
    for real, longer in zip(folds, padded):
        np.testing.assert_array_equal(longer[:3], real)
        np.testing.assert_array_equal(longer[3], real[0])
    same_keys, same = sweep.pad_folds(keys, folds, 3)  # already a multiple: unchanged
    assert same is folds and same_keys is keys


def test_bfloat16_classifier_sweep_mostly_agrees_with_float32():
    data, subjects = _random_task(num_subjects=4, clips_per_subject=6, dim=32)
    config = step.LosoTrainConfig(epochs=3, batch_size=4, edclip_weight=0.0)
    runs = {}
    for dtype in ("float32", "bfloat16"):
        classifier = ClassifierConfig(num_classes=3, input_dim=32, dim=32, depth=1, heads=2,
                                      mlp_dim=32, dropout=0.0, text_dim=8, dtype=dtype)
        runs[dtype] = sweep.train_folds(step.LosoModel(TokenClassifier(classifier), 3), config,
                                        data, subjects)
    full, half = runs["float32"].epoch_logits[-1], runs["bfloat16"].epoch_logits[-1]
    assert not np.array_equal(full, half)  # bf16 really ran
    # Same folds, same keys; rounding to bf16 moves the logits a little after 3 epochs.
    assert np.mean(full.argmax(-1) == half.argmax(-1)) >= 0.8
    assert np.max(np.abs(full - half)) < 0.1 * np.max(np.abs(full)) + 0.05


def test_learnable_task_high_uf1_and_oracle_not_below_honest():
    rng = np.random.default_rng(0)
    num_subjects, per_subject = 6, 12
    labels = np.tile(np.arange(3), num_subjects * per_subject // 3).astype(np.int32)
    subjects = np.repeat([f"s{i}" for i in range(num_subjects)], per_subject)
    codebook = rng.normal(size=(8, 6)).astype(np.float32)
    # Tokens encode the label: four label-specific codes at random positions, noise elsewhere.
    tokens = rng.integers(3, 8, (labels.size, 16))
    for clip, label in enumerate(labels):
        tokens[clip, rng.choice(16, 4, replace=False)] = label
    vectors = codebook[tokens] + 0.1 * rng.normal(size=(labels.size, 16, 6)).astype(np.float32)
    data = step.LosoData(jnp.asarray(vectors), jnp.asarray(labels), jnp.asarray(anchor_rows(LABEL_NAMES)))
    model = _tiny_classifier(6)
    config = step.LosoTrainConfig(epochs=16, batch_size=8, learning_rate=3e-3, edclip_weight=0.0)
    run = sweep.train_folds(model, config, data, subjects)
    honest = run.epoch_logits[-1].argmax(-1)
    assert metrics.uf1(labels, honest) > 0.9
    assert run.train_loss[:, -1].mean() < 0.5 * run.train_loss[:, 0].mean()
    chosen = protocol.oracle_epochs(run, labels, subjects)
    oracle = protocol.oracle_predictions(run, subjects, chosen)
    # Per subject the oracle keeps the epoch with the most correct: never fewer than the last.
    for fold, subject in enumerate(run.held_out_subjects):
        members = subjects == subject
        assert np.sum(oracle[members] == labels[members]) >= np.sum(honest[members] == labels[members])
        correct = (run.epoch_logits[:, members].argmax(-1) == labels[members]).sum(1)
        assert correct[chosen[fold]] == correct.max()
    assert np.mean(oracle == labels) >= np.mean(honest == labels)


def _random_cache(num_subjects=4, per_subject=3):
    rng = np.random.default_rng(0)
    num_clips = num_subjects * per_subject
    subjects = [f"{'casme2' if i % 2 else 'samm'}/s{i % num_subjects}" for i in range(num_clips)]
    return cache_lib.synthetic_token_cache(rng.integers(0, 3, num_clips), subjects,
                                         [s.split("/")[0] for s in subjects], LABEL_NAMES,
                                         vector_dim=8, difference_size=8)


def test_loso_command_writes_the_workdir(tmp_path):
    from dface_jax import cli
    from dface_jax.runtime.checkpoint import restore_params

    cache = _random_cache()
    cache_lib.save_token_cache(tmp_path / "tokens.npz", cache)
    workdir = tmp_path / "run"
    assert cli.main(["loso", "--config", "loso_composite.py:tiny", "--tokens",
                     str(tmp_path / "tokens.npz"), "--workdir", str(workdir),
                     "--config.train.epochs=3"]) == 0
    for name in ("results.json", "results.md", "confusion.png", "folds.json", "config.json",
                 "metrics.jsonl", "predictions.npz"):
        assert (workdir / name).is_file(), name
    results = json.loads((workdir / "results.json").read_text())
    for key in ("uf1", "uar", "per_dataset", "per_class_recall", "oracle_epoch", "protocol",
                "seed", "text_encoder"):
        assert key in results, key
    assert set(results["per_dataset"]) == {"casme2", "samm"}
    assert results["text_encoder"]["semantic"] is False and "honest" in results["protocol"]
    assert results["oracle_epoch"]["label"] == "oracle epoch (as in the literature)"
    predictions = np.load(workdir / "predictions.npz")
    assert predictions["attention"].shape == (12, 16)
    assert results["uf1"] == pytest.approx(metrics.uf1(predictions["labels"], predictions["predicted"], 3))
    np.testing.assert_array_equal(predictions["predicted"], predictions["logits"].argmax(-1))
    assert len((workdir / "metrics.jsonl").read_text().splitlines()) == 3
    folds = json.loads((workdir / "folds.json").read_text())["held_out_subjects"]
    params = restore_params(workdir)
    assert {leaf.shape[0] for leaf in jax.tree.leaves(params)} == {len(folds)} == {4}
    # Another config into the same workdir is refused, naming the fields; told to, it
    # replaces the run (Orbax alone refuses the step).
    again = ["loso", "--config", "loso_composite.py:tiny", "--tokens",
             str(tmp_path / "tokens.npz"), "--workdir", str(workdir),
             "--config.train.epochs=3", "--config.train.seed=5"]
    assert cli.main(again) == 2
    assert json.loads((workdir / "results.json").read_text())["seed"] != 5
    assert cli.main([*again, "--allow-config-change"]) == 0
    assert json.loads((workdir / "results.json").read_text())["seed"] == 5
    assert not np.array_equal(jax.tree.leaves(restore_params(workdir))[0], jax.tree.leaves(params)[0])


def test_shuffle_tokens_per_clip_permutes_each_clip_differently():
    vectors = np.broadcast_to(np.arange(16, dtype=np.float32)[None, :, None], (4, 16, 2))
    shuffled = experiment_lib.shuffle_tokens_per_clip(vectors, seed=0)
    orders = shuffled[:, :, 0]
    assert all(sorted(row) == list(range(16)) for row in orders.tolist())
    assert len({tuple(row) for row in orders.tolist()}) == 4
    np.testing.assert_array_equal(shuffled, experiment_lib.shuffle_tokens_per_clip(vectors, seed=0))


@pytest.mark.slow
def test_compare_command_table(tmp_path):
    from dface_jax import cli

    cache_lib.save_token_cache(tmp_path / "tokens.npz", _random_cache())
    assert cli.main(["compare", "--config", "loso_composite.py:tiny", "--tokens",
                     str(tmp_path / "tokens.npz"), "--workdir", str(tmp_path / "cmp"),
                     "--seeds", "0,1", "--variants", "dface,no_edclip,pixel"]) == 0
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert set(comparison["rows"]) == {"dface", "dface_oracle", "no_edclip", "pixel"}
    assert set(comparison["verdicts"]) == {"no_edclip", "pixel"}
    assert len(comparison["rows"]["pixel"]["uf1"]["values"]) == 2
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "pixel baseline" in table and "NOT semantic" in table
    assert (tmp_path / "cmp" / "dface" / "results.json").is_file()
    assert (tmp_path / "cmp" / "pixel-seed1" / "results.json").is_file()
    # A rerun reuses finished runs (same config): same numbers, no retraining.
    before = (tmp_path / "cmp" / "pixel" / "predictions.npz").stat().st_mtime
    assert cli.main(["compare", "--config", "loso_composite.py:tiny", "--tokens",
                     str(tmp_path / "tokens.npz"), "--workdir", str(tmp_path / "cmp"),
                     "--seeds", "0,1", "--variants", "pixel"]) == 0
    assert (tmp_path / "cmp" / "pixel" / "predictions.npz").stat().st_mtime == before
    rerun = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert rerun["rows"]["pixel"]["uf1"] == comparison["rows"]["pixel"]["uf1"]


def test_pixel_baseline_shapes_and_config_errors():
    from dface_jax.configs import load_config
    from dface_jax.models.pixel_baseline import PixelBaselineCNN, PixelBaselineConfig

    with pytest.raises(ValueError, match="stem_stride=3"):
        PixelBaselineConfig(stem_stride=3)
    module = PixelBaselineCNN(PixelBaselineConfig(num_classes=3, features=(4, 8)))
    differences = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 1)), jnp.float32)
    params = module.init(jax.random.PRNGKey(0), differences, train=False)["params"]
    logits = module.apply({"params": params}, differences, train=False)
    assert logits.shape == (2, 3)
    # The input is rescaled per clip: the logits do not depend on the motion's amplitude.
    np.testing.assert_allclose(module.apply({"params": params}, 3.0 * differences, train=False),
                               logits, atol=1e-5)
    cache = _random_cache()
    config = load_config("loso_composite.py:tiny", ["--config.model=pixel"])
    with pytest.raises(ValueError, match="pixel baseline has no text head"):
        experiment_lib.build_experiment(config, cache)
    config.train.edclip_weight = 0.0
    built = experiment_lib.build_experiment(config, cache)
    assert built.data.inputs.shape == (12, 8, 8, 1) and built.anchors is None
    with pytest.raises(ValueError, match="config.model='cnn'"):
        experiment_lib.build_experiment(load_config("loso_composite.py:tiny", ["--config.model=cnn"]), cache)


def test_shift_conv_and_pools_equal_flax_conv_and_pools():
    import flax.linen as nn

    from dface_jax.models.conv import ShiftConv, avg_pool, max_pool

    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, 6, 3)), jnp.float32)
    shift_matmul, reference = ShiftConv(5), nn.Conv(5, (3, 3), padding="SAME")
    params = shift_matmul.init(jax.random.PRNGKey(1), x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        jnp.shape, reference.init(jax.random.PRNGKey(1), x))
    params = jax.tree.map(lambda p: p + 0.1, params)  # non-zero bias too
    np.testing.assert_allclose(shift_matmul.apply(params, x), reference.apply(params, x), atol=1e-5)
    grad_ours = jax.grad(lambda p: jnp.sum(shift_matmul.apply(p, x) ** 2))(params)
    grad_flax = jax.grad(lambda p: jnp.sum(reference.apply(p, x) ** 2))(params)
    for a, b in zip(jax.tree.leaves(grad_ours), jax.tree.leaves(grad_flax)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    strided = ShiftConv(5, 3, stride=2)
    np.testing.assert_allclose(
        strided.apply(params, x),
        nn.Conv(5, (3, 3), strides=2, padding=((1, 1), (1, 1))).apply(params, x), atol=1e-5)
    assert strided.apply(params, x).shape == (2, 4, 3, 5)
    # STSTNet's conv (3x3, padding 2: the size grows by 2) and OFF-ApexNet's (5x5, "same").
    for size, pad, shape in ((3, 2, (2, 9, 8, 4)), (5, None, (2, 7, 6, 4))):
        conv = ShiftConv(4, size, padding=pad)
        variables = jax.tree.map(lambda p: p + 0.05, conv.init(jax.random.PRNGKey(2), x))
        flax_pad = (size - 1) // 2 if pad is None else pad
        expected = nn.Conv(4, (size, size), padding=((flax_pad, flax_pad),) * 2).apply(variables, x)
        assert expected.shape == shape
        np.testing.assert_allclose(conv.apply(variables, x), expected, atol=1e-5)
    np.testing.assert_array_equal(max_pool(x, 2), nn.max_pool(x, (2, 2), strides=(2, 2)))
    assert max_pool(x, 2).shape == (2, 3, 3, 3)
    np.testing.assert_allclose(max_pool(x, 3, 1), nn.max_pool(x, (3, 3), strides=(3, 3),
                                                              padding=((1, 1), (1, 1))))
    np.testing.assert_allclose(avg_pool(x, 2), nn.avg_pool(x, (2, 2), strides=(2, 2)), atol=1e-6)


@pytest.mark.slow  # ~17 s, mostly compilation; the shift-and-matmul conv is checked above
def test_pixel_baseline_vmapped_sweep_equals_sequential_reference():
    from dface_jax.models.pixel_baseline import PixelBaselineCNN, PixelBaselineConfig

    rng = np.random.default_rng(2)
    subjects = np.asarray([f"s{i % 3}" for i in range(9)])
    data = step.LosoData(jnp.asarray(rng.normal(size=(9, 8, 8, 1)), jnp.float32),
                        jnp.asarray(rng.integers(0, 3, 9), jnp.int32),
                        jnp.asarray(anchor_rows(LABEL_NAMES)))
    model = step.LosoModel(PixelBaselineCNN(PixelBaselineConfig(num_classes=3, features=(4, 8))), 3)
    config = step.LosoTrainConfig(epochs=2, batch_size=4, edclip_weight=0.0, learning_rate=1e-3)
    vmapped = sweep.train_folds(model, config, data, subjects)
    sequential = sweep.train_folds_sequential(model, config, data, subjects)
    np.testing.assert_allclose(vmapped.epoch_logits, sequential.epoch_logits, atol=2e-5)
    np.testing.assert_allclose(vmapped.train_loss, sequential.train_loss, atol=2e-5)
    assert vmapped.attention is None and vmapped.epoch_logits.shape == (2, 9, 3)


def test_comparison_outcomes_use_the_larger_spread():
    def row(mean, std):
        return {"uf1": {"mean": mean, "std": std}}
    rows = {"dface": row(0.50, 0.02), "dface_oracle": row(0.70, 0.0),
            "no_edclip": row(0.45, 0.03), "mean_pool": row(0.48, 0.03),
            "pixel": row(0.60, 0.01)}
    verdicts = compare.comparison_verdicts(rows)
    assert {k: v["outcome"] for k, v in verdicts.items()} == {
        "no_edclip": "loses", "mean_pool": "ties", "pixel": "beats"}
    assert verdicts["pixel"]["uf1_gap"] == pytest.approx(-0.10)
    assert verdicts["mean_pool"]["spread"] == 0.03
    cells = [tables._outcome_cell(verdicts[k]) for k in ("no_edclip", "mean_pool", "pixel")]
    assert cells == ["loses by 0.0500 UF1", "ties (gap +0.0200 within spread 0.0300)",
                     "**beats D-FACE** by 0.1000 UF1"]
