"""The MEGC 2019 composite set: CASME II + SMIC-HS + SAMM in 3 classes.

Layout under ``manual_dir``: one folder per dataset, each laid out as its own builder
expects (see :mod:`data_pipelines.me.casme2`, :mod:`data_pipelines.me.samm`,
:mod:`data_pipelines.me.smic`)::

    CASME2/CASME2-coding-20140508.xlsx
    CASME2/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...  (or CASME2/Cropped/...)
    SAMM/SAMM_Micro_FACS_Codes_v2.xlsx
    SAMM/SAMM/006/006_1_2/006_05562.jpg ...
    SMIC/HS/s1/micro/negative/s1_ne_01/image000001.bmp ...

Labels (negative, positive, surprise) by the standard mapping: CASME II disgust,
repression -> negative, happiness -> positive, surprise -> surprise; SAMM anger, contempt,
disgust, fear, sadness -> negative, happiness -> positive, surprise -> surprise; SMIC-HS
as is. Other classes (CASME II others / fear / sadness, SAMM Other) are excluded and
counted in the summary. Subjects that then have no clip drop out of the set (this is
why SAMM contributes 28 of its 32 subjects). With the full datasets this gives 68
subjects and 442 clips: CASME II 24 / 145 (88 / 32 / 25), SMIC-HS 16 / 164 (70 / 51 / 43),
SAMM 28 / 133 (92 / 26 / 15).

Subject ids are made unique across datasets: ``"casme2/sub01"``, ``"samm/006"``, ``"smic/s1"``.

``label_csv``: the label CSV peer code ships (columns dataset, sub, filename_o, label,
apex, imagename; label 0 negative, 1 positive, 2 surprise) is honoured when given: the
set is exactly its rows, with its labels and, where its ``apex`` is a frame number, its
apex. A CSV row whose clip is not on disk is an error (or a reported skip).
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

from data_pipelines.me import casme2, samm, sheets, smic
from data_pipelines.me.builder import MERBuilder
from data_pipelines.me.records import (COMPOSITE_LABELS, ClipRecord, DatasetError, LabelSet,
                                       RecordOrError)

LABEL_CSV_COLUMNS = ("dataset", "sub", "filename_o", "label")
DATASET_FOLDERS = {"casme2": "CASME2", "samm": "SAMM", "smic": "SMIC"}
MAPPINGS = {"casme2": casme2.COMPOSITE_MAPPING, "samm": samm.COMPOSITE_MAPPING,
            "smic": smic.COMPOSITE_MAPPING}
SUBJECT_IDS = {"casme2": casme2.subject_id, "samm": samm.subject_id, "smic": smic.subject_id}
# The spellings of dataset names seen in peer-code CSVs.
DATASET_ALIASES = {"casme2": "casme2", "casmeii": "casme2", "casme": "casme2", "samm": "samm",
                   "smic": "smic", "smichs": "smic"}
LABELS = LabelSet(names=COMPOSITE_LABELS, mapping={})

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
The composite set (MEGC 2019) needs CASME II, SAMM and SMIC-HS, each licensed by its
authors. Put in manual_dir one folder per dataset, each laid out as distributed:
  CASME2/CASME2-coding-20140508.xlsx
  CASME2/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...   (or CASME2/Cropped/...)
  SAMM/SAMM_Micro_FACS_Codes_v2.xlsx
  SAMM/SAMM/006/006_1_2/006_05562.jpg ...
  SMIC/HS/s1/micro/negative/s1_ne_01/image000001.bmp ...
"""


@dataclasses.dataclass(frozen=True)
class CsvLabel:
    label: str
    apex: int | None
    where: str


def read_label_csv(path: pathlib.Path) -> tuple[dict[tuple[str, str, str], CsvLabel],
                                                 list[DatasetError]]:
    """(dataset, subject, clip_id) -> label (and apex) from a peer-code label CSV, and the
    errors of the rows that could not be read (each names the file and row; the builder
    raises them, or skips them with ``skip_bad``). An unreadable file raises at once."""
    try:
        rows = sheets.read_sheet(path, LABEL_CSV_COLUMNS)
    except sheets.SheetError as first_err:
        try:  # some peer code names the column "data"
            rows = sheets.read_sheet(path, ("data", "sub", "filename_o", "label"))
        except sheets.SheetError:
            raise DatasetError(str(first_err)) from None
    out: dict[tuple[str, str, str], CsvLabel] = {}
    errors: list[DatasetError] = []
    for row in rows:
        try:
            key, label = _csv_row(row)
        except (DatasetError, sheets.SheetError) as err:
            errors.append(DatasetError(str(err)))
            continue
        if key in out:
            errors.append(DatasetError(f"{row.where}: clip {'/'.join(key)} is listed twice "
                                       f"(first at {out[key].where}); expected one row per clip"))
            continue
        out[key] = label
    return out, errors


