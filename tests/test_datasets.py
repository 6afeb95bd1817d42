"""CASME II, SAMM, SMIC-HS and the composite set, built from tiny trees in their own layouts."""

import dataclasses
import pathlib

import grain
import numpy as np
import openpyxl
import pytest

from data_pipelines import faces
from data_pipelines.me import layouts, sheets
from data_pipelines.me.datasets import format_summary
from data_pipelines.me.datasets import DatasetError, label_names, load_mer_source, prepare_dataset

SIZE = 32
CASME2_HEADER = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                 "Estimated Emotion")
SAMM_HEADER = ("Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
               "Offset Frame", "Duration", "Type", "Action Units", "Notes", "Estimated Emotion")


def level(number: int) -> int:
    """The gray level of frame ``number`` in these trees, so a test can tell frames apart."""
    return 20 + (number * 37) % 200


def write_frame(path: pathlib.Path, value: int) -> None:
    """A uniform gray frame (JPEG keeps a flat image exact), as .jpg or .bmp by its suffix."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((36, 44), value, np.uint8))


def write_clip(folder: pathlib.Path, numbers, name: str, values=None) -> None:
    for i, number in enumerate(numbers):
        write_frame(folder / name.format(number), level(number) if values is None else values[i])


def write_sheet(path: pathlib.Path, header, rows, title_rows=()) -> None:
    """A sheet written with openpyxl directly (not through the code under test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    for row in (*title_rows, header, *rows):
        book.active.append(list(row))
    book.save(path)


def casme2_tree(root: pathlib.Path, rows=None, cropped=False) -> pathlib.Path:
    """CASME II: CASME2_RAW_selected/sub01/EP02_01f/img46.jpg + the coding sheet."""
    rows = rows if rows is not None else [
        (1, "EP02_01f", 46, 48, 50, "12", "happiness"),
        (2, "EP01_11f", 10, "/", 14, "4+7", "repression"),  # no apex: estimated
        (2, "EP03_02", 30, 31, 33, "1+2", "fear"),  # outside the 5 classes
        (11, "EP15_04", 100, 103, 104, "4", "others"),
    ]
    folder, name = ("Cropped", "reg_img{}.jpg") if cropped else ("CASME2_RAW_selected", "img{}.jpg")
    for subject, clip, onset, _, offset, _, _ in rows:
        write_clip(root / folder / f"sub{subject:02d}" / clip, range(onset, offset + 1), name)
    write_sheet(root / "CASME2-coding-20140508.xlsx", CASME2_HEADER, rows)
    return root


def samm_tree(root: pathlib.Path) -> pathlib.Path:
    """SAMM: SAMM/006/006_1_2/006_05562.jpg + the FACS sheet with title rows above the header."""
    rows = [(6, "006_1_2", 1, 5562, 5566, 5570, 9, "Micro - 1/2", "R12", "", "Happiness"),
            (6, "006_1_5", 1, 2000, 2002, 2004, 5, "Micro - 1/2", "4+7", "", "Anger"),
            (7, "007_3_1", 3, 700, 701, 703, 4, "Micro - 1/2", "1", "", "Other"),
            (7, "007_6_1", 6, 40, 41, 42, 3, "Micro - 1/2", "1+2", "", "Surprise")]
    for subject, clip, _, onset, _, offset, *_ in rows:
        write_clip(root / "SAMM" / f"{subject:03d}" / clip, range(onset, offset + 1),
                   f"{subject:03d}_{{:05d}}.jpg")
    title = [("SAMM Micro-Movements FACS Codes",), ("Key: R = right",), ()]
    write_sheet(root / "SAMM_Micro_FACS_Codes_v2.xlsx", SAMM_HEADER, rows, title_rows=title)
    return root


# The frames of SMIC clip s1_ne_01: the largest change from onset is at the 2nd frame,
# the middle is the 3rd, so the two apex rules disagree.
SMIC_VALUES = [50, 200, 60, 70, 55]


def smic_tree(root: pathlib.Path) -> pathlib.Path:
    """SMIC-HS: HS/s1/micro/negative/s1_ne_01/image060580.bmp (BMP, absolute numbers)."""
    hs = root / "HS"
    write_clip(hs / "s1/micro/negative/s1_ne_01", range(60580, 60585), "image{:06d}.bmp",
               values=SMIC_VALUES)
    write_clip(hs / "s1/micro/positive/s1_po_02", range(1200, 1203), "image{:06d}.bmp")
    write_clip(hs / "s3/micro/surprise/s3_sur_01", range(5, 12), "image{:06d}.bmp")
    write_clip(hs / "s3/non_micro/s3_x_01", range(1, 3), "image{:06d}.bmp")  # not read
    return root


def pixel(frame) -> int:
    return int(round(float(np.mean(frame)) * 255))


def by_clip(source) -> dict:
    return {source[i]["clip_id"]: source[i] for i in range(len(source))}


def test_casme2_from_its_layout(tmp_path, capsys):
    root = casme2_tree(tmp_path / "casme2")
    summary = prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE, trust_cropped=True)
    assert summary["num_clips"] == 3 and summary["num_subjects"] == 3
    assert summary["clips_per_class"] == {"happiness": 1, "disgust": 0, "repression": 1,
                                          "surprise": 0, "others": 1}
    assert summary["excluded"] == {"casme2:fear": 1}
    assert summary["estimated_apex"] == ["casme2/sub02/EP01_11f -> frame 12"]
    assert summary["frames"] == 5 + 5 + 5 and summary["apex_rule"] == "middle"
    clips = by_clip(load_mer_source("casme2", tmp_path / "data"))
    happy = clips["EP02_01f"]
    assert (happy["subject"], happy["dataset"], happy["label_name"]) == ("sub01", "casme2", "happiness")
    assert happy["label"] == label_names("casme2").index("happiness") == 0
    assert happy["onset"].shape == (SIZE, SIZE, 1) and happy["onset"].dtype == np.float32
    assert [pixel(happy[k]) for k in ("onset", "apex", "offset")] == [level(46), level(48), level(50)]
    assert happy["action_units"] == "12" and not happy["apex_estimated"]
    assert clips["EP01_11f"]["apex_frame"] == 12 and clips["EP01_11f"]["apex_estimated"]
    assert pixel(clips["EP01_11f"]["apex"]) == level(12)
    assert clips["EP15_04"]["subject"] == "sub11"
    # A second call with the same settings reuses the build and gives the same summary.
    shards = list((tmp_path / "data/casme2").rglob("*.array_record*"))
    stamps = [p.stat().st_mtime_ns for p in shards]
    again = prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE, trust_cropped=True)
    assert again == summary and [p.stat().st_mtime_ns for p in shards] == stamps


