"""SynthFACS micro-expression clips written in the real datasets' own layouts.

:func:`write_layout` writes :class:`~data_pipelines.synthetic.MEClip` s (or anything with
the same fields, see docs/INTERFACES.md "SynthFACS") as JPEG frame folders plus each
dataset's own coding sheet, so that synthetic data goes through the real readers
(:mod:`data_pipelines.me.casme2`, ``samm``, ``smic``, ``composite``) and not a side door.

Frame ``i`` of a clip is written as frame number ``FIRST_FRAME + i`` (``img1.jpg`` ...);
the sheets give the onset / apex / offset in those numbers. CAS(ME)^3 Part A is different:
its frames are those of whole videos, shared by the clips of a video, so a clip is placed
at its own onset number (its ``clip_id`` is ``<video>_<onset>``, e.g. ``a_123``), frames
are RGB JPEGs (the gray level in R, G and B), and the sheet is written as ``.xlsx``: no
maintained Python package writes the legacy ``.xls`` of the real sheet (the reader takes
both). SMIC-HS has no sheet: its
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

from data_pipelines.me import casme3, samm, sheets

LAYOUTS = ("casme2", "samm", "smic", "composite", "casme3")
FIRST_FRAME = 1
JPEG_QUALITY = 95
CASME2_SHEET = "CASME2-coding-20140508.xlsx"
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
COMPOSITE_LABEL_CSV = "composite_labels.csv"
CASME3_SHEET = "part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
CASME3_FRAMES = "part_A/data/part_A"
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
    """Writes a gray [H, W] (or [H, W, 1]) or RGB [H, W, 3] image as a JPEG file."""
    if image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # OpenCV encodes BGR
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


def casme3_video_onset(clip: MEClipLike) -> tuple[str, int]:
    """(video, onset frame number) of a CAS(ME)^3 clip from its ``clip_id`` ``a_123``."""
    video, _, onset = clip.clip_id.rpartition("_")
    if not video or not onset.isdigit():
        raise ValueError(f"clip {clip.subject}/{clip.clip_id}: expected a CAS(ME)^3 clip_id "
                         "<video>_<onset frame>, e.g. 'a_123'")
    return video, int(onset)


def write_casme3(clips: Sequence[MEClipLike], out_dir: pathlib.Path) -> pathlib.Path:
    """``part_A/data/part_A/spNO.1/a/color/123.jpg`` (RGB) + the Part A ME sheet (``.xlsx``).

    Frame ``i`` of a clip is frame number ``onset - onset_index + i`` of its video; numbers
    below ``FIRST_FRAME`` are not written, as the real videos have no frame 0 (so a clip at
    onset 0 names a missing frame, like the real sheet's). Two clips of one video that
    would share a frame file are an error.
    """
    written: dict[pathlib.Path, str] = {}
    rows = []
    for clip in clips:
        video, onset = casme3_video_onset(clip)
        first = onset - clip.onset_index  # the frame number of frames[0]
        folder = out_dir / CASME3_FRAMES / clip.subject / video / "color"
        pixels = to_uint8(clip.frames)  # [T, H, W] gray or [T, H, W, 3] RGB
        rgb = pixels if pixels.ndim == 4 else np.repeat(pixels[..., None], 3, axis=-1)
        for i, image in enumerate(rgb):
            if first + i < FIRST_FRAME:
                continue
            path = folder / f"{first + i}.jpg"
            if path in written:
                raise ValueError(f"clips {written[path]} and {clip.subject}/{clip.clip_id} both "
                                 f"write frame {path.name} of {clip.subject}/{video}; expected "
                                 "the clips of one video not to overlap")
            written[path] = f"{clip.subject}/{clip.clip_id}"
            write_jpeg(path, image)
        values = {"Subject": clip.subject, "Filename": video, "Onset": onset,
                  "Apex": first + clip.apex_index, "Offset": first + clip.offset_index,
                  "AU": clip.action_units, "Objective class": "", "emotion": clip.emotion}
        rows.append(tuple(values[c] for c in casme3.SHEET_HEADER))
    return sheets.write_xlsx(out_dir / CASME3_SHEET, casme3.SHEET_HEADER, rows)


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

    ``layout`` "casme2", "samm", "smic" or "casme3" writes that dataset's clips as its
    builder's ``manual_dir``; "composite" writes ``CASME2/``, ``SAMM/``, ``SMIC/`` plus
    ``composite_labels.csv``. Returns {"manual_dir", "sheets", "label_csv", "num_clips"}.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: expected one of {LAYOUTS}")
    clips = list(clips)
    out_dir = pathlib.Path(out_dir)
    wanted = ("casme2", "samm", "smic") if layout == "composite" else (layout,)
    known = ("casme2", "samm", "smic", "casme3")
    unknown = sorted({c.dataset for c in clips} - set(known))
    if unknown:
        raise ValueError(f"clips of unknown dataset(s) {unknown}; expected one of {known}")
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
    writers = {"casme2": write_casme2, "samm": write_samm, "smic": write_smic,
               "casme3": write_casme3}
    written = [str(writers[name](_of(clips, name), folders[name])) for name in wanted]
    label_csv = None
    if layout == "composite":
        label_csv = str(write_composite_csv(clips, out_dir / COMPOSITE_LABEL_CSV))
    return {"manual_dir": str(out_dir), "sheets": written, "label_csv": label_csv,
            "num_clips": sum(len(_of(clips, n)) for n in wanted)}
