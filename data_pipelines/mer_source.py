"""Micro-expression datasets as TFDS builders, and their MER samples for Grain.

Public API (docs/INTERFACES.md, "Micro-expression data"):
- :func:`prepare_dataset` builds ``casme2``, ``samm``, ``smic`` or ``composite`` from the
  files a user has on disk (``manual_dir``) into ``data_dir`` as ArrayRecord and returns
  a summary (subjects, clips per class, frames, skipped clips, apex rule, estimated apexes).
- :func:`load_mer_source` opens a built dataset with ``as_data_source()`` and yields MER
  samples with float32 frames in [0, 1].
- :func:`label_names` gives each dataset's label order.

The common layer here turns each dataset's rows into :class:`ClipRecord` s (done by the
dataset modules), validates them (frames present, onset <= apex <= offset, known emotion)
and loads the onset / apex / offset frames through one face box per clip
(:mod:`data_pipelines.faces`). Every problem raises :class:`DatasetError` naming the file,
the row and what was expected; with ``skip_bad=True`` the clip is skipped instead and the
reason is printed and kept in the summary. Nothing is dropped silently: clips whose label
is outside a dataset's label set (e.g. CASME II fear and sadness, which the standard
5-class protocol leaves out) are counted under ``excluded`` in the summary.

Apex rule (``apex_rule``), used where the apex is not annotated (SMIC-HS has no apex;
about 20 CASME II rows have "/"): ``"middle"`` takes the frame nearest the middle of
onset..offset; ``"max_difference"`` takes the frame whose (cropped, resized) image has the
largest mean absolute difference from the onset frame. Every summary names the rule and
lists the clips whose apex was estimated.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import hashlib
import inspect
import json
import pathlib
import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_pipelines import faces

DATASET_NAMES = ("casme2", "samm", "smic", "composite")
APEX_RULES = ("middle", "max_difference")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
COMPOSITE_LABELS = ("negative", "positive", "surprise")
VERSION = "1.0.0"
SUMMARY_FILE = "summary.json"


class DatasetError(ValueError):
    """A clip or a sheet row is unusable: the message names the file, the row and what was expected."""


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One clip as a dataset's sheet or folder tree describes it, before validation.

    Frame numbers are the numbers in the frame file names (``img46.jpg`` -> 46), as the
    sheets use them. ``apex`` None means "not annotated"; ``onset``/``offset`` None mean
    "the first/last frame in the folder" (SMIC-HS).
    """

    dataset: str  # "casme2", "samm" or "smic"
    subject: str  # the dataset's own subject id: "sub01", "006", "s1"
    clip_id: str  # the dataset's own clip folder name: "EP02_01f", "006_1_2", "s1_ne_01"
    frame_dir: pathlib.Path
    emotion: str  # the dataset's own label word: "repression", "Anger", "negative"
    onset: int | None
    apex: int | None
    offset: int | None
    action_units: str
    where: str  # "CASME2-coding-20140508.xlsx row 5" or the folder it came from

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.subject}/{self.clip_id}"


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """A dataset's label order and how its emotion words map onto it.

    ``mapping`` maps a lower-cased emotion word to a label name, or to None when the word
    is known but outside this label set (counted as excluded, never an error).
    """

    names: tuple[str, ...]
    mapping: dict[str, str | None]

    def label_of(self, record: ClipRecord) -> str | None:
        word = record.emotion.strip().lower()
        if word not in self.mapping:
            raise DatasetError(
                f"{record.where} ({record.key}): unknown emotion label {record.emotion!r}; "
                f"expected one of {sorted(self.mapping)}")
        return self.mapping[word]


# --------------------------------------------------------------------------------------
# Frames on disk


def frame_number(path: pathlib.Path) -> int | None:
    """The trailing number of a frame file name: ``reg_img46.jpg`` -> 46, ``006_05562.jpg`` -> 5562."""
    match = re.search(r"(\d+)$", path.stem)
    return int(match.group(1)) if match else None


