"""CAS(ME)^3 Part A micro-expressions, read into the common MER format as the authors'
released D-FACE script (``train_casme3_4c.py``) reads them: RGB, 4 classes, two data rules.

Layout under ``manual_dir``, either as the owners distribute Part A (``manual_dir`` may
also be the ``part_A`` folder itself)::

    part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xls   the ME coding sheet
    part_A/data/part_A/spNO.1/a/color/123.jpg ...                 frames of whole videos
                                                                  (depth/ is not read)

or as the released script reads it (faces cropped beforehand, its README says)::

    cas(me)3_part_A_ME_label_JpgIndex_v1.xls
    spNO.1/a/123.jpg ...

Frame ``123.jpg`` is frame 123 of the video, the number the sheet uses. The clips of one
video share its folder, so a clip is named by its video and onset, ``a_123`` (the key of
the owners' own clip folders, ``spNO.1_a_123``). A sheet naming the video ``A`` finds the
folder ``a`` (the owners' folders are lower case).

Sheet (``.xls`` read with xlrd, ``.xlsx`` too; any ``*_ME_label*`` sheet at the top, in
``annotation/`` or in ``part_A/annotation/``): the header row is found by its names, in
any column order: Subject (``spNO.1``), Filename (the video, ``a`` .. ``m``), Onset, Apex,
Offset, AU, emotion; other columns (Objective class) are not read. Onset and offset are
required; an apex of "/" or empty is estimated by the apex rule and listed.

Labels: the release's 4 classes in its order (``train_casme3_4c.py`` lines 137-144):
happy, surprise, negative (disgust, anger, fear, sad), others. The release sends every
other word to ``others``; here a word outside these seven is an error naming the file
and row, so that a typo does not become an ``others`` clip.

Data rules of the release (lines 135-146), named options of the build config, both on by
default; the summary's ``data_rules`` says how many clips each touched, and which:
- ``skip_onset_zero``: a clip whose onset is 0 is left out (the videos have no frame 0;
  the v2 sheet has one such row). Checked first, as in the release.
- ``replace_apex_at_onset``: an apex equal to the onset is replaced by
  ``(onset + offset) // 2``.
A row whose onset is after its apex (a third-party audit reports one in the v2 sheet,
spNO.216 video d) is a bad row here, named in the error (``--skip-bad`` lists and skips
it); the release reads such a pair as it is.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

from data_pipelines.me import sheets
from data_pipelines.me.builder import DATA_RULES, MERBuilder
from data_pipelines.me.records import (ClipRecord, DatasetError, LabelSet, RecordOrError,
                                       find_one, sheet_records)

COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "emotion")
# The full header of cas(me)3_part_A_ME_label_JpgIndex_v2 (the layout writer reproduces it).
SHEET_HEADER = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class",
                "emotion")
EMOTIONS = ("happy", "surprise", "disgust", "anger", "fear", "sad", "others")
LABELS = LabelSet(
    names=("happy", "surprise", "negative", "others"),
    mapping={"happy": "happy", "surprise": "surprise", "disgust": "negative",
             "anger": "negative", "fear": "negative", "sad": "negative", "others": "others"})
SHEET_PATTERNS = tuple(f"{folder}*_ME_label*.{suffix}"
                       for folder in ("", "annotation/", "part_A/annotation/")
                       for suffix in ("xls", "xlsx"))
# Where the subject folders are, relative to manual_dir (first match wins).
FRAME_ROOTS = ("part_A/data/part_A", "data/part_A", "part_A/data/part_A_split/part_A",
               "data/part_A_split/part_A", ".")
SUBJECT_FOLDER = re.compile(r"spno\.\d+", re.IGNORECASE)

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
CAS(ME)^3 is licensed by its authors (Institute of Psychology, Chinese Academy of Sciences);
request it from them. Put in manual_dir Part A as distributed:
  part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xls
  part_A/data/part_A/spNO.1/a/color/123.jpg ...   (faces are detected and cropped), or
as the released D-FACE script reads it:
  cas(me)3_part_A_ME_label_JpgIndex_v1.xls
  spNO.1/a/123.jpg ...                             (face crops: use --trust-cropped)
"""


def frames_root(manual_dir: pathlib.Path) -> pathlib.Path:
    """The folder holding the subject folders (``spNO.1``, ...)."""
    for relative in FRAME_ROOTS:
        root = manual_dir / relative
        if root.is_dir() and any(p.is_dir() and SUBJECT_FOLDER.fullmatch(p.name)
                                 for p in root.iterdir()):
            return root
    raise DatasetError(f"{manual_dir}: no CAS(ME)^3 Part A frame folder; expected spNO.1/a/... "
                       f"under one of {list(FRAME_ROOTS)}")


