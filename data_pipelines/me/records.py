"""Micro-expression clips before they are built: records, label sets, frames on disk.

Each dataset module turns its own sheet or folder tree into :class:`ClipRecord` s; this
module validates a record (frames present, onset <= apex <= offset) and loads its onset,
apex and offset frames through one face box per clip (:mod:`data_pipelines.faces`). Every
problem raises :class:`DatasetError` naming the file, the row and what was expected.

Apex rule, used where the apex is not annotated (SMIC-HS has no apex; about 20 CASME II
rows have "/"): ``"middle"`` takes the frame nearest the middle of onset..offset;
``"max_difference"`` takes the frame whose (cropped, resized) image has the largest mean
absolute difference from the onset frame.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from data_pipelines import faces
from data_pipelines.errors import InputError

APEX_RULES = ("middle", "max_difference")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
COMPOSITE_LABELS = ("negative", "positive", "surprise")


class DatasetError(InputError, ValueError):
    """A clip or a sheet row is unusable: the message names the file, the row and what was expected."""


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One clip as a dataset's sheet or folder tree describes it, before validation.

    Frame numbers are the numbers in the frame file names (``img46.jpg`` -> 46), as the
    sheets use them. ``apex`` None means "not annotated"; ``onset``/``offset`` None mean
    "the first/last frame in the folder" (SMIC-HS).
    """

    dataset: str  # "casme2", "samm", "smic" or "casme3"
    subject: str  # the dataset's own subject id: "sub01", "006", "s1", "spNO.1"
    # the dataset's own clip folder name: "EP02_01f", "006_1_2", "s1_ne_01"; CAS(ME)^3 clips
    # share their video's folder, so theirs is video + onset ("a_123")
    clip_id: str
    frame_dir: pathlib.Path
    emotion: str  # the dataset's own label word: "repression", "Anger", "negative", "sad"
    onset: int | None
    apex: int | None
    offset: int | None
    action_units: str
    where: str  # "CASME2-coding-20140508.xlsx row 5" or the folder it came from

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.subject}/{self.clip_id}"


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """A dataset's label order and how its emotion words map onto it.

    ``mapping`` maps a lower-cased emotion word to a label name, or to None when the word
    is known but outside this label set (counted as excluded, never an error).
    """

    names: tuple[str, ...]
    mapping: dict[str, str | None]

    def label_of(self, record: ClipRecord) -> str | None:
        word = record.emotion.strip().lower()
        if word not in self.mapping:
            raise DatasetError(
                f"{record.where} ({record.key}): unknown emotion label {record.emotion!r}; "
                f"expected one of {sorted(self.mapping)}")
        return self.mapping[word]


RecordOrError = ClipRecord | DatasetError


def frame_number(path: pathlib.Path) -> int | None:
    """The trailing number of a frame file name: ``reg_img46.jpg`` -> 46, ``006_05562.jpg`` -> 5562."""
    match = re.search(r"(\d+)$", path.stem)
    return int(match.group(1)) if match else None


def index_frames(folder: pathlib.Path, where: str) -> dict[int, pathlib.Path]:
    """Frame number -> image file for one clip folder (sorted by number)."""
    if not folder.is_dir():
        raise DatasetError(f"{where}: clip folder {folder} not found; expected a folder of "
                           "frame images")
    frames: dict[int, pathlib.Path] = {}
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        number = frame_number(path)
        if number is None:
            continue
        if number in frames:
            raise DatasetError(f"{where}: {frames[number].name} and {path.name} in {folder} "
                               f"are both frame {number}; expected one file per frame")
        frames[number] = path
    if not frames:
        raise DatasetError(f"{where}: clip folder {folder} holds no numbered frame images "
                           f"({', '.join(IMAGE_SUFFIXES)})")
    return dict(sorted(frames.items()))


def _frame_path(frames: dict[int, pathlib.Path], number: int, role: str, record: ClipRecord) -> pathlib.Path:
    if number not in frames:
        example = next(iter(frames.values())).name
        raise DatasetError(
            f"{record.where} ({record.key}): {role} frame {number} is missing from "
            f"{record.frame_dir}; expected a file numbered {number} like {example!r} "
            f"(frames present: {min(frames)}..{max(frames)})")
    return frames[number]


CHANNELS = (1, 3)  # gray or RGB frames


def _read(path: pathlib.Path, record: ClipRecord, channels: int) -> np.ndarray:
    """Gray uint8 [H, W] (channels 1) or RGB uint8 [H, W, 3] (channels 3)."""
    try:
        return faces.read_gray(path) if channels == 1 else faces.read_rgb(path)
    except faces.ImageReadError as err:
        raise DatasetError(f"{record.where} ({record.key}): {err}") from None


