"""Talking-face clips as ArrayRecord shards, and the Grain pipeline that samples frame pairs.

On disk (one directory): ``clips-00000-of-00004.array_record`` ... one record per clip, the
clip's frames ``uint8 [T, H, W, C]`` serialised with ``np.save`` (so shape and dtype travel
with the bytes), plus ``metadata.json`` with ``image_size``, ``channels``, ``num_clips``,
``min_frames``, ``max_frames``. SynthFACS (``dface-jax synth``) and VoxCeleb
(``dface-jax prepare-voxceleb``) both write this format, so one pipeline reads both. The
directory may be local or ``gs://`` (ArrayRecord and Grain read both; the C++ writer needs
a local file, so shards for a bucket are written locally and uploaded, metadata last).

The pipeline (:func:`pair_dataset`), in order:
``MapDataset.source(ArrayRecordDataSource)`` -> ``shuffle(seed)`` (a new permutation each
epoch) -> ``repeat()`` -> per-clip random (source, driving) pair ``min_gap..max_gap`` frames
apart plus light augmentation (one flip for both frames, one brightness shift for both,
then the pair augmentations of :mod:`.augment`, off by default) ->
``[shard_index::shard_count]`` (each JAX process takes its own slice) -> ``batch`` ->
``to_iter_dataset`` -> worker processes (``mp_prefetch``) when ``num_workers > 0``.
Every random choice is a function of (seed, global element index), so the stream is the
same with 0 or N workers and an iterator restored from a checkpoint yields the same next
batch.
"""

from __future__ import annotations

import io
import json
from typing import Iterable

import grain
import numpy as np
from absl import flags
from array_record.python import array_record_module
from etils import epath

from data_pipelines import storage
from data_pipelines.talking_faces.augment import PairAugment, augment_pair

METADATA_FILE = "metadata.json"
SHARD_PATTERN = "clips-*-of-*.array_record"
PARTIAL_PATTERN = "partial-*.array_record"


