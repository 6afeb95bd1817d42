"""SynthFACS micro-expression clips written in the real datasets' own layouts.

:func:`write_layout` writes :class:`~data_pipelines.synthetic.MEClip` s (or anything with
the same fields, see docs/INTERFACES.md "SynthFACS") as JPEG frame folders plus each
dataset's own coding sheet, so that synthetic data goes through the real readers
(:mod:`data_pipelines.me.casme2`, ``samm``, ``smic``, ``composite``) and not a side door.

Frame ``i`` of a clip is written as frame number ``FIRST_FRAME + i`` (``img1.jpg`` ...);
the sheets give the onset / apex / offset in those numbers. SMIC-HS has no sheet: its
clip folders hold exactly the onset..offset frames, and its apex is not written anywhere
except in the composite layout's label CSV (peer-code format, with the apex frame
number), so the composite set read back with that CSV has the generator's apexes.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

import cv2
import numpy as np

from data_pipelines.me import samm, sheets

LAYOUTS = ("casme2", "samm", "smic", "composite")
FIRST_FRAME = 1
JPEG_QUALITY = 95
CASME2_SHEET = "CASME2-coding-20140508.xlsx"
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
COMPOSITE_LABEL_CSV = "composite_labels.csv"
# SAMM's sheet opens with title rows above the header; the reader must find the header.
SAMM_TITLE_ROWS = (("SAMM Micro-Movements - FACS Codes (synthetic, SynthFACS)",),
                   ("Version 2",), ())
COMPOSITE_INDEX = {"negative": 0, "positive": 1, "surprise": 2}


class MEClipLike(Protocol):
    frames: np.ndarray  # float32 [T, H, W, 1] in [0, 1]
    onset_index: int
    apex_index: int
    offset_index: int
    emotion: str
    composite_label: str | None
    subject: str
    dataset: str
    clip_id: str
    action_units: str


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """float [.., H, W, 1] in [0, 1] (or uint8) -> uint8 [.., H, W]."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)
    return frames[..., 0] if frames.shape[-1] == 1 else frames


def write_jpeg(path: pathlib.Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"{path}: JPEG encoding failed for an image of shape {image.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    data.tofile(path)


def _write_frames(folder: pathlib.Path, frames: np.ndarray, name: str) -> None:
    """Writes frames [T, H, W, 1] as ``name.format(number)`` JPEGs numbered from FIRST_FRAME."""
    for i, image in enumerate(to_uint8(frames)):
        write_jpeg(folder / name.format(FIRST_FRAME + i), image)


def _subject_number(clip: MEClipLike) -> int:
    match = re.search(r"(\d+)$", clip.subject)
    if not match:
        raise ValueError(f"clip {clip.clip_id}: subject {clip.subject!r} has no number; "
                         "expected e.g. 'sub01' or '006'")
    return int(match.group(1))


def _of(clips: Sequence[MEClipLike], dataset: str) -> list[MEClipLike]:
    return [c for c in clips if c.dataset == dataset]


def write_casme2(clips: Sequence[MEClipLike], out_dir: pathlib.Path) -> pathlib.Path:
    """``CASME2_RAW_selected/sub01/EP02_01f/img1.jpg`` + ``CASME2-coding-20140508.xlsx``."""
    rows = []
    for clip in clips:
        _write_frames(out_dir / "CASME2_RAW_selected" / clip.subject / clip.clip_id,
                      clip.frames, "img{}.jpg")
        rows.append((_subject_number(clip), clip.clip_id, FIRST_FRAME + clip.onset_index,
                     FIRST_FRAME + clip.apex_index, FIRST_FRAME + clip.offset_index,
                     clip.action_units, clip.emotion))
    return sheets.write_xlsx(out_dir / CASME2_SHEET,
                             ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                              "Action Units", "Estimated Emotion"), rows)