def test_casme2_cropped_release_with_trust_cropped(tmp_path):
    root = casme2_tree(tmp_path / "casme2", cropped=True)
    summary = prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE, trust_cropped=True)
    assert summary["num_clips"] == 3
    clips = by_clip(load_mer_source("casme2", tmp_path / "data"))
    assert pixel(clips["EP15_04"]["apex"]) == level(103)


def test_casme2_offset_zero_means_the_last_frame(tmp_path):
    root = tmp_path / "casme2"
    write_clip(root / "CASME2_RAW_selected/sub05/EP09_05f", range(7, 12), "img{}.jpg")
    write_sheet(root / "CASME2-coding-20140508.xlsx", CASME2_HEADER,
                [(5, "EP09_05f", 7, 9, 0, "14", "disgust")])
    prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE, trust_cropped=True)
    clip = load_mer_source("casme2", tmp_path / "data")[0]
    assert clip["offset_frame"] == 11 and pixel(clip["offset"]) == level(11)


def test_samm_header_below_title_rows(tmp_path):
    root = samm_tree(tmp_path / "samm")
    summary = prepare_dataset("samm", root, tmp_path / "data", image_size=SIZE, trust_cropped=True)
    assert summary["num_clips"] == 4 and summary["estimated_apex"] == []
    clips = by_clip(load_mer_source("samm", tmp_path / "data"))
    first = clips["006_1_2"]
    assert (first["subject"], first["label_name"], first["apex_frame"]) == ("006", "Happiness", 5566)
    assert pixel(first["apex"]) == level(5566) and pixel(first["onset"]) == level(5562)
    assert label_names("samm")[clips["007_3_1"]["label"]] == "Other"
    rows = sheets.read_sheet(root / "SAMM_Micro_FACS_Codes_v2.xlsx", ("Subject", "Filename"))
    assert rows[0].row_number == 5  # three title rows and the header above it


