"""One writer per run directory: a lock file holding who writes it.

The lock is ``WORKDIR/.lock`` with ``{"pid", "host", "command", "token"}``. Locally it is
created with ``O_CREAT | O_EXCL``, which the filesystem makes atomic: of two runs started
at once on one workdir, exactly one gets it. A lock left by a process that is gone (same
host, pid no longer alive: a killed run) is taken over; a lock of a live process, or of
another host (whose processes we cannot see), refuses the second run with a message naming
the holder and the file to delete if that holder is known to be gone.

On object storage (``gs://``) there is no exclusive create through ``epath``: the lock is
written, read back after a pause, and kept only if it still holds our token. Two runs
started within that pause on one bucket directory could both proceed; pod jobs are started
once per slice, so this is the window that matters there, and it is documented rather than
hidden. The hosts of a preempted slice are gone and a new slice runs on other hosts, so
there a lock is a lease: its holder rewrites it (``renewed``) every quarter of
``LEASE_SECONDS``, and a lock not renewed for ``LEASE_SECONDS`` (or one of a dead process on
this host) is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from typing import Iterator

from data_pipelines import storage
from data_pipelines.errors import InputError

LOCK_FILE = ".lock"
OBJECT_STORE_SETTLE_SECONDS = 2.0
LEASE_SECONDS = 120.0  # object storage: a lock not renewed for this long is a gone run's


class WorkdirLockedError(InputError, RuntimeError):
    """Another run holds the workdir's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(text: str) -> dict:
    try:
        holder = json.loads(text)
        return holder if isinstance(holder, dict) else {}
    except json.JSONDecodeError:  # torn by a kill while it was written
        return {}


def _refuse(lock, holder: dict) -> None:
    raise WorkdirLockedError(
        f"{lock.parent} is in use by `dface-jax {holder.get('command', '?')}` (pid "
        f"{holder.get('pid', '?')} on {holder.get('host', '?')}); wait for it, or delete "
        f"{lock} if that process is gone")


def _take_local(lock, record: str) -> None:
    for _ in range(3):
        try:
            descriptor = os.open(os.fspath(lock), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _holder(lock.read_text() if lock.exists() else "")
            same_host = holder.get("host") == socket.gethostname()
            if holder and (not same_host or _alive(int(holder.get("pid", -1)))):
                _refuse(lock, holder)
            lock.unlink(missing_ok=True)  # stale (its process is gone) or torn: take it over
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(record)
        return
    raise WorkdirLockedError(f"{lock}: could not take the lock; another run keeps taking it")


def _lease_over(holder: dict) -> bool:
    """Whether an object-storage lock belongs to a run that is gone."""
    if holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", -1))):
        return True
    return time.time() - float(holder.get("renewed", 0)) > LEASE_SECONDS


def _take_object_store(lock, record: str, token: str) -> None:
    if lock.exists():
        holder = _holder(lock.read_text())
        if holder and not _lease_over(holder):
            _refuse(lock, holder)
    lock.write_text(record)
    time.sleep(OBJECT_STORE_SETTLE_SECONDS)
    holder = _holder(lock.read_text())
    if holder.get("token") != token:
        _refuse(lock, holder)


@contextlib.contextmanager
def hold(directory: storage.PathLike, command: str) -> Iterator[None]:
    """Holds ``directory/.lock`` while the block runs (see the module docstring)."""
    directory = storage.as_path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / LOCK_FILE
    token = uuid.uuid4().hex

    def record() -> str:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "command": command, "token": token, "renewed": time.time()})

    stop = threading.Event()
    renewer = None
    if storage.is_local(lock):
        _take_local(lock, record())
    else:
        _take_object_store(lock, record(), token)
        renewer = threading.Thread(target=_renew, args=(lock, record, token, stop), daemon=True)
        renewer.start()
    try:
        yield
    finally:
        stop.set()
        if renewer is not None:
            renewer.join()
        if lock.exists() and _holder(lock.read_text()).get("token") == token:
            lock.unlink()


def _renew(lock, record, token: str, stop: threading.Event) -> None:
    """Rewrites an object-storage lock every quarter lease while it is still ours."""
    while not stop.wait(LEASE_SECONDS / 4):
        if _holder(lock.read_text() if lock.exists() else "").get("token") != token:
            return
        lock.write_text(record())
