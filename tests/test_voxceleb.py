"""VoxCeleb preparation: mp4 (PyAV) and frame-folder trees -> clip shards, resumable."""

import json
import pathlib

import numpy as np
import pytest

from data_pipelines.talking_faces import shards as clip_shards, voxceleb
from data_pipelines.me.layouts import write_jpeg

SIZE = 32


def moving_pattern(num_frames: int, size: int = 48, shift: int = 0) -> np.ndarray:
    """Smooth gray frames uint8 [T, size, size]: a bright blob that moves right (codec-friendly)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = []
    for t in range(num_frames):
        cx = size * 0.3 + 2.0 * t + shift
        frames.append(40 + 180 * np.exp(-((x - cx) ** 2 + (y - size / 2) ** 2) / (2 * 8.0 ** 2)))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def write_mp4(path: pathlib.Path, frames: np.ndarray) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}  # near-lossless, so the test can compare pixels
        for image in frames:
            rgb = np.repeat(image[..., None], 3, axis=-1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def resized(frames: np.ndarray) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames])


@pytest.fixture
def tree(tmp_path):
    """Two mp4 clips and one frame-folder clip in VoxCeleb's id/video/clip layout."""
    src = tmp_path / "vox"
    expected = {
        "id10001/1zcIwhmdeo4/00001": moving_pattern(6),
        "id10001/1zcIwhmdeo4/00002": moving_pattern(5, shift=4),
        "id10002/abcdefghijk/00001": moving_pattern(4, shift=-3),
    }
    write_mp4(src / "id10001/1zcIwhmdeo4/00001.mp4", expected["id10001/1zcIwhmdeo4/00001"])
    write_mp4(src / "id10001/1zcIwhmdeo4/00002.mp4", expected["id10001/1zcIwhmdeo4/00002"])
    for i, image in enumerate(expected["id10002/abcdefghijk/00001"]):
        write_jpeg(src / "id10002/abcdefghijk/00001" / f"{i + 1:04d}.jpg", image)
    return src, expected


def read_clips(out: pathlib.Path) -> dict[str, np.ndarray]:
    items = json.loads((out / voxceleb.ITEMS_FILE).read_text())["clips"]
    source = clip_shards.clip_source(out)
    return {clip_id: clip_shards.decode_clip(source[i]) for i, clip_id in enumerate(items)}


def test_find_clips_reads_both_tree_kinds(tree):
    src, expected = tree
    items = voxceleb.find_clips(src)
    assert [(i.clip_id, i.kind) for i in items] == [
        ("id10001/1zcIwhmdeo4/00001", "video"), ("id10001/1zcIwhmdeo4/00002", "video"),
        ("id10002/abcdefghijk/00001", "frames")]


def test_prepare_voxceleb_writes_shards_with_the_decoded_frames(tree, tmp_path):
    src, expected = tree
    out = tmp_path / "shards"
    summary = voxceleb.prepare_voxceleb(src, out, image_size=SIZE, clips_per_shard=2, workers=2,
                                        trust_cropped=True, progress=False)
    assert summary["num_clips"] == 3 and summary["decoded"] == 3 and len(summary["shards"]) == 2
    metadata = clip_shards.read_metadata(out)
    assert metadata["image_size"] == SIZE and metadata["num_clips"] == 3
    clips = read_clips(out)
    for clip_id, frames in expected.items():
        got = clips[clip_id]
        assert got.shape == (len(frames), SIZE, SIZE, 1) and got.dtype == np.uint8
        # mpeg4 at qscale 1 and JPEG 95 are close to lossless on smooth images.
        error = np.abs(got[..., 0].astype(np.float32) - resized(frames)).mean()
        assert error < 3.0, (clip_id, error)
    assert not (out / voxceleb.DECODED_DIR).exists()


def test_prepare_voxceleb_stride_and_max_frames(tree, tmp_path):
    src, expected = tree
    out = tmp_path / "shards"
    voxceleb.prepare_voxceleb(src, out, image_size=SIZE, frame_stride=2, max_frames=2,
                              workers=0, trust_cropped=True, progress=False)
    clips = read_clips(out)
    first = expected["id10001/1zcIwhmdeo4/00001"]
    assert clips["id10001/1zcIwhmdeo4/00001"].shape[0] == 2
    error = np.abs(clips["id10001/1zcIwhmdeo4/00001"][..., 0].astype(np.float32)
                   - resized(first[[0, 2]])).mean()
    assert error < 3.0