def index_frames(folder: pathlib.Path, where: str) -> dict[int, pathlib.Path]:
    """Frame number -> image file for one clip folder (sorted by number)."""
    if not folder.is_dir():
        raise DatasetError(f"{where}: clip folder {folder} not found; expected a folder of "
                           "frame images")
    frames: dict[int, pathlib.Path] = {}
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        number = frame_number(path)
        if number is None:
            continue
        if number in frames:
            raise DatasetError(f"{where}: {frames[number].name} and {path.name} in {folder} "
                               f"are both frame {number}; expected one file per frame")
        frames[number] = path
    if not frames:
        raise DatasetError(f"{where}: clip folder {folder} holds no numbered frame images "
                           f"({', '.join(IMAGE_SUFFIXES)})")
    return dict(sorted(frames.items()))


def _frame_path(frames: dict[int, pathlib.Path], number: int, role: str, record: ClipRecord) -> pathlib.Path:
    if number not in frames:
        example = next(iter(frames.values())).name
        raise DatasetError(
            f"{record.where} ({record.key}): {role} frame {number} is missing from "
            f"{record.frame_dir}; expected a file numbered {number} like {example!r} "
            f"(frames present: {min(frames)}..{max(frames)})")
    return frames[number]


def _read(path: pathlib.Path, record: ClipRecord) -> np.ndarray:
    try:
        return faces.read_gray(path)
    except faces.ImageReadError as err:
        raise DatasetError(f"{record.where} ({record.key}): {err}") from None


def choose_apex(onset_frame: np.ndarray, candidates: Sequence[np.ndarray], numbers: Sequence[int],
                rule: str) -> int:
    """Frame number of the apex by ``rule`` among ``candidates`` (frames onset..offset).

    ``middle``: the number nearest the middle of the span; ``max_difference``: the frame
    with the largest mean absolute difference from ``onset_frame`` (first one on ties).
    """
    if rule == "middle":
        middle = (numbers[0] + numbers[-1]) / 2
        return min(numbers, key=lambda n: (abs(n - middle), n))
    if rule == "max_difference":
        onset = onset_frame.astype(np.float32)
        scores = [float(np.abs(f.astype(np.float32) - onset).mean()) for f in candidates]
        return numbers[int(np.argmax(scores))]
    raise ValueError(f"apex rule {rule!r}: expected one of {APEX_RULES}")


@dataclasses.dataclass(frozen=True)
class LoadSettings:
    image_size: int
    apex_rule: str
    detector: faces.FaceDetector | None  # None: trust the frames as face crops


def load_clip(record: ClipRecord, settings: LoadSettings) -> tuple[dict, dict]:
    """Validates one clip and loads its onset / apex / offset frames.

    Returns (frames dict with ``onset``, ``apex``, ``offset`` uint8 [S, S, 1] and the frame
    numbers, notes dict with ``apex_estimated``, ``crop``). Raises :class:`DatasetError`.
    """
    frames = index_frames(record.frame_dir, f"{record.where} ({record.key})")
    numbers = list(frames)
    onset = numbers[0] if record.onset is None else record.onset
    offset = numbers[-1] if record.offset is None else record.offset
    if record.apex is not None and onset > record.apex:
        raise DatasetError(f"{record.where} ({record.key}): onset frame {onset} is after the "
                           f"apex frame {record.apex}; expected onset <= apex")
    if record.apex is not None and record.apex > offset:
        raise DatasetError(f"{record.where} ({record.key}): apex frame {record.apex} is after "
                           f"the offset frame {offset}; expected apex <= offset")
    if onset > offset:
        raise DatasetError(f"{record.where} ({record.key}): onset frame {onset} is after the "
                           f"offset frame {offset}; expected onset <= offset")
    onset_path = _frame_path(frames, onset, "onset", record)
    offset_path = _frame_path(frames, offset, "offset", record)
    onset_raw = _read(onset_path, record)
    crop = faces.clip_box(onset_raw, settings.detector)

    def prepared(raw: np.ndarray) -> np.ndarray:
        try:
            return faces.crop_resize(raw, crop.box, settings.image_size)[..., None]
        except ValueError as err:
            raise DatasetError(f"{record.where} ({record.key}): {err}") from None

    onset_image = prepared(onset_raw)
    if record.apex is None:
        span = [n for n in numbers if onset <= n <= offset]
        if settings.apex_rule == "max_difference":
            candidates = [prepared(_read(frames[n], record)) for n in span]
        else:
            candidates = []
        apex = choose_apex(onset_image, candidates, span, settings.apex_rule)
    else:
        apex = record.apex
    apex_image = prepared(_read(_frame_path(frames, apex, "apex", record), record))
    offset_image = prepared(_read(offset_path, record))
    loaded = {"onset": onset_image, "apex": apex_image, "offset": offset_image,
              "onset_frame": onset, "apex_frame": apex, "offset_frame": offset,
              "num_frames": sum(1 for n in numbers if onset <= n <= offset)}
    return loaded, {"apex_estimated": record.apex is None, "crop": crop}