class VideoFolders:
    """Finds a video's frame folder, ``root/spNO.1/a`` or its ``color/`` subfolder, whatever
    the case of the names in the sheet (listings are cached: one per subject)."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self._listings: dict[pathlib.Path, dict[str, pathlib.Path]] = {}

    def _child(self, folder: pathlib.Path, name: str) -> pathlib.Path:
        if (folder / name).is_dir():
            return folder / name
        if folder not in self._listings:
            self._listings[folder] = ({p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
                                      if folder.is_dir() else {})
        # A folder that is not there stays the path the sheet names (the error shows it).
        return self._listings[folder].get(name.lower(), folder / name)

    def __call__(self, subject: str, video: str) -> pathlib.Path:
        folder = self._child(self._child(self.root, subject), video)
        return folder / "color" if (folder / "color").is_dir() else folder


def parse_row(row: sheets.SheetRow, folders: VideoFolders) -> ClipRecord:
    subject = sheets.cell_text(row, "Subject")
    if not subject:
        raise sheets.SheetError(f"{row.where}: Subject is empty; expected a subject like spNO.1")
    video = sheets.cell_text(row, "Filename")
    if not video:
        raise sheets.SheetError(f"{row.where}: Filename is empty; expected a video like a")
    onset = sheets.cell_int(row, "Onset")
    return ClipRecord(
        dataset="casme3", subject=subject, clip_id=f"{video}_{onset}",
        frame_dir=folders(subject, video), emotion=sheets.cell_text(row, "emotion"),
        onset=onset, apex=sheets.cell_int(row, "Apex", allow_missing=True),
        offset=sheets.cell_int(row, "Offset"), action_units=sheets.cell_text(row, "AU"),
        where=row.where)


def read_records(manual_dir: pathlib.Path) -> list[RecordOrError]:
    """Every row of the Part A ME sheet as a :class:`ClipRecord` (or its error)."""
    sheet = find_one(manual_dir, SHEET_PATTERNS, "CAS(ME)^3 Part A ME coding sheet")
    folders = VideoFolders(frames_root(manual_dir))
    return sheet_records(sheet, COLUMNS, lambda row: parse_row(row, folders))


def apply_rules(records: list[RecordOrError], *, skip_onset_zero: bool,
                replace_apex_at_onset: bool) -> tuple[list[RecordOrError], dict[str, list[str]]]:
    """The release's two data rules (module docstring); returns the records that remain
    and, per rule, the clips it touched ("key (where)" / "key: apex a -> b (where)")."""
    touched: dict[str, list[str]] = {name: [] for name in DATA_RULES}
    kept: list[RecordOrError] = []
    for record in records:
        if isinstance(record, ClipRecord) and skip_onset_zero and record.onset == 0:
            touched["skip_onset_zero"].append(f"{record.key} ({record.where})")
            continue
        if (isinstance(record, ClipRecord) and replace_apex_at_onset
                and record.apex is not None and record.apex == record.onset):
            apex = (record.onset + record.offset) // 2
            touched["replace_apex_at_onset"].append(
                f"{record.key}: apex {record.apex} -> {apex} ({record.where})")
            record = dataclasses.replace(record, apex=apex)
        kept.append(record)
    return kept, touched


class Casme3(MERBuilder):
    """CAS(ME)^3 Part A micro-expressions, 4 classes (happy, surprise, negative, others), RGB."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    LABELS = LABELS
    DEFAULT_IMAGE_SIZE = 256  # the release's T.Resize((256, 256)), the released tokenizer's size
    DEFAULT_CHANNELS = 3
    DATA_RULES = DATA_RULES

    def read_records(self, manual_dir: pathlib.Path) -> list[RecordOrError]:
        config = self.builder_config
        records, self._touched = apply_rules(
            read_records(manual_dir), skip_onset_zero=config.skip_onset_zero,
            replace_apex_at_onset=config.replace_apex_at_onset)
        return records

    def rule_report(self) -> dict:
        config = self.builder_config
        touched = getattr(self, "_touched", {name: [] for name in DATA_RULES})  # set by read_records
        return {name: {"enabled": bool(getattr(config, name)), "count": len(clips),
                       "clips": clips}
                for name, clips in touched.items()}