def test_smic_apex_rules_and_configs_side_by_side(tmp_path):
    root = smic_tree(tmp_path / "smic")
    data = tmp_path / "data"
    middle = prepare_dataset("smic", root, data, image_size=SIZE, trust_cropped=True)
    largest = prepare_dataset("smic", root, data, image_size=SIZE, trust_cropped=True,
                              apex_rule="max_difference")
    assert middle["apex_rule"] == "middle" and largest["apex_rule"] == "max_difference"
    assert middle["config"] != largest["config"]
    assert len(middle["estimated_apex"]) == 3 and middle["num_subjects"] == 2
    assert middle["clips_per_class"] == {"negative": 1, "positive": 1, "surprise": 1}
    with pytest.raises(DatasetError, match="expected exactly one build of 'smic'"):
        load_mer_source("smic", data)
    by_middle = by_clip(load_mer_source("smic", data, config=middle["config"]))
    by_largest = by_clip(load_mer_source("smic", data, config=largest["config"]))
    clip = by_middle["s1_ne_01"]
    assert (clip["subject"], clip["label_name"], clip["onset_frame"], clip["offset_frame"]) == (
        "s1", "negative", 60580, 60584)
    assert by_middle["s1_ne_01"]["apex_frame"] == 60582 and pixel(clip["apex"]) == 60
    assert by_largest["s1_ne_01"]["apex_frame"] == 60581
    assert pixel(by_largest["s1_ne_01"]["apex"]) == 200
    assert "s3_x_01" not in by_middle  # non_micro is not read
    text = format_summary(middle, max_listed=1)
    assert "smic/s1/s1_ne_01 -> frame 60582" in text and "... and 2 more (all in summary.json)" in text


def composite_tree(root: pathlib.Path) -> pathlib.Path:
    casme2_tree(root / "CASME2")
    samm_tree(root / "SAMM")
    smic_tree(root / "SMIC")
    return root


def test_composite_standard_mapping_and_unique_subjects(tmp_path):
    root = composite_tree(tmp_path / "megc")
    summary = prepare_dataset("composite", root, tmp_path / "data", image_size=SIZE,
                              trust_cropped=True)
    # CASME II: happiness, repression (others, fear out); SAMM: Happiness, Anger, Surprise
    # (Other out); SMIC: all three.
    assert summary["clips_per_class"] == {"negative": 3, "positive": 3, "surprise": 2}
    assert summary["clips_per_dataset"] == {"casme2": 2, "samm": 3, "smic": 3}
    assert summary["excluded"] == {"casme2:fear": 1, "casme2:others": 1, "samm:Other": 1}
    source = load_mer_source("composite", tmp_path / "data")
    subjects = {source[i]["subject"] for i in range(len(source))}
    assert subjects == {"casme2/sub01", "casme2/sub02", "samm/006", "samm/007", "smic/s1", "smic/s3"}
    clips = by_clip(source)
    assert clips["006_1_5"]["label_name"] == "negative" and clips["EP01_11f"]["label_name"] == "negative"
    batch = grain.MapDataset.source(source).batch(4)[0]  # what the MER loop reads
    assert batch["onset"].shape == (4, SIZE, SIZE, 1) and batch["label"].dtype == np.int32
    assert label_names("composite") == ("negative", "positive", "surprise")


def test_composite_honours_the_label_csv(tmp_path):
    root = composite_tree(tmp_path / "megc")
    csv_path = tmp_path / "labels.csv"
    sheets.write_csv(csv_path, ("dataset", "sub", "filename_o", "label", "apex", "imagename"), [
        ("casme2", "01", "EP02_01f", 1, 47, "img47.jpg"),  # apex from the CSV, not the sheet
        ("samm", "6", "006_1_5", 0, "", ""),
        ("smic", "s1", "s1_ne_01", 2, 60583, ""),  # label 2 here, whatever the folder says
    ])
    summary = prepare_dataset("composite", root, tmp_path / "data", image_size=SIZE,
                              trust_cropped=True, label_csv=str(csv_path))
    assert summary["num_clips"] == 3 and "csv" in summary["config"]
    assert summary["excluded"] == {"casme2:not in the label CSV": 3,
                                   "samm:not in the label CSV": 3, "smic:not in the label CSV": 2}
    clips = by_clip(load_mer_source("composite", tmp_path / "data"))
    assert clips["EP02_01f"]["apex_frame"] == 47 and pixel(clips["EP02_01f"]["apex"]) == level(47)
    assert clips["s1_ne_01"]["label_name"] == "surprise" and clips["s1_ne_01"]["apex_frame"] == 60583
    assert clips["006_1_5"]["apex_frame"] == 2002
    assert summary["estimated_apex"] == []