def write_samm(clips: Sequence[MEClipLike], out_dir: pathlib.Path) -> pathlib.Path:
    """``SAMM/006/006_1_2/006_00001.jpg`` + ``SAMM_Micro_FACS_Codes_v2.xlsx`` (title rows first)."""
    rows = []
    for clip in clips:
        _write_frames(out_dir / "SAMM" / clip.subject / clip.clip_id, clip.frames,
                      clip.subject + "_{:05d}.jpg")
        inducement = clip.clip_id.split("_")[1] if clip.clip_id.count("_") >= 2 else "1"
        values = {"Subject": _subject_number(clip), "Filename": clip.clip_id,
                  "Inducement Code": inducement,
                  "Onset Frame": FIRST_FRAME + clip.onset_index,
                  "Apex Frame": FIRST_FRAME + clip.apex_index,
                  "Offset Frame": FIRST_FRAME + clip.offset_index,
                  "Duration": clip.offset_index - clip.onset_index + 1, "Type": "Micro - 1/2",
                  "Action Units": clip.action_units, "Notes": "synthetic",
                  "Estimated Emotion": clip.emotion}
        rows.append(tuple(values[c] for c in samm.SHEET_HEADER))
    return sheets.write_xlsx(out_dir / SAMM_SHEET, samm.SHEET_HEADER, rows,
                             title_rows=SAMM_TITLE_ROWS)


def write_smic(clips: Sequence[MEClipLike], out_dir: pathlib.Path) -> pathlib.Path:
    """``HS/s1/micro/negative/s1_ne_01/image000001.jpg``: the onset..offset frames only."""
    for clip in clips:
        span = clip.frames[clip.onset_index:clip.offset_index + 1]
        _write_frames(out_dir / "HS" / clip.subject / "micro" / clip.emotion / clip.clip_id,
                      span, "image{:06d}.jpg")
    return out_dir / "HS"


def smic_frame_number(clip: MEClipLike, index: int) -> int:
    """The written frame number of frame ``index`` of a SMIC clip (its folder starts at onset)."""
    return FIRST_FRAME + index - clip.onset_index


def write_composite_csv(clips: Sequence[MEClipLike], path: pathlib.Path) -> pathlib.Path:
    """The peer-code label CSV (dataset, sub, filename_o, label, apex, imagename)."""
    rows = []
    for clip in clips:
        if clip.composite_label is None:
            continue
        apex = (smic_frame_number(clip, clip.apex_index) if clip.dataset == "smic"
                else FIRST_FRAME + clip.apex_index)
        rows.append((clip.dataset, clip.subject, clip.clip_id,
                     COMPOSITE_INDEX[clip.composite_label], apex, f"{clip.clip_id}/{apex}"))
    return sheets.write_csv(path, ("dataset", "sub", "filename_o", "label", "apex", "imagename"),
                            rows)


def write_layout(clips: Iterable[MEClipLike], layout: str, out_dir: str | pathlib.Path) -> dict:
    """Writes SynthFACS ME clips in a real dataset's layout under ``out_dir``.

    ``layout`` "casme2", "samm" or "smic" writes that dataset's clips as its builder's
    ``manual_dir``; "composite" writes ``CASME2/``, ``SAMM/``, ``SMIC/`` plus
    ``composite_labels.csv``. Returns {"manual_dir", "sheets", "label_csv", "num_clips"}.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: expected one of {LAYOUTS}")
    clips = list(clips)
    out_dir = pathlib.Path(out_dir)
    wanted = ("casme2", "samm", "smic") if layout == "composite" else (layout,)
    unknown = sorted({c.dataset for c in clips} - {"casme2", "samm", "smic"})
    if unknown:
        raise ValueError(f"clips of unknown dataset(s) {unknown}; expected casme2, samm or smic")
    for name in wanted:
        if not _of(clips, name):
            raise ValueError(f"layout {layout!r} needs {name} clips; none among the "
                             f"{len(clips)} given")
    for clip in clips:
        if not 0 <= clip.onset_index <= clip.apex_index <= clip.offset_index < len(clip.frames):
            raise ValueError(f"clip {clip.dataset}/{clip.subject}/{clip.clip_id}: expected "
                             "0 <= onset <= apex <= offset < number of frames, got "
                             f"{clip.onset_index}, {clip.apex_index}, {clip.offset_index}, "
                             f"{len(clip.frames)}")
    folders = ({"casme2": out_dir / "CASME2", "samm": out_dir / "SAMM", "smic": out_dir / "SMIC"}
               if layout == "composite" else {layout: out_dir})
    writers = {"casme2": write_casme2, "samm": write_samm, "smic": write_smic}
    written = [str(writers[name](_of(clips, name), folders[name])) for name in wanted]
    label_csv = None
    if layout == "composite":
        label_csv = str(write_composite_csv(clips, out_dir / COMPOSITE_LABEL_CSV))
    return {"manual_dir": str(out_dir), "sheets": written, "label_csv": label_csv,
            "num_clips": sum(len(_of(clips, n)) for n in wanted)}
