"""What tokenizer pretraining reads: clip shards, and the SynthFACS clips that fill them.

Real pretraining reads VoxCeleb clip shards (``dface-jax prepare-voxceleb``). Synthetic
pretraining renders SynthFACS talking-face clips into shards first
(:func:`ensure_clip_shards`); ``dface-jax synth --preset talking --config FILE`` writes the
same shards from the same settings, so what a user inspects is what ``pretrain`` trains on.
Either way the pairs come from :func:`data_pipelines.talking_faces.shards.pair_dataset`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import jax
import numpy as np
from etils import epath

from data_pipelines import storage
from dface_jax.configs import dataclass_from_dict


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The ``data`` section of a pretraining config.

    Pair sampling (every run): ``dir`` holds the clip shards ("" = ``WORKDIR/data``,
    rendered from SynthFACS when ``synthetic``); source and driving frames are
    ``min_gap``..``max_gap`` frames apart (the paper: VoxCeleb frames 8-15 apart at 25 fps);
    ``flip_prob`` mirrors a pair, ``brightness`` jitters its gain; ``num_workers`` Grain
    processes; ``seed`` orders the pairs.

    SynthFACS talking clips (only when ``synthetic``): ``num_clips`` clips of
    ``num_frames`` frames from seed ``synth_seed``, ``clips_per_shard`` per shard. The
    clips' nuisance is SynthFACS's default scaled by ``pose_jitter`` (frame-to-frame head
    jitter), ``pose_drift`` (slow drift across a clip) and ``sensor_noise``; a share
    ``speech_probability`` of the clips talk; other actions change every
    ``action_knot_spacing`` frames; ``bursts_per_clip`` expressions rise to an apex in
    ``burst_apex`` within 2-4 frames; ``head_placement`` gives each clip its own head offset
    (in units of the default jitter); ``camera_scales`` (low, high) its own camera scale.
    """

    dir: str = ""
    synthetic: bool = False
    min_gap: int = 8
    max_gap: int = 15
    flip_prob: float = 0.5
    brightness: float = 0.05
    num_workers: int = 8
    seed: int = 0
    clips_per_shard: int = 256
    num_clips: int = 768
    num_frames: int = 16
    synth_seed: int = 1
    pose_jitter: float = 0.0
    pose_drift: float = 0.0
    sensor_noise: float = 1.0
    speech_probability: float = 0.5
    action_knot_spacing: float = 12.0
    bursts_per_clip: int = 2
    burst_apex: tuple[float, float] = (0.5, 1.0)
    head_placement: float = 0.0
    camera_scales: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def from_dict(cls, values: "dict[str, Any] | DataConfig") -> "DataConfig":
        """From a config section (lists read back from JSON become tuples); a DataConfig
        passes through."""
        if isinstance(values, cls):
            return values
        return dataclass_from_dict(cls, {key: tuple(value) if isinstance(value, list) else value
                                         for key, value in dict(values).items()})


def build_data_iterator(config: Any, shard_dir: storage.PathLike, local_batch_size: int):
    """This process's Grain iterator of pair batches (its shard of every global batch),
    from a pretraining config's ``data`` and ``augment`` sections."""
    from data_pipelines.talking_faces.augment import PairAugment
    from data_pipelines.talking_faces.shards import pair_dataset

    data = DataConfig.from_dict(config.data)
    augment = dataclass_from_dict(PairAugment, {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in config.augment.to_dict().items()})
    dataset = pair_dataset(shard_dir, seed=data.seed, min_gap=data.min_gap,
                           max_gap=data.max_gap, batch_size=local_batch_size,
                           shard_index=jax.process_index(), shard_count=jax.process_count(),
                           flip_prob=data.flip_prob, brightness=data.brightness,
                           augment=None if augment.is_identity else augment,
                           num_workers=data.num_workers)
    return iter(dataset)


