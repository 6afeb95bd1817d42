"""What a new user meets first: every dataset built with `prepare`'s default flags on raw,
uncropped frames in its owner's layout; expected errors as one line and exit status 2;
bad inputs named and skippable; changed inputs rebuilt; help and version."""

import dataclasses

import numpy as np
import pytest

from dface_jax import cli

FACE = 64  # face size pasted into larger raw frames


def _raw_clips(preset: str, count: int):
    """SynthFACS clips of ``preset`` pasted into 160x128 frames at an offset, as a camera
    records them (the builders must find and crop the face)."""
    from data_pipelines.synthetic import me_clips

    clips = me_clips(preset, size=FACE, seed=0, frames_per_clip=5)
    datasets = sorted({clip.dataset for clip in clips})
    chosen = {}
    for clip in clips:  # one clip per subject, the same number from every dataset
        if sum(key[0] == clip.dataset for key in chosen) < count // len(datasets):
            chosen.setdefault((clip.dataset, clip.subject), clip)
    raw = []
    for clip in chosen.values():
        frames = np.full((clip.frames.shape[0], 128, 160, 1), 0.35, np.float32)
        frames[:, 30:30 + FACE, 50:50 + FACE] = clip.frames
        raw.append(dataclasses.replace(clip, frames=frames))
    return raw


@pytest.mark.parametrize("dataset", ["casme2", "samm", "smic", "composite"])
def test_prepare_with_default_flags_on_raw_frames(dataset, tmp_path, capsys):
    from data_pipelines.me.layouts import write_layout

    clips = _raw_clips("composite" if dataset == "composite" else dataset,
                       24 if dataset == "composite" else 6)
    if dataset == "composite":  # every dataset of the composite layout needs some clips
        assert {c.dataset for c in clips} == {"casme2", "samm", "smic"}
    write_layout(clips, dataset, tmp_path / "raw")
    args = ["prepare", "--dataset", dataset, "--manual-dir", str(tmp_path / "raw"),
            "--data-dir", str(tmp_path / "data")]
    assert cli.main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "(s64-middle-haar)" in out and "face crop: haar" in out
    assert "no face found (centred square): 0" in out  # the detector found every face
    # The same command again reuses the build.
    assert cli.main(args) == 0
    assert "(s64-middle-haar)" in capsys.readouterr().out


def test_a_changed_frame_rebuilds_the_dataset(tmp_path, caplog):
    from data_pipelines.me.datasets import load_mer_source, prepare_dataset
    from data_pipelines.me.layouts import write_jpeg, write_layout

    clips = _raw_clips("casme2", 3)
    write_layout(clips, "casme2", tmp_path / "raw")
    options = dict(image_size=32, trust_cropped=True)
    prepare_dataset("casme2", tmp_path / "raw", tmp_path / "data", **options)
    before = load_mer_source("casme2", tmp_path / "data")[0]
    frame = sorted((tmp_path / "raw").rglob("img1.jpg"))
    onset = next(p for p in frame if before["clip_id"] in str(p))
    write_jpeg(onset, np.zeros((128, 160, 1), np.float32))  # the user fixes a frame
    prepare_dataset("casme2", tmp_path / "raw", tmp_path / "data", **options)
    assert "changed since this build: building it again" in caplog.text
    after = load_mer_source("casme2", tmp_path / "data")[0]
    assert after["clip_id"] == before["clip_id"]
    assert float(after["onset"].mean()) < 0.05 < float(before["onset"].mean())


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: dface-jax" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("dface-jax ")


@pytest.mark.parametrize("argv, named", [
    (["extract-tokens", "--tokenizer", "{tmp}/missing", "--data-dir", "{tmp}", "--out",
      "{tmp}/t.npz"], "{tmp}/missing: no manifest.json"),
    (["loso", "--config", "loso_composite.py:tiny", "--tokens", "{tmp}/missing.npz",
      "--workdir", "{tmp}/run"], "{tmp}/missing.npz: token cache not found"),
    (["prepare", "--dataset", "casme2", "--manual-dir", "{tmp}/nothing", "--data-dir",
      "{tmp}/data"], "{tmp}/nothing: manual_dir not found"),
    (["pretrain", "--config", "pretrain_synthetic.py:tiny", "--workdir", "{tmp}/run",
      "--config.train.num_stepz=3"], "config has no field 'train.num_stepz'"),
    (["pretrain", "--config", "pretrain_synthetic.py:huge", "--workdir", "{tmp}/run"],
     "unknown pretrain_synthetic variant 'huge'"),
    (["eval-tokenizer", "--workdir", "{tmp}", "--out", "{tmp}/r.json"], "{tmp}: no manifest.json"),
    (["synth", "--preset", "composite", "--out", "{tmp}/c.npz", "--layout", "casme2"],
     "writes to --manual-dir"),
])
def test_expected_errors_are_one_line_and_exit_2(argv, named, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("dface-jax ")]
    assert len(lines) == 1 and named.format(tmp=tmp_path) in lines[0], err


def _composite_tree_with_label_csv(tmp_path, csv_text: str, encoding="utf-8"):
    from data_pipelines.me.layouts import write_layout

    written = write_layout(_raw_clips("composite", 24), "composite", tmp_path / "raw")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes(csv_text.encode(encoding))
    return written, csv_path


def test_a_non_numeric_apex_in_the_label_csv_is_named_and_skippable(tmp_path):
    from data_pipelines.me.datasets import DatasetError, prepare_dataset

    written, _ = _composite_tree_with_label_csv(tmp_path, "")
    lines = open(written["label_csv"], encoding="utf-8").read().splitlines()
    header = lines[0].split(",")
    apex = header.index("apex")
    bad = lines[1].split(",")
    bad[apex] = "peak"
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join([lines[0], ",".join(bad), *lines[2:]]) + "\n")
    options = dict(image_size=32, trust_cropped=True, label_csv=str(csv_path))
    with pytest.raises(DatasetError, match=r"labels.csv row 2: column 'apex' is 'peak'"):
        prepare_dataset("composite", tmp_path / "raw", tmp_path / "data", **options)
    summary = prepare_dataset("composite", tmp_path / "raw", tmp_path / "data", skip_bad=True,
                              **options)
    assert [s["reason"] for s in summary["skipped"]] == [
        "labels.csv row 2: column 'apex' is 'peak'; expected a whole frame number or '/'"]


def test_a_label_csv_that_is_not_utf8_is_named(tmp_path):
    from data_pipelines.me.datasets import DatasetError, prepare_dataset

    _, csv_path = _composite_tree_with_label_csv(
        tmp_path, "dataset,sub,filename_o,label\ncasme2,1,EP01_é,0\n", encoding="latin-1")
    with pytest.raises(DatasetError, match=r"labels.csv: not UTF-8 text"):
        prepare_dataset("composite", tmp_path / "raw", tmp_path / "data", image_size=32,
                        trust_cropped=True, label_csv=str(csv_path))


def test_smic_micro_folder_in_any_case_is_read(tmp_path):
    from data_pipelines.me.datasets import prepare_dataset
    from data_pipelines.me.layouts import write_layout

    write_layout(_raw_clips("smic", 4), "smic", tmp_path / "raw")
    subjects = sorted((tmp_path / "raw" / "HS").iterdir())
    (subjects[0] / "micro").rename(subjects[0] / "Micro")
    summary = prepare_dataset("smic", tmp_path / "raw", tmp_path / "data", image_size=32,
                              trust_cropped=True)
    assert summary["num_subjects"] == len(subjects)