def test_label_csv_row_without_a_clip_on_disk(tmp_path):
    root = composite_tree(tmp_path / "megc")
    csv_path = tmp_path / "labels.csv"
    sheets.write_csv(csv_path, ("dataset", "sub", "filename_o", "label", "apex", "imagename"), [
        ("casme2", "sub01", "EP02_01f", 1, "", ""), ("samm", "006", "006_9_9", 0, "", "")])
    with pytest.raises(DatasetError, match=r"labels\.csv row 3: clip samm/006/006_9_9 is not in"):
        prepare_dataset("composite", root, tmp_path / "data", image_size=SIZE,
                        trust_cropped=True, label_csv=str(csv_path))
    summary = prepare_dataset("composite", root, tmp_path / "data", image_size=SIZE,
                              trust_cropped=True, label_csv=str(csv_path), skip_bad=True)
    assert summary["num_clips"] == 1 and len(summary["skipped"]) == 1


# --- every validation error names the file, the row and what was expected -------------

BAD_ROWS = {
    "missing frame": ((1, "EP02_01f", 46, 48, 50, "12", "happiness"),  # img48.jpg not on disk
                      r"CASME2-coding-20140508\.xlsx row 2 \(casme2/sub01/EP02_01f\): apex frame "
                      r"48 is missing from .*sub01/EP02_01f; expected a file numbered 48 like "
                      r"'img\d+\.jpg' \(frames present: 46\.\.50\)"),
    "onset after apex": ((1, "EP02_01f", 49, 47, 50, "12", "happiness"),
                         r"row 2 \(casme2/sub01/EP02_01f\): onset frame 49 is after the apex "
                         r"frame 47; expected onset <= apex"),
    "unknown emotion": ((1, "EP02_01f", 46, 47, 50, "12", "angry"),
                        r"row 2 \(casme2/sub01/EP02_01f\): unknown emotion label 'angry'; "
                        r"expected one of \['disgust', 'fear', 'happiness'"),
    "bad frame number": ((1, "EP02_01f", "forty", 47, 50, "12", "happiness"),
                         r"row 2: column 'OnsetFrame' is 'forty'; expected a whole frame number"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_row_errors(tmp_path, case):
    row, message = BAD_ROWS[case]
    root = tmp_path / "casme2"
    write_clip(root / "CASME2_RAW_selected/sub01/EP02_01f", (46, 47, 49, 50), "img{}.jpg")
    write_sheet(root / "CASME2-coding-20140508.xlsx", CASME2_HEADER, [row])
    with pytest.raises(DatasetError, match=message):
        prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE, trust_cropped=True)


def test_unreadable_image_error(tmp_path):
    root = casme2_tree(tmp_path / "casme2")
    (root / "CASME2_RAW_selected/sub01/EP02_01f/img48.jpg").write_bytes(b"\xff\xd8broken")
    with pytest.raises(DatasetError, match=r"row 2 \(casme2/sub01/EP02_01f\): .*img48\.jpg: "
                                           r"unreadable image; expected a JPEG/PNG/BMP"):
        prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE, trust_cropped=True)


def test_sheet_without_a_needed_column(tmp_path):
    root = casme2_tree(tmp_path / "casme2")
    book = openpyxl.load_workbook(root / "CASME2-coding-20140508.xlsx")
    book.active.delete_cols(4)  # ApexFrame
    book.save(root / "CASME2-coding-20140508.xlsx")
    with pytest.raises(DatasetError, match=r"CASME2-coding-20140508\.xlsx: no header row with "
                                           r"the columns .*; missing \['ApexFrame'\]"):
        prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE, trust_cropped=True)


