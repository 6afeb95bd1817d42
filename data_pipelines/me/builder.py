"""The TFDS builder every micro-expression dataset shares.

A dataset module subclasses :class:`MERBuilder` with its label set and a reader of its own
layout; the builder validates and loads every clip (:mod:`.records`), gray or RGB, keeps a
summary (skips, exclusions, estimated apexes, face-crop fallbacks, what each data rule of
the dataset did) and writes ArrayRecord files that Grain reads. With ``skip_bad`` a bad
clip is skipped, printed and kept in the summary instead of stopping the build; nothing
is dropped silently: clips whose label is outside a dataset's label set (e.g. CASME II
fear and sadness, which the standard 5-class protocol leaves out) are counted under
``excluded``.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import hashlib
import inspect
import logging
import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds
import tqdm
from etils import epath

from data_pipelines import faces, storage
from data_pipelines.me.records import (APEX_RULES, CHANNELS, ClipRecord, DatasetError, LabelSet,
                                       LoadSettings, RecordOrError, load_clip)

VERSION = "1.0.0"
SUMMARY_FILE = "summary.json"


class _QuietCustomConfig(logging.Filter):
    """Drops TFDS's "Using custom data configuration" warning: every build here uses one
    (its name encodes its settings), so the warning says nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Using custom data configuration")


logging.getLogger("absl").addFilter(_QuietCustomConfig())


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
    channels: int = 1  # 1: gray uint8 [S, S, 1]; 3: RGB uint8 [S, S, 3]
    # Data rules of a dataset's reference code, named options so that each can be turned
    # off; a builder that has no such rule refuses them (prepare_dataset). See casme3.py.
    skip_onset_zero: bool = False
    replace_apex_at_onset: bool = False


# The options above that are data rules, in the order a config name lists them.
DATA_RULES = ("skip_onset_zero", "replace_apex_at_onset")
_RULE_TAGS = {"skip_onset_zero": "skip0", "replace_apex_at_onset": "apexmid"}


def make_config(*, image_size: int = 64, apex_rule: str = "middle", trust_cropped: bool = False,
                skip_bad: bool = False, label_csv: str | None = None,
                face_detector: str = "haar", channels: int = 1, skip_onset_zero: bool = False,
                replace_apex_at_onset: bool = False) -> MERConfig:
    """A :class:`MERConfig` whose name encodes every setting that changes the data.

    Settings at their defaults add nothing to the name (``s64-middle-haar``), so builds
    made before an option existed keep their names."""
    if apex_rule not in APEX_RULES:
        raise ValueError(f"apex_rule {apex_rule!r}: expected one of {APEX_RULES}")
    if image_size < 8:
        raise ValueError(f"image_size {image_size}: expected at least 8 pixels")
    if channels not in CHANNELS:
        raise ValueError(f"channels {channels}: expected 1 (gray) or 3 (RGB)")
    parts = [f"s{image_size}", apex_rule, "cropped" if trust_cropped else
             re.sub(r"[^a-z0-9]+", "", face_detector.split(":")[0].lower())]
    if not trust_cropped and ":" in face_detector:
        parts.append(hashlib.sha1(face_detector.encode()).hexdigest()[:8])
    if channels == 3:
        parts.append("rgb")
    rules = {"skip_onset_zero": skip_onset_zero, "replace_apex_at_onset": replace_apex_at_onset}
    parts += [_RULE_TAGS[name] for name in DATA_RULES if rules[name]]
    if skip_bad:
        parts.append("skipbad")
    if label_csv:
        csv_path = pathlib.Path(label_csv)
        if not csv_path.is_file():
            raise DatasetError(f"{csv_path}: label CSV not found")
        parts.append("csv" + hashlib.sha1(csv_path.read_bytes()).hexdigest()[:8])
    return MERConfig(name="-".join(parts), image_size=image_size, apex_rule=apex_rule,
                     trust_cropped=trust_cropped, skip_bad=skip_bad,
                     label_csv=str(label_csv or ""), face_detector=face_detector,
                     channels=channels, **rules)


class MERBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Common machinery of the builders; a subclass reads its own layout.

    A subclass defines ``LABELS`` (:class:`LabelSet`) and ``read_records(manual_dir,
    config)``, which returns :class:`ClipRecord` s and, for rows it could not parse,
    :class:`DatasetError` s (kept in order so a fatal one is raised where it occurs).
    ``DEFAULT_IMAGE_SIZE`` / ``DEFAULT_CHANNELS`` are what ``prepare`` builds when not told
    otherwise; ``DATA_RULES`` names the data rules (:data:`DATA_RULES`) the dataset applies,
    all on by default; a builder with rules reports what each did in ``rule_report()``.
    """

    VERSION = tfds.core.Version(VERSION)
    BUILDER_CONFIGS: list = []  # every build names its own config (make_config): a predefined
    # one would clash with the custom config of the default settings, which has its name
    LABELS: LabelSet
    DEFAULT_IMAGE_SIZE = 64
    DEFAULT_CHANNELS = 1
    DATA_RULES: tuple[str, ...] = ()

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

    def rule_report(self) -> dict:
        """{rule name: {"enabled", "count", "clips"}} of the data rules applied by the last
        ``read_records`` (empty for a dataset without rules)."""
        return {}

    def _info(self) -> tfds.core.DatasetInfo:
        size, channels = self.builder_config.image_size, self.builder_config.channels
        frame = tfds.features.Tensor(shape=(size, size, channels), dtype=np.uint8)
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
        storage.write_json(epath.Path(self.data_dir) / SUMMARY_FILE, summary)
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
        settings = LoadSettings(config.image_size, config.apex_rule, detector, config.channels)
        skipped: list[dict] = []
        excluded: collections.Counter = collections.Counter()
        estimated, fallbacks, examples = [], [], []
        first_rows: dict[str, str] = {}  # clip key -> where it was first listed

        def bad(err: DatasetError, where: str) -> None:
            if not config.skip_bad:
                raise err
            skipped.append({"clip": where, "reason": str(err)})
            bar.write(f"[{self.name}] skipped {where}: {err}")

        records = self.read_records(manual_dir)
        # Face detection and frame loading run here, before TFDS writes anything.
        bar = tqdm.tqdm(records, desc=f"{self.name}: load and crop clips", unit="clip",
                        dynamic_ncols=True, delay=0.5)
        for item in bar:
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
            if notes["crop"].fallback:  # listed in the summary, not one line per clip here
                fallbacks.append(record.key)
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
            "channels": config.channels,
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
        rules = self.rule_report()
        if rules:
            summary["data_rules"] = rules
        return examples, summary
