"""The micro-expression datasets: build one from its owner's layout, open a built one.

Public API (docs/INTERFACES.md, "Micro-expression data"):
- :func:`prepare_dataset` builds ``casme2``, ``samm``, ``smic``, ``composite`` or ``casme3``
  (CAS(ME)^3 Part A) from the files a user has on disk (``manual_dir``, read by OpenCV: a
  local folder) into ``data_dir`` (local or ``gs://``) as ArrayRecord and returns a summary
  (subjects, clips per class, frames, skipped clips, apex rule, estimated apexes, data rules).
- :func:`load_mer_source` opens a built dataset with ``as_data_source()`` and yields MER
  samples with float32 frames in [0, 1], gray or RGB as built.
- :func:`label_names` gives each dataset's label order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_pipelines import faces, storage
from data_pipelines.me.builder import DATA_RULES, SUMMARY_FILE, VERSION, MERBuilder, make_config
from data_pipelines.me.casme2 import Casme2
from data_pipelines.me.casme3 import Casme3
from data_pipelines.me.composite import Composite
from data_pipelines.me.records import DatasetError
from data_pipelines.me.samm import Samm
from data_pipelines.me.smic import Smic

logger = logging.getLogger(__name__)
BUILDERS: dict[str, type[MERBuilder]] = {
    "casme2": Casme2, "samm": Samm, "smic": Smic, "composite": Composite, "casme3": Casme3}
DATASET_NAMES = tuple(BUILDERS)


def builder_class(name: str) -> type[MERBuilder]:
    """The builder class for ``name`` in :data:`DATASET_NAMES`."""
    if name not in BUILDERS:
        raise ValueError(f"dataset {name!r}: expected one of {DATASET_NAMES}")
    return BUILDERS[name]


def label_names(name: str) -> tuple[str, ...]:
    """The label order of dataset ``name`` (index = the ``label`` int of its samples)."""
    return builder_class(name).LABELS.names


def prepare_dataset(name: str, manual_dir: str | pathlib.Path, data_dir: storage.PathLike, *,
                    image_size: int | None = None, apex_rule: str = "middle",
                    skip_bad: bool = False, trust_cropped: bool = False,
                    label_csv: str | None = None, face_detector: str = "haar",
                    channels: int | None = None, skip_onset_zero: bool | None = None,
                    replace_apex_at_onset: bool | None = None) -> dict:
    """Builds dataset ``name`` from ``manual_dir`` into ``data_dir``; returns its summary.

    ``image_size`` (pixels) and ``channels`` (1 gray, 3 RGB) default to the dataset's own
    (64 px gray; CAS(ME)^3: 256 px RGB, as the release). The data rules (``skip_onset_zero``,
    ``replace_apex_at_onset``) default to on for a dataset that has them (CAS(ME)^3) and
    are refused for the others.

    A build is named by its settings (:func:`make_config`) and remembers a fingerprint of
    its inputs (:func:`input_fingerprint`: every file's path, size and modification time,
    and the coding sheets' bytes). A second call with the same settings and inputs returns
    the summary of the existing build; if a frame, a sheet row or the file list changed
    since, the build is made again (and says so).

    TFDS writes a build under a temporary name and renames it into place. For a ``gs://``
    ``data_dir`` (where a rename is a copy) the build is made in a local staging folder and
    uploaded with ``dataset_info.json`` last: readers look for that file, so a killed
    upload is never taken for a build.
    """
    cls = builder_class(name)
    if not trust_cropped:
        faces.make_detector(face_detector)  # fail before TFDS creates any directory
    if label_csv and name != "composite":
        raise DatasetError(f"{label_csv}: a label CSV is a composite-set option; {name!r} does "
                           "not take one")
    given = {"skip_onset_zero": skip_onset_zero, "replace_apex_at_onset": replace_apex_at_onset}
    foreign = [rule for rule, value in given.items()
               if value is not None and rule not in cls.DATA_RULES]
    if foreign:
        raise DatasetError(f"{name}: data rule option(s) {foreign} apply to "
                           f"{[n for n, c in BUILDERS.items() if set(foreign) <= set(c.DATA_RULES)]}"
                           f" only; expected them unset for {name!r}")
    rules = {rule: (rule in cls.DATA_RULES) if given[rule] is None else bool(given[rule])
             for rule in DATA_RULES}
    manual_dir = pathlib.Path(manual_dir)  # raw frames and sheets: local files for OpenCV
    if not manual_dir.is_dir():
        raise DatasetError(f"{manual_dir}: manual_dir not found; expected the {name} dataset "
                           "as its owners distribute it (see `dface-jax prepare --help`)")
    config = make_config(
        image_size=cls.DEFAULT_IMAGE_SIZE if image_size is None else image_size,
        apex_rule=apex_rule, trust_cropped=trust_cropped, skip_bad=skip_bad,
        label_csv=label_csv, face_detector=face_detector,
        channels=cls.DEFAULT_CHANNELS if channels is None else channels, **rules)
    fingerprint = input_fingerprint(manual_dir, label_csv)
    build = f"{cls.name}/{config.name}/{VERSION}"
    build_dir = storage.as_path(data_dir) / build
    if (build_dir / "dataset_info.json").exists():
        summary = json.loads((build_dir / SUMMARY_FILE).read_text())
        if summary.get("input_fingerprint") == fingerprint:
            return dict(summary, data_dir=str(build_dir))
        logger.warning("%s: the files under %s changed since this build: building it again",
                       build_dir, manual_dir)
        build_dir.rmtree()
    with storage.staging_dir(data_dir, last=(f"{build}/dataset_info.json",)) as local_dir:
        builder = cls(config=config, data_dir=str(local_dir), file_format="array_record")
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
        summary_path = storage.as_path(builder.data_dir) / SUMMARY_FILE
        summary = dict(json.loads(summary_path.read_text()), input_fingerprint=fingerprint)
        storage.write_json(summary_path, summary)
    return dict(summary, data_dir=str(build_dir))


SHEET_SUFFIXES = (".xlsx", ".xls", ".xlsm", ".csv", ".txt")


def input_fingerprint(manual_dir: pathlib.Path, label_csv: str | None = None) -> str:
    """A hash of what a build reads: every file under ``manual_dir`` by (path, size,
    modification time), the coding sheets and the label CSV by their bytes."""
    digest = hashlib.sha1()
    files = sorted(p for p in manual_dir.rglob("*") if p.is_file())
    for path in files + ([pathlib.Path(label_csv)] if label_csv else []):
        stat = path.stat()
        digest.update(f"{path.relative_to(manual_dir) if path in files else path}|{stat.st_size}|"
                      f"{stat.st_mtime_ns}\n".encode())
        if path.suffix.lower() in SHEET_SUFFIXES:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def built_dirs(name: str, data_dir: storage.PathLike) -> list[epath.Path]:
    """The finished builds of ``name`` in ``data_dir`` (one per config)."""
    root = storage.as_path(data_dir) / builder_class(name).name
    return sorted(p.parent for p in root.glob(f"*/{VERSION}/dataset_info.json"))


class MERSource:
    """Random-access MER samples of one built dataset (a Grain ``RandomAccessDataSource``).

    ``source[i]`` is ``{"onset", "apex", "offset": float32 [S, S, C] in [0, 1] (C = 1 gray,
    3 RGB, as built), "label": int32, "label_name", "subject", "dataset", "clip_id",
    "action_units": str}``; the subject is unique across datasets in the composite set
    (``"casme2/sub01"``).
    """

    def __init__(self, build_dir: epath.Path):
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


def load_mer_source(name: str, data_dir: storage.PathLike, *, config: str | None = None) -> MERSource:
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
        f"frames (onset..offset) {summary['frames']}, image size {summary['image_size']}"
        + (" RGB" if summary.get("channels", 1) == 3 else ""),
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
    for rule, report in summary.get("data_rules", {}).items():
        lines.append(f"  data rule {rule}: " + (f"{report['count']} clip(s)" if report["enabled"]
                                                 else "off"))
        lines += _listed(report["clips"], max_listed)
    lines.append(f"  skipped: {len(summary['skipped'])}")
    lines += [f"    {s['clip']}: {s['reason']}" for s in summary["skipped"]]
    return "\n".join(lines)