def test_skip_bad_reports_every_skip(tmp_path, capsys):
    root = tmp_path / "casme2"
    for clip in ("EP01", "EP02", "EP03", "EP04", "EP05"):
        write_clip(root / "CASME2_RAW_selected/sub01" / clip, range(1, 6), "img{}.jpg")
    (root / "CASME2_RAW_selected/sub01/EP05/img3.jpg").write_bytes(b"junk")
    write_sheet(root / "CASME2-coding-20140508.xlsx", CASME2_HEADER, [
        (1, "EP01", 1, 3, 5, "12", "happiness"),  # good
        (1, "EP02", 1, 9, 5, "12", "happiness"),  # apex after offset / missing frame
        (1, "EP03", 4, 3, 5, "12", "happiness"),  # onset after apex
        (1, "EP04", 1, 3, 5, "12", "joy"),  # unknown emotion
        (1, "EP05", 1, 3, 5, "12", "disgust"),  # unreadable apex image
        (1, "EP06", 1, 3, 5, "12", "disgust"),  # no such folder
    ])
    summary = prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE,
                              trust_cropped=True, skip_bad=True)
    assert summary["num_clips"] == 1
    reasons = {s["clip"]: s["reason"] for s in summary["skipped"]}
    assert sorted(reasons) == [f"casme2/sub01/EP0{i}" for i in range(2, 7)]
    assert "apex frame 9 is after the offset frame 5" in reasons["casme2/sub01/EP02"]
    assert "onset frame 4 is after the apex frame 3" in reasons["casme2/sub01/EP03"]
    assert "unknown emotion label 'joy'" in reasons["casme2/sub01/EP04"]
    assert "img3.jpg: unreadable image" in reasons["casme2/sub01/EP05"]
    assert "clip folder" in reasons["casme2/sub01/EP06"] and "not found" in reasons["casme2/sub01/EP06"]
    printed = capsys.readouterr().out
    assert all(f"skipped casme2/sub01/EP0{i}" in printed for i in range(2, 7))
    assert "skipped: 5" in format_summary(summary)


def test_face_crop_fallback_is_reported(tmp_path, monkeypatch, capsys):
    """A clip whose onset frame has no detectable face is listed, not silently centre-cropped."""
    found = {"calls": 0}

    def fake_make_detector(spec):
        def detect(gray):
            found["calls"] += 1
            return []
        return detect

    monkeypatch.setattr(faces, "make_detector", fake_make_detector)
    root = casme2_tree(tmp_path / "casme2")
    summary = prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE)
    assert summary["config"] == "s32-middle-haar"
    assert sorted(summary["face_fallback"]) == ["casme2/sub01/EP02_01f", "casme2/sub02/EP01_11f",
                                                "casme2/sub11/EP15_04"]
    assert found["calls"] == 3  # one detection per clip, on its onset frame
    # Listed once in the summary that prepare prints, not one line per clip while loading.
    printed = format_summary(summary)
    assert "no face found (centred square): 3\n    casme2/sub01/EP02_01f" in printed
    assert "no face found in the onset frame" not in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(__import__("cv2"), "CascadeClassifier"),
                    reason="OpenCV 5 has no Haar cascades")
def test_raw_frames_are_face_cropped_with_haar(tmp_path):
    """Raw CASME II frames (a face inside a larger frame) go through the real detector."""
    import cv2
    from test_faces import synthfacs_in_a_larger_frame

    frames = synthfacs_in_a_larger_frame(num=1)[0]
    root = tmp_path / "casme2"
    (root / "CASME2_RAW_selected/sub01/EP01").mkdir(parents=True)
    for number in range(1, 4):
        cv2.imwrite(str(root / f"CASME2_RAW_selected/sub01/EP01/img{number}.jpg"), frames,
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    write_sheet(root / "CASME2-coding-20140508.xlsx", CASME2_HEADER,
                [(1, "EP01", 1, 2, 3, "12", "happiness")])
    summary = prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE)
    assert summary["face_fallback"] == [] and summary["face_crop"] == "haar"
    onset = load_mer_source("casme2", tmp_path / "data")[0]["onset"][..., 0]
    # The same crop computed directly on the unencoded frame, with the box around the face
    # (at x 100..228, y 60..188), not the centred square.
    box = faces.clip_box(frames, faces.make_detector("haar")).box
    assert abs(box[0] + box[2] / 2 - 164) < 12 and abs(box[1] + box[3] / 2 - 124) < 12
    expected = faces.crop_resize(frames, box, SIZE) / 255
    centred = faces.crop_resize(frames, faces.center_box(frames.shape), SIZE) / 255
    assert np.abs(onset - expected).mean() < 0.02 < np.abs(onset - centred).mean()


