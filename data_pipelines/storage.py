"""Where files live: local paths or object storage (``gs://...``), and how to write them
so that a killed job never leaves a torn file behind.

Every path a user passes (a workdir, a dataset build, clip shards, a token cache, a report)
goes through :func:`as_path`, an ``etils.epath.Path``: the same API for a local directory
and a bucket, which is what Orbax, TFDS and Grain use too.

Writes. :func:`write_bytes_atomic` / :func:`write_text_atomic` / :func:`write_json` make a
file appear whole or not at all: locally by writing a temporary file beside it and renaming
it over the target (``os.replace`` is atomic on a POSIX filesystem); on object storage by
one upload, since an object is created whole or not at all and a rename there would be a
copy and a delete. Multi-file outputs (clip shards, checkpoints) are written first and
committed last by a small marker file that readers require (``metadata.json`` for shards,
``manifest.json`` and the completion marker for workdirs; Orbax does the same for its
checkpoint steps), so a reader never takes a half-written set for a finished one.

JSON is written strictly: ``NaN`` and infinities become the strings ``"nan"``, ``"inf"``
and ``"-inf"`` (bare ``NaN`` / ``Infinity`` are not JSON and other readers refuse them).
"""

from __future__ import annotations

import json
import math
import os
import uuid
from typing import Any

from etils import epath

PathLike = str | os.PathLike


def as_path(path: PathLike) -> epath.Path:
    """A local path or an object-storage URI (``gs://bucket/dir``) as an ``epath.Path``."""
    return epath.Path(path)


def is_local(path: PathLike) -> bool:
    """Whether ``path`` is on a local (POSIX) filesystem rather than object storage."""
    return "://" not in os.fspath(path)


def write_bytes_atomic(path: PathLike, data: bytes) -> epath.Path:
    """Writes ``data`` so that ``path`` holds either its old content or all of ``data``."""
    path = as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not is_local(path):
        path.write_bytes(data)  # one object upload: whole or nothing
        return path
    temporary = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def write_text_atomic(path: PathLike, text: str) -> epath.Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``"nan"``, ``"inf"`` or ``"-inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def dumps_json(value: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``value`` (see the module docstring for non-finite floats)."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def write_json(path: PathLike, value: Any) -> epath.Path:
    """``value`` as strict, indented JSON, written atomically."""
    return write_text_atomic(path, dumps_json(value, indent=2) + "\n")


def read_json(path: PathLike) -> Any:
    return json.loads(as_path(path).read_text())