def synthetic_talking_chunks(data_config: Any, image_size: int, *,
                             chunk_size: int = 64) -> Iterator[dict[str, np.ndarray]]:
    """The SynthFACS talking clips ``data_config`` describes, ``chunk_size`` at a time: the
    ``talking_clips`` dicts (``frames``, ``au_intensities``, ``identity``) of chunk i, drawn
    with seed ``synth_seed * 100003 + i``, so memory stays small whatever the number of
    clips and the true action intensities of every training frame can be recovered."""
    from data_pipelines.synthetic import Nuisance, talking_clips

    data = DataConfig.from_dict(data_config)
    default = Nuisance()
    # Within a pair, head jitter moves every pixel and outweighs a facial action in the
    # pixel loss, so the tokens would spend themselves on head pose; the sensor noise is
    # drawn anew for every frame, so a pair's frames differ by it everywhere.
    nuisance = dataclasses.replace(default, translation_std=default.translation_std * data.pose_jitter,
                                   rotation_std=default.rotation_std * data.pose_jitter,
                                   scale_std=default.scale_std * data.pose_jitter,
                                   noise_std=default.noise_std * data.sensor_noise)
    for chunk, first in enumerate(range(0, data.num_clips, chunk_size)):
        count = min(chunk_size, data.num_clips - first)
        yield talking_clips(seed=data.synth_seed * 100003 + chunk,
                            num_clips=count, num_frames=data.num_frames,
                            size=image_size, nuisance=nuisance, drift=data.pose_drift,
                            speech_probability=data.speech_probability,
                            action_knot_spacing=data.action_knot_spacing,
                            bursts_per_clip=data.bursts_per_clip, burst_apex=data.burst_apex,
                            placement=data.head_placement, camera_scales=data.camera_scales)


def write_synthetic_shards(data_config: Any, image_size: int, out_dir: storage.PathLike, *,
                           chunk_size: int = 64, progress: bool = True) -> epath.Path:
    """Renders the SynthFACS talking clips of ``data_config`` into clip shards at ``out_dir``."""
    from data_pipelines.talking_faces.shards import write_clip_shards

    data = DataConfig.from_dict(data_config)
    frames = (clip for chunk in synthetic_talking_chunks(data, image_size, chunk_size=chunk_size)
              for clip in chunk["frames"])
    if progress:
        from tqdm import tqdm
        frames = tqdm(frames, total=data.num_clips, desc="render talking clips", unit="clip",
                      dynamic_ncols=True)
    write_clip_shards(frames, out_dir, clips_per_shard=data.clips_per_shard)
    return storage.as_path(out_dir)


def shard_dir_of(config: Any, workdir: storage.PathLike) -> epath.Path:
    """Where a pretraining run reads its clip shards: ``data.dir``, else ``WORKDIR/data``
    (local or ``gs://``)."""
    data = DataConfig.from_dict(config.data)
    return storage.as_path(data.dir) if data.dir else storage.as_path(workdir) / "data"


def ensure_clip_shards(config: Any, workdir: storage.PathLike) -> epath.Path:
    """The shard directory of ``config.data`` (:func:`shard_dir_of`); renders SynthFACS
    clips there when it holds none and ``data.synthetic`` is set.

    In a multi-process job process 0 renders and the others wait for it. A render killed
    half-way leaves no ``metadata.json``, so the next run renders again
    (:func:`~data_pipelines.talking_faces.shards.write_clip_shards` removes what it left).
    """
    from data_pipelines.talking_faces.shards import METADATA_FILE

    data = DataConfig.from_dict(config.data)
    shard_dir = shard_dir_of(config, workdir)
    if (shard_dir / METADATA_FILE).exists():
        return shard_dir
    if not data.synthetic:
        raise FileNotFoundError(f"data.dir {shard_dir} holds no clip shards ({METADATA_FILE} "
                                f"missing); write them with `dface-jax prepare-voxceleb`")
    if jax.process_index() == 0:
        write_synthetic_shards(data, config.tokenizer.image_size, shard_dir)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("synthetic clip shards written")
    return shard_dir