def test_missing_detector_fails_before_building(tmp_path, monkeypatch):
    monkeypatch.delattr(__import__("cv2"), "CascadeClassifier")  # an OpenCV built without it
    root = casme2_tree(tmp_path / "casme2")
    with pytest.raises(faces.FaceDetectorUnavailable, match="CascadeClassifier"):
        prepare_dataset("casme2", root, tmp_path / "data", image_size=SIZE)
    assert not (tmp_path / "data").exists()


def test_cli_prepare_prints_the_summary_and_errors(tmp_path, capsys):
    from dface_jax import cli

    root = smic_tree(tmp_path / "smic")
    args = ["prepare", "--dataset", "smic", "--manual-dir", str(root), "--data-dir",
            str(tmp_path / "data"), "--image-size", "16", "--apex-rule", "max_difference",
            "--trust-cropped"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "clips 3, subjects 2" in out and "apex rule for unannotated apexes: max_difference" in out
    assert "smic/s1/s1_ne_01 -> frame 60581" in out
    (root / "HS/s1/micro/negative/s1_ne_01/image060581.bmp").write_bytes(b"junk")
    args[args.index(str(tmp_path / "data"))] = str(tmp_path / "data2")
    assert cli.main(args) == 2  # an expected error: one line, no traceback
    err = capsys.readouterr().err
    assert "image060581.bmp: unreadable image" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# --- SynthFACS written in the real layouts and read back ------------------------------


@dataclasses.dataclass
class FakeMEClip:
    """The MEClip fields of docs/INTERFACES.md (SynthFACS), for tests independent of the generator."""

    frames: np.ndarray
    onset_index: int
    apex_index: int
    offset_index: int
    emotion: str
    composite_label: str | None
    subject: str
    dataset: str
    clip_id: str
    action_units: str


def fake_clips(seed=0):
    rng = np.random.default_rng(seed)
    spec = [("casme2", "sub01", "EP02_01f", "happiness", "positive"),
            ("casme2", "sub01", "EP03_02", "repression", "negative"),
            ("casme2", "sub04", "EP12_01", "others", None),
            ("samm", "006", "006_1_2", "Contempt", "negative"),
            ("samm", "011", "011_2_3", "Surprise", "surprise"),
            ("samm", "012", "012_1_1", "Other", None),
            ("smic", "s1", "s1_po_01", "positive", "positive"),
            ("smic", "s2", "s2_ne_03", "negative", "negative")]
    clips = []
    for dataset, subject, clip_id, emotion, composite in spec:
        frames = rng.random((7, SIZE, SIZE, 1)).astype(np.float32)
        # Smooth images survive JPEG closely; the noise above is blurred to that end.
        frames = (frames + np.roll(frames, 1, 1) + np.roll(frames, 1, 2) + np.roll(frames, 1, (1, 2))) / 4
        clips.append(FakeMEClip(frames, 1, int(rng.integers(2, 5)), 5, emotion, composite,
                                subject, dataset, clip_id, "6+12"))
    return clips


def assert_same_as_generator(clips, source, *, tolerance):
    """Labels, subjects, clip ids exactly; onset/apex frames within JPEG tolerance."""
    # Clip ids repeat across subjects (CASME II's EP02_01f does too): key by subject as well.
    expected = {(f"{c.dataset}/{c.subject}", c.clip_id): c for c in clips
                if c.composite_label is not None}
    got = {(source[i]["subject"], source[i]["clip_id"]): source[i] for i in range(len(source))}
    assert len(got) == len(source) and sorted(got) == sorted(expected)
    for key, clip in expected.items():
        sample = got[key]
        assert sample["label_name"] == clip.composite_label and sample["dataset"] == clip.dataset
        for name, index in (("onset", clip.onset_index), ("apex", clip.apex_index),
                            ("offset", clip.offset_index)):
            error = np.abs(sample[name] - clip.frames[index]).mean()
            assert error < tolerance, (key, name, error)


def test_write_layout_round_trip_through_the_composite_builder(tmp_path):
    clips = fake_clips()
    written = layouts.write_layout(clips, "composite", tmp_path / "tree")
    assert written["num_clips"] == 8
    summary = prepare_dataset("composite", tmp_path / "tree", tmp_path / "data", image_size=SIZE,
                              trust_cropped=True, label_csv=written["label_csv"])
    assert summary["num_clips"] == 6 and summary["estimated_apex"] == []
    assert_same_as_generator(clips, load_mer_source("composite", tmp_path / "data"), tolerance=0.02)
    # The SAMM sheet has title rows above its header, as the real one does.
    book = openpyxl.load_workbook(tmp_path / "tree/SAMM/SAMM_Micro_FACS_Codes_v2.xlsx")
    first_cells = [row[0] for row in book.active.iter_rows(values_only=True)]
    assert first_cells[3] == "Subject" and first_cells[4] == 6


def test_write_layout_without_csv_uses_the_apex_rule_for_smic(tmp_path):
    clips = fake_clips(1)
    layouts.write_layout(clips, "composite", tmp_path / "tree")
    summary = prepare_dataset("composite", tmp_path / "tree", tmp_path / "data", image_size=SIZE,
                              trust_cropped=True)
    assert summary["clips_per_class"] == {"negative": 3, "positive": 2, "surprise": 1}
    source = by_clip(load_mer_source("composite", tmp_path / "data"))
    for clip in clips:
        if clip.dataset == "smic":  # span onset..offset = 1..5, middle 3, written as frame 3
            assert source[clip.clip_id]["apex_frame"] == 3
            assert np.abs(source[clip.clip_id]["apex"] - clip.frames[3]).mean() < 0.02
        elif clip.composite_label is not None:
            assert source[clip.clip_id]["apex_frame"] == layouts.FIRST_FRAME + clip.apex_index


@pytest.mark.parametrize("layout", ["casme2", "samm", "smic"])
def test_write_layout_single_dataset(tmp_path, layout):
    clips = fake_clips(2)
    layouts.write_layout(clips, layout, tmp_path / layout)
    summary = prepare_dataset(layout, tmp_path / layout, tmp_path / "data", image_size=SIZE,
                              trust_cropped=True)
    mine = [c for c in clips if c.dataset == layout]
    assert summary["num_clips"] == len(mine)
    source = by_clip(load_mer_source(layout, tmp_path / "data"))
    for clip in mine:
        assert source[clip.clip_id]["emotion"] == clip.emotion
        assert source[clip.clip_id]["subject"] == clip.subject


def test_write_layout_rejects_bad_input(tmp_path):
    clips = fake_clips()
    with pytest.raises(ValueError, match="layout 'casme3'"):
        layouts.write_layout(clips, "casme3", tmp_path)
    with pytest.raises(ValueError, match="needs samm clips"):
        layouts.write_layout([c for c in clips if c.dataset != "samm"], "composite", tmp_path)
    broken = dataclasses.replace(clips[0], apex_index=0, onset_index=2)
    with pytest.raises(ValueError, match="expected 0 <= onset <= apex <= offset"):
        layouts.write_layout([broken], "casme2", tmp_path)


def test_synthfacs_composite_round_trip(tmp_path):
    """The real generator's composite set, written and read back, is the same set."""
    from data_pipelines import synthetic

    clips = synthetic.me_clips(preset="composite", size=SIZE, seed=0)
    written = layouts.write_layout(clips, "composite", tmp_path / "tree")
    summary = prepare_dataset("composite", tmp_path / "tree", tmp_path / "data", image_size=SIZE,
                              trust_cropped=True, label_csv=written["label_csv"])
    assert summary["num_clips"] == sum(c.composite_label is not None for c in clips)
    assert_same_as_generator(clips, load_mer_source("composite", tmp_path / "data"), tolerance=0.03)
