"""The analysis pictures (on synthetic arrays) and the analysis API (on tiny checkpoints)."""

import json

import numpy as np
import pytest
from PIL import Image

from dface_jax.report import figures as plots
from dface_jax.runtime.metrics_log import read_metrics


def assert_nontrivial_png(path, min_std=8.0):
    """The file is a PNG that is not blank: many colours and a real spread of pixel values."""
    assert path.exists() and path.suffix == ".png"
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > min_std, f"{path.name}: pixel std {pixels.std():.2f} too low"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, f"{path.name}: few colours"


def _faces(rng, n, size=32):
    # Bright discs on a dark background with varied position: a stand-in with structure.
    yy, xx = np.mgrid[:size, :size]
    centres = rng.uniform(size * 0.3, size * 0.7, size=(n, 2))
    faces = ((yy[None] - centres[:, 0, None, None]) ** 2
             + (xx[None] - centres[:, 1, None, None]) ** 2) < (size * 0.3) ** 2
    return faces[..., None].astype(np.float32) * 0.8 + 0.1


def test_reconstructions_grid(tmp_path):
    rng = np.random.default_rng(0)
    source, driving = _faces(rng, 6), _faces(rng, 6)
    recon = np.clip(driving + rng.normal(0, 0.05, driving.shape), 0, 1)
    path = plots.plot_reconstructions(source, driving, recon, tmp_path / "recon.png")
    assert_nontrivial_png(path)


def test_reconstructions_reject_mismatched_shapes(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="same shape"):
        plots.plot_reconstructions(_faces(rng, 3), _faces(rng, 3), _faces(rng, 2),
                                   tmp_path / "x.png")


def test_token_histograms_match_a_direct_count():
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 32, size=(50, 16)).astype(np.int32)
    counts = plots.token_histograms(tokens, 32)
    assert counts.shape == (16, 32)
    assert counts[3, 7] == int(np.sum(tokens[:, 3] == 7))
    assert counts.sum() == tokens.size
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        plots.token_histograms(tokens, 8)


def test_token_pictures(tmp_path):
    rng = np.random.default_rng(2)
    # Position-dependent preferences, so the heatmap has structure.
    tokens = (rng.integers(0, 6, size=(200, 16)) + np.arange(16) * 2) % 32
    assert_nontrivial_png(plots.plot_codebook_usage(tokens, 32, tmp_path / "usage.png"))
    assert_nontrivial_png(plots.plot_position_token_frequency(tokens, 32,
                                                               tmp_path / "positions.png"))


def test_confusion_matrices(tmp_path):
    names = ("negative", "positive", "surprise")
    matrices = {"overall": np.array([[20, 3, 1], [2, 9, 1], [1, 1, 8]]),
                "casme2": np.array([[8, 1, 0], [1, 4, 0], [0, 1, 3]])}
    assert_nontrivial_png(plots.plot_confusion_matrices(matrices, names, tmp_path / "cm.png"))
    with pytest.raises(ValueError, match="'overall'.*expected shape \\(2, 2\\)"):
        plots.plot_confusion_matrices(matrices, names[:2], tmp_path / "bad.png")


def test_pooling_weights(tmp_path):
    rng = np.random.default_rng(3)
    attention = rng.dirichlet(np.ones(16) * 0.3, size=60)
    labels = rng.integers(0, 3, size=60)
    path = plots.plot_pooling_weights(attention, labels, ("negative", "positive", "surprise"),
                                      tmp_path / "pool.png")
    assert_nontrivial_png(path)


def test_transfer_grid(tmp_path):
    rng = np.random.default_rng(4)
    faces = _faces(rng, 3)
    transferred = np.stack([_faces(rng, 4) for _ in range(3)])  # [3 faces, 4 clips, ...]
    path = plots.plot_transfer_grid(faces, transferred, tmp_path / "grid.png",
                                    clip_apex=_faces(rng, 4),
                                    clip_titles=["a", "b", "c", "d"])
    assert_nontrivial_png(path)
    with pytest.raises(ValueError, match="transferred: expected"):
        plots.plot_transfer_grid(faces, transferred[:2], tmp_path / "bad.png")


