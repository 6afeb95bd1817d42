"""VoxCeleb (or any talking-face tree) -> ArrayRecord clip shards for tokenizer pretraining.

Reads both forms a VoxCeleb copy comes in:
- mp4 trees, ``id10001/1zcIwhmdeo4/00001.mp4`` (VoxCeleb1/2 as distributed), decoded with
  PyAV (``av``, which ships its own FFmpeg);
- frame-folder trees, ``id10001/1zcIwhmdeo4/00001/0001.jpg ...`` (any folder whose files
  are numbered images is one clip).

Each clip: every ``frame_stride``-th frame, at most ``max_frames``, cropped with one face
box found on its first frame (:mod:`data_pipelines.faces`; ``trust_cropped`` resizes only),
gray, resized to ``image_size``. Clips are decoded in parallel worker processes into
``out/decoded/<settings>/<clip>.npy`` (written atomically), which makes an interrupted run
resumable: a second run decodes only what is not there yet, and a run with other settings
(size, stride, frames, face crop) has its own cache folder, so old and new clips never mix.
When every clip is decoded they are written as shards with
:func:`data_pipelines.talking_faces.shards.write_clip_shards` in a sorted, stable order;
``out/items.json`` lists the clip of each record and the settings, and the decoded cache is
removed. A run on an ``out`` that already holds the shards of the same items and settings
does nothing; shards of other items or settings are refused. ``out`` may be local or
``gs://`` (the decoded cache is then in the bucket too, so a preempted run resumes from
it); the source tree is read by PyAV and OpenCV and must be a local folder.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import io
import multiprocessing
import pathlib
from collections.abc import Sequence

import numpy as np
from etils import epath

from data_pipelines import faces, storage
from data_pipelines.errors import InputError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DECODED_DIR = "decoded"
ITEMS_FILE = "items.json"


class VoxCelebError(InputError, ValueError):
    """A video or frame folder cannot be used (names the file and what was expected)."""


@dataclasses.dataclass(frozen=True)
class ClipItem:
    """One clip of the tree: an mp4 file or a folder of numbered frames."""

    clip_id: str  # relative path without suffix: "id10001/1zcIwhmdeo4/00001"
    path: str
    kind: str  # "video" or "frames"


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    image_size: int
    frame_stride: int
    max_frames: int | None
    min_frames: int
    face_detector: str | None  # None: trust the frames as face crops


def find_clips(src: str | pathlib.Path) -> list[ClipItem]:
    """Every video file and every folder of numbered images under ``src``, sorted."""
    src = pathlib.Path(src)  # read by PyAV and OpenCV: a local folder
    if not src.is_dir():
        raise VoxCelebError(f"{src}: not a folder; expected a tree like id10001/1zcIwhmdeo4/00001.mp4")
    items = []
    for path in sorted(src.rglob("*")):
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            items.append(ClipItem(str(path.relative_to(src).with_suffix("")), str(path), "video"))
        elif path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
            items.append(ClipItem(str(path.relative_to(src)), str(path), "frames"))
    if not items:
        raise VoxCelebError(f"{src}: no videos ({', '.join(VIDEO_SUFFIXES)}) and no frame "
                            "folders found; expected id10001/1zcIwhmdeo4/00001.mp4 or "
                            "id10001/1zcIwhmdeo4/00001/0001.jpg")
    return items


def decode_video(path: str, *, frame_stride: int = 1, max_frames: int | None = None) -> list[np.ndarray]:
    """Gray uint8 [H, W] frames of a video: every ``frame_stride``-th, at most ``max_frames``."""
    import av  # PyAV, only needed for video trees

    frames = []
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VoxCelebError(f"{path}: no video stream; expected an mp4 with video")
            for index, frame in enumerate(container.decode(container.streams.video[0])):
                if index % frame_stride:
                    continue
                frames.append(frame.to_ndarray(format="gray"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except VoxCelebError:
        raise
    except Exception as err:  # PyAV raises FFmpeg errors of many types
        raise VoxCelebError(f"{path}: cannot decode video ({type(err).__name__}: {err})") from err
    return frames


def read_frame_folder(path: str, *, frame_stride: int = 1, max_frames: int | None = None) -> list[np.ndarray]:
    """Gray uint8 frames of a folder, ordered by the number in each file name."""
    from data_pipelines.me.records import frame_number

    files = [p for p in pathlib.Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    numbered = sorted((frame_number(p), p) for p in files if frame_number(p) is not None)
    chosen = [p for _, p in numbered][::frame_stride][:max_frames]
    try:
        return [faces.read_gray(p) for p in chosen]
    except faces.ImageReadError as err:
        raise VoxCelebError(str(err)) from None


_DETECTORS: dict[str, faces.FaceDetector] = {}


def _detector(spec: str | None) -> faces.FaceDetector | None:
    # A detector cannot be pickled to a worker; each process builds its own once.
    if spec is None:
        return None
    if spec not in _DETECTORS:
        _DETECTORS[spec] = faces.make_detector(spec)
    return _DETECTORS[spec]


def settings_key(settings: DecodeSettings) -> str:
    """A short name for a set of decode settings (the cache folder of its clips)."""
    text = json.dumps(dataclasses.asdict(settings), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def cache_path(out: epath.Path, item: ClipItem, settings: DecodeSettings) -> epath.Path:
    return (out / DECODED_DIR / settings_key(settings)
            / (item.clip_id.replace("/", "__") + ".npy"))


def decode_clip(item: ClipItem, settings: DecodeSettings) -> tuple[np.ndarray, bool]:
    """One clip -> (uint8 [T, S, S, 1], face_fallback). Raises :class:`VoxCelebError`."""
    reader = decode_video if item.kind == "video" else read_frame_folder
    frames = reader(item.path, frame_stride=settings.frame_stride, max_frames=settings.max_frames)
    if len(frames) < settings.min_frames:
        raise VoxCelebError(f"{item.path}: {len(frames)} frames after stride "
                            f"{settings.frame_stride}; expected at least {settings.min_frames}")
    clip, info = faces.crop_clip(frames, image_size=settings.image_size,
                                 detector=_detector(settings.face_detector))
    return clip, info.fallback


def _decode_to_cache(item: ClipItem, settings: DecodeSettings, out: str) -> dict:
    """Worker: decodes one clip into the cache; returns a status dict (never raises, so one
    broken clip cannot stop the pool without being named)."""
    target = cache_path(storage.as_path(out), item, settings)
    try:
        clip, fallback = decode_clip(item, settings)
    except VoxCelebError as err:
        return {"clip_id": item.clip_id, "status": "bad", "reason": str(err)}
    except Exception as err:  # a decoder or image library error: name the clip
        return {"clip_id": item.clip_id, "status": "bad",
                "reason": f"{item.path}: {type(err).__name__}: {err}"}
    if fallback:  # remembered on disk so a resumed run still reports it
        storage.write_bytes_atomic(target.with_suffix(".fallback"), b"")
    buffer = io.BytesIO()
    np.save(buffer, clip, allow_pickle=False)
    storage.write_bytes_atomic(target, buffer.getvalue())  # never looks finished half-written
    return {"clip_id": item.clip_id, "status": "decoded", "fallback": fallback,
            "frames": int(clip.shape[0])}


def _run_workers(todo: Sequence[ClipItem], settings: DecodeSettings, out: epath.Path,
                 workers: int, progress: bool) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="decoding clips", unit="clip", disable=not progress)
    results = []
    if workers <= 0:
        for item in todo:
            results.append(_decode_to_cache(item, settings, str(out)))
            bar.update()
    else:
        # spawn, not fork: the parent may have JAX (multithreaded) imported.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(_decode_to_cache, item, settings, str(out)) for item in todo]
            for future in concurrent.futures.as_completed(futures):
                results.append(future.result())
                bar.update()
    bar.close()
    return results


def prepare_voxceleb(src: str | pathlib.Path, out: storage.PathLike, *, image_size: int = 64,
                     frame_stride: int = 1, max_frames: int | None = None, min_frames: int = 2,
                     clips_per_shard: int = 256, workers: int = 2, trust_cropped: bool = False,
                     face_detector: str = "haar", skip_bad: bool = False,
                     keep_decoded: bool = False, progress: bool = True) -> dict:
    """Turns a VoxCeleb-style tree into clip shards in ``out``; returns a summary dict.

    Summary: ``num_clips``, ``decoded`` (this run), ``reused`` (decoded by an earlier run),
    ``skipped`` (list of {clip, reason}, only with ``skip_bad``), ``face_fallback`` (clips
    cropped with the centred square), ``shards``, ``already_complete``.
    """
    from data_pipelines.talking_faces.shards import METADATA_FILE, write_clip_shards

    out = storage.as_path(out)
    items = find_clips(src)
    ids = [item.clip_id for item in items]
    settings = DecodeSettings(image_size, frame_stride, max_frames, min_frames,
                              None if trust_cropped else face_detector)
    if (out / METADATA_FILE).exists():
        previous = json.loads((out / ITEMS_FILE).read_text()) if (out / ITEMS_FILE).exists() else None
        if previous is None or set(previous["found"]) != set(ids):
            raise VoxCelebError(f"{out}: holds clip shards of another set of clips; expected "
                                "an empty or unfinished output folder")
        if previous.get("settings") != dataclasses.asdict(settings):
            raise VoxCelebError(f"{out}: holds clip shards made with other settings "
                                f"({previous.get('settings')}); expected an empty or "
                                "unfinished output folder")
        return dict(previous["summary"], already_complete=True, decoded=0,
                    reused=previous["summary"]["num_clips"])
    if not trust_cropped:
        faces.make_detector(face_detector)  # fail now, not in every worker
    todo = [item for item in items if not cache_path(out, item, settings).exists()]
    results = _run_workers(todo, settings, out, workers, progress)
    bad = sorted((r for r in results if r["status"] == "bad"), key=lambda r: r["clip_id"])
    if bad and not skip_bad:
        raise VoxCelebError(f"{bad[0]['reason']} ({len(bad)} clip(s) unusable; --skip-bad "
                            "skips them and reports them)")
    for r in bad:
        logger.warning("[prepare-voxceleb] skipped %s: %s", r["clip_id"], r["reason"])
    written = [item for item in items if cache_path(out, item, settings).exists()]
    if not written:
        raise VoxCelebError(f"{src}: no usable clip")
    clips = (np.load(io.BytesIO(cache_path(out, item, settings).read_bytes()), allow_pickle=False)
             for item in written)
    if progress:
        from tqdm import tqdm
        clips = tqdm(clips, total=len(written), desc="writing clip shards", unit="clip")
    paths = write_clip_shards(clips, out, clips_per_shard=clips_per_shard)
    summary = {
        "num_clips": len(written), "decoded": len(todo) - len(bad),
        "reused": len(items) - len(todo), "shards": [p.name for p in paths],
        "skipped": [{"clip": r["clip_id"], "reason": r["reason"]} for r in bad],
        "face_fallback": [item.clip_id for item in written
                          if cache_path(out, item, settings).with_suffix(".fallback").exists()],
        "image_size": image_size, "face_crop": "trusted" if trust_cropped else face_detector,
        "already_complete": False,
    }
    storage.write_json(out / ITEMS_FILE, {
        "clips": [item.clip_id for item in written], "found": ids,
        "settings": dataclasses.asdict(settings), "summary": summary})
    if not keep_decoded:
        storage.rmtree(out / DECODED_DIR)
    return summary