def choose_apex(onset_frame: np.ndarray, candidates: Sequence[np.ndarray], numbers: Sequence[int],
                rule: str) -> int:
    """Frame number of the apex by ``rule`` among ``candidates`` (frames onset..offset).

    ``middle``: the number nearest the middle of the span; ``max_difference``: the frame
    with the largest mean absolute difference from ``onset_frame`` (first one on ties).
    """
    if rule == "middle":
        middle = (numbers[0] + numbers[-1]) / 2
        return min(numbers, key=lambda n: (abs(n - middle), n))
    if rule == "max_difference":
        onset = onset_frame.astype(np.float32)
        scores = [float(np.abs(f.astype(np.float32) - onset).mean()) for f in candidates]
        return numbers[int(np.argmax(scores))]
    raise ValueError(f"apex rule {rule!r}: expected one of {APEX_RULES}")


@dataclasses.dataclass(frozen=True)
class LoadSettings:
    image_size: int
    apex_rule: str
    detector: faces.FaceDetector | None  # None: trust the frames as face crops
    channels: int = 1  # 1: gray, 3: RGB (the face box is found on the gray onset frame either way)


def load_clip(record: ClipRecord, settings: LoadSettings) -> tuple[dict, dict]:
    """Validates one clip and loads its onset / apex / offset frames.

    Returns (frames dict with ``onset``, ``apex``, ``offset`` uint8 [S, S, C] (C =
    ``settings.channels``) and the frame numbers, notes dict with ``apex_estimated``,
    ``crop``). Raises :class:`DatasetError`.
    """
    channels = settings.channels
    if channels not in CHANNELS:
        raise ValueError(f"channels {channels}: expected one of {CHANNELS}")
    frames = index_frames(record.frame_dir, f"{record.where} ({record.key})")
    numbers = list(frames)
    onset = numbers[0] if record.onset is None else record.onset
    offset = numbers[-1] if record.offset is None else record.offset
    if record.apex is not None and onset > record.apex:
        raise DatasetError(f"{record.where} ({record.key}): onset frame {onset} is after the "
                           f"apex frame {record.apex}; expected onset <= apex")
    if record.apex is not None and record.apex > offset:
        raise DatasetError(f"{record.where} ({record.key}): apex frame {record.apex} is after "
                           f"the offset frame {offset}; expected apex <= offset")
    if onset > offset:
        raise DatasetError(f"{record.where} ({record.key}): onset frame {onset} is after the "
                           f"offset frame {offset}; expected onset <= offset")
    onset_path = _frame_path(frames, onset, "onset", record)
    offset_path = _frame_path(frames, offset, "offset", record)
    onset_raw = _read(onset_path, record, channels)
    crop = faces.clip_box(faces.to_gray(onset_raw), settings.detector)

    def prepared(raw: np.ndarray) -> np.ndarray:
        try:
            image = faces.crop_resize(raw, crop.box, settings.image_size)
        except ValueError as err:
            raise DatasetError(f"{record.where} ({record.key}): {err}") from None
        return image[..., None] if channels == 1 else image

    onset_image = prepared(onset_raw)
    if record.apex is None:
        span = [n for n in numbers if onset <= n <= offset]
        if settings.apex_rule == "max_difference":
            candidates = [prepared(_read(frames[n], record, channels)) for n in span]
        else:
            candidates = []
        apex = choose_apex(onset_image, candidates, span, settings.apex_rule)
    else:
        apex = record.apex
    apex_image = prepared(_read(_frame_path(frames, apex, "apex", record), record, channels))
    offset_image = prepared(_read(offset_path, record, channels))
    loaded = {"onset": onset_image, "apex": apex_image, "offset": offset_image,
              "onset_frame": onset, "apex_frame": apex, "offset_frame": offset,
              "num_frames": sum(1 for n in numbers if onset <= n <= offset)}
    return loaded, {"apex_estimated": record.apex is None, "crop": crop}


def find_one(folder: pathlib.Path, patterns: Iterable[str], what: str) -> pathlib.Path:
    """The single file or folder in ``folder`` matching the first pattern that matches."""
    for pattern in patterns:
        matches = sorted(p for p in folder.glob(pattern) if not p.name.startswith("~$"))
        if len(matches) > 1 and any(p.is_file() for p in matches):
            raise DatasetError(f"{folder}: several {what} ({[m.name for m in matches]}); "
                               "expected one")
        if matches:
            return matches[0]
    raise DatasetError(f"{folder}: no {what} found; expected one of {list(patterns)}")


def sheet_records(sheet: pathlib.Path, columns: Sequence[str],
                  parse_row: Callable[[Any], ClipRecord]) -> list[RecordOrError]:
    """Every data row of a coding sheet parsed by ``parse_row``: a :class:`ClipRecord`, or
    the :class:`DatasetError` of a row it could not parse (kept in order, so the builder
    raises it where it occurs or skips it). An unreadable sheet raises at once."""
    from data_pipelines.me.sheets import SheetError, read_sheet

    try:
        rows = read_sheet(sheet, columns)
    except SheetError as err:
        raise DatasetError(str(err)) from None
    records: list[RecordOrError] = []
    for row in rows:
        try:
            records.append(parse_row(row))
        except SheetError as err:
            records.append(DatasetError(str(err)))
    return records
