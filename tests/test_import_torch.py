"""`dface-jax import-torch`: the parity fixture's released weights, converted through the command
into workdirs, load through the analysis API and the token extraction and compute the
release's numbers; mismatched or unreadable checkpoints are refused with a message naming the
problem (tests/fixtures/released_dface_parity_small.npz, README in the shared fixtures folder, ../shared/fixtures)."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest

from dface_jax import cli
from dface_jax.analysis import load_classifier, load_tokenizer
from dface_jax.convert import export

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "released_dface_parity_small.npz"
FIXTURE_CLASSIFIER_HEADS = "4"  # the fixture README: classifier dim 64, heads 4


@pytest.fixture(scope="module")
def release():
    with np.load(FIXTURE) as arrays:
        return {key: arrays[key] for key in arrays.files}


@pytest.fixture(scope="module")
def tokenizer_workdir(tmp_path_factory):
    out = tmp_path_factory.mktemp("imported") / "tokenizer"
    assert cli.main(["import-torch", "--checkpoint", str(FIXTURE), "--kind", "tokenizer",
                     "--prefix", "tokenizer/", "--workdir", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def classifier_workdir(tmp_path_factory, tokenizer_workdir):
    out = tmp_path_factory.mktemp("imported") / "classifier"
    assert cli.main(["import-torch", "--checkpoint", str(FIXTURE), "--kind", "classifier",
                     "--prefix", "classifier/", "--heads", FIXTURE_CLASSIFIER_HEADS,
                     "--tokenizer", str(tokenizer_workdir), "--workdir", str(out)]) == 0
    return out


def _nhwc(frames_nchw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(frames_nchw, (0, 2, 3, 1)))


def test_imported_tokenizer_reproduces_the_release(tokenizer_workdir, release):
    tokenizer = load_tokenizer(tokenizer_workdir)
    config = tokenizer.config
    assert (config.dim, config.image_size, config.patch_size, config.channels, config.heads,
            config.spatial_depth, config.temporal_depth) == (64, 64, 4, 3, 4, 2, 2)
    assert config.released_token_layout and config.released_temporal_peg
    video = release["video"]  # [B, C, T = (source, driving), H, W]
    source, driving = _nhwc(video[:, :, 0]), _nhwc(video[:, :, 1])
    tokens = tokenizer.encode(source, driving)
    np.testing.assert_array_equal(tokens, release["indices"])
    recon = tokenizer.decode(source, tokens)
    np.testing.assert_allclose(recon, _nhwc(release["recon"]), atol=1e-4, rtol=0)
    recon_given = tokenizer.decode(source, release["given_indices"])
    np.testing.assert_allclose(recon_given, _nhwc(release["recon_given"]), atol=1e-4, rtol=0)



def test_gray_frames_feed_the_rgb_tokenizer_as_repeated_channels(tokenizer_workdir, release):
    tokenizer = load_tokenizer(tokenizer_workdir)
    video = release["video"]
    gray_source = _nhwc(video[:, :, 0]).mean(axis=-1, keepdims=True)
    gray_driving = _nhwc(video[:, :, 1]).mean(axis=-1, keepdims=True)
    rgb_source, rgb_driving = (np.repeat(f, 3, axis=-1) for f in (gray_source, gray_driving))
    np.testing.assert_array_equal(tokenizer.encode(gray_source, gray_driving),
                                  tokenizer.encode(rgb_source, rgb_driving))
    tokens = release["given_indices"]
    np.testing.assert_array_equal(tokenizer.decode(gray_source, tokens),
                                  tokenizer.decode(rgb_source, tokens))
    with pytest.raises(ValueError, match="2 channels"):
        tokenizer.encode(gray_source.repeat(2, axis=-1), gray_driving.repeat(2, axis=-1))

def test_imported_classifier_reproduces_the_release(classifier_workdir, tokenizer_workdir, release):
    classifier = load_classifier(classifier_workdir)
    assert classifier.label_names == ("negative", "positive", "surprise")
    assert classifier.held_out_subject == export.IMPORTED_HELD_OUT_SUBJECT
    assert classifier.config.heads == 4
    assert classifier.tokenizer_workdir == str(tokenizer_workdir.resolve())
    outputs = classifier.outputs(release["classifier_input"])
    np.testing.assert_allclose(outputs["logits"], release["classifier_logits"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(outputs["text_features"], release["classifier_text_features"],
                               atol=1e-5, rtol=0)
    np.testing.assert_allclose(outputs["attention"], release["classifier_attention"],
                               atol=1e-5, rtol=0)


def test_imported_tokenizer_feeds_token_extraction(tokenizer_workdir, release, tmp_path):
    """The converted tokenizer, read as `extract-tokens --tokenizer W` reads it, encodes the
    fixture's frame pairs to the release's indices inside the token cache; gray SynthFACS faces
    (the MER data is gray) feed the RGB tokenizer by repeating the channel."""
    from data_pipelines.synthetic import AU_NAMES, EMOTION_AUS, render_faces, sample_identities
    from dface_jax.tokens.cache import load_token_cache, save_token_cache
    from dface_jax.tokens.extract import extract_tokens
    from dface_jax.workdir import restore_tokenizer

    params, config = restore_tokenizer(tokenizer_workdir)
    video = release["video"]
    onset, apex = [_nhwc(video[:, :, 0])], [_nhwc(video[:, :, 1])]
    identities = sample_identities(seed=3, n=2)
    apex_units = np.zeros((2, len(AU_NAMES)), np.float32)
    for clip, emotion in enumerate(("happiness", "surprise")):
        apex_units[clip, [AU_NAMES.index(unit) for unit in EMOTION_AUS[emotion]]] = 1.0
    gray_onset = render_faces(identities, np.zeros_like(apex_units), size=config.image_size)
    gray_apex = render_faces(identities, apex_units, size=config.image_size)
    onset.append(np.repeat(gray_onset, config.channels, axis=-1))
    apex.append(np.repeat(gray_apex, config.channels, axis=-1))
    onset, apex = np.concatenate(onset), np.concatenate(apex)
    samples = [{"onset": onset[i], "apex": apex[i], "label": i % 2,
                "subject": f"casme2/sub{i:02d}", "dataset": "casme2", "clip_id": f"EP{i:02d}"}
               for i in range(len(onset))]
    cache = extract_tokens(params, config, samples, label_names=("positive", "surprise"),
                           batch_size=2, difference_size=16,
                           tokenizer_workdir=str(tokenizer_workdir))
    np.testing.assert_array_equal(cache["action_tokens"][:2], release["indices"])
    assert cache["action_vectors"].shape == (4, 16, config.dim)
    assert cache["frame_difference"].shape == (4, 16, 16, 3)
    tokens = cache["action_tokens"][2:]
    assert tokens.min() >= 0 and tokens.max() < config.codebook_size
    loaded = load_token_cache(save_token_cache(tmp_path / "tokens.npz", cache))
    np.testing.assert_array_equal(loaded["action_tokens"], cache["action_tokens"])


def test_paper_scale_state_dict_infers_the_documented_config():
    """The key/shape layout of vae.736000.pt (the release builds it with dim 512, image 256,
    patch 16, depths 6 + 6, heads 8, dim_head 64, code_seq_len 16) infers the config that
    the README section "Use the released pretrained tokenizer" gives. Zero-stride arrays: only shapes are read, no memory."""
    from dface_jax.convert.tokenizer import released_tokenizer_shapes, tokenizer_config_from_state_dict
    from dface_jax.models.tokenizer import TokenizerConfig

    paper = TokenizerConfig(token_position_embedding=False, released_token_layout=True,
                            released_temporal_peg=True, quantizer="nsvq")
    shapes = released_tokenizer_shapes(paper)
    state_dict = {"module." + key: np.broadcast_to(np.float32(0), shape)
                  for key, shape in shapes.items()}
    assert tokenizer_config_from_state_dict(state_dict) == paper
    assert (paper.dim, paper.image_size, paper.channels, paper.patch_size, paper.spatial_depth,
            paper.temporal_depth, paper.decoder_depth, paper.heads, paper.dim_head) == (
                512, 256, 3, 16, 6, 6, 6, 8, 64)


def _write_npz(path: pathlib.Path, arrays: dict) -> pathlib.Path:
    with path.open("wb") as handle:
        np.savez(handle, **arrays)
    return path


def test_safetensors_with_dataparallel_prefix_imports_the_same_params(tmp_path, release,
                                                                       tokenizer_workdir):
    """The route for users without PyTorch: the state dict saved as .safetensors elsewhere,
    keys still carrying DataParallel's ``module.``."""
    import jax
    from safetensors.numpy import save_file

    from dface_jax.runtime.checkpoint import restore_params

    path = tmp_path / "vae.safetensors"
    save_file({"module." + key[len("tokenizer/"):]: np.ascontiguousarray(value)
               for key, value in release.items() if key.startswith("tokenizer/")}, str(path))
    out = export.import_checkpoint(path, "tokenizer", tmp_path / "from_safetensors")
    from_npz, from_safetensors = restore_params(tokenizer_workdir), restore_params(out)
    assert jax.tree.structure(from_npz) == jax.tree.structure(from_safetensors)
    for a, b in zip(jax.tree.leaves(from_npz), jax.tree.leaves(from_safetensors)):
        np.testing.assert_array_equal(a, b)


