"""Clip shards: write/read round trip, pair sampling rules, process sharding, resumable iterators."""

import json

import numpy as np
import pytest

from data_pipelines.talking_faces import shards as clip_shards


def _clips(num_clips=6, num_frames=9, size=16, channels=1, seed=0):
    """Clips whose every pixel encodes (clip, frame), so pairs can be traced back."""
    clips = np.zeros((num_clips, num_frames, size, size, channels), np.uint8)
    for clip in range(num_clips):
        for frame in range(num_frames):
            clips[clip, frame] = 10 * clip + frame
    return clips


@pytest.fixture
def shard_dir(tmp_path):
    clip_shards.write_clip_shards(_clips(), tmp_path / "shards", clips_per_shard=4)
    return tmp_path / "shards"


def test_write_then_read_round_trip(tmp_path):
    clips = _clips()
    paths = clip_shards.write_clip_shards(clips, tmp_path / "d", clips_per_shard=4)
    assert [p.name for p in paths] == ["clips-00000-of-00002.array_record",
                                       "clips-00001-of-00002.array_record"]
    metadata = json.loads((tmp_path / "d" / "metadata.json").read_text())
    assert metadata["image_size"] == 16 and metadata["channels"] == 1
    assert metadata["num_clips"] == 6 and metadata["min_frames"] == 9
    source = clip_shards.clip_source(tmp_path / "d")
    assert len(source) == 6
    for index in range(6):
        np.testing.assert_array_equal(clip_shards.decode_clip(source[index]), clips[index])