def encode_clip(frames: np.ndarray) -> bytes:
    """Serialises one clip ``[T, H, W, C]`` to ``uint8`` npy bytes (floats in [0, 1] are scaled)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"a clip must be [T, H, W, C], got shape {frames.shape}")
    if frames.dtype != np.uint8:
        if not np.issubdtype(frames.dtype, np.floating):
            raise ValueError(f"clip frames must be uint8 or float in [0, 1], got dtype {frames.dtype}")
        frames = np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    np.save(buffer, frames, allow_pickle=False)
    return buffer.getvalue()


def decode_clip(record: bytes) -> np.ndarray:
    """Inverse of :func:`encode_clip`: ``uint8 [T, H, W, C]``."""
    return np.load(io.BytesIO(record), allow_pickle=False)


def write_clip_shards(clips: Iterable[np.ndarray], out_dir: storage.PathLike,
                      clips_per_shard: int = 256) -> list[epath.Path]:
    """Writes clips ``[T, H, W, C]`` (uint8, or float in [0, 1]) as ArrayRecord shards.

    All clips must share ``H, W, C`` (H == W); ``T`` may vary. Returns the shard paths.
    ``metadata.json`` is written last: a directory with it is complete. A directory without
    it holds what a killed writer left (partial or finished shard files), which is removed
    before writing. Locally, files are written under temporary names and renamed at the
    end; for a ``gs://`` directory they are written to a local staging folder and uploaded
    (each object appears whole), ``metadata.json`` last.
    """
    if clips_per_shard < 1:
        raise ValueError(f"clips_per_shard must be >= 1, got {clips_per_shard}")
    out_dir = storage.as_path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / METADATA_FILE).exists():
        raise FileExistsError(f"{out_dir} already holds clip shards; write to an empty directory")
    for leftover in [*out_dir.glob(SHARD_PATTERN), *out_dir.glob(PARTIAL_PATTERN)]:
        leftover.unlink()  # an interrupted write: its metadata.json was never written
    with storage.staging_dir(out_dir, last=(METADATA_FILE,)) as local_dir:
        names = _write_shards(clips, local_dir, clips_per_shard)
    return [out_dir / name for name in names]


def _write_shards(clips: Iterable[np.ndarray], out_dir: epath.Path,
                  clips_per_shard: int) -> list[str]:
    """The shards and metadata.json of :func:`write_clip_shards` in a local ``out_dir``;
    returns the shard file names."""
    frame_shape = None
    lengths: list[int] = []
    temp_paths: list[epath.Path] = []
    writer = None
    for clip_index, clip in enumerate(clips):
        record = encode_clip(clip)
        clip = np.asarray(clip)
        if frame_shape is None:
            frame_shape = clip.shape[1:]
            if frame_shape[0] != frame_shape[1] or frame_shape[2] not in (1, 3):
                raise ValueError(f"clip 0: frames must be square with 1 or 3 channels, "
                                 f"got [H, W, C] = {list(frame_shape)}")
        elif clip.shape[1:] != frame_shape:
            raise ValueError(f"clip {clip_index}: frame shape {list(clip.shape[1:])} differs "
                             f"from clip 0's {list(frame_shape)}")
        if clip_index % clips_per_shard == 0:
            if writer is not None:
                writer.close()
            temp_paths.append(out_dir / PARTIAL_PATTERN.replace("*", f"{len(temp_paths):05d}"))
            # group_size:1 keeps random access to one record cheap (one clip per chunk).
            writer = array_record_module.ArrayRecordWriter(str(temp_paths[-1]), "group_size:1")
        writer.write(record)
        lengths.append(int(clip.shape[0]))
    if writer is not None:
        writer.close()
    if not lengths:
        raise ValueError("write_clip_shards got no clips")
    names = []
    for index, temp in enumerate(temp_paths):
        names.append(f"clips-{index:05d}-of-{len(temp_paths):05d}.array_record")
        temp.rename(out_dir / names[-1])
    metadata = {"image_size": int(frame_shape[0]), "channels": int(frame_shape[2]),
                "num_clips": len(lengths), "min_frames": min(lengths), "max_frames": max(lengths),
                "num_shards": len(names)}
    storage.write_json(out_dir / METADATA_FILE, metadata)
    return names


def read_metadata(shard_dir: storage.PathLike) -> dict:
    """Reads ``metadata.json`` of a shard directory, with an error that says what is missing."""
    path = storage.as_path(shard_dir) / METADATA_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {shard_dir} is not a clip-shard directory "
                                f"(write one with write_clip_shards or `dface-jax synth`)")
    metadata = json.loads(path.read_text())
    for field in ("image_size", "channels", "num_clips", "min_frames"):
        if field not in metadata:
            raise ValueError(f"{path}: field {field!r} missing")
    return metadata


def shard_paths(shard_dir: storage.PathLike) -> list[str]:
    """The ArrayRecord files of a shard directory, sorted (``gs://`` URIs stay URIs)."""
    paths = sorted(str(p) for p in storage.as_path(shard_dir).glob(SHARD_PATTERN))
    if not paths:
        raise FileNotFoundError(f"no {SHARD_PATTERN} files in {shard_dir}")
    return paths


def clip_source(shard_dir: storage.PathLike) -> grain.sources.ArrayRecordDataSource:
    """Random-access source over the clips of a shard directory (records are npy bytes)."""
    return grain.sources.ArrayRecordDataSource(shard_paths(shard_dir))


def sample_pair(frames: np.ndarray, rng: np.random.Generator, *, min_gap: int, max_gap: int,
                flip_prob: float = 0.5, brightness: float = 0.0,
                augment: PairAugment | None = None) -> dict[str, np.ndarray]:
    """Draws a (source, driving) pair ``min_gap..max_gap`` frames apart from one clip.

    Args:
      frames: ``uint8 [T, H, W, C]``.
      rng: the per-element generator Grain's ``random_map`` hands over.
      min_gap, max_gap: frame distance driving - source (driving comes later).
      flip_prob: probability of a horizontal flip, applied to both frames alike.
      brightness: maximum absolute brightness shift, the same shift for both frames (an
        independent shift would be a "change" the tokens would have to encode).
      augment: framing, appearance and local-motion augmentation (:mod:`.augment`).
    Returns:
      ``{"source", "driving"}`` float32 ``[H, W, C]`` in [0, 1].
    """
    num_frames = frames.shape[0]
    if num_frames <= min_gap:
        raise ValueError(f"a clip of {num_frames} frames has no pair {min_gap} frames apart; "
                         f"lower min_gap or write longer clips")
    gap = int(rng.integers(min_gap, min(max_gap, num_frames - 1) + 1))
    start = int(rng.integers(0, num_frames - gap))
    pair = frames[[start, start + gap]].astype(np.float32) / 255.0
    if rng.random() < flip_prob:
        pair = pair[:, :, ::-1, :]
    if brightness > 0:
        pair = np.clip(pair + rng.uniform(-brightness, brightness), 0.0, 1.0)
    if augment is not None:
        pair = augment_pair(pair, rng, augment)
    pair = np.ascontiguousarray(pair, dtype=np.float32)
    return {"source": pair[0], "driving": pair[1]}


def pair_map_dataset(shard_dir: storage.PathLike, *, seed: int, min_gap: int, max_gap: int,
                     batch_size: int, shard_index: int = 0, shard_count: int = 1,
                     flip_prob: float = 0.5, brightness: float = 0.05,
                     augment: PairAugment | None = None) -> grain.MapDataset:
    """The pair pipeline as a (infinite, batched) ``MapDataset``; see the module docstring.

    ``batch_size`` is this process's batch (the global batch / ``shard_count``).
    """
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} not in [0, shard_count={shard_count})")
    if not 1 <= min_gap <= max_gap:
        raise ValueError(f"need 1 <= min_gap <= max_gap, got min_gap={min_gap}, max_gap={max_gap}")
    metadata = read_metadata(shard_dir)
    if metadata["min_frames"] <= min_gap:
        raise ValueError(f"{shard_dir}: shortest clip has {metadata['min_frames']} frames, "
                         f"too short for min_gap={min_gap}")

    def to_pair(record: bytes, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return sample_pair(decode_clip(record), rng, min_gap=min_gap, max_gap=max_gap,
                           flip_prob=flip_prob, brightness=brightness, augment=augment)

    dataset = (grain.MapDataset.source(clip_source(shard_dir))
               .shuffle(seed=seed)
               .repeat()
               .random_map(to_pair, seed=seed + 1))
    # Every process sees the same shuffled stream and keeps every shard_count-th element.
    dataset = dataset[shard_index::shard_count]
    return dataset.batch(batch_size, drop_remainder=True)


def pair_dataset(shard_dir: storage.PathLike, *, seed: int, min_gap: int, max_gap: int,
                 batch_size: int, shard_index: int = 0, shard_count: int = 1,
                 flip_prob: float = 0.5, brightness: float = 0.05,
                 augment: PairAugment | None = None, num_workers: int = 0,
                 prefetch_buffer_size: int = 2) -> grain.IterDataset:
    """Grain pipeline of ``{"source", "driving"}: float32 [B, H, W, C]`` batches.

    ``iter(pair_dataset(...))`` is checkpointable with ``grain.checkpoint.CheckpointSave``.
    With ``num_workers > 0`` batches are made in that many worker processes.
    """
    dataset = pair_map_dataset(shard_dir, seed=seed, min_gap=min_gap, max_gap=max_gap,
                               batch_size=batch_size, shard_index=shard_index,
                               shard_count=shard_count, flip_prob=flip_prob,
                               brightness=brightness, augment=augment)
    iter_dataset = dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=1, prefetch_buffer_size=prefetch_buffer_size))
    if num_workers > 0:
        # Grain's worker processes read absl flags; outside an absl app they are unparsed.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        iter_dataset = iter_dataset.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=num_workers))
    return iter_dataset
