"""Token cache: extract_tokens against the tokenizer called directly, the cache fields and
shapes, the save/load round trip, validation errors, and the CLI on a built dataset (slow)."""

import jax
import numpy as np
import pytest

from dface_jax.models.tokenizer import TokenizerConfig, embed_actions, encode_actions, init_tokenizer
from dface_jax.tokens import cache as cache_lib, extract

TINY_TOKENIZER = TokenizerConfig(image_size=16, patch_size=4, dim=16, spatial_depth=1,
                                 temporal_depth=1, decoder_depth=1, heads=2, dim_head=8,
                                 channels=1, codebook_size=8)
LABEL_NAMES = ("negative", "positive", "surprise")


def _samples(num_clips, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [{"onset": rng.random((size, size, 1), np.float32),
             "apex": rng.random((size, size, 1), np.float32),
             "label": np.int32(i % 3), "subject": f"casme2/sub{i % 2:02d}", "dataset": "casme2",
             "clip_id": f"EP{i:02d}"} for i in range(num_clips)]


@pytest.fixture(scope="module")
def tokenizer_params():
    return init_tokenizer(TINY_TOKENIZER, jax.random.PRNGKey(0))["params"]


def test_extract_tokens_fields_and_values(tokenizer_params):
    samples = _samples(5)
    samples[0]["onset"] = 0.5 * samples[0]["onset"]
    samples[0]["apex"] = samples[0]["onset"] + 0.25
    # batch 2 over 5 clips: the last batch is padded and the padding must be dropped.
    cache = extract.extract_tokens(tokenizer_params, TINY_TOKENIZER, samples, label_names=LABEL_NAMES,
                                   batch_size=2, difference_size=8, tokenizer_workdir="/w",
                                   apex_rule="middle")
    assert set(cache) == set(cache_lib.CACHE_FIELDS) | set(cache_lib.FLOW_FIELDS)
    assert cache["optical_flow"].shape == (5, 28, 28, 2)
    assert cache["optical_strain"].shape == (5, 28, 28, 1)
    assert cache["action_tokens"].shape == (5, 16) and cache["action_tokens"].dtype == np.int32
    assert cache["action_vectors"].shape == (5, 16, TINY_TOKENIZER.dim)
    assert cache["frame_difference"].shape == (5, 8, 8, 1)
    assert cache["labels"].tolist() == [0, 1, 2, 0, 1]
    assert cache["subjects"][1] == "casme2/sub01" and cache["clip_ids"][4] == "EP04"
    assert str(cache["apex_rule"]) == "middle" and list(cache["label_names"]) == list(LABEL_NAMES)
    # Reference: the tokenizer on all clips in one call, no batching or padding.
    onset = np.stack([s["onset"] for s in samples])
    apex = np.stack([s["apex"] for s in samples])
    tokens = np.asarray(encode_actions(tokenizer_params, TINY_TOKENIZER, onset, apex))
    np.testing.assert_array_equal(cache["action_tokens"], tokens)
    np.testing.assert_allclose(cache["action_vectors"],
                               embed_actions(tokenizer_params, TINY_TOKENIZER, tokens), atol=1e-5)
    # Clip 0's apex is its onset + 0.25 everywhere: its resized difference is 0.25 everywhere.
    np.testing.assert_allclose(cache["frame_difference"][0], 0.25, atol=1e-5)


def test_cache_round_trip_and_errors(tmp_path, tokenizer_params):
    cache = extract.extract_tokens(tokenizer_params, TINY_TOKENIZER, _samples(3),
                                   label_names=LABEL_NAMES, batch_size=4, difference_size=4)
    path = cache_lib.save_token_cache(tmp_path / "tokens.npz", cache)
    loaded = cache_lib.load_token_cache(path)
    for name in cache_lib.CACHE_FIELDS:
        np.testing.assert_array_equal(loaded[name], cache[name])
    broken = dict(cache, labels=np.asarray([0, 1, 7], np.int32))
    with pytest.raises(ValueError, match=r"labels\[2\] = 7 is outside the 3 classes"):
        cache_lib.save_token_cache(tmp_path / "bad.npz", broken)
    del broken["subjects"]
    with pytest.raises(cache_lib.TokenCacheError, match="missing field.*subjects"):
        cache_lib.validate_token_cache(broken, "bad.npz")
    with pytest.raises(ValueError, match="sample 1 \\(EP01\\).*same \\[H, W, C\\]"):
        samples = _samples(2)
        samples[1]["apex"] = np.zeros((8, 8, 1), np.float32)
        extract.extract_tokens(tokenizer_params, TINY_TOKENIZER, samples, label_names=LABEL_NAMES)


@pytest.mark.slow
def test_extract_tokens_cli_on_a_built_dataset(tmp_path, tokenizer_params):
    from data_pipelines.me.datasets import prepare_dataset
    from data_pipelines.synthetic import me_clips
    from data_pipelines.me.layouts import write_layout
    from dface_jax import cli
    from dface_jax.workdir import write_tokenizer
    import ml_collections

    clips = [c for c in me_clips(preset="composite", size=16, seed=0) if c.dataset == "casme2"][:12]
    write_layout(clips, "casme2", tmp_path / "raw")
    prepare_dataset("casme2", tmp_path / "raw", tmp_path / "data", image_size=16, trust_cropped=True)
    config = ml_collections.ConfigDict({"tokenizer": TINY_TOKENIZER.to_dict()})
    write_tokenizer(tmp_path / "tok", tokenizer_params, config, "test")
    assert cli.main(["extract-tokens", "--tokenizer", str(tmp_path / "tok"), "--data-dir",
                     str(tmp_path / "data"), "--dataset", "casme2", "--out",
                     str(tmp_path / "tokens.npz"), "--batch-size", "4"]) == 0
    cache = cache_lib.load_token_cache(tmp_path / "tokens.npz")
    assert cache["action_tokens"].shape == (len(clips), 16)
    assert str(cache["tokenizer_workdir"]).endswith("tok")