def test_prepare_voxceleb_resumes_and_skips_finished_work(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "shards"
    settings = voxceleb.DecodeSettings(SIZE, 1, None, 2, None)
    # An interrupted earlier run left one clip decoded: it must not be decoded again.
    (out / voxceleb.DECODED_DIR).mkdir(parents=True)
    first = voxceleb.find_clips(src)[0]
    voxceleb._decode_to_cache(first, settings, str(out))
    summary = voxceleb.prepare_voxceleb(src, out, image_size=SIZE, workers=0, trust_cropped=True,
                                        progress=False)
    assert (summary["decoded"], summary["reused"], summary["num_clips"]) == (2, 1, 3)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("clips-*")}
    again = voxceleb.prepare_voxceleb(src, out, image_size=SIZE, workers=0, trust_cropped=True,
                                      progress=False)
    assert again["already_complete"] and again["decoded"] == 0 and again["num_clips"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("clips-*")} == before


def test_other_settings_never_reuse_decoded_clips_or_shards(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "shards"
    # An interrupted run at another size left a decoded clip: a run at SIZE decodes afresh.
    other = voxceleb.DecodeSettings(SIZE * 2, 1, None, 2, None)
    voxceleb._decode_to_cache(voxceleb.find_clips(src)[0], other, str(out))
    summary = voxceleb.prepare_voxceleb(src, out, image_size=SIZE, workers=0, trust_cropped=True,
                                        progress=False, keep_decoded=True)
    assert (summary["decoded"], summary["reused"]) == (3, 0)
    assert clip_shards.read_metadata(out)["image_size"] == SIZE
    with pytest.raises(voxceleb.VoxCelebError, match="made with other settings"):
        voxceleb.prepare_voxceleb(src, out, image_size=SIZE, frame_stride=2, workers=0,
                                  trust_cropped=True, progress=False)


def test_a_decoder_crash_names_the_clip(tree, tmp_path, monkeypatch):
    src, _ = tree

    def crash(*args, **kwargs):
        raise RuntimeError("codec exploded")

    monkeypatch.setattr(voxceleb, "decode_video", crash)
    monkeypatch.setattr(voxceleb, "read_frame_folder", crash)
    with pytest.raises(voxceleb.VoxCelebError, match=r"id100\d\d/.*: RuntimeError: codec exploded"):
        voxceleb.prepare_voxceleb(src, tmp_path / "o", image_size=SIZE, workers=0,
                                  trust_cropped=True, progress=False)


def test_bad_video_is_an_error_naming_the_file_or_a_reported_skip(tree, tmp_path, caplog):
    src, _ = tree
    broken = src / "id10003/zzzzzzzzzzz/00001.mp4"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a video at all" * 10)
    with pytest.raises(voxceleb.VoxCelebError, match=r"id10003/zzzzzzzzzzz/00001\.mp4: cannot decode"):
        voxceleb.prepare_voxceleb(src, tmp_path / "a", image_size=SIZE, workers=0,
                                  trust_cropped=True, progress=False)
    summary = voxceleb.prepare_voxceleb(src, tmp_path / "b", image_size=SIZE, workers=0,
                                        trust_cropped=True, skip_bad=True, progress=False)
    assert summary["num_clips"] == 3
    assert [s["clip"] for s in summary["skipped"]] == ["id10003/zzzzzzzzzzz/00001"]
    assert "skipped id10003/zzzzzzzzzzz/00001" in caplog.text


def test_too_short_clip_is_reported(tmp_path):
    src = tmp_path / "vox"
    write_jpeg(src / "id1/v/00001/0001.jpg", moving_pattern(1)[0])
    with pytest.raises(voxceleb.VoxCelebError, match="1 frames after stride 1; expected at least 2"):
        voxceleb.prepare_voxceleb(src, tmp_path / "out", image_size=SIZE, workers=0,
                                  trust_cropped=True, progress=False)


def test_cli_prepare_voxceleb(tree, tmp_path, capsys):
    from dface_jax import cli

    src, _ = tree
    args = ["prepare-voxceleb", "--manual-dir", str(src), "--data-dir", str(tmp_path / "o"), "--image-size",
            str(SIZE), "--workers", "0", "--trust-cropped"]
    assert cli.main(args) == 0
    assert "clips 3 (decoded now 3, reused 0)" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert "already complete" in capsys.readouterr().out
