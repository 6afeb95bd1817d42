"""CAS(ME)^3 Part A as the released D-FACE script reads it: its layouts and ME sheet (.xls
and .xlsx, header found by name), the 4 classes, the two data rules and their summary, RGB
frames, bad rows named, the SynthFACS preset and layout, the released experiment's config,
and a tiny end-to-end run (prepare, extract-tokens, loso with the tokenizer fine-tuned)."""

import dataclasses
import json
import pathlib

import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import openpyxl
import pytest

from data_pipelines.me import casme3, layouts
from data_pipelines.me.datasets import DatasetError, label_names, load_mer_source, prepare_dataset
from dface_jax import cli

# The real sheet's columns (cas(me)3_part_A_ME_label_JpgIndex_v2), written here in another order.
SHUFFLED_HEADER = ("emotion", "Offset", "Subject", "Objective class", "Onset", "Filename", "AU",
                   "Apex")
SHEET_V1 = "cas(me)3_part_A_ME_label_JpgIndex_v1.xls"
# (Subject, Filename, Onset, Apex, Offset, AU, emotion), as the real sheet writes them.
ROWS = [
    ("spNO.1", "a", 10, 12, 14, "12", "happy"),
    ("spNO.1", "a", 30, 30, 36, "4", "disgust"),     # apex = onset: moved to (30 + 36) // 2
    ("spNO.1", "b", 0, 0, 6, "1+2", "surprise"),     # onset 0: skipped (the video has no frame 0)
    ("spNO.2", "A", 5, 7, 9, "14", "others"),        # the sheet says "A", the folder is "a"
    ("spNO.3", "c", 100, 101, 103, "4+7", "sad"),
]
SIZE = 16


def colour(number: int) -> tuple[int, int, int]:
    """The RGB colour of frame ``number`` in these trees: R, G and B differ, so a swap of
    channels (OpenCV's BGR) shows."""
    level = 40 + (number * 37) % 160
    return level, 250 - level, 90


def write_frames(folder: pathlib.Path, numbers) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        rgb = np.zeros((36, 44, 3), np.uint8)
        rgb[...] = colour(number)
        assert cv2.imwrite(str(folder / f"{number}.jpg"), rgb[..., ::-1])  # OpenCV writes BGR


def write_xls(path: pathlib.Path, header, rows) -> None:
    """A legacy .xls written with xlwt (not through the code under test), sheet 'label'."""
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("label")
    for r, row in enumerate((header, *rows)):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.save(str(path))


def write_xlsx(path: pathlib.Path, header, rows) -> None:
    book = openpyxl.Workbook()
    for row in (header, *rows):
        book.active.append(list(row))
    book.save(path)


