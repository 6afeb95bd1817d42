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
``dataset_info.json`` for a dataset build, ``manifest.json`` and the completion marker for
workdirs; Orbax does the same for its checkpoint steps on ``gs://``, with
``commit_success.txt``), so a reader never takes a half-written set for a finished one.
Writers that need a local file (ArrayRecord's C++ writer, TFDS's builder) write into
:func:`staging_dir`, a local temporary folder whose files are uploaded with the marker last.
A directory rename is atomic locally and is used there; on object storage it would be a
copy and a delete, so the code never relies on one there.

Inputs read by OpenCV or PyAV (raw frames and videos under ``--manual-dir``, VoxCeleb
trees) and config files stay local paths.

JSON is written strictly: ``NaN`` and infinities become the strings ``"nan"``, ``"inf"``
and ``"-inf"`` (bare ``NaN`` / ``Infinity`` are not JSON and other readers refuse them).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import uuid
from typing import Any, Iterator, Sequence

from etils import epath

PathLike = str | os.PathLike


def as_path(path: PathLike) -> epath.Path:
    """A local path or an object-storage URI (``gs://bucket/dir``) as an ``epath.Path``."""
    return epath.Path(path)


def is_local(path: PathLike) -> bool:
    """Whether ``path`` is on a local (POSIX) filesystem rather than object storage."""
    return "://" not in os.fspath(path)


def absolute(path: PathLike) -> str:
    """``path`` as recorded in a manifest or a cache: a local path made absolute (readers
    elsewhere on the machine find it), a URI as it is."""
    return os.path.realpath(path) if is_local(path) else os.fspath(as_path(path))


def rmtree(path: PathLike) -> None:
    """Removes a directory and everything under it, if it is there."""
    path = as_path(path)
    if path.exists():
        path.rmtree()


def copy_tree(source: PathLike, target: PathLike, *, last: Sequence[str] = ()) -> None:
    """Copies every file under ``source`` to the same place under ``target`` (either may be
    local or remote); the files named in ``last`` (relative paths) are copied after all
    others, in that order: they are the markers that say the set is whole."""
    source, target = as_path(source), as_path(target)
    files = relative_files(source)
    for relative in [f for f in files if f not in last] + [f for f in last if f in files]:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        # Streamed (shards can be large); an object still appears only when it is closed.
        with (source / relative).open("rb") as reader, destination.open("wb") as writer:
            shutil.copyfileobj(reader, writer, 16 << 20)


def relative_files(directory: PathLike) -> list[str]:
    """Every file under ``directory``, as sorted paths relative to it."""
    directory = as_path(directory)
    found = []
    # iterdir, not walk: epath's walk yields remote roots without their gs:// prefix.
    for child in directory.iterdir():
        if child.is_dir():
            found += [f"{child.name}/{name}" for name in relative_files(child)]
        else:
            found.append(child.name)
    return sorted(found)


@contextlib.contextmanager
def staging_dir(target: PathLike, *, last: Sequence[str] = ()) -> Iterator[epath.Path]:
    """A local directory to write ``target``'s files into, for writers that need local
    files. For a local ``target`` it is ``target`` itself; for a remote one it is a fresh
    temporary folder whose files are uploaded to ``target`` (``last`` at the end, see
    :func:`copy_tree`) when the block succeeds, and which is removed either way."""
    if is_local(target):
        yield as_path(target)
        return
    with tempfile.TemporaryDirectory(prefix="dface-staging-") as local:
        yield as_path(local)
        copy_tree(local, target, last=last)


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
