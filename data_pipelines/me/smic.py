"""SMIC-HS as distributed, read into the common MER format.

Layout under ``manual_dir`` (``manual_dir`` may also be the ``HS`` folder itself)::

    HS/s1/micro/negative/s1_ne_01/image000001.bmp ...
    HS/s1/micro/positive/s1_po_01/...
    HS/s1/micro/surprise/s1_sur_01/...

There is no coding sheet: the label is the folder name (negative / positive / surprise),
the onset is the first frame and the offset the last frame of the clip folder (frames are
ordered by the number in their names, e.g. ``image060580.bmp`` or ``reg_image060580.bmp``).
SMIC-HS has **no apex annotation**: every apex is chosen by the configured apex rule
("middle" or "max_difference", see :mod:`data_pipelines.me.records`), and every summary
says which. ``non_micro`` folders are not read; ``micro`` is matched whatever its case.
"""

from __future__ import annotations

import pathlib
import re

from data_pipelines.me.builder import MERBuilder
from data_pipelines.me.records import ClipRecord, DatasetError, LabelSet, RecordOrError

EMOTIONS = ("negative", "positive", "surprise")
LABELS = LabelSet(names=EMOTIONS, mapping={e: e for e in EMOTIONS})
COMPOSITE_MAPPING = {e: e for e in EMOTIONS}

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
SMIC is licensed by the University of Oulu; request it from its authors. Put in manual_dir
the high-speed (HS) part:
  HS/s1/micro/negative/s1_ne_01/image000001.bmp ...
"""


def subject_id(value: str) -> str:
    """``"s01"``, ``"s1"``, ``1`` -> ``"s1"`` (the form the composite label CSV uses)."""
    match = re.fullmatch(r"s?0*(\d+)", value.strip().lower())
    if not match:
        raise ValueError(value)
    return f"s{int(match.group(1))}"


def micro_dir(subject_dir: pathlib.Path) -> pathlib.Path | None:
    """The subject's ``micro`` folder, whatever its case (copies have ``Micro/``)."""
    if not subject_dir.is_dir():
        return None
    return next((p for p in sorted(subject_dir.iterdir())
                 if p.is_dir() and p.name.lower() == "micro"), None)


def hs_root(manual_dir: pathlib.Path) -> pathlib.Path:
    """``manual_dir/HS`` (or ``manual_dir`` if it already is the HS folder)."""
    for candidate in (manual_dir / "HS", manual_dir / "SMIC" / "HS", manual_dir):
        if candidate.is_dir() and any(micro_dir(p) for p in candidate.iterdir()):
            return candidate
    raise DatasetError(f"{manual_dir}: no SMIC-HS tree; expected HS/s1/micro/negative/s1_ne_01/")


def read_records(manual_dir: pathlib.Path) -> list[RecordOrError]:
    """Every clip folder under ``HS/*/micro/<emotion>/`` as a :class:`ClipRecord`."""
    root = hs_root(manual_dir)
    records: list[RecordOrError] = []
    for subject_dir in sorted(p for p in root.iterdir() if micro_dir(p)):
        try:
            subject = subject_id(subject_dir.name)
        except ValueError:
            records.append(DatasetError(f"{subject_dir}: subject folder name; expected s1, s2, ..."))
            continue
        for emotion_dir in sorted(p for p in micro_dir(subject_dir).iterdir() if p.is_dir()):
            for clip_dir in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
                records.append(ClipRecord(
                    dataset="smic", subject=subject, clip_id=clip_dir.name, frame_dir=clip_dir,
                    emotion=emotion_dir.name, onset=None, apex=None, offset=None,
                    action_units="", where=str(clip_dir.relative_to(root.parent))))
    return records


class Smic(MERBuilder):
    """SMIC-HS micro clips, 3 classes (negative, positive, surprise); apex by rule."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    LABELS = LABELS

    def read_records(self, manual_dir: pathlib.Path) -> list[RecordOrError]:
        return read_records(manual_dir)
