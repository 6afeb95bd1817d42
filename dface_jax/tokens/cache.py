"""The token cache: every clip's (onset, apex) pair encoded once by a frozen tokenizer.

LOSO sweeps read this cache, so a sweep never re-runs the tokenizer. Fields (docs/INTERFACES.md
"Token cache"): ``action_tokens`` int32 [N, 16], ``action_vectors`` float32 [N, 16, D]
(the hard-quantized action vectors after the tokenizer's output projection, what the
classifier reads), ``labels`` int32 [N], ``label_names`` str [K], ``subjects`` / ``datasets``
/ ``clip_ids`` str [N], ``frame_difference`` float32 [N, h, w, C] (apex - onset resized to
h = w = ``difference_size``, the pixel baseline's input), ``tokenizer_workdir`` str and
``apex_rule`` str (0-d). The flow baselines' inputs (STSTNet, OFF-ApexNet;
:mod:`dface_jax.tokens.flow`): ``optical_flow`` float32 [N, s, s, 2] (onset -> apex, u
and v in pixels of the s x s grid, s = 28), ``optical_strain`` float32 [N, s, s, 1] and
``flow_method`` str (0-d, how they were computed); ``extract-tokens`` always writes them,
caches written before they existed lack them and only the flow baselines need them.
Optional: ``pair_frames`` float16 [N, 2, H, W, C] (onset and
apex as the tokenizer reads them; ``--keep-frames``), which LOSO with joint tokenizer
fine-tuning encodes on the fly. float16 keeps a 256 px RGB composite cache at ~350 MB; its
rounding (< 2.5e-4 in [0, 1]) is below one 8-bit gray level. Strings are stored as numpy
unicode arrays, so ``np.load`` needs no pickle.
"""

from __future__ import annotations

import io
import os
from typing import Mapping, Sequence

import numpy as np

from data_pipelines import storage
from data_pipelines.errors import InputError

CACHE_FIELDS = ("action_tokens", "action_vectors", "labels", "label_names", "subjects",
                "datasets", "clip_ids", "frame_difference", "tokenizer_workdir", "apex_rule")
PER_CLIP_FIELDS = ("action_tokens", "action_vectors", "labels", "subjects", "datasets",
                   "clip_ids", "frame_difference")
OPTIONAL_FIELDS = ("pair_frames", "optical_flow", "optical_strain")  # per clip
FLOW_FIELDS = ("optical_flow", "optical_strain", "flow_method")
# 0-d str: the TFDS build the clips came from, how the flow was computed
PROVENANCE_FIELDS = ("dataset_build", "flow_method")


class TokenCacheError(InputError, ValueError):
    """A token cache is missing or malformed (the message names the file and the field)."""


def validate_token_cache(cache: Mapping[str, np.ndarray], source: str = "token cache") -> None:
    """Checks fields, shapes and label range; errors name ``source`` and the field."""
    missing = [name for name in CACHE_FIELDS if name not in cache]
    if missing:
        raise TokenCacheError(f"{source}: missing field(s) {missing}; a token cache has "
                              f"{list(CACHE_FIELDS)}")
    num_clips = len(cache["labels"])
    for name in PER_CLIP_FIELDS + tuple(f for f in OPTIONAL_FIELDS if f in cache):
        if len(cache[name]) != num_clips:
            raise TokenCacheError(f"{source}: field {name!r} has {len(cache[name])} rows, "
                             f"'labels' has {num_clips}")
    tokens, vectors = cache["action_tokens"], cache["action_vectors"]
    if tokens.ndim != 2 or vectors.ndim != 3 or vectors.shape[:2] != tokens.shape:
        raise TokenCacheError(f"{source}: expected action_tokens [N, L] and action_vectors [N, L, D], "
                         f"got {tokens.shape} and {vectors.shape}")
    if "pair_frames" in cache and (cache["pair_frames"].ndim != 5 or cache["pair_frames"].shape[1] != 2):
        raise TokenCacheError(f"{source}: pair_frames must be [N, 2, H, W, C] (onset, apex), "
                         f"got {cache['pair_frames'].shape}")
    for name, channels in (("optical_flow", 2), ("optical_strain", 1)):
        if name in cache and (cache[name].ndim != 4 or cache[name].shape[-1] != channels):
            raise TokenCacheError(f"{source}: {name} must be [N, s, s, {channels}], got "
                                  f"{cache[name].shape}")
    if cache["frame_difference"].ndim != 4:
        raise TokenCacheError(f"{source}: frame_difference must be [N, h, w, C], "
                         f"got {cache['frame_difference'].shape}")
    num_classes = len(cache["label_names"])
    labels = np.asarray(cache["labels"])
    if num_clips and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(np.flatnonzero((labels < 0) | (labels >= num_classes))[0])
        raise TokenCacheError(f"{source}: labels[{bad}] = {labels[bad]} is outside the "
                         f"{num_classes} classes {tuple(cache['label_names'])}")