def test_float_clips_are_stored_as_uint8(tmp_path):
    clip = np.linspace(0, 1, 2 * 4 * 4).reshape(2, 4, 4, 1).astype(np.float32)
    clip_shards.write_clip_shards([clip], tmp_path / "d")
    stored = clip_shards.decode_clip(clip_shards.clip_source(tmp_path / "d")[0])
    assert stored.dtype == np.uint8
    np.testing.assert_allclose(stored / 255.0, clip, atol=0.5 / 255 + 1e-7)


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="clip 1: frame shape"):
        clip_shards.write_clip_shards([np.zeros((3, 8, 8, 1)), np.zeros((3, 4, 4, 1))],
                                      tmp_path / "a")
    with pytest.raises(ValueError, match=r"\[T, H, W, C\]"):
        clip_shards.write_clip_shards([np.zeros((8, 8, 1))], tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        clip_shards.pair_dataset(tmp_path / "nothing", seed=0, min_gap=1, max_gap=2, batch_size=2)


def test_pairs_come_from_one_clip_within_the_gap(shard_dir):
    dataset = clip_shards.pair_dataset(shard_dir, seed=3, min_gap=2, max_gap=5, batch_size=4,
                                       brightness=0.0)
    iterator = iter(dataset)
    for _ in range(10):
        batch = next(iterator)
        assert batch["source"].shape == (4, 16, 16, 1) and batch["source"].dtype == np.float32
        source = np.rint(batch["source"][:, 0, 0, 0] * 255).astype(int)
        driving = np.rint(batch["driving"][:, 0, 0, 0] * 255).astype(int)
        assert np.all(source // 10 == driving // 10)  # same clip
        gap = driving - source
        assert np.all((gap >= 2) & (gap <= 5))


def test_flip_and_brightness_apply_to_both_frames():
    # Values away from 0 and 255, so the brightness shift is never clipped.
    frames = np.random.default_rng(0).integers(40, 200, (5, 8, 8, 1)).astype(np.uint8)
    rng = np.random.default_rng(1)
    for _ in range(20):
        pair = clip_shards.sample_pair(frames, rng, min_gap=1, max_gap=1, flip_prob=0.5,
                                       brightness=0.1)
        # Recover the frame indices and the shared transform from the source frame.
        matches = []
        for start in range(4):
            for flip in (False, True):
                src = frames[start, :, ::-1] if flip else frames[start]
                drv = frames[start + 1, :, ::-1] if flip else frames[start + 1]
                shift = pair["source"].mean() - src.mean() / 255.0
                if (np.allclose(pair["source"], np.clip(src / 255.0 + shift, 0, 1), atol=1e-5)
                        and np.allclose(pair["driving"], np.clip(drv / 255.0 + shift, 0, 1),
                                        atol=1e-5)):
                    matches.append((start, flip))
        assert matches, "source and driving do not share one flip and one brightness shift"


def test_process_shards_partition_the_global_stream(shard_dir):
    """Process i of n gets elements i, i+n, ... of the one-process stream."""
    whole = next(iter(clip_shards.pair_dataset(shard_dir, seed=0, min_gap=1, max_gap=3,
                                               batch_size=4)))
    for index in range(2):
        part = next(iter(clip_shards.pair_dataset(shard_dir, seed=0, min_gap=1, max_gap=3,
                                                  batch_size=2, shard_index=index,
                                                  shard_count=2)))
        np.testing.assert_array_equal(part["source"], whole["source"][index::2])
        np.testing.assert_array_equal(part["driving"], whole["driving"][index::2])


def test_iterator_state_restores_the_next_batch(shard_dir):
    def make():
        return iter(clip_shards.pair_dataset(shard_dir, seed=5, min_gap=1, max_gap=4,
                                             batch_size=3))
    iterator = make()
    for _ in range(4):
        next(iterator)
    state = iterator.get_state()
    expected = next(iterator)
    resumed = make()
    resumed.set_state(state)
    got = next(resumed)
    np.testing.assert_array_equal(got["source"], expected["source"])
    np.testing.assert_array_equal(got["driving"], expected["driving"])


def test_epochs_reshuffle(shard_dir):
    """Six clips, batch 6: each batch is one epoch; two epochs differ in order or pairs."""
    iterator = iter(clip_shards.pair_dataset(shard_dir, seed=0, min_gap=1, max_gap=3,
                                             batch_size=6, flip_prob=0.0, brightness=0.0))
    first, second = next(iterator), next(iterator)
    clips_first = np.rint(first["source"][:, 0, 0, 0] * 255).astype(int) // 10
    clips_second = np.rint(second["source"][:, 0, 0, 0] * 255).astype(int) // 10
    assert sorted(clips_first) == sorted(clips_second) == list(range(6))
    assert not np.array_equal(first["source"], second["source"])


def test_worker_processes_give_the_same_stream(shard_dir):
    kwargs = dict(seed=2, min_gap=1, max_gap=3, batch_size=2)
    serial = iter(clip_shards.pair_dataset(shard_dir, **kwargs))
    parallel = iter(clip_shards.pair_dataset(shard_dir, num_workers=2, **kwargs))
    try:
        for _ in range(3):
            np.testing.assert_array_equal(next(serial)["driving"], next(parallel)["driving"])
    finally:
        parallel.close()


def test_a_write_killed_before_its_metadata_is_cleaned_up_and_redone(tmp_path):
    """What a kill leaves (partial files, renamed shards, no metadata.json) is not a shard
    directory; the next write removes it and writes the set whole."""
    out = tmp_path / "shards"
    out.mkdir()
    (out / "partial-00000.array_record").write_bytes(b"half a shard")
    (out / "clips-00000-of-00002.array_record").write_bytes(b"a renamed shard")
    clips = [np.full((4, 8, 8, 1), i, np.uint8) for i in range(3)]
    paths = clip_shards.write_clip_shards(clips, out, clips_per_shard=2)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in paths] + [clip_shards.METADATA_FILE])
    source = clip_shards.clip_source(out)
    np.testing.assert_array_equal(clip_shards.decode_clip(source[2]), clips[2])
    with pytest.raises(FileExistsError, match="already holds clip shards"):
        clip_shards.write_clip_shards(clips, out)
