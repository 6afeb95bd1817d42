"""Reading and writing the coding sheets that come with the micro-expression datasets.

The sheets are spreadsheets (CASME II ``CASME2-coding-20140508.xlsx``, SAMM
``SAMM_Micro_FACS_Codes_v2.xlsx``, CAS(ME)^3 ``cas(me)3_part_A_ME_label_JpgIndex_v2.xls``, a
legacy Excel 97-2003 file) or CSV files (the composite label CSV that peer code ships).
Spreadsheets are told apart by their bytes, not their suffix: a zip archive is read as
xlsx (openpyxl) and an OLE2 compound file as xls (xlrd >= 2, which reads only that
format), because renamed copies (an xlsx saved as ``.xls``) are common. Their header row is not always the first row: SAMM puts title rows above it. So
the header is *found*: the first row that contains every required column name. Column
names are compared after normalisation (case, spaces, underscores), so "Onset Frame",
"OnsetFrame" and "onset_frame" are the same column.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib
import re
from collections.abc import Iterable, Sequence

from data_pipelines.errors import InputError


class SheetError(InputError, ValueError):
    """A coding sheet is unreadable or lacks what the reader needs (names file and row)."""


def normalize_column(name: object) -> str:
    """``" Onset Frame "`` -> ``"onsetframe"``: case, spaces, ``_`` and ``-`` do not matter."""
    return re.sub(r"[\s_\-]+", "", str(name if name is not None else "")).lower()


@dataclasses.dataclass(frozen=True)
class SheetRow:
    """One data row: ``values`` maps normalised column name -> cell (None when empty)."""

    path: pathlib.Path
    row_number: int  # 1-based, as a spreadsheet program shows it
    values: dict[str, object]

    @property
    def where(self) -> str:
        return f"{self.path.name} row {self.row_number}"

    def get(self, column: str) -> object:
        return self.values.get(normalize_column(column))


XLSX_MAGIC = b"PK\x03\x04"  # xlsx is a zip archive
XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # xls (BIFF8) is an OLE2 compound file


def _xlsx_rows(path: pathlib.Path) -> list[list[object]]:
    import openpyxl  # only needed for spreadsheets

    # A file object, not the path: openpyxl refuses a path by its suffix (an xlsx named .xls).
    with open(path, "rb") as handle:
        try:
            workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        except Exception as err:  # openpyxl raises many types for a broken file
            raise SheetError(f"{path}: cannot open as an xlsx workbook ({err})") from err
        try:
            sheet = workbook.worksheets[0]
            return [list(row) for row in sheet.iter_rows(values_only=True)]
        finally:
            workbook.close()


def _xls_rows(path: pathlib.Path) -> list[list[object]]:
    """The first worksheet of a legacy .xls file: numbers as float, text as str, empty
    cells as "" (:func:`read_sheet` turns those into None)."""
    import xlrd  # only needed for .xls sheets

    try:
        book = xlrd.open_workbook(str(path), on_demand=True)
    except Exception as err:  # xlrd raises XLRDError, CompDocError, struct.error, ...
        raise SheetError(f"{path}: cannot open as an Excel 97-2003 .xls workbook ({err})") from err
    try:
        sheet = book.sheet_by_index(0)
        return [sheet.row_values(index) for index in range(sheet.nrows)]
    finally:
        book.release_resources()


def _raw_rows(path: pathlib.Path) -> list[list[object]]:
    """All rows of the first worksheet (xlsx or xls) or of the CSV, cells as read."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xls"):
        with open(path, "rb") as handle:
            magic = handle.read(len(XLS_MAGIC))
        if magic.startswith(XLSX_MAGIC):
            return _xlsx_rows(path)
        if magic == XLS_MAGIC:
            return _xls_rows(path)
        raise SheetError(f"{path}: neither an xlsx (zip) nor an xls (OLE2) workbook (first bytes "
                         f"{magic[:4]!r}); expected the coding sheet as distributed, or saved "
                         "again as .xlsx")
    if suffix in (".csv", ".txt"):
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                return [list(row) for row in csv.reader(handle)]
        except UnicodeDecodeError as err:
            raise SheetError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); expected "
                             "a UTF-8 CSV (re-save it as UTF-8, or as .xlsx)") from None
    raise SheetError(f"{path}: unsupported sheet type {suffix!r}; expected .xlsx, .xls or .csv")


def find_header_row(rows: Sequence[Sequence[object]], required: Iterable[str]) -> int | None:
    """Index of the first row that holds every ``required`` column name, or None."""
    wanted = {normalize_column(c) for c in required}
    for index, row in enumerate(rows):
        if wanted <= {normalize_column(c) for c in row}:
            return index
    return None


def read_sheet(path: str | pathlib.Path, required: Sequence[str]) -> list[SheetRow]:
    """Reads a coding sheet whose header row contains all ``required`` columns.

    Title rows above the header are skipped; rows with no value in any column are dropped
    (spreadsheets often end with formatted empty rows). Raises :class:`SheetError` naming
    the file, the missing columns and the columns of the best candidate header row.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise SheetError(f"{path}: coding sheet not found")
    rows = _raw_rows(path)
    header_index = find_header_row(rows, required)
    if header_index is None:
        wanted = [normalize_column(c) for c in required]
        # The closest row is the most helpful thing to show the user.
        best = max(rows, key=lambda r: len(set(wanted) & {normalize_column(c) for c in r}),
                   default=[])
        have = {normalize_column(c) for c in best}
        missing = [c for c, n in zip(required, wanted) if n not in have]
        shown = [str(c) for c in best if c is not None]
        raise SheetError(
            f"{path}: no header row with the columns {list(required)}; missing {missing} "
            f"(closest header row has {shown})")
    header = [normalize_column(c) for c in rows[header_index]]
    out = []
    for offset, row in enumerate(rows[header_index + 1:], start=header_index + 2):
        values = {}
        for name, cell in zip(header, row):
            if name and name not in values:
                values[name] = None if (isinstance(cell, str) and not cell.strip()) else cell
        if any(v is not None for v in values.values()):
            out.append(SheetRow(path=path, row_number=offset, values=values))
    return out


def cell_text(row: SheetRow, column: str) -> str:
    """The cell as a stripped string; numbers like ``6.0`` become ``"6"``."""
    value = row.get(column)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def cell_int(row: SheetRow, column: str, *, allow_missing: bool = False) -> int | None:
    """The cell as an integer frame number; ``"/"``, ``"-"`` or empty give None if allowed."""
    text = cell_text(row, column)
    if text in ("", "/", "-", "n/a", "N/A") and allow_missing:
        return None
    try:
        number = float(text)
    except ValueError:
        raise SheetError(f"{row.where}: column {column!r} is {text!r}; expected a whole "
                         "frame number" + (" or '/'" if allow_missing else "")) from None
    if not number.is_integer():
        raise SheetError(f"{row.where}: column {column!r} is {text!r}; expected a whole number")
    return int(number)


def write_xlsx(path: str | pathlib.Path, header: Sequence[str], rows: Iterable[Sequence[object]],
               *, title_rows: Sequence[Sequence[object]] = ()) -> pathlib.Path:
    """Writes ``title_rows`` (if any), then ``header``, then ``rows`` to a new xlsx file."""
    import openpyxl

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in title_rows:
        sheet.append(list(row))
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)
    return path


def write_csv(path: str | pathlib.Path, header: Sequence[str],
              rows: Iterable[Sequence[object]]) -> pathlib.Path:
    """Writes a plain CSV with a header row."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(header))
        writer.writerows([list(r) for r in rows])
    return path
