"""CASME II as distributed, read into the common MER format.

Layout under ``manual_dir``::

    CASME2-coding-20140508.xlsx          the coding sheet (any CASME2-coding-*.xlsx / .csv)
    CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...   raw frames, or
    Cropped/sub01/EP02_01f/reg_img46.jpg ...           the cropped release

Sheet columns: Subject (1, 2, ... or "sub01"), Filename (EP02_01f), OnsetFrame,
ApexFrame ("/" where not annotated: about 20 rows; the apex is then estimated by the
configured apex rule and listed in the summary), OffsetFrame, Action Units, Estimated
Emotion. An OffsetFrame of "/" or 0 means "not annotated": the clip's last frame is used.

Labels: the standard 5 classes (happiness, disgust, repression, surprise, others). Fear
and sadness clips (a handful in the release) are excluded, as in the standard 5-class
protocol, and counted under ``excluded`` in the summary. The composite set maps
disgust, repression -> negative; happiness -> positive; surprise -> surprise.
"""

from __future__ import annotations

import pathlib
import re

from data_pipelines.me import sheets
from data_pipelines.me.builder import MERBuilder
from data_pipelines.me.records import (ClipRecord, DatasetError, LabelSet, RecordOrError,
                                       find_one, sheet_records)

COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
           "Estimated Emotion")
EMOTIONS = ("happiness", "disgust", "repression", "surprise", "others", "fear", "sadness")
LABELS = LabelSet(
    names=("happiness", "disgust", "repression", "surprise", "others"),
    mapping={"happiness": "happiness", "disgust": "disgust", "repression": "repression",
             "surprise": "surprise", "others": "others", "fear": None, "sadness": None})
COMPOSITE_MAPPING = {"disgust": "negative", "repression": "negative", "happiness": "positive",
                     "surprise": "surprise", "others": None, "fear": None, "sadness": None}
RAW_DIRS = ("CASME2_RAW_selected", "CASME2_RAW", "CASME2-RAW")
CROPPED_DIRS = ("Cropped", "CASME2_Cropped", "CASME2-Cropped")
SHEET_PATTERNS = ("CASME2-coding-*.xlsx", "CASME2-coding*.xlsx", "CASME2-coding-*.csv")

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
CASME II is licensed by its authors (Institute of Psychology, Chinese Academy of Sciences);
request it from them. Put in manual_dir the coding sheet and one frame tree:
  CASME2-coding-20140508.xlsx
  CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...   (faces are detected and cropped), or
  Cropped/sub01/EP02_01f/reg_img46.jpg ...           (use --trust-cropped)
"""


def subject_id(value: str) -> str:
    """``1``, ``"01"``, ``"sub01"`` -> ``"sub01"``."""
    match = re.fullmatch(r"(?:sub)?0*(\d+)", value.strip().lower())
    if not match:
        raise ValueError(value)
    return f"sub{int(match.group(1)):02d}"


def frames_root(manual_dir: pathlib.Path, prefer_cropped: bool) -> pathlib.Path:
    """The frame tree: ``Cropped/`` first when the frames are trusted as crops, else raw."""
    names = CROPPED_DIRS + RAW_DIRS if prefer_cropped else RAW_DIRS + CROPPED_DIRS
    for name in names:
        if (manual_dir / name).is_dir():
            return manual_dir / name
    raise DatasetError(f"{manual_dir}: no CASME II frame folder; expected one of {list(names)}")


def _offset(row: sheets.SheetRow) -> int | None:
    # A few rows of the release have no usable offset ("/" or 0, frames start at 1): the
    # clip then ends at its folder's last frame.
    number = sheets.cell_int(row, "OffsetFrame", allow_missing=True)
    return None if number is None or number <= 0 else number


def parse_row(row: sheets.SheetRow, root: pathlib.Path) -> ClipRecord:
    try:
        subject = subject_id(sheets.cell_text(row, "Subject"))
    except ValueError:
        raise sheets.SheetError(f"{row.where}: Subject is {sheets.cell_text(row, 'Subject')!r}; "
                                "expected a subject number like 1 or 'sub01'") from None
    clip_id = sheets.cell_text(row, "Filename")
    if not clip_id:
        raise sheets.SheetError(f"{row.where}: Filename is empty; expected a clip folder like EP02_01f")
    return ClipRecord(
        dataset="casme2", subject=subject, clip_id=clip_id, frame_dir=root / subject / clip_id,
        emotion=sheets.cell_text(row, "Estimated Emotion"),
        onset=sheets.cell_int(row, "OnsetFrame"),
        apex=sheets.cell_int(row, "ApexFrame", allow_missing=True),
        offset=_offset(row),
        action_units=sheets.cell_text(row, "Action Units"), where=row.where)


def read_records(manual_dir: pathlib.Path, *, prefer_cropped: bool) -> list[RecordOrError]:
    """Every row of the CASME II coding sheet as a :class:`ClipRecord` (or its error)."""
    sheet = find_one(manual_dir, SHEET_PATTERNS, "CASME II coding sheet")
    root = frames_root(manual_dir, prefer_cropped)
    return sheet_records(sheet, COLUMNS, lambda row: parse_row(row, root))


class Casme2(MERBuilder):
    """CASME II, 5 classes (happiness, disgust, repression, surprise, others)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    LABELS = LABELS

    def read_records(self, manual_dir: pathlib.Path) -> list[RecordOrError]:
        return read_records(manual_dir, prefer_cropped=self.builder_config.trust_cropped)