def test_training_curves_from_metrics_jsonl(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    with metrics.open("w") as f:
        for step in range(0, 200, 10):
            f.write(json.dumps({"step": step, "loss": 1.0 / (1 + step), "perplexity":
                                5 + step / 20, "examples_per_sec": 100.0}) + "\n")
    path = plots.plot_training_curves(read_metrics(tmp_path), tmp_path / "curves.png")
    assert_nontrivial_png(path)
    # A kill mid-write tears the last line only: it is dropped; a bad line before it is an error.
    metrics.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 0.5}]
    metrics.write_text('{"step": 1, "loss": 0.5}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(tmp_path)


# ----------------------------------------------------------------------------- analysis API

TINY_TOKENIZER = dict(dim=32, quant_dim=8, codebook_size=8, image_size=16, patch_size=4,
                      spatial_depth=1, temporal_depth=1, decoder_depth=1, heads=2, dim_head=16,
                      channels=1)


@pytest.fixture(scope="module")
def tiny_tokenizer_workdir(tmp_path_factory):
    """A tokenizer workdir as ``import-torch`` and tests write it: config.json + checkpoint."""
    import jax
    import ml_collections

    from dface_jax.models.tokenizer import TokenizerConfig, init_tokenizer
    from dface_jax.workdir import write_tokenizer

    workdir = tmp_path_factory.mktemp("tokenizer")
    config = ml_collections.ConfigDict({"tokenizer": TINY_TOKENIZER, "seed": 0})
    variables = init_tokenizer(TokenizerConfig.from_dict(TINY_TOKENIZER), jax.random.PRNGKey(0))
    write_tokenizer(workdir, variables["params"], config, "test")
    return workdir


def test_load_tokenizer_matches_the_library_functions(tiny_tokenizer_workdir):
    from dface_jax.analysis import load_tokenizer
    from dface_jax.models import tokenizer as tokenizer_lib

    tok = load_tokenizer(tiny_tokenizer_workdir)
    rng = np.random.default_rng(0)
    onset = rng.uniform(size=(5, 16, 16, 1)).astype(np.float32)
    apex = np.clip(onset + rng.normal(0, 0.2, onset.shape), 0, 1).astype(np.float32)
    tokens = tok.encode(onset, apex)
    assert tokens.dtype == np.int32 and tokens.shape == (5, 16)
    expected = tokenizer_lib.encode_actions(tok.params, tok.config, onset, apex)
    np.testing.assert_array_equal(tokens, np.asarray(expected))
    frames = tok.decode(onset, tokens)
    assert frames.shape == onset.shape
    np.testing.assert_allclose(
        frames, tokenizer_lib.decode_actions(tok.params, tok.config, onset, tokens), atol=1e-5)
    assert tok.embed(tokens).shape == (5, 16, TINY_TOKENIZER["dim"])
    # Chunked calls (batch_size 2, so 3 chunks, the last padded) equal one big call.
    tok.batch_size = 2
    np.testing.assert_array_equal(tok.encode(onset, apex), tokens)


def test_transfer_keeps_only_the_chosen_positions(tiny_tokenizer_workdir):
    from dface_jax.analysis import load_tokenizer

    tok = load_tokenizer(tiny_tokenizer_workdir)
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 8, size=(3, 16)).astype(np.int32)
    face = rng.uniform(size=(16, 16, 1)).astype(np.float32)
    faces = np.repeat(face[None], 3, axis=0)
    # All positions kept: the same as decoding the clip's tokens on the new face.
    np.testing.assert_allclose(tok.transfer(tokens, face), tok.decode(faces, tokens), atol=1e-5)
    # No position kept: the face's own "no action" tokens.
    none_kept = tok.transfer(tokens, faces, keep=np.zeros((3, 16), bool))
    np.testing.assert_allclose(none_kept, tok.decode(faces, tok.neutral_tokens(faces)),
                               atol=1e-5)


def test_transfer_under_the_released_layout_keeps_context_rows_not_tokens(tmp_path):
    """With ``released_token_layout`` row j of the decoder context holds part of every code,
    so the most-attended rows (what the classifier's pooling weighs) are not token indices:
    transfer keeps rows of the context, and keeping tokens at those indices (the old
    picture) decodes something else."""
    import jax
    import ml_collections

    from dface_jax.analysis import load_tokenizer
    from dface_jax.models.tokenizer import TokenizerConfig, init_tokenizer
    from dface_jax.report.page import (most_attended_rows, pooling_position_label,
                                       transfer_title)
    from dface_jax.workdir import write_tokenizer

    settings = dict(TINY_TOKENIZER, released_token_layout=True)
    config = ml_collections.ConfigDict({"tokenizer": settings, "seed": 0})
    write_tokenizer(tmp_path, init_tokenizer(TokenizerConfig.from_dict(settings),
                                             jax.random.PRNGKey(0))["params"], config, "test")
    tok = load_tokenizer(tmp_path)
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 8, size=(2, 16)).astype(np.int32)
    faces = rng.uniform(size=(2, 16, 16, 1)).astype(np.float32)
    attention = np.full((2, 16), 0.01, np.float32)
    attention[0, 3], attention[0, 9], attention[1, 0], attention[1, 15] = 0.5, 0.3, 0.6, 0.2
    keep = most_attended_rows(attention, top_k=2)
    assert np.flatnonzero(keep[0]).tolist() == [3, 9] and np.flatnonzero(keep[1]).tolist() == [0, 15]
    clip, neutral = tok.embed(tokens), tok.embed(tok.neutral_tokens(faces))
    # Under this layout one token's code reaches every row, so a context row is no token.
    one_changed = tokens.copy()
    one_changed[0, 3] = (tokens[0, 3] + 1) % 8
    changed_rows = np.abs(tok.embed(one_changed)[0] - clip[0]).max(axis=-1) > 1e-6
    assert changed_rows.sum() > 1
    rows_kept = np.where(keep[..., None], clip, neutral)
    transferred = tok.transfer(tokens, faces, keep=keep)
    np.testing.assert_allclose(transferred, tok.decode_vectors(faces, rows_kept), atol=1e-5)
    tokens_kept = tok.decode(faces, np.where(keep, tokens, tok.neutral_tokens(faces)))
    assert np.abs(transferred - tokens_kept).max() > 1e-4
    assert "decoder-context rows" in transfer_title(tok.config, 2)
    assert "tokens" in transfer_title(TokenizerConfig.from_dict(TINY_TOKENIZER), 2)
    # The pooling picture's axis: rows under this layout, token positions otherwise.
    assert pooling_position_label(tok.config).startswith("decoder-context row")
    assert pooling_position_label(TokenizerConfig.from_dict(TINY_TOKENIZER)) == "token position"


