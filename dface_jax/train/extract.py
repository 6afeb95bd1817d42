"""The token cache: every clip's (onset, apex) pair encoded once by a frozen tokenizer.

LOSO sweeps read this cache, so a sweep never re-runs the tokenizer. Fields (INTERFACES.md
"Token cache"): ``action_tokens`` int32 [N, 16], ``action_vectors`` float32 [N, 16, D]
(the hard-quantized action vectors after the tokenizer's output projection, what the
classifier reads), ``labels`` int32 [N], ``label_names`` str [K], ``subjects`` / ``datasets``
/ ``clip_ids`` str [N], ``frame_difference`` float32 [N, h, w, C] (apex - onset resized to
h = w = ``difference_size``, the pixel baseline's input), ``tokenizer_workdir`` str and
``apex_rule`` str (0-d). Optional: ``pair_frames`` float16 [N, 2, H, W, C] (onset and
apex as the tokenizer reads them; ``--keep-frames``), which LOSO with joint tokenizer
fine-tuning encodes on the fly. float16 keeps a 256 px RGB composite cache at ~350 MB; its
rounding (< 2.5e-4 in [0, 1]) is below one 8-bit gray level. Strings are stored as numpy
unicode arrays, so ``np.load`` needs no pickle.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

CACHE_FIELDS = ("action_tokens", "action_vectors", "labels", "label_names", "subjects",
                "datasets", "clip_ids", "frame_difference", "tokenizer_workdir", "apex_rule")
PER_CLIP_FIELDS = ("action_tokens", "action_vectors", "labels", "subjects", "datasets",
                   "clip_ids", "frame_difference")
OPTIONAL_FIELDS = ("pair_frames",)


def match_channels(frames: jax.Array, channels: int) -> jax.Array:
    """Gray frames ``[..., 1]`` for an RGB tokenizer (the released one) repeat their channel
    into R, G and B, as the release's data loader does (``PIL convert('RGB')``); frames that
    already have ``channels`` pass through."""
    if frames.shape[-1] == channels:
        return frames
    if frames.shape[-1] != 1:
        raise ValueError(f"frames have {frames.shape[-1]} channels; the tokenizer takes {channels} "
                         "(or gray frames, which are repeated)")
    return jnp.repeat(frames, channels, axis=-1)


def make_batch_encoder(params: Any, tok_config: Any, difference_size: int,
                       keep_frames: bool = False) -> Callable:
    """A jit-compiled ``(onset [B,H,W,C], apex [B,H,W,C]) -> (action_tokens int32 [B,16],
    action_vectors [B,16,D], frame_difference [B,s,s,C])`` with ``params`` closed over;
    with ``keep_frames`` also ``pair_frames`` float16 [B,2,H,W,C_tok] (the pair as the
    tokenizer read it)."""
    from dface_jax.models.tokenizer import embed_actions, encode_actions

    @jax.jit
    def encode(params, onset, apex):
        # The pixel baseline reads the data's own channels: the difference is taken first.
        difference = apex - onset
        onset, apex = match_channels(onset, tok_config.channels), match_channels(apex, tok_config.channels)
        action_tokens = encode_actions(params, tok_config, onset, apex)
        action_vectors = embed_actions(params, tok_config, action_tokens)
        shape = (difference.shape[0], difference_size, difference_size, difference.shape[-1])
        # Antialiased linear resize: the difference is smoothed, not aliased, when shrunk.
        frame_difference = jax.image.resize(difference, shape, method="linear")
        outputs = (action_tokens.astype(jnp.int32), action_vectors.astype(jnp.float32),
                   frame_difference)
        if keep_frames:
            outputs += (jnp.stack([onset, apex], axis=1).astype(jnp.float16),)
        return outputs

    return lambda onset, apex: encode(params, onset, apex)


def _check_sample(index: int, sample: Mapping[str, Any], frame_shape: tuple | None) -> tuple:
    for field in ("onset", "apex", "label", "subject", "dataset", "clip_id"):
        if field not in sample:
            raise KeyError(f"MER sample {index} has no {field!r} field; it has {sorted(sample)}")
    onset, apex = np.asarray(sample["onset"]), np.asarray(sample["apex"])
    if onset.ndim != 3 or onset.shape != apex.shape:
        raise ValueError(f"MER sample {index} ({sample['clip_id']}): onset {onset.shape} and apex "
                         f"{apex.shape} must be the same [H, W, C]")
    if frame_shape is not None and onset.shape != frame_shape:
        raise ValueError(f"MER sample {index} ({sample['clip_id']}): frames are {onset.shape}, "
                         f"earlier samples were {frame_shape}; all clips must share one size")
    return onset.shape


def extract_tokens(params: Any, tok_config: Any, samples: Sequence[Mapping[str, Any]], *,
                   label_names: Sequence[str], batch_size: int = 64, difference_size: int = 32,
                   tokenizer_workdir: str = "", apex_rule: str = "", keep_frames: bool = False
                   ) -> dict[str, np.ndarray]:
    """Encodes every sample's (onset, apex) pair; returns the token cache as a dict.

    Args:
      params: the tokenizer's params. tok_config: its ``TokenizerConfig``.
      samples: random-access MER samples (``load_mer_source`` items): ``onset``/``apex``
        [H, W, C] float32 in [0, 1], ``label`` int, ``subject``, ``dataset``, ``clip_id``.
      label_names: [K] class names in label order.
      batch_size: clips per compiled call; the last batch is padded (one compilation).
      difference_size: side of the stored ``frame_difference``.
      keep_frames: also store ``pair_frames`` (for joint tokenizer fine-tuning).
    Returns:
      The cache dict (see the module docstring).
    """
    if len(samples) == 0:
        raise ValueError("extract_tokens got no samples")
    encode = make_batch_encoder(params, tok_config, difference_size, keep_frames)
    outputs: dict[str, list] = {"action_tokens": [], "action_vectors": [], "frame_difference": []}
    if keep_frames:
        outputs["pair_frames"] = []
    meta: dict[str, list] = {"labels": [], "subjects": [], "datasets": [], "clip_ids": []}
    frame_shape = None
    for start in range(0, len(samples), batch_size):
        batch = [samples[i] for i in range(start, min(start + batch_size, len(samples)))]
        for offset, sample in enumerate(batch):
            frame_shape = _check_sample(start + offset, sample, frame_shape)
            label = int(sample["label"])
            if not 0 <= label < len(label_names):
                raise ValueError(f"MER sample {start + offset} ({sample['clip_id']}): label {label} "
                                 f"is outside the {len(label_names)} classes {tuple(label_names)}")
            meta["labels"].append(label)
            meta["subjects"].append(str(sample["subject"]))
            meta["datasets"].append(str(sample["dataset"]))
            meta["clip_ids"].append(str(sample["clip_id"]))
        onset = np.stack([np.asarray(s["onset"], np.float32) for s in batch])
        apex = np.stack([np.asarray(s["apex"], np.float32) for s in batch])
        real = len(batch)
        if real < batch_size:  # pad with copies of the last clip, dropped below
            pad = batch_size - real
            onset = np.concatenate([onset, np.repeat(onset[-1:], pad, axis=0)])
            apex = np.concatenate([apex, np.repeat(apex[-1:], pad, axis=0)])
        for name, value in zip(outputs, encode(jnp.asarray(onset), jnp.asarray(apex))):
            outputs[name].append(np.asarray(value)[:real])
    cache = {name: np.concatenate(values) for name, values in outputs.items()}
    cache["labels"] = np.asarray(meta["labels"], np.int32)
    for name in ("subjects", "datasets", "clip_ids"):
        cache[name] = np.asarray(meta[name], dtype=str)
    cache["label_names"] = np.asarray(tuple(label_names), dtype=str)
    cache["tokenizer_workdir"] = np.asarray(str(tokenizer_workdir))
    cache["apex_rule"] = np.asarray(str(apex_rule))
    return cache


def validate_token_cache(cache: Mapping[str, np.ndarray], source: str = "token cache") -> None:
    """Checks fields, shapes and label range; errors name ``source`` and the field."""
    missing = [name for name in CACHE_FIELDS if name not in cache]
    if missing:
        raise KeyError(f"{source}: missing field(s) {missing}; a token cache has {list(CACHE_FIELDS)}")
    num_clips = len(cache["labels"])
    for name in PER_CLIP_FIELDS + tuple(f for f in OPTIONAL_FIELDS if f in cache):
        if len(cache[name]) != num_clips:
            raise ValueError(f"{source}: field {name!r} has {len(cache[name])} rows, "
                             f"'labels' has {num_clips}")
    tokens, vectors = cache["action_tokens"], cache["action_vectors"]
    if tokens.ndim != 2 or vectors.ndim != 3 or vectors.shape[:2] != tokens.shape:
        raise ValueError(f"{source}: expected action_tokens [N, L] and action_vectors [N, L, D], "
                         f"got {tokens.shape} and {vectors.shape}")
    if "pair_frames" in cache and (cache["pair_frames"].ndim != 5 or cache["pair_frames"].shape[1] != 2):
        raise ValueError(f"{source}: pair_frames must be [N, 2, H, W, C] (onset, apex), "
                         f"got {cache['pair_frames'].shape}")
    if cache["frame_difference"].ndim != 4:
        raise ValueError(f"{source}: frame_difference must be [N, h, w, C], "
                         f"got {cache['frame_difference'].shape}")
    num_classes = len(cache["label_names"])
    labels = np.asarray(cache["labels"])
    if num_clips and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(np.flatnonzero((labels < 0) | (labels >= num_classes))[0])
        raise ValueError(f"{source}: labels[{bad}] = {labels[bad]} is outside the "
                         f"{num_classes} classes {tuple(cache['label_names'])}")


def save_token_cache(path: str | pathlib.Path, cache: Mapping[str, np.ndarray]) -> pathlib.Path:
    """Validates and writes the cache as an uncompressed ``.npz``."""
    validate_token_cache(cache, str(path))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:  # a file handle keeps np.savez from appending ".npz"
        np.savez(handle, **{name: np.asarray(cache[name]) for name in CACHE_FIELDS + OPTIONAL_FIELDS
                            if name in cache})
    return path


def load_token_cache(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """Reads and validates a cache written by :func:`save_token_cache`."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"token cache {path} does not exist; write it with "
                                "`dface-jax extract-tokens`")
    with np.load(path, allow_pickle=False) as archive:
        cache = {name: archive[name] for name in archive.files}
    validate_token_cache(cache, str(path))
    return cache