def test_renamed_key_is_refused_naming_it(tmp_path, release, capsys):
    state_dict = {key[len("tokenizer/"):]: value for key, value in release.items()
                  if key.startswith("tokenizer/")}
    renamed = "dec_spatial_transformer.layers.1.2.to_q.weight"
    state_dict["dec_spatial_transformer.layers.1.2.to_query.weight"] = state_dict.pop(renamed)
    path = _write_npz(tmp_path / "renamed.npz", state_dict)
    out = tmp_path / "out"
    assert cli.main(["import-torch", "--checkpoint", str(path), "--kind", "tokenizer",
                     "--workdir", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"missing key '{renamed}'" in error
    assert "unexpected key 'dec_spatial_transformer.layers.1.2.to_query.weight'" in error
    assert str(path) in error
    assert not out.exists()  # nothing is written for a refused checkpoint


def test_classifier_with_a_wrong_shape_is_refused(tmp_path, release, capsys):
    state_dict = {key[len("classifier/"):]: value for key, value in release.items()
                  if key.startswith("classifier/")}
    key = "transformer.layers.1.linear2.weight"
    state_dict[key] = state_dict[key][:, :-1]
    path = _write_npz(tmp_path / "clf.npz", state_dict)
    assert cli.main(["import-torch", "--checkpoint", str(path), "--kind", "classifier",
                     "--heads", FIXTURE_CLASSIFIER_HEADS, "--workdir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"key '{key}' has shape (64, 127), expected (64, 128)" in error


def test_options_that_contradict_the_weights_are_refused(tmp_path):
    with pytest.raises(export.ImportCheckpointError, match="image size 64, not 256"):
        export.import_checkpoint(FIXTURE, "tokenizer", tmp_path / "a", prefix="tokenizer/",
                                 image_size=256)
    with pytest.raises(export.ImportCheckpointError, match="3 classes, but 2 label names"):
        export.import_checkpoint(FIXTURE, "classifier", tmp_path / "b", prefix="classifier/",
                                 heads=4, label_names=("a", "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_existing_workdir_is_not_overwritten(tokenizer_workdir):
    with pytest.raises(export.ImportCheckpointError, match="already holds manifest.json, config.json"):
        export.import_checkpoint(FIXTURE, "tokenizer", tokenizer_workdir, prefix="tokenizer/")


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None,
                    reason="PyTorch is installed, so a .pt file is readable")
def test_pt_file_without_torch_names_the_extra(tmp_path, capsys):
    path = tmp_path / "vae.736000.pt"
    path.write_bytes(b"not read: torch is missing")
    assert cli.main(["import-torch", "--checkpoint", str(path), "--kind", "tokenizer",
                     "--workdir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "pip install dface-jax[torch]" in error and str(path) in error


def test_workdir_layout(tokenizer_workdir, classifier_workdir):
    tokenizer_config = json.loads((tokenizer_workdir / "config.json").read_text())
    assert tokenizer_config["imported_from"]["prefix"] == "tokenizer/"
    assert tokenizer_config["tokenizer"]["quantizer"] == "nsvq"
    folds = json.loads((classifier_workdir / "folds.json").read_text())
    assert folds["held_out_subjects"] == [export.IMPORTED_HELD_OUT_SUBJECT]
    results = json.loads((classifier_workdir / "results.json").read_text())
    assert "uf1" not in results  # no scores were measured, none are claimed


@pytest.mark.slow
def test_extract_tokens_command_reads_the_imported_tokenizer_on_gray_data(tokenizer_workdir,
                                                                          tmp_path):
    """The whole path a user takes: a gray MER dataset built by `prepare`, tokens by
    `extract-tokens --tokenizer W` with W from `import-torch`."""
    from data_pipelines.me.layouts import write_layout
    from data_pipelines.me.datasets import prepare_dataset
    from data_pipelines.synthetic import me_clips
    from dface_jax.tokens.cache import load_token_cache

    clips = me_clips(preset="casme2", size=64, seed=0)[:6]
    write_layout(clips, "casme2", tmp_path / "raw")
    prepare_dataset("casme2", tmp_path / "raw", tmp_path / "data", image_size=64,
                    trust_cropped=True)
    assert cli.main(["extract-tokens", "--tokenizer", str(tokenizer_workdir), "--data-dir",
                     str(tmp_path / "data"), "--dataset", "casme2", "--out",
                     str(tmp_path / "tokens.npz"), "--batch-size", "3"]) == 0
    cache = load_token_cache(tmp_path / "tokens.npz")
    assert cache["action_tokens"].shape == (len(clips), 16)
    assert cache["frame_difference"].shape[-1] == 1  # the pixel baseline keeps the gray input