def test_transfer_grid_has_an_amplified_difference_row(tmp_path):
    rng = np.random.default_rng(4)
    faces = _faces(rng, 2)
    transferred = np.repeat(faces[:, None], 3, axis=1).copy()
    transferred[1, 2, 10:14, 10:14] += 0.02  # a micro-expression-sized change in one cell
    difference, scale = plots.amplified_differences(faces, transferred)
    assert difference.shape == (2, 3, 32, 32)
    assert scale == pytest.approx(0.02, abs=1e-6)
    np.testing.assert_allclose(difference[1, 2, 10:14, 10:14], 0.02, atol=1e-6)
    assert np.abs(difference[0]).max() == 0.0
    path = plots.plot_transfer_grid(faces, transferred, tmp_path / "grid.png")
    assert_nontrivial_png(path)
    # The difference row is drawn in colour (blue-white-red), the faces in gray.
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    assert (np.abs(pixels[..., 0] - pixels[..., 2]) > 60).any()
    _, nothing = plots.amplified_differences(faces, np.repeat(faces[:, None], 3, axis=1))
    assert nothing == 0.0


def test_load_tokenizer_refuses_what_is_not_a_tokenizer_workdir(tmp_path):
    from dface_jax.analysis import load_tokenizer
    from dface_jax.workdir import WorkdirError, write_manifest

    with pytest.raises(WorkdirError, match=f"{tmp_path}: no manifest.json"):
        load_tokenizer(tmp_path)
    write_manifest(tmp_path, "loso", "loso")
    with pytest.raises(WorkdirError, match="is a 'loso' workdir .* expected a tokenizer"):
        load_tokenizer(tmp_path)


def test_load_classifier_restores_one_fold_of_a_stacked_checkpoint(tmp_path):
    """A LOSO-shaped workdir (folds stacked on a leading axis): the fold chosen by index or
    by held-out subject computes what the model computes with that fold's parameters."""
    import jax
    import ml_collections

    from dface_jax.analysis import load_classifier
    from dface_jax.models.token_classifier import ClassifierConfig, TokenClassifier
    from dface_jax.runtime.checkpoint import save_params
    from dface_jax.workdir import write_manifest

    classifier = dict(num_classes=3, seq_len=16, input_dim=8, dim=16, depth=1, heads=2,
                      mlp_dim=16, dropout=0.0, text_dim=8, pooling="softmax")
    model = TokenClassifier(ClassifierConfig.from_dict(classifier))
    vectors = np.random.default_rng(0).normal(size=(5, 16, 8)).astype(np.float32)
    stacked = jax.vmap(lambda key: model.init(key, vectors[:1])["params"])(
        jax.random.split(jax.random.PRNGKey(0), 3))
    save_params(tmp_path, stacked, ml_collections.ConfigDict(
        {"model": "dface", "finetune_tokenizer": False, "classifier": classifier}))
    write_manifest(tmp_path, "loso", "test")
    (tmp_path / "completed.json").write_text("{}")
    (tmp_path / "folds.json").write_text(json.dumps({"held_out_subjects": ["a/1", "b/2", "c/3"]}))
    (tmp_path / "results.json").write_text(json.dumps({"label_names": ["n", "p", "s"]}))

    clf = load_classifier(tmp_path, fold="b/2")
    assert clf.fold == 1 and clf.label_names == ("n", "p", "s")
    fold_params = jax.tree.map(lambda x: x[1], stacked)
    expected = model.apply({"params": fold_params}, vectors, train=False)
    np.testing.assert_allclose(clf.logits(vectors), expected["logits"], atol=1e-5)
    np.testing.assert_allclose(clf.attention(vectors), expected["attention"], atol=1e-6)
    np.testing.assert_array_equal(clf.predict(vectors), np.argmax(expected["logits"], -1))
    assert load_classifier(tmp_path, fold=2).held_out_subject == "c/3"
    with pytest.raises(KeyError, match="no fold holds out subject 'z'"):
        load_classifier(tmp_path, fold="z")
    with pytest.raises(ValueError, match="int tokens need the tokenizer"):
        clf.predict(np.zeros((2, 16), np.int32))