def require_flow(cache: Mapping[str, np.ndarray], source: str = "token cache") -> None:
    """Raises :class:`TokenCacheError` (one line naming ``source``) unless the cache holds
    the onset-apex optical flow that STSTNet and OFF-ApexNet read."""
    missing = [name for name in FLOW_FIELDS if name not in cache]
    if missing:
        raise TokenCacheError(f"{source}: no optical flow ({', '.join(missing)}): the cache was "
                              "written before the flow baselines existed; re-run `dface-jax "
                              "extract-tokens` to write it with the flow")


def save_token_cache(path: str | os.PathLike, cache: Mapping[str, np.ndarray]):
    """Validates and writes the cache as an uncompressed ``.npz`` (atomically: a killed job
    leaves the previous file or none, never a torn one). Returns the path."""
    validate_token_cache(cache, str(path))
    buffer = io.BytesIO()  # a file object keeps np.savez from appending ".npz"
    np.savez(buffer, **{name: np.asarray(cache[name])
                        for name in CACHE_FIELDS + OPTIONAL_FIELDS + PROVENANCE_FIELDS
                        if name in cache})
    return storage.write_bytes_atomic(path, buffer.getvalue())


def load_token_cache(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads and validates a cache written by :func:`save_token_cache`."""
    path = storage.as_path(path)
    if not path.exists():
        raise TokenCacheError(f"{path}: token cache not found; write it with "
                              "`dface-jax extract-tokens`")
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as archive:
            cache = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as err:
        raise TokenCacheError(f"{path}: not a token cache (.npz) ({err})") from None
    validate_token_cache(cache, str(path))
    return cache


def synthetic_token_cache(labels: Sequence[int], subjects: Sequence[str], datasets: Sequence[str],
                          label_names: Sequence[str], *, seed: int = 0, codebook_size: int = 32,
                          num_tokens: int = 16, vector_dim: int = 32, difference_size: int = 32,
                          flow_size: int = 28) -> dict[str, np.ndarray]:
    """A cache of random tokens with given labels/subjects (for timing, not for accuracy):
    tokens uniform over the codebook, vectors a fixed random embedding of them, frame
    differences and flow Gaussian noise. ``tokenizer_workdir`` says ``"none (random
    tokens)"``."""
    rng = np.random.default_rng(seed)
    num_clips = len(labels)
    action_tokens = rng.integers(0, codebook_size, (num_clips, num_tokens)).astype(np.int32)
    codebook = rng.normal(size=(codebook_size, vector_dim)).astype(np.float32)
    return {
        "action_tokens": action_tokens,
        "action_vectors": codebook[action_tokens],
        "labels": np.asarray(labels, np.int32),
        "label_names": np.asarray(tuple(label_names), dtype=str),
        "subjects": np.asarray(subjects, dtype=str),
        "datasets": np.asarray(datasets, dtype=str),
        "clip_ids": np.asarray([f"clip{i:04d}" for i in range(num_clips)], dtype=str),
        "frame_difference": (0.05 * rng.normal(size=(num_clips, difference_size, difference_size, 1))
                             ).astype(np.float32),
        "optical_flow": (0.1 * rng.normal(size=(num_clips, flow_size, flow_size, 2))
                         ).astype(np.float32),
        "optical_strain": np.abs(0.02 * rng.normal(size=(num_clips, flow_size, flow_size, 1))
                                 ).astype(np.float32),
        "flow_method": np.asarray("none (random noise)"),
        "tokenizer_workdir": np.asarray("none (random tokens)"),
        "apex_rule": np.asarray("none"),
    }