def synthetic_token_cache(labels: Sequence[int], subjects: Sequence[str], datasets: Sequence[str],
                          label_names: Sequence[str], *, seed: int = 0, codebook_size: int = 32,
                          num_tokens: int = 16, vector_dim: int = 32, difference_size: int = 32
                          ) -> dict[str, np.ndarray]:
    """A cache of random tokens with given labels/subjects (for timing, not for accuracy):
    tokens uniform over the codebook, vectors a fixed random embedding of them, frame
    differences Gaussian noise. ``tokenizer_workdir`` says ``"none (random tokens)"``."""
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
        "tokenizer_workdir": np.asarray("none (random tokens)"),
        "apex_rule": np.asarray("none"),
    }


def restore_tokenizer(workdir: str | pathlib.Path, step: int | None = None) -> tuple[Any, Any]:
    """(params, TokenizerConfig) of a pretraining (or ``import-torch``) workdir: its
    ``config.json`` ``tokenizer`` field and the latest (or ``step``) checkpoint's params."""
    from dface_jax.configs import read_config
    from dface_jax.models.tokenizer import TokenizerConfig
    from dface_jax.train.checkpoint import restore_params

    workdir = pathlib.Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: is {workdir} a tokenizer workdir "
                                "(written by `dface-jax pretrain` or `import-torch`)?")
    config = read_config(config_path)
    if "tokenizer" not in config:
        raise KeyError(f"{config_path} has no 'tokenizer' field; its fields are {sorted(config.keys())}")
    return restore_params(workdir, step), TokenizerConfig.from_dict(config.tokenizer.to_dict())


