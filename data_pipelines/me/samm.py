"""SAMM as distributed, read into the common MER format.

Layout under ``manual_dir``::

    SAMM_Micro_FACS_Codes_v2.xlsx        the FACS coding sheet (title rows above the header)
    SAMM/006/006_1_2/006_05562.jpg ...   frames (the SAMM/ level may be left out)

The sheet's header row is *found* (the first row holding Subject, Filename, Onset Frame,
Apex Frame, Offset Frame, Action Units and Estimated Emotion), not assumed at a fixed
offset. Subjects are written as numbers (6) and become the folder names ("006").
Frame numbers are absolute (5562 in ``006_05562.jpg``). An offset or apex of -1 or "/"
means "not annotated": the offset becomes the clip's last frame, the apex is estimated
by the apex rule and listed in the summary.

Labels: the eight estimated emotions as written in the sheet. The composite set maps
Anger, Contempt, Disgust, Fear, Sadness -> negative; Happiness -> positive; Surprise ->
surprise; Other is left out.
"""

from __future__ import annotations

import pathlib
import re

from data_pipelines.me import sheets
from data_pipelines.me.builder import MERBuilder
from data_pipelines.me.records import (ClipRecord, DatasetError, LabelSet, RecordOrError,
                                       find_one, sheet_records)

COLUMNS = ("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Action Units",
           "Estimated Emotion")
# The full header of SAMM_Micro_FACS_Codes_v2.xlsx (the layout writer reproduces it).
SHEET_HEADER = ("Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
                "Offset Frame", "Duration", "Type", "Action Units", "Notes", "Estimated Emotion")
EMOTIONS = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Other", "Sadness", "Surprise")
LABELS = LabelSet(names=EMOTIONS, mapping={e.lower(): e for e in EMOTIONS})
COMPOSITE_MAPPING = {"anger": "negative", "contempt": "negative", "disgust": "negative",
                     "fear": "negative", "sadness": "negative", "happiness": "positive",
                     "surprise": "surprise", "other": None}
SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes*.xlsx", "*FACS_Codes*.xlsx", "SAMM*.xlsx",
                  "SAMM_Micro_FACS_Codes*.csv")

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
SAMM is licensed by Manchester Metropolitan University; request it from its authors.
Put in manual_dir:
  SAMM_Micro_FACS_Codes_v2.xlsx
  SAMM/006/006_1_2/006_05562.jpg ...
"""


def subject_id(value: str) -> str:
    """``6``, ``"006"`` -> ``"006"``."""
    if not re.fullmatch(r"\d+", value.strip()):
        raise ValueError(value)
    return f"{int(value):03d}"


def frames_root(manual_dir: pathlib.Path) -> pathlib.Path:
    """``SAMM/`` if present, else ``manual_dir`` itself (subject folders directly inside)."""
    for name in ("SAMM", "samm"):
        if (manual_dir / name).is_dir():
            return manual_dir / name
    if any(p.is_dir() and re.fullmatch(r"\d{3}", p.name) for p in manual_dir.iterdir()):
        return manual_dir
    raise DatasetError(f"{manual_dir}: no SAMM frame folder; expected SAMM/006/006_1_2/...")


def _frame_or_none(row: sheets.SheetRow, column: str) -> int | None:
    number = sheets.cell_int(row, column, allow_missing=True)
    return None if number is None or number < 0 else number


def parse_row(row: sheets.SheetRow, root: pathlib.Path) -> ClipRecord:
    try:
        subject = subject_id(sheets.cell_text(row, "Subject"))
    except ValueError:
        raise sheets.SheetError(f"{row.where}: Subject is {sheets.cell_text(row, 'Subject')!r}; "
                                "expected a subject number like 6 or '006'") from None
    clip_id = sheets.cell_text(row, "Filename")
    if not clip_id:
        raise sheets.SheetError(f"{row.where}: Filename is empty; expected a clip folder like 006_1_2")
    return ClipRecord(
        dataset="samm", subject=subject, clip_id=clip_id, frame_dir=root / subject / clip_id,
        emotion=sheets.cell_text(row, "Estimated Emotion"),
        onset=sheets.cell_int(row, "Onset Frame"),
        apex=_frame_or_none(row, "Apex Frame"),
        offset=_frame_or_none(row, "Offset Frame"),
        action_units=sheets.cell_text(row, "Action Units"), where=row.where)


def read_records(manual_dir: pathlib.Path) -> list[RecordOrError]:
    """Every row of the SAMM FACS coding sheet as a :class:`ClipRecord` (or its error)."""
    sheet = find_one(manual_dir, SHEET_PATTERNS, "SAMM FACS coding sheet")
    root = frames_root(manual_dir)
    return sheet_records(sheet, COLUMNS, lambda row: parse_row(row, root))


class Samm(MERBuilder):
    """SAMM, the eight estimated emotions of its FACS coding sheet."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    LABELS = LABELS

    def read_records(self, manual_dir: pathlib.Path) -> list[RecordOrError]:
        return read_records(manual_dir)
