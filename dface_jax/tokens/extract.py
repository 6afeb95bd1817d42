"""Token extraction: every clip's (onset, apex) pair through a frozen tokenizer, once, with
the images the baselines read (the frame difference, and the optical flow and strain of
:mod:`dface_jax.tokens.flow`, computed on the host with OpenCV).

The result is the token cache (:mod:`dface_jax.tokens.cache`) that every LOSO sweep reads.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from data_pipelines import storage
from dface_jax.runtime.batching import pad_rows
from dface_jax.tokens.flow import FLOW_METHOD, FLOW_SIZE, onset_apex_flow


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
                   tokenizer_workdir: str = "", apex_rule: str = "", keep_frames: bool = False,
                   flow_size: int = FLOW_SIZE, progress: bool = False) -> dict[str, np.ndarray]:
    """Encodes every sample's (onset, apex) pair; returns the token cache as a dict.

    Args:
      params: the tokenizer's params. tok_config: its ``TokenizerConfig``.
      samples: random-access MER samples (``load_mer_source`` items): ``onset``/``apex``
        [H, W, C] float32 in [0, 1], ``label`` int, ``subject``, ``dataset``, ``clip_id``.
      label_names: [K] class names in label order.
      batch_size: clips per compiled call; the last batch is padded (one compilation).
      difference_size: side of the stored ``frame_difference``.
      keep_frames: also store ``pair_frames`` (for joint tokenizer fine-tuning).
      flow_size: side of the stored ``optical_flow`` and ``optical_strain``.
      progress: show a bar of encoded clips.
    Returns:
      The cache dict (see the module docstring).
    """
    if len(samples) == 0:
        raise ValueError("extract_tokens got no samples")
    encode = make_batch_encoder(params, tok_config, difference_size, keep_frames)
    outputs: dict[str, list] = {"action_tokens": [], "action_vectors": [], "frame_difference": []}
    if keep_frames:
        outputs["pair_frames"] = []
    meta: dict[str, list] = {"labels": [], "subjects": [], "datasets": [], "clip_ids": [],
                             "optical_flow": [], "optical_strain": []}
    frame_shape = None
    bar = tqdm.tqdm(total=len(samples), desc="extract tokens", unit="clip", dynamic_ncols=True,
                    delay=0.5, disable=not progress)
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
            # OpenCV on the host, clip by clip, while the tokenizer runs batched on device.
            flow, strain = onset_apex_flow(sample["onset"], sample["apex"], flow_size)
            meta["optical_flow"].append(flow)
            meta["optical_strain"].append(strain)
        real = len(batch)
        # Padded with copies of the last clip (dropped below), so encode compiles once.
        onset, apex = pad_rows([np.stack([np.asarray(s[k], np.float32) for s in batch])
                                for k in ("onset", "apex")], batch_size)
        for name, value in zip(outputs, encode(jnp.asarray(onset), jnp.asarray(apex))):
            outputs[name].append(np.asarray(value)[:real])
        bar.update(real)
    bar.close()
    cache = {name: np.concatenate(values) for name, values in outputs.items()}
    cache["labels"] = np.asarray(meta["labels"], np.int32)
    for name in ("subjects", "datasets", "clip_ids"):
        cache[name] = np.asarray(meta[name], dtype=str)
    cache["optical_flow"] = np.stack(meta["optical_flow"])
    cache["optical_strain"] = np.stack(meta["optical_strain"])
    cache["flow_method"] = np.asarray(FLOW_METHOD.format(size=flow_size))
    cache["label_names"] = np.asarray(tuple(label_names), dtype=str)
    cache["tokenizer_workdir"] = np.asarray(str(tokenizer_workdir))
    cache["apex_rule"] = np.asarray(str(apex_rule))
    return cache


def extract_dataset(tokenizer_workdir: storage.PathLike, dataset: str, data_dir: storage.PathLike,
                    *, batch_size: int = 64, difference_size: int = 32,
                    build_config: str | None = None, keep_frames: bool = False,
                    flow_size: int = FLOW_SIZE) -> dict[str, np.ndarray]:
    """The token cache of a built MER dataset (``load_mer_source(dataset, data_dir)``);
    the tokenizer workdir and the data dir may be local or ``gs://``."""
    from data_pipelines.me.datasets import load_mer_source
    from dface_jax.workdir import restore_tokenizer

    params, tok_config = restore_tokenizer(tokenizer_workdir)
    source = load_mer_source(dataset, data_dir, config=build_config)
    frame_size = tuple(np.asarray(source[0]["onset"]).shape)
    expected = (tok_config.image_size, tok_config.image_size, tok_config.channels)
    # Gray data feeds an RGB tokenizer by repeating the channel (match_channels).
    if frame_size[:2] != expected[:2] or frame_size[2] not in (1, expected[2]):
        from data_pipelines.me.records import DatasetError

        raise DatasetError(f"{source}: frames are {frame_size}, the tokenizer in "
                           f"{tokenizer_workdir} expects {expected}; prepare the dataset with "
                           f"--image-size {expected[0]} --channels {expected[2]}")
    apex_rule = source.summary.get("apex_rule") or source.build_dir.parent.name
    cache = extract_tokens(params, tok_config, source, label_names=source.label_names,
                           batch_size=batch_size, difference_size=difference_size,
                           tokenizer_workdir=storage.absolute(tokenizer_workdir),
                           apex_rule=str(apex_rule), keep_frames=keep_frames,
                           flow_size=flow_size, progress=True)
    cache["dataset_build"] = np.asarray(storage.absolute(source.build_dir))
    return cache