def extract_dataset(tokenizer_workdir: str | pathlib.Path, dataset: str, data_dir: str | pathlib.Path,
                    *, batch_size: int = 64, difference_size: int = 32,
                    build_config: str | None = None, keep_frames: bool = False
                    ) -> dict[str, np.ndarray]:
    """The token cache of a built MER dataset (``load_mer_source(dataset, data_dir)``)."""
    from data_pipelines.mer_source import load_mer_source

    params, tok_config = restore_tokenizer(tokenizer_workdir)
    source = load_mer_source(dataset, data_dir, config=build_config)
    frame_size = tuple(np.asarray(source[0]["onset"]).shape)
    expected = (tok_config.image_size, tok_config.image_size, tok_config.channels)
    # Gray data feeds an RGB tokenizer by repeating the channel (match_channels).
    if frame_size[:2] != expected[:2] or frame_size[2] not in (1, expected[2]):
        raise ValueError(f"{source}: frames are {frame_size}, the tokenizer in {tokenizer_workdir} "
                         f"expects {expected}; prepare the dataset at that size")
    apex_rule = source.summary.get("apex_rule") or source.build_dir.parent.name
    return extract_tokens(params, tok_config, source, label_names=source.label_names,
                          batch_size=batch_size, difference_size=difference_size,
                          tokenizer_workdir=str(pathlib.Path(tokenizer_workdir).resolve()),
                          apex_rule=str(apex_rule), keep_frames=keep_frames)