def _csv_row(row: sheets.SheetRow) -> tuple[tuple[str, str, str], CsvLabel]:
    """One label-CSV row -> ((dataset, subject, clip_id), CsvLabel); raises on a bad row."""
    raw_dataset = sheets.cell_text(row, "dataset") or sheets.cell_text(row, "data")
    dataset = DATASET_ALIASES.get(re.sub(r"[^a-z0-9]", "", raw_dataset.lower()))
    if dataset is None:
        raise DatasetError(f"{row.where}: dataset {raw_dataset!r}; expected one of "
                           "casme2, samm, smic")
    try:
        subject = SUBJECT_IDS[dataset](sheets.cell_text(row, "sub"))
    except ValueError:
        raise DatasetError(f"{row.where}: sub {sheets.cell_text(row, 'sub')!r} is not a "
                           f"{dataset} subject id") from None
    label_text = sheets.cell_text(row, "label")
    if label_text not in ("0", "1", "2"):
        raise DatasetError(f"{row.where}: label {label_text!r}; expected 0 (negative), "
                           "1 (positive) or 2 (surprise)")
    apex = sheets.cell_int(row, "apex", allow_missing=True) if "apex" in row.values else None
    key = (dataset, subject, sheets.cell_text(row, "filename_o"))
    return key, CsvLabel(COMPOSITE_LABELS[int(label_text)], apex, row.where)


def read_records(manual_dir: pathlib.Path, *, prefer_cropped: bool) -> list[RecordOrError]:
    """The records of the three datasets, from ``manual_dir/{CASME2,SAMM,SMIC}``."""
    missing = [f for f in DATASET_FOLDERS.values() if not (manual_dir / f).is_dir()]
    if missing:
        raise DatasetError(f"{manual_dir}: missing {missing}; expected the folders CASME2/, "
                           "SAMM/ and SMIC/\n" + MANUAL_DOWNLOAD_INSTRUCTIONS)
    return (casme2.read_records(manual_dir / "CASME2", prefer_cropped=prefer_cropped)
            + samm.read_records(manual_dir / "SAMM")
            + smic.read_records(manual_dir / "SMIC"))


class Composite(MERBuilder):
    """MEGC 2019 composite set: CASME II + SMIC-HS + SAMM, 3 classes."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    LABELS = LABELS

    def read_records(self, manual_dir: pathlib.Path) -> list[RecordOrError]:
        records = read_records(manual_dir, prefer_cropped=self.builder_config.trust_cropped)
        self._csv = {}
        if self.builder_config.label_csv:
            self._csv, row_errors = read_label_csv(pathlib.Path(self.builder_config.label_csv))
            records.extend(row_errors)
            on_disk = {(r.dataset, r.subject, r.clip_id) for r in records
                       if isinstance(r, ClipRecord)}
            for key, entry in self._csv.items():
                if key not in on_disk:
                    records.append(DatasetError(
                        f"{entry.where}: clip {'/'.join(key)} is not in the {key[0]} coding "
                        f"sheet / folder tree under {manual_dir}; expected every label CSV "
                        "row to name a clip on disk"))
        return records

    def subject_id(self, record: ClipRecord) -> str:
        return f"{record.dataset}/{record.subject}"

    def label_of(self, record: ClipRecord) -> str | None:
        if self._csv:
            entry = self._csv.get((record.dataset, record.subject, record.clip_id))
            # A clip the CSV does not list is outside the set; the dataset's own word is
            # still checked so that a typo in a sheet is not hidden by the CSV.
            _mapped(record)
            return entry.label if entry else None
        return _mapped(record)

    def exclusion_reason(self, record: ClipRecord) -> str:
        if self._csv:
            return f"{record.dataset}:not in the label CSV"
        return super().exclusion_reason(record)

    def apex_override(self, record: ClipRecord) -> ClipRecord:
        entry = self._csv.get((record.dataset, record.subject, record.clip_id)) if self._csv else None
        if entry is None or entry.apex is None:
            return record
        return dataclasses.replace(record, apex=entry.apex,
                                   where=f"{record.where}, apex from {entry.where}")


def _mapped(record: ClipRecord) -> str | None:
    mapping = MAPPINGS[record.dataset]
    word = record.emotion.strip().lower()
    if word not in mapping:
        raise DatasetError(f"{record.where} ({record.key}): unknown emotion label "
                           f"{record.emotion!r}; expected one of {sorted(mapping)}")
    return mapping[word]