def release_tree(root: pathlib.Path, rows=ROWS, *, sheet_format: str = "xls") -> pathlib.Path:
    """The layout the released script reads: spNO.1/a/10.jpg ... (face crops) and the v1
    sheet beside them, its columns in another order than the real sheet's."""
    for subject, video, onset, apex, offset, _, _ in rows:
        first, last = max(min(onset, apex), 1), max(onset, offset)
        write_frames(root / subject / video.lower(), range(first, last + 1))
    by_name = [dict(zip(("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "emotion"), row),
                    **{"Objective class": "I"}) for row in rows]
    shuffled = [tuple(row[c] for c in SHUFFLED_HEADER) for row in by_name]
    if sheet_format == "xls":
        write_xls(root / SHEET_V1, SHUFFLED_HEADER, shuffled)
    else:  # an xlsx saved under the .xls name, as renamed copies are
        write_xlsx(root / SHEET_V1, SHUFFLED_HEADER, shuffled)
    return root


def prepare(manual_dir, data_dir, *flags) -> int:
    return cli.main(["prepare", "--dataset", "casme3", "--manual-dir", str(manual_dir),
                     "--data-dir", str(data_dir), *flags])


def by_clip(source) -> dict:
    return {source[i]["clip_id"]: source[i] for i in range(len(source))}


def rgb_of(frame) -> tuple[int, ...]:
    return tuple(int(round(float(frame[..., c].mean()) * 255)) for c in range(3))


@pytest.mark.parametrize("sheet_format", ["xls", "xlsx renamed .xls"])
def test_release_layout_xls_sheet_rules_and_rgb(sheet_format, tmp_path, capsys):
    root = release_tree(tmp_path / "casme3", sheet_format=sheet_format.split()[0])
    assert prepare(root, tmp_path / "data", "--trust-cropped", "--image-size", str(SIZE)) == 0
    out = capsys.readouterr().out
    assert f"(s{SIZE}-middle-cropped-rgb-skip0-apexmid)" in out
    assert "data rule skip_onset_zero: 1 clip(s)" in out
    source = load_mer_source("casme3", tmp_path / "data")
    summary = source.summary
    assert summary["num_clips"] == 4 and summary["num_subjects"] == 3
    assert source.label_names == ("happy", "surprise", "negative", "others")
    assert summary["clips_per_class"] == {"happy": 1, "surprise": 0, "negative": 2, "others": 1}
    assert summary["excluded"] == {} and summary["skipped"] == [] and summary["channels"] == 3
    rules = summary["data_rules"]
    assert rules["skip_onset_zero"] == {
        "enabled": True, "count": 1, "clips": [f"casme3/spNO.1/b_0 ({SHEET_V1} row 4)"]}
    assert rules["replace_apex_at_onset"] == {
        "enabled": True, "count": 1,
        "clips": [f"casme3/spNO.1/a_30: apex 30 -> 33 ({SHEET_V1} row 3)"]}
    clips = by_clip(source)
    assert sorted(clips) == ["A_5", "a_10", "a_30", "c_100"]
    moved = clips["a_30"]
    assert (moved["onset_frame"], moved["apex_frame"], moved["offset_frame"]) == (30, 33, 36)
    assert moved["label_name"] == "negative" and moved["emotion"] == "disgust"
    assert not moved["apex_estimated"]
    for clip_id, sample in clips.items():
        assert sample["onset"].shape == (SIZE, SIZE, 3) and sample["dataset"] == "casme3"
        for role in ("onset", "apex", "offset"):  # the frame the row names, channels in RGB order
            got, want = rgb_of(sample[role]), colour(sample[f"{role}_frame"])
            assert max(abs(g - w) for g, w in zip(got, want)) <= 3, (clip_id, role, got, want)
    assert clips["A_5"]["subject"] == "spNO.2" and clips["A_5"]["label_name"] == "others"
    assert clips["c_100"]["label_name"] == "negative"  # sad
    assert clips["a_10"]["action_units"] == "12"


def test_each_data_rule_is_an_option(tmp_path, capsys):
    root = release_tree(tmp_path / "casme3")
    flags = ("--trust-cropped", "--image-size", str(SIZE))
    assert prepare(root, tmp_path / "data", *flags, "--keep-apex-at-onset") == 0
    assert "(s16-middle-cropped-rgb-skip0)" in capsys.readouterr().out
    source = load_mer_source("casme3", tmp_path / "data")
    assert by_clip(source)["a_30"]["apex_frame"] == 30
    assert source.summary["data_rules"]["replace_apex_at_onset"] == {
        "enabled": False, "count": 0, "clips": []}
    # Without the onset rule the onset-0 row names a frame the video does not have.
    assert prepare(root, tmp_path / "data2", *flags, "--keep-onset-zero") == 2
    err = capsys.readouterr().err
    assert f"{SHEET_V1} row 4 (casme3/spNO.1/b_0): onset frame 0 is missing" in err
    # The rules belong to CAS(ME)^3: another dataset refuses them.
    with pytest.raises(DatasetError, match=r"\['skip_onset_zero'\] apply to \['casme3'\] only"):
        prepare_dataset("casme2", root, tmp_path / "data3", skip_onset_zero=False)


def test_bad_rows_are_named_and_skippable(tmp_path, capsys):
    rows = ROWS + [("spNO.3", "d", 20, 22, 24, "", "contempt"),       # not a CAS(ME)^3 word
                   ("spNO.3", "e", 60, 52, 58, "4", "fear")]          # onset after apex
    root = release_tree(tmp_path / "casme3", rows)
    flags = ("--trust-cropped", "--image-size", str(SIZE))
    assert prepare(root, tmp_path / "data", *flags) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (f"{SHEET_V1} row 7 (casme3/spNO.3/d_20): unknown emotion label 'contempt'; "
            "expected one of ['anger', 'disgust', 'fear', 'happy', 'others', 'sad', 'surprise']"
            in err)
    assert prepare(root, tmp_path / "data", *flags, "--skip-bad") == 0
    summary = load_mer_source("casme3", tmp_path / "data").summary
    assert summary["num_clips"] == 4
    reasons = {s["clip"]: s["reason"] for s in summary["skipped"]}
    assert "unknown emotion label 'contempt'" in reasons["casme3/spNO.3/d_20"]
    assert (f"{SHEET_V1} row 8 (casme3/spNO.3/e_60): onset frame 60 is after the apex frame 52; "
            "expected onset <= apex" in reasons["casme3/spNO.3/e_60"])
    # A file named .xls that is no workbook at all.
    (root / SHEET_V1).write_bytes(b"Subject\tFilename\n")
    with pytest.raises(DatasetError, match=r"_v1\.xls: neither an xlsx \(zip\) nor an xls \(OLE2\)"):
        prepare_dataset("casme3", root, tmp_path / "data4", trust_cropped=True, image_size=SIZE)


def test_missing_columns_name_the_sheet(tmp_path):
    root = release_tree(tmp_path / "casme3")
    write_xls(root / SHEET_V1, ("Subject", "Filename", "Onset", "Apex", "Offset", "AU"),
              [r[:6] for r in ROWS])
    with pytest.raises(DatasetError, match=r"_v1\.xls: no header row with the columns .*missing "
                                           r"\['emotion'\]"):
        prepare_dataset("casme3", root, tmp_path / "data", trust_cropped=True, image_size=SIZE)


def _raw_casme3_clips(face: int = 64):
    """The SynthFACS casme3 clips of the quirks (onset 0, apex at onset) and a few more of
    their subjects, pasted into 160 x 128 frames as a camera records them."""
    from data_pipelines.synthetic import me_clips

    clips = me_clips("casme3", size=face, seed=0, frames_per_clip=5)
    quirks = [c for c in clips if c.apex_index == c.onset_index]
    others = [c for c in clips if c.subject in {q.subject for q in quirks}
              and c.apex_index != c.onset_index]
    raw = []
    for clip in quirks + others[:4]:
        frames = np.full((clip.frames.shape[0], 128, 160, 1), 0.35, np.float32)
        frames[:, 30:30 + face, 50:50 + face] = clip.frames
        raw.append(dataclasses.replace(clip, frames=frames))
    return raw


def test_synthetic_layout_with_default_flags(tmp_path, capsys):
    clips = _raw_casme3_clips()
    onset_zero = [c for c in clips if c.clip_id.endswith("_0")]
    assert len(onset_zero) == 1 and len(clips) == 8
    written = layouts.write_layout(clips, "casme3", tmp_path / "raw")
    sheet = pathlib.Path(written["sheets"][0])
    assert sheet.relative_to(tmp_path / "raw").as_posix() == (
        "part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx")
    video = onset_zero[0].clip_id.split("_")[0]
    color = tmp_path / "raw/part_A/data/part_A" / onset_zero[0].subject / video / "color"
    assert not (color / "0.jpg").exists() and (color / "1.jpg").exists()  # no frame 0
    assert cv2.imread(str(color / "1.jpg")).shape == (128, 160, 3)

    assert prepare(tmp_path / "raw", tmp_path / "data") == 0  # default flags
    out = capsys.readouterr().out
    assert "(s256-middle-haar-rgb-skip0-apexmid)" in out and "image size 256 RGB" in out
    assert "no face found (centred square): 0" in out
    source = load_mer_source("casme3", tmp_path / "data")
    summary = source.summary
    assert summary["image_size"] == 256 and summary["num_clips"] == 7
    rules = summary["data_rules"]
    assert rules["skip_onset_zero"]["count"] == 1
    assert onset_zero[0].clip_id in rules["skip_onset_zero"]["clips"][0]
    # The three other clips annotated with the apex at the onset get (onset + offset) // 2.
    assert rules["replace_apex_at_onset"]["count"] == 3
    expected = {"happy": "happy", "surprise": "surprise", "others": "others", "disgust": "negative",
                "anger": "negative", "fear": "negative", "sad": "negative"}
    for clip in clips:
        if clip is onset_zero[0]:
            continue
        sample = by_clip(source)[clip.clip_id]
        assert sample["onset"].shape == (256, 256, 3)
        assert sample["label_name"] == expected[clip.emotion]
        onset = int(clip.clip_id.split("_")[1])
        assert sample["apex_frame"] == onset + (2 if clip.apex_index == 0 else clip.apex_index)
        # Gray faces written as RGB: the three channels agree (JPEG chroma aside).
        assert float(np.abs(sample["apex"][..., 0] - sample["apex"][..., 2]).mean()) < 0.02


def test_preset_matches_the_release(tmp_path):
    from data_pipelines.synthetic import dataset_specs
    from data_pipelines.synthetic.me_sets import CASME3_SUBJECTS

    (spec,) = dataset_specs("casme3")
    assert len(spec.subjects) == 95 == len(set(CASME3_SUBJECTS))
    assert set(spec.class_counts) == set(casme3.EMOTIONS)
    counts = {"happy": 0, "surprise": 0, "negative": 0, "others": 0}
    for word, count in spec.class_counts.items():
        counts[casme3.LABELS.mapping[word]] += count
    total = sum(counts.values())
    assert total == 860
    # The release's class weights are these counts' N / (4 n_c), rounded.
    weights = [round(total / (4 * counts[n]), 2) for n in casme3.LABELS.names]
    assert weights == [3.84, 1.16, 0.46, 1.39]
    assert (spec.onset_zero_clips, spec.apex_at_onset_clips) == (1, 3)


def test_default_image_size_per_dataset():
    from data_pipelines.me.datasets import builder_class

    assert (builder_class("casme3").DEFAULT_IMAGE_SIZE, builder_class("casme3").DEFAULT_CHANNELS) == (256, 3)
    for name in ("casme2", "samm", "smic", "composite"):
        assert (builder_class(name).DEFAULT_IMAGE_SIZE, builder_class(name).DEFAULT_CHANNELS) == (64, 1)
    assert label_names("casme3") == ("happy", "surprise", "negative", "others")


def test_released_config_and_prompts():
    from dface_jax.configs import ConfigError, load_config
    from dface_jax.models.edclip import EMOTION_PROMPTS, class_prompts

    config = load_config("loso_casme3.py")
    assert config.dataset == "casme3" and config.finetune_tokenizer is True
    assert config.classifier.to_dict() == {"dim": 512, "depth": 2, "heads": 8, "mlp_dim": 512,
                                       "dropout": 0.2, "pooling": "softmax",
                                       "dtype": "float32"}  # the release's precision
    train = config.train
    assert (train.epochs, train.batch_size, train.learning_rate, train.beta1, train.beta2,
            train.weight_decay, train.lr_schedule) == (120, 16, 2e-4, 0.85, 0.98, 1e-5, "constant")
    assert (train.pooling_entropy_weight, train.edclip_weight, train.edclip_temperature,
            train.others_margin, train.others_weight, train.tokenizer_loss_weight) == (
                1e-3, 0.3, 0.07, 0.2, 0.2, 0.1)
    assert tuple(train.class_weights) == (3.84, 1.16, 0.46, 1.39)
    prompts = class_prompts(label_names("casme3"), config.prompt_set)
    assert prompts[:2] == (EMOTION_PROMPTS["happy"], EMOTION_PROMPTS["surprise"])
    assert "pressed lips" in prompts[2] and "pressed lips" not in EMOTION_PROMPTS["negative"]
    with pytest.raises(KeyError, match="no EDCLIP prompt for label 'disgust' in prompt set"):
        class_prompts(("disgust",), "casme3_4")
    with pytest.raises(ConfigError, match="unknown loso_casme3 variant 'big'"):
        load_config("loso_casme3.py:big")


def test_fixed_class_weights_reach_both_sweeps():
    from dface_jax.configs import ConfigError
    from dface_jax.loso import step, sweep
    from dface_jax.models.edclip import anchor_rows
    from dface_jax.models.token_classifier import ClassifierConfig, TokenClassifier

    rng = np.random.default_rng(0)
    labels = np.asarray([0, 0, 0, 0, 0, 1, 2, 0, 0], np.int32)  # imbalanced: balanced != ones
    data = step.LosoData(jnp.asarray(rng.normal(size=(9, 16, 8)), jnp.float32), jnp.asarray(labels),
                         jnp.asarray(anchor_rows(("happy", "surprise", "negative"))))
    subjects = [f"s{i % 3}" for i in range(9)]
    model = step.LosoModel(TokenClassifier(ClassifierConfig(
        num_classes=3, input_dim=8, dim=8, depth=1, heads=2, mlp_dim=8, dropout=0.0,
        text_dim=8)), 3)
    fixed = step.LosoTrainConfig(epochs=2, batch_size=3, edclip_weight=0.0,
                                 class_weights=(1.0, 1.0, 1.0))
    vmapped = sweep.train_folds(model, fixed, data, subjects)
    sequential = sweep.train_folds_sequential(model, fixed, data, subjects)
    np.testing.assert_allclose(vmapped.train_loss, sequential.train_loss, atol=1e-5)
    balanced = sweep.train_folds(model, dataclasses.replace(fixed, class_weights=()), data, subjects)
    assert not np.allclose(vmapped.train_loss, balanced.train_loss, atol=1e-4)
    with pytest.raises(ConfigError, match="train.class_weights has 2 weights; the token cache "
                                          "has 3 classes"):
        sweep.train_folds(model, dataclasses.replace(fixed, class_weights=(1.0, 2.0)), data, subjects)


def test_tiny_release_experiment_end_to_end(tmp_path, capsys):
    """prepare -> extract-tokens --keep-frames -> loso loso_casme3.py:tiny, which fine-tunes
    an RGB tokenizer in every fold with the release's class weights and prompts."""
    from dface_jax.models.tokenizer import TokenizerConfig, init_tokenizer
    from dface_jax.workdir import write_tokenizer

    tokenizer = TokenizerConfig(image_size=SIZE, patch_size=4, dim=16, quant_dim=8,
                                spatial_depth=1, temporal_depth=1, decoder_depth=1, heads=2,
                                dim_head=8, channels=3, codebook_size=8)
    params = init_tokenizer(tokenizer, jax.random.PRNGKey(0))["params"]
    write_tokenizer(tmp_path / "tok", params,
                    ml_collections.ConfigDict({"tokenizer": tokenizer.to_dict()}), "test")
    root = release_tree(tmp_path / "casme3")
    assert prepare(root, tmp_path / "data", "--trust-cropped", "--image-size", str(SIZE)) == 0

    def extract(workdir):
        return cli.main(["extract-tokens", "--tokenizer", str(workdir), "--data-dir",
                         str(tmp_path / "data"), "--dataset", "casme3", "--keep-frames",
                         "--out", str(tmp_path / "tokens.npz"), "--batch-size", "4"])

    # A gray tokenizer cannot read the RGB build: one line says how to prepare it.
    gray = dataclasses.replace(tokenizer, channels=1)
    write_tokenizer(tmp_path / "gray", init_tokenizer(gray, jax.random.PRNGKey(0))["params"],
                    ml_collections.ConfigDict({"tokenizer": gray.to_dict()}), "test")
    capsys.readouterr()
    assert extract(tmp_path / "gray") == 2
    assert "prepare the dataset with --image-size 16 --channels 1" in capsys.readouterr().err
    assert extract(tmp_path / "tok") == 0
    capsys.readouterr()
    assert cli.main(["loso", "--config", "loso_casme3.py:tiny", "--tokens",
                     str(tmp_path / "tokens.npz"), "--workdir", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["label_names"] == ["happy", "surprise", "negative", "others"]
    assert results["finetune_tokenizer"] is True and results["tokenizer_loss_weight"] == 0.1
    assert results["num_folds"] == 3 and results["num_clips"] == 4
    assert set(results["oracle_epoch"]["epochs"]) == {"spNO.1", "spNO.2", "spNO.3"}
    assert results["per_dataset"]["casme3"]["count"] == 4
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["class_weights"] == [3.84, 1.16, 0.46, 1.39]
    assert saved["prompt_set"] == "casme3_4" and saved["tokenizer"]["channels"] == 3