# --------------------------------------------------------------------------------------
# The TFDS builders


@dataclasses.dataclass(eq=False)
class MERConfig(tfds.core.BuilderConfig):
    """Build settings; :func:`make_config` names a config after them so that different
    settings never share a directory in one ``data_dir``."""

    image_size: int = 64
    apex_rule: str = "middle"
    trust_cropped: bool = False
    skip_bad: bool = False
    label_csv: str = ""
    face_detector: str = "haar"


def make_config(*, image_size: int = 64, apex_rule: str = "middle", trust_cropped: bool = False,
                skip_bad: bool = False, label_csv: str | None = None,
                face_detector: str = "haar") -> MERConfig:
    """A :class:`MERConfig` whose name encodes every setting that changes the data."""
    if apex_rule not in APEX_RULES:
        raise ValueError(f"apex_rule {apex_rule!r}: expected one of {APEX_RULES}")
    if image_size < 8:
        raise ValueError(f"image_size {image_size}: expected at least 8 pixels")
    parts = [f"s{image_size}", apex_rule, "cropped" if trust_cropped else
             re.sub(r"[^a-z0-9]+", "", face_detector.split(":")[0].lower())]
    if not trust_cropped and ":" in face_detector:
        parts.append(hashlib.sha1(face_detector.encode()).hexdigest()[:8])
    if skip_bad:
        parts.append("skipbad")
    if label_csv:
        csv_path = pathlib.Path(label_csv)
        if not csv_path.is_file():
            raise DatasetError(f"{csv_path}: label CSV not found")
        parts.append("csv" + hashlib.sha1(csv_path.read_bytes()).hexdigest()[:8])
    return MERConfig(name="-".join(parts), image_size=image_size, apex_rule=apex_rule,
                     trust_cropped=trust_cropped, skip_bad=skip_bad,
                     label_csv=str(label_csv or ""), face_detector=face_detector)


RecordOrError = ClipRecord | DatasetError


class MERBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Common machinery of the four builders; a subclass reads its own layout.

    A subclass defines ``LABELS`` (:class:`LabelSet`) and ``read_records(manual_dir,
    config)``, which returns :class:`ClipRecord` s and, for rows it could not parse,
    :class:`DatasetError` s (kept in order so a fatal one is raised where it occurs).
    """

    VERSION = tfds.core.Version(VERSION)
    BUILDER_CONFIGS = [make_config()]
    LABELS: LabelSet

    # TFDS' default code_path probes `importlib_resources`, which tfds 4.9 imports lazily
    # and which is absent without TensorFlow's extras; the module file is what it needs.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(inspect.getfile(cls))

    @abc.abstractmethod
    def read_records(self, manual_dir: pathlib.Path) -> list[RecordOrError]:
        """Parses the dataset's own layout under ``manual_dir``."""

    def subject_id(self, record: ClipRecord) -> str:
        return record.subject

    def label_of(self, record: ClipRecord) -> str | None:
        return self.LABELS.label_of(record)

    def apex_override(self, record: ClipRecord) -> ClipRecord:
        return record

    def exclusion_reason(self, record: ClipRecord) -> str:
        """How the summary counts a clip whose label is outside this label set."""
        return f"{record.dataset}:{record.emotion}"

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        frame = tfds.features.Tensor(shape=(size, size, 1), dtype=np.uint8)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "onset": frame, "apex": frame, "offset": frame,
                "label": tfds.features.ClassLabel(names=list(self.LABELS.names)),
                "label_name": tfds.features.Text(),
                "emotion": tfds.features.Text(),
                "subject": tfds.features.Text(),
                "dataset": tfds.features.Text(),
                "clip_id": tfds.features.Text(),
                "action_units": tfds.features.Text(),
                "onset_frame": tfds.features.Scalar(dtype=np.int32),
                "apex_frame": tfds.features.Scalar(dtype=np.int32),
                "offset_frame": tfds.features.Scalar(dtype=np.int32),
                "num_frames": tfds.features.Scalar(dtype=np.int32),
                "apex_estimated": tfds.features.Scalar(dtype=np.bool_),
            }),
            description=(self.__class__.__doc__ or "").strip(),
        )

    def _split_generators(self, dl_manager):
        # Everything is loaded here, not lazily in _generate_examples, so the summary
        # (skips, estimated apexes) is complete before TFDS writes anything.
        examples, summary = self.collect_examples(pathlib.Path(dl_manager.manual_dir))
        # data_dir is TFDS' temporary folder here, renamed into place only when the whole
        # build succeeds: the summary is there exactly when the data is.
        (pathlib.Path(self.data_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        return {"train": self._generate_examples(examples)}

    def _generate_examples(self, examples):
        for key, example in examples:
            yield key, example

    def collect_examples(self, manual_dir: pathlib.Path) -> tuple[list, dict]:
        """Reads, validates and loads every clip; returns ((key, example) list, summary)."""
        config = self.builder_config
        if not manual_dir.is_dir():
            raise DatasetError(f"manual_dir {manual_dir} not found.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        detector = None if config.trust_cropped else faces.make_detector(config.face_detector)
        settings = LoadSettings(config.image_size, config.apex_rule, detector)
        skipped: list[dict] = []
        excluded: collections.Counter = collections.Counter()
        estimated, fallbacks, examples = [], [], []
        first_rows: dict[str, str] = {}  # clip key -> where it was first listed

        def bad(err: DatasetError, where: str) -> None:
            if not config.skip_bad:
                raise err
            skipped.append({"clip": where, "reason": str(err)})
            print(f"[{self.name}] skipped {where}: {err}")

        for item in self.read_records(manual_dir):
            if isinstance(item, DatasetError):
                bad(item, "sheet row")
                continue
            record = self.apex_override(item)
            if record.key in first_rows:
                bad(DatasetError(f"{record.where}: clip {record.key} is listed twice (first at "
                                 f"{first_rows[record.key]}); expected one row per clip"), record.key)
                continue
            first_rows[record.key] = record.where
            try:
                label = self.label_of(record)
                if label is None:
                    excluded[self.exclusion_reason(record)] += 1
                    continue
                loaded, notes = load_clip(record, settings)
            except DatasetError as err:
                bad(err, record.key)
                continue
            if notes["apex_estimated"]:
                estimated.append(f"{record.key} -> frame {loaded['apex_frame']}")
            if notes["crop"].fallback:
                fallbacks.append(record.key)
                print(f"[{self.name}] no face found in the onset frame of {record.key}: "
                      "using the centred square")
            example = dict(loaded, label=label, label_name=label, emotion=record.emotion,
                           subject=self.subject_id(record), dataset=record.dataset,
                           clip_id=record.clip_id, action_units=record.action_units,
                           apex_estimated=notes["apex_estimated"])
            examples.append((record.key, example))
        if not examples:
            raise DatasetError(f"{self.name}: no usable clip under {manual_dir} "
                               f"({len(skipped)} skipped, {sum(excluded.values())} excluded)")
        per_class = collections.Counter(e["label_name"] for _, e in examples)
        summary = {
            "dataset": self.name,
            "config": config.name,
            "image_size": config.image_size,
            "apex_rule": config.apex_rule,
            "face_crop": "trusted (already cropped)" if config.trust_cropped else config.face_detector,
            "num_clips": len(examples),
            "num_subjects": len({e["subject"] for _, e in examples}),
            "clips_per_class": {n: per_class.get(n, 0) for n in self.LABELS.names},
            "clips_per_dataset": dict(collections.Counter(e["dataset"] for _, e in examples)),
            "subjects_per_dataset": {
                d: len({e["subject"] for _, e in examples if e["dataset"] == d})
                for d in sorted({e["dataset"] for _, e in examples})},
            "frames": int(sum(e["num_frames"] for _, e in examples)),
            "excluded": dict(excluded),
            "skipped": skipped,
            "estimated_apex": estimated,
            "face_fallback": fallbacks,
            "label_csv": config.label_csv,
        }
        return examples, summary


# --------------------------------------------------------------------------------------
# Public functions


def builder_class(name: str) -> type[MERBuilder]:
    """The builder class for ``name`` in :data:`DATASET_NAMES`."""
    if name == "casme2":
        from data_pipelines.casme2 import Casme2 as cls
    elif name == "samm":
        from data_pipelines.samm import Samm as cls
    elif name == "smic":
        from data_pipelines.smic import Smic as cls
    elif name == "composite":
        from data_pipelines.composite import Composite as cls
    else:
        raise ValueError(f"dataset {name!r}: expected one of {DATASET_NAMES}")
    return cls


def label_names(name: str) -> tuple[str, ...]:
    """The label order of dataset ``name`` (index = the ``label`` int of its samples)."""
    return builder_class(name).LABELS.names


def prepare_dataset(name: str, manual_dir: str | pathlib.Path, data_dir: str | pathlib.Path, *,
                    image_size: int = 64, apex_rule: str = "middle", skip_bad: bool = False,
                    trust_cropped: bool = False, label_csv: str | None = None,
                    face_detector: str = "haar") -> dict:
    """Builds dataset ``name`` from ``manual_dir`` into ``data_dir``; returns its summary.

    The summary is written as ``summary.json`` beside the ArrayRecord files, so a second
    call with the same settings (which TFDS does not rebuild) returns it unchanged. The
    build is keyed by its settings, not by the files under ``manual_dir``: after changing
    those, delete ``data_dir/<name>/<config>`` or use another ``data_dir``.
    """
    cls = builder_class(name)
    if not trust_cropped:
        faces.make_detector(face_detector)  # fail before TFDS creates any directory
    if label_csv and name != "composite":
        raise ValueError(f"label_csv is a composite-set option; {name!r} does not take one")
    config = make_config(image_size=image_size, apex_rule=apex_rule, trust_cropped=trust_cropped,
                         skip_bad=skip_bad, label_csv=label_csv, face_detector=face_detector)
    builder = cls(config=config, data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    summary = json.loads((pathlib.Path(builder.data_dir) / SUMMARY_FILE).read_text())
    return dict(summary, data_dir=str(builder.data_dir))


def built_dirs(name: str, data_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """The finished builds of ``name`` in ``data_dir`` (one per config)."""
    root = pathlib.Path(data_dir) / builder_class(name).name
    return sorted(p.parent for p in root.glob(f"*/{VERSION}/dataset_info.json"))


class MERSource:
    """Random-access MER samples of one built dataset (a Grain ``RandomAccessDataSource``).

    ``source[i]`` is ``{"onset", "apex", "offset": float32 [S, S, 1] in [0, 1], "label":
    int32, "label_name", "subject", "dataset", "clip_id", "action_units": str}``; the
    subject is unique across datasets in the composite set (``"casme2/sub01"``).
    """

    def __init__(self, build_dir: pathlib.Path):
        self.build_dir = build_dir
        self.builder = tfds.builder_from_directory(str(build_dir))
        self._source = self.builder.as_data_source(split="train")
        self.label_names = tuple(self.builder.info.features["label"].names)
        summary_path = build_dir / SUMMARY_FILE
        self.summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        raw = self._source[index]
        sample = {k: np.asarray(raw[k], np.float32) / 255.0 for k in ("onset", "apex", "offset")}
        sample["label"] = np.int32(raw["label"])
        for key in ("label_name", "subject", "dataset", "clip_id", "action_units", "emotion"):
            value = raw[key]
            sample[key] = value.decode() if isinstance(value, bytes) else str(value)
        for key in ("onset_frame", "apex_frame", "offset_frame"):
            sample[key] = int(raw[key])
        sample["apex_estimated"] = bool(raw["apex_estimated"])
        return sample

    def __repr__(self) -> str:
        return f"MERSource({self.build_dir}, {len(self)} clips)"


def load_mer_source(name: str, data_dir: str | pathlib.Path, *, config: str | None = None) -> MERSource:
    """Opens the built dataset ``name`` in ``data_dir``.

    ``config`` names the build (see :func:`make_config`); it may be left out when
    ``data_dir`` holds only one build of ``name``.
    """
    builds = built_dirs(name, data_dir)
    if config is not None:
        builds = [b for b in builds if b.parent.name == config]
    if len(builds) != 1:
        found = [b.parent.name for b in built_dirs(name, data_dir)]
        raise DatasetError(
            f"{data_dir}: expected exactly one build of {name!r}"
            + (f" with config {config!r}" if config else "")
            + f", found {found}; run `dface-jax prepare --dataset {name}` or pass config=")
    return MERSource(builds[0])


def _listed(items: Sequence[str], max_listed: int | None) -> list[str]:
    shown = items if max_listed is None else items[:max_listed]
    lines = [f"    {item}" for item in shown]
    if len(shown) < len(items):
        lines.append(f"    ... and {len(items) - len(shown)} more (all in {SUMMARY_FILE})")
    return lines


def format_summary(summary: dict, *, max_listed: int | None = 25) -> str:
    """The summary as the lines ``dface-jax prepare`` prints (long lists cut at ``max_listed``;
    skipped clips are always all listed)."""
    lines = [
        f"dataset {summary['dataset']} ({summary['config']}) in {summary.get('data_dir', '?')}",
        f"  clips {summary['num_clips']}, subjects {summary['num_subjects']}, "
        f"frames (onset..offset) {summary['frames']}, image size {summary['image_size']}",
        "  clips per class: " + ", ".join(f"{k} {v}" for k, v in summary["clips_per_class"].items()),
    ]
    if len(summary.get("clips_per_dataset", {})) > 1:
        lines.append("  per dataset: " + ", ".join(
            f"{d} {n} clips / {summary['subjects_per_dataset'][d]} subjects"
            for d, n in summary["clips_per_dataset"].items()))
    lines.append(f"  apex rule for unannotated apexes: {summary['apex_rule']}; "
                 f"estimated apexes: {len(summary['estimated_apex'])}")
    lines += _listed(summary["estimated_apex"], max_listed)
    lines.append(f"  face crop: {summary['face_crop']}; no face found (centred square): "
                 f"{len(summary['face_fallback'])}")
    lines += _listed(summary["face_fallback"], max_listed)
    if summary["excluded"]:
        lines.append("  excluded (label outside this label set): " + ", ".join(
            f"{k} {v}" for k, v in summary["excluded"].items()))
    lines.append(f"  skipped: {len(summary['skipped'])}")
    lines += [f"    {s['clip']}: {s['reason']}" for s in summary["skipped"]]
    return "\n".join(lines)


def find_one(folder: pathlib.Path, patterns: Iterable[str], what: str) -> pathlib.Path:
    """The single file or folder in ``folder`` matching the first pattern that matches."""
    for pattern in patterns:
        matches = sorted(p for p in folder.glob(pattern) if not p.name.startswith("~$"))
        if len(matches) > 1 and any(p.is_file() for p in matches):
            raise DatasetError(f"{folder}: several {what} ({[m.name for m in matches]}); "
                               "expected one")
        if matches:
            return matches[0]
    raise DatasetError(f"{folder}: no {what} found; expected one of {list(patterns)}")


def tolerant(parse: Callable[[], ClipRecord]) -> RecordOrError:
    """Runs a row parser; a SheetError becomes a DatasetError the builder may skip."""
    from data_pipelines.sheets import SheetError

    try:
        return parse()
    except SheetError as err:
        return DatasetError(str(err))
