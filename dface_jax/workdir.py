"""What a run directory holds: the manifest every command writes and every reader reads.

A workdir is a directory one command owns. Beside its ``config.json`` (the resolved
config, :func:`dface_jax.configs.save_config`) it holds ``manifest.json``::

    {"kind": "tokenizer" | "loso" | "comparison" | "quickstart",
     "command": "pretrain",                  # what wrote it
     "dface_jax_version": "0.1.0",
     "inputs": {"clip_shards": "...", "token_cache": "...", "tokenizer_workdir": "...",
                "dataset_build": "...", "text_encoder": "..."}}   # what it read, if any

Readers never guess a workdir's kind from the files it happens to hold: they call
:func:`read_manifest` (with the kind they need) and :func:`restore_tokenizer` /
:func:`read_config`, and a workdir without a manifest, or of another kind, is refused with
a message that names it.

Writers run inside :func:`open_run`: it takes the workdir's lock (one writer at a time),
refuses to resume a run with another config (naming the fields that differ) unless told
to replace it, writes the config and the manifest, and on success the completion marker
``completed.json``, which readers of results and reruns check.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any, Iterator

import ml_collections
from etils import epath

from data_pipelines import storage
from data_pipelines.errors import InputError

MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.json"
COMPLETED_FILE = "completed.json"
KINDS = ("tokenizer", "loso", "comparison", "quickstart")
# What a LOSO workdir holds beside its config and checkpoint (dface_jax/loso/run.py).
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.npz"
FOLDS_FILE = "folds.json"
# Where a comparison keeps its table and the D-FACE run, and a quickstart its parts.
COMPARISON_TABLE = "comparison.md"
COMPARISON_DFACE_RUN = "dface"


class WorkdirError(InputError, ValueError):
    """A directory is not the workdir a reader needs: the message names it and what was expected."""


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("dface-jax")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def write_manifest(workdir: str | os.PathLike, kind: str, command: str,
                   inputs: dict[str, str] | None = None) -> dict[str, Any]:
    """Writes ``workdir/manifest.json`` atomically (a reader never sees half of one) and
    returns its content."""
    if kind not in KINDS:
        raise ValueError(f"workdir kind {kind!r}: expected one of {KINDS}")
    manifest = {"kind": kind, "command": command, "dface_jax_version": _version(),
                "inputs": {name: str(value) for name, value in (inputs or {}).items()}}
    storage.write_json(storage.as_path(workdir) / MANIFEST_FILE, manifest)
    return manifest


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def config_differences(saved: dict, current: dict) -> list[str]:
    """Dotted names of the fields in which two configs (as JSON dicts) differ."""
    old, new = _flat(saved), _flat(current)
    return sorted(key for key in set(old) | set(new) if old.get(key, "<absent>") != new.get(key, "<absent>"))


def config_changes(workdir: str | os.PathLike, config: Any) -> list[str]:
    """Fields in which ``config`` differs from the ``config.json`` of ``workdir`` ([] if the
    workdir has none)."""
    path = storage.as_path(workdir) / CONFIG_FILE
    if not path.exists():
        return []
    return config_differences(json.loads(path.read_text()),
                              json.loads(config.to_json_best_effort(sort_keys=True)))


def is_completed(workdir: str | os.PathLike) -> bool:
    """Whether the run in ``workdir`` finished (its completion marker is there)."""
    return (storage.as_path(workdir) / COMPLETED_FILE).exists()


@contextlib.contextmanager
def open_run(workdir: str | os.PathLike, kind: str, command: str, config: Any, *,
             inputs: dict[str, str] | None = None, allow_config_change: bool = False,
             primary: bool = True) -> Iterator[epath.Path]:
    """The life of a run in ``workdir``: lock, config check, config + manifest, marker.

    A workdir that holds a run of another kind is refused. A workdir whose ``config.json``
    differs from ``config`` is refused with the differing fields, unless
    ``allow_config_change`` (the new config then replaces the old one). Only the
    ``primary`` process (``jax.process_index() == 0``) takes the lock and writes; every
    process checks, so all of them raise the same error. ``workdir`` may be local or
    ``gs://`` (every file here goes through :mod:`data_pipelines.storage`). Yields the
    workdir as an ``epath.Path``; the
    completion marker is written when the block returns without an exception.
    """
    from dface_jax.configs import save_config
    from dface_jax.runtime import lock

    workdir = storage.as_path(workdir)
    with lock.hold(workdir, command) if primary else contextlib.nullcontext():
        if (workdir / MANIFEST_FILE).exists():
            read_manifest(workdir, kind)
        differences = config_changes(workdir, config)
        if differences and not allow_config_change:
            shown = ", ".join(differences[:8]) + (" ..." if len(differences) > 8 else "")
            raise WorkdirError(
                f"{workdir / CONFIG_FILE}: this run's config differs in {shown}; resume with "
                "the same config, use another workdir, or pass --allow-config-change to "
                "replace it")
        if primary:
            (workdir / COMPLETED_FILE).unlink(missing_ok=True)
            save_config(config, workdir / CONFIG_FILE)
            write_manifest(workdir, kind, command, inputs)
        yield workdir
        if primary:
            storage.write_json(workdir / COMPLETED_FILE, {"command": command})


def read_manifest(workdir: str | os.PathLike, kind: str | tuple[str, ...] | None = None
                  ) -> dict[str, Any]:
    """The manifest of ``workdir``; with ``kind``, refuses a workdir of another kind."""
    workdir = storage.as_path(workdir)
    path = workdir / MANIFEST_FILE
    if not path.exists():
        what = "a dface-jax workdir" if kind is None else f"a {_kinds(kind)} workdir"
        raise WorkdirError(f"{workdir}: no {MANIFEST_FILE}; expected {what} (written by "
                           "dface-jax pretrain, import-torch, loso, compare or quickstart)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise WorkdirError(f"{path}: not valid JSON ({err})") from None
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted is not None and manifest.get("kind") not in wanted:
        raise WorkdirError(f"{workdir} is a {manifest.get('kind')!r} workdir (written by "
                           f"`dface-jax {manifest.get('command')}`); expected a "
                           f"{_kinds(kind)} workdir")
    return manifest


def is_kind(workdir: str | os.PathLike, kind: str) -> bool:
    """Whether ``workdir`` holds a manifest of ``kind``."""
    try:
        read_manifest(workdir, kind)
    except WorkdirError:
        return False
    return True


def _kinds(kind: str | tuple[str, ...]) -> str:
    return kind if isinstance(kind, str) else " or ".join(repr(k) for k in kind)


def read_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
    """The resolved config a workdir was run with (its ``config.json``)."""
    from dface_jax.configs import read_config as read_config_file

    path = storage.as_path(workdir) / CONFIG_FILE
    if not path.exists():
        raise WorkdirError(f"{path} not found: a dface-jax workdir holds its config.json "
                           "beside its manifest")
    return read_config_file(path)


def restore_tokenizer(workdir: str | os.PathLike, step: int | None = None) -> tuple[Any, Any]:
    """(params as host numpy arrays, TokenizerConfig) of a tokenizer workdir (``pretrain``
    or ``import-torch --kind tokenizer``): the latest (or ``step``) checkpoint."""
    from dface_jax.models.tokenizer import TokenizerConfig
    from dface_jax.runtime.checkpoint import restore_params

    read_manifest(workdir, "tokenizer")
    config = read_config(workdir)
    return restore_params(workdir, step), TokenizerConfig.from_dict(config.tokenizer.to_dict())


def write_tokenizer(workdir: str | os.PathLike, params: Any, config: ml_collections.ConfigDict,
                    command: str, inputs: dict[str, str] | None = None) -> None:
    """A tokenizer workdir from parameters in hand (``import-torch``, tests): ``config``
    (with a ``tokenizer`` section), one checkpoint of ``{"params": params}`` and the
    manifest, written last, so a half-written workdir is refused by every reader."""
    from dface_jax.runtime.checkpoint import save_params

    if "tokenizer" not in config:
        raise ValueError(f"a tokenizer workdir's config needs a 'tokenizer' section; it has "
                         f"{sorted(config.keys())}")
    save_params(workdir, params, config)
    write_manifest(workdir, "tokenizer", command, inputs)
    storage.write_json(storage.as_path(workdir) / COMPLETED_FILE, {"command": command})


def _require_finished(workdir: str | os.PathLike) -> None:
    read_manifest(workdir, "loso")
    if not is_completed(workdir):
        raise WorkdirError(f"{workdir}: the LOSO run there did not finish (no "
                           f"{COMPLETED_FILE}); run it again to complete it")


def read_results(workdir: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` of a finished LOSO workdir (scores, label names, protocol, ...)."""
    _require_finished(workdir)
    path = storage.as_path(workdir) / RESULTS_FILE
    if not path.exists():
        raise WorkdirError(f"{path} not found: the LOSO run in {workdir} did not finish")
    return json.loads(path.read_text())


def read_predictions(workdir: str | os.PathLike) -> dict[str, Any]:
    """``predictions.npz`` of a LOSO workdir: ``clip_ids``, ``subjects``, ``datasets``,
    ``labels``, ``predicted``, ``logits``, ``attention`` [N, L] (L = 0 without attention
    pooling) and ``label_names``."""
    import numpy as np

    _require_finished(workdir)
    path = storage.as_path(workdir) / PREDICTIONS_FILE
    if not path.exists():
        raise WorkdirError(f"{path} not found: the LOSO run in {workdir} did not finish")
    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def read_folds(workdir: str | os.PathLike) -> list[str]:
    """The held-out subject of each fold, in fold order (``folds.json`` of a LOSO workdir)."""
    _require_finished(workdir)
    path = storage.as_path(workdir) / FOLDS_FILE
    if not path.exists():
        raise WorkdirError(f"{path} not found: the LOSO run in {workdir} did not finish")
    return list(json.loads(path.read_text())["held_out_subjects"])