# A fresh interpreter: restores both checkpoints through the analysis API only, re-encodes
# the clips, classifies each clip with the fold that held it out, and saves what it got.
_REPRODUCE_SCRIPT = """
import sys
import numpy as np
from dface_jax.analysis import load_classifier, load_tokenizer
from dface_jax.workdir import read_folds

tokenizer_dir, loso_dir, clips_path, out_path = sys.argv[1:]
clips = np.load(clips_path)
tok = load_tokenizer(tokenizer_dir)
tokens = tok.encode(clips["onset"], clips["apex"])
predicted = np.full(len(tokens), -1, np.int32)
logits = np.zeros((len(tokens), 3), np.float32)
attention = np.zeros((len(tokens), 16), np.float32)
for subject in read_folds(loso_dir):
    clf = load_classifier(loso_dir, fold=subject)  # tokenizer from the recorded workdir
    members = np.flatnonzero(clips["subjects"] == subject)
    predicted[members] = clf.predict(tokens[members])
    outputs = clf.outputs(tokens[members])
    logits[members], attention[members] = outputs["logits"], outputs["attention"]
np.savez(out_path, tokens=tokens, predicted=predicted, logits=logits, attention=attention)
"""


@pytest.mark.slow  # about 80 s of CPU: a pretrain, a 4-fold LOSO and a fresh interpreter
def test_fresh_process_reproduces_a_tiny_runs_predictions(tmp_path):
    """Tiny pretrain -> tokens -> tiny LOSO; a new process loading both checkpoints through
    the analysis API gets the run's tokens and predictions exactly."""
    import subprocess
    import sys

    from data_pipelines.synthetic import talking_clips
    from dface_jax.configs import load_config, save_config
    from dface_jax.pretrain.loop import run_pretraining
    from dface_jax.tokens.extract import extract_tokens
    from dface_jax.workdir import restore_tokenizer
    from dface_jax.loso.run import run_loso

    tokenizer_dir = tmp_path / "pretrain"
    config = load_config("pretrain_synthetic.py:tiny", [
        "--config.train.num_steps=3", "--config.train.checkpoint_every=3",
        "--config.train.log_every=3", "--config.data.num_clips=8",
        "--config.train.restart_dead_codes_every=0"])
    run_pretraining(config, tokenizer_dir, progress=False)

    # 24 clips of 4 subjects from SynthFACS talking clips: (first, last frame) pairs.
    frames = talking_clips(seed=5, num_clips=24, num_frames=6, size=32)["frames"]
    subjects = np.array([f"s{i % 4}" for i in range(24)])
    samples = [{"onset": frames[i, 0], "apex": frames[i, -1], "label": i % 3,
                "subject": subjects[i], "dataset": ("casme2", "smic")[i % 2],
                "clip_id": f"c{i}"} for i in range(24)]
    params, tok_config = restore_tokenizer(tokenizer_dir)
    cache = extract_tokens(params, tok_config, samples, label_names=("negative", "positive",
                                                                     "surprise"),
                           batch_size=16, tokenizer_workdir=str(tokenizer_dir))
    loso_dir = tmp_path / "loso"
    run_loso(load_config("loso_composite.py:tiny"), cache, loso_dir, log=lambda _: None)

    clips_path, out_path = tmp_path / "clips.npz", tmp_path / "reproduced.npz"
    np.savez(clips_path, onset=frames[:, 0], apex=frames[:, -1], subjects=subjects)
    done = subprocess.run([sys.executable, "-c", _REPRODUCE_SCRIPT, str(tokenizer_dir),
                           str(loso_dir), str(clips_path), str(out_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    reproduced = np.load(out_path)
    recorded = np.load(loso_dir / "predictions.npz")
    np.testing.assert_array_equal(reproduced["tokens"], cache["action_tokens"])
    np.testing.assert_array_equal(reproduced["predicted"], recorded["predicted"])
    np.testing.assert_allclose(reproduced["logits"], recorded["logits"], atol=1e-5)
    np.testing.assert_allclose(reproduced["attention"], recorded["attention"], atol=1e-5)
