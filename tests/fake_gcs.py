"""A fake Cloud Storage for tests: ``gs://BUCKET/NAME`` objects kept in a private local folder.

Three clients reach a bucket in dface-jax, and all three are pointed at the same folder:

- Python (``etils.epath``, and through it our code, Orbax's directory handling, Grain's
  iterator state and TFDS): epath sends ``gs://`` to fsspec's ``gs`` protocol;
  :class:`FakeGCSFileSystem` is registered for it (:func:`register`).
- Orbax's array data goes through tensorstore's ``gcs`` driver (C++), and ArrayRecord reads
  ``gs://`` files through riegeli's ``GcsReader`` (google-cloud-cpp). Both speak the GCS JSON
  API over HTTP; both take the endpoint from the environment (``TENSORSTORE_GCS_HTTP_URL``,
  ``CLOUD_STORAGE_EMULATOR_ENDPOINT``), so :class:`FakeGCSServer` serves that API on
  127.0.0.1 from the folder.

The folder keeps object-store semantics, not a filesystem's: names are flat (one file per
object, its name percent-encoded, so there are no directories: a "directory" exists while
some object's name starts with it), an object is replaced whole (written beside and renamed
over, so a reader never sees half of one), every write gets a new generation (conditional
writes, as tensorstore uses them, are honoured), a rename is a copy and a delete, and an
object cannot be appended to.

What this cannot reproduce: latency, eventual listing after a delete, authentication, HNS
buckets (Orbax asks the real API whether a bucket has a hierarchical namespace before it
deletes a step; :func:`register` answers "no", which is the default of a new bucket), and
the real network stacks' retries.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import fsspec
from fsspec.spec import AbstractFileSystem

ROOT_ENV = "DFACE_TEST_GCS_ROOT"
_counter = itertools.count()


class ObjectStore:
    """Objects of every bucket under ``root``: ``root/BUCKET/<percent-encoded name>``."""

    def __init__(self, root: str | os.PathLike):
        self.root = os.fspath(root)

    def _file(self, bucket: str, name: str) -> str:
        return os.path.join(self.root, bucket, urllib.parse.quote(name, safe=""))

    def get(self, bucket: str, name: str) -> tuple[bytes, int] | None:
        """(content, generation), or None."""
        path = self._file(bucket, name)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
                generation = os.fstat(handle.fileno()).st_mtime_ns
        except (FileNotFoundError, IsADirectoryError):
            return None
        return data, generation

    def generation(self, bucket: str, name: str) -> int | None:
        try:
            return os.stat(self._file(bucket, name)).st_mtime_ns
        except FileNotFoundError:
            return None

    def put(self, bucket: str, name: str, data: bytes) -> int:
        """Creates or replaces the object whole; returns its new generation."""
        if not name or name.startswith("/"):
            raise ValueError(f"bad object name {name!r}")
        folder = os.path.join(self.root, bucket)
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(self.root, f".upload-{os.getpid()}-{threading.get_ident()}-{next(_counter)}")
        with open(temporary, "wb") as handle:
            handle.write(data)
        # The generation is the file's mtime, set to a fresh value: a new one at every write.
        generation = time.time_ns() + next(_counter)
        os.utime(temporary, ns=(generation, generation))
        os.replace(temporary, self._file(bucket, name))
        return generation

    def delete(self, bucket: str, name: str) -> bool:
        try:
            os.unlink(self._file(bucket, name))
        except FileNotFoundError:
            return False
        return True

    def names(self, bucket: str, prefix: str = "") -> list[str]:
        folder = os.path.join(self.root, bucket)
        if not os.path.isdir(folder):
            return []
        names = (urllib.parse.unquote(f) for f in os.listdir(folder))
        return sorted(n for n in names if n.startswith(prefix))

    def buckets(self) -> list[str]:
        return sorted(b for b in os.listdir(self.root) if not b.startswith("."))


def split(path: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` (or ``bucket/a/b``) -> ("bucket", "a/b")."""
    path = re.sub(r"^(gs|gcs)://", "", os.fspath(path)).lstrip("/")
    bucket, _, name = path.partition("/")
    return bucket, name.rstrip("/")


# ---------------------------------------------------------------------------------------
# Python side: an fsspec filesystem for the gs:// protocol.


class _Upload(io.BytesIO):
    """A file open for writing: the object is created whole when it is closed."""

    def __init__(self, store: ObjectStore, bucket: str, name: str):
        super().__init__()
        self._target = (store, bucket, name)

    def close(self) -> None:
        if not self.closed:
            store, bucket, name = self._target
            store.put(bucket, name, self.getvalue())
        super().close()


class FakeGCSFileSystem(AbstractFileSystem):
    """fsspec's view of the fake buckets (what gcsfs would be on a real bucket)."""

    protocol = ("gs", "gcs")
    root_marker = ""
    cachable = False  # the folder comes from the environment at every call

    def __init__(self, *args, **kwargs):
        kwargs.pop("finalize_on_close", None)  # what etils passes to gcsfs
        super().__init__(*args, **kwargs)

    @property
    def store(self) -> ObjectStore:
        root = os.environ.get(ROOT_ENV)
        if not root:
            raise RuntimeError(f"fake GCS: {ROOT_ENV} is not set")
        return ObjectStore(root)

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        bucket, name = split(path)
        return f"{bucket}/{name}" if name else bucket

    def info(self, path, **kwargs):
        bucket, name = split(path)
        if not name:
            if os.path.isdir(os.path.join(self.store.root, bucket)):
                return {"name": bucket, "size": 0, "type": "directory"}
            raise FileNotFoundError(path)
        found = self.store.get(bucket, name)
        if found is not None:
            return {"name": f"{bucket}/{name}", "size": len(found[0]), "type": "file",
                    "generation": found[1], "mtime": found[1] / 1e9}
        if self.store.names(bucket, name + "/"):
            return {"name": f"{bucket}/{name}", "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def ls(self, path, detail=True, **kwargs):
        bucket, name = split(path)
        prefix = f"{name}/" if name else ""
        entries: dict[str, dict] = {}
        for full in self.store.names(bucket, prefix):
            rest = full[len(prefix):]
            if not rest:  # a placeholder object "dir/"
                continue
            head, slash, _ = rest.partition("/")
            child = f"{bucket}/{prefix}{head}"
            if slash:
                entries.setdefault(child, {"name": child, "size": 0, "type": "directory"})
            else:
                entries[child] = {"name": child, "size": len(self.store.get(bucket, full)[0]),
                                  "type": "file"}
        if not entries:
            found = self.store.get(bucket, name) if name else None
            if found is not None:
                entries[f"{bucket}/{name}"] = {"name": f"{bucket}/{name}",
                                               "size": len(found[0]), "type": "file"}
            elif not (not name and os.path.isdir(os.path.join(self.store.root, bucket))):
                raise FileNotFoundError(path)
        listed = sorted(entries.values(), key=lambda e: e["name"])
        return listed if detail else [e["name"] for e in listed]

    def _open(self, path, mode="rb", **kwargs):
        bucket, name = split(path)
        if "a" in mode or "+" in mode:
            raise NotImplementedError(f"fake GCS: mode {mode!r}: an object cannot be appended to")
        if "w" in mode or "x" in mode:
            return _Upload(self.store, bucket, name)
        found = self.store.get(bucket, name)
        if found is None:
            raise FileNotFoundError(path)
        return io.BytesIO(found[0])

    def cat_file(self, path, start=None, end=None, **kwargs):
        with self._open(path, "rb") as handle:
            return handle.read()[start:end]

    def pipe_file(self, path, value, **kwargs):
        self.store.put(*split(path), bytes(value))

    def cp_file(self, path1, path2, **kwargs):
        found = self.store.get(*split(path1))
        if found is None:
            if self.isdir(path1):
                return  # directories are implied by names: nothing to copy
            raise FileNotFoundError(path1)
        self.store.put(*split(path2), found[0])

    def _rm(self, path):
        bucket, name = split(path)
        if not self.store.delete(bucket, name) and not self.store.names(bucket, name + "/"):
            raise FileNotFoundError(path)

    def rm_file(self, path):
        self._rm(path)

    def rm(self, path, recursive=False, maxdepth=None):
        for one in ([path] if isinstance(path, str) else path):
            bucket, name = split(one)
            if recursive:
                names = self.store.names(bucket, name + "/")
                deleted = [self.store.delete(bucket, n) for n in names]
                if not self.store.delete(bucket, name) and not deleted:
                    raise FileNotFoundError(one)
            else:
                self._rm(one)

    def mkdir(self, path, create_parents=True, **kwargs):
        bucket, _ = split(path)
        os.makedirs(os.path.join(self.store.root, bucket), exist_ok=True)  # the bucket exists

    def makedirs(self, path, exist_ok=False):
        self.mkdir(path)

    def rmdir(self, path):
        pass  # no directories to remove

    def mv(self, path1, path2, recursive=False, maxdepth=None, **kwargs):
        """A rename on object storage: copy every object, then delete the originals."""
        bucket1, name1 = split(path1)
        bucket2, name2 = split(path2)
        moves = [(name1, name2)] if self.store.get(bucket1, name1) is not None else []
        moves += [(n, name2 + n[len(name1):]) for n in self.store.names(bucket1, name1 + "/")]
        if not moves:
            raise FileNotFoundError(path1)
        for old, new in moves:
            self.store.put(bucket2, new, self.store.get(bucket1, old)[0])
        for old, _ in moves:
            self.store.delete(bucket1, old)

    rename = mv

    def modified(self, path):
        import datetime
        return datetime.datetime.fromtimestamp(self.info(path)["mtime"])


def register() -> None:
    """Makes ``gs://`` paths of this process go to the fake buckets (``ROOT_ENV`` names the
    folder): fsspec's gs/gcs protocols, epath's cached filesystem, and Orbax's question
    whether a bucket has a hierarchical namespace (it asks the real API; the answer is no)."""
    from etils.epath import backend
    from orbax.checkpoint._src.path import gcs_utils

    for protocol in FakeGCSFileSystem.protocol:
        fsspec.register_implementation(protocol, FakeGCSFileSystem, clobber=True)
    backend.fsspec_backend._get_filesystem.cache_clear()
    gcs_utils.is_hierarchical_namespace_enabled = _no_hierarchical_namespace


def _no_hierarchical_namespace(path) -> bool:
    return False


# ---------------------------------------------------------------------------------------
# C++ side: the GCS JSON API on 127.0.0.1 for tensorstore and google-cloud-cpp.


def _metadata(bucket: str, name: str, data: bytes, generation: int) -> dict:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(generation / 1e9))
    return {"kind": "storage#object", "id": f"{bucket}/{name}/{generation}", "name": name,
            "bucket": bucket, "size": str(len(data)), "generation": str(generation),
            "metageneration": "1", "contentType": "application/octet-stream",
            "timeCreated": stamp, "updated": stamp, "storageClass": "STANDARD"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: ObjectStore  # set by FakeGCSServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"code": status, "message": message}})

    def _parse(self) -> tuple[list[str], dict[str, str]]:
        parsed = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        return parsed.path.split("/"), query

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _preconditions(self, query: dict, generation: int | None, reading: bool) -> bool:
        """False (and an answer sent) when an if*Match condition fails."""
        current = 0 if generation is None else generation
        if "ifGenerationMatch" in query and int(query["ifGenerationMatch"]) != current:
            self._error(412, "precondition failed")
            return False
        if "ifGenerationNotMatch" in query and int(query["ifGenerationNotMatch"]) == current:
            if reading:
                self._send(304, headers={"x-goog-generation": str(current)})
            else:
                self._error(412, "precondition failed")
            return False
        return True

    # -- objects: /storage/v1/b/BUCKET/o[/NAME], /upload/storage/v1/b/BUCKET/o

    def do_GET(self) -> None:
        parts, query = self._parse()
        if parts[1:4] == ["storage", "v1", "b"] and len(parts) >= 6 and parts[5] == "o":
            bucket = urllib.parse.unquote(parts[4])
            if len(parts) == 6 or (len(parts) == 7 and parts[6] == ""):
                return self._list(bucket, query)
            return self._read(bucket, urllib.parse.unquote("/".join(parts[6:])), query)
        if parts[1:4] == ["storage", "v1", "b"] and len(parts) == 5:
            return self._json(200, {"kind": "storage#bucket", "name": parts[4]})
        self._error(404, f"fake GCS: no route for GET {self.path}")

    do_HEAD = do_GET

    def _read(self, bucket: str, name: str, query: dict) -> None:
        found = self.store.get(bucket, name)
        if found is None:
            if "ifGenerationMatch" in query and query["ifGenerationMatch"] == "0":
                return self._error(412, "precondition failed")
            return self._error(404, f"No such object: {bucket}/{name}")
        data, generation = found
        if not self._preconditions(query, generation, reading=True):
            return
        if query.get("alt") != "media":
            return self._json(200, _metadata(bucket, name, data, generation))
        headers = {"x-goog-generation": str(generation), "x-goog-metageneration": "1",
                   "x-goog-stored-content-length": str(len(data)),
                   "x-goog-stored-content-encoding": "identity"}
        wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if wanted is None:
            return self._send(200, data, headers, "application/octet-stream")
        first, last = wanted.groups()
        if first == "":  # the last N bytes
            start, stop = max(0, len(data) - int(last)), len(data)
        else:
            start, stop = int(first), len(data) if last == "" else min(len(data), int(last) + 1)
        if start >= len(data) and len(data) > 0 or (start > 0 and start >= len(data)):
            return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}", **headers})
        headers["Content-Range"] = f"bytes {start}-{max(start, stop - 1)}/{len(data)}"
        self._send(206, data[start:stop], headers, "application/octet-stream")

    def _list(self, bucket: str, query: dict) -> None:
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        names = [n for n in self.store.names(bucket, prefix)
                 if n >= query.get("startOffset", "")
                 and (not query.get("endOffset") or n < query["endOffset"])
                 and n > query.get("pageToken", "")]
        items, prefixes = [], set()
        for name in names:
            rest = name[len(prefix):]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
                continue
            found = self.store.get(bucket, name)
            if found is not None:
                items.append(_metadata(bucket, name, *found))
        answer = {"kind": "storage#objects", "items": items}
        if prefixes:
            answer["prefixes"] = sorted(prefixes)
        self._json(200, answer)

    def do_DELETE(self) -> None:
        parts, query = self._parse()
        if parts[1:4] != ["storage", "v1", "b"] or len(parts) < 7 or parts[5] != "o":
            return self._error(404, f"fake GCS: no route for DELETE {self.path}")
        bucket, name = urllib.parse.unquote(parts[4]), urllib.parse.unquote("/".join(parts[6:]))
        generation = self.store.generation(bucket, name)
        if generation is None:
            return self._error(404, f"No such object: {bucket}/{name}")
        if not self._preconditions(query, generation, reading=False):
            return
        self.store.delete(bucket, name)
        self._send(204)

    def do_POST(self) -> None:
        parts, query = self._parse()
        body = self._body()
        if parts[1:5] == ["upload", "storage", "v1", "b"] and len(parts) >= 7 and parts[6] == "o":
            if query.get("uploadType", "media") != "media":
                return self._error(400, f"fake GCS: uploadType {query.get('uploadType')} not served")
            bucket, name = urllib.parse.unquote(parts[5]), query["name"]
            if not self._preconditions(query, self.store.generation(bucket, name), reading=False):
                return
            generation = self.store.put(bucket, name, body)
            return self._json(200, _metadata(bucket, name, body, generation))
        self._error(404, f"fake GCS: no route for POST {self.path}")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client killed mid-request (the SIGKILL test) resets its connection


class FakeGCSServer:
    """The GCS JSON API for ``store`` on 127.0.0.1 (a free port), in a daemon thread."""

    def __init__(self, store: ObjectStore):
        handler = type("Handler", (_Handler,), {"store": store})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeGCSServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def environment(root: str | os.PathLike, url: str) -> dict[str, str]:
    """What a process needs to reach the fake buckets (a subprocess also calls
    :func:`register`)."""
    return {ROOT_ENV: os.fspath(root), "TENSORSTORE_GCS_HTTP_URL": url,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake-token",
            "CLOUD_STORAGE_EMULATOR_ENDPOINT": url}


@contextlib.contextmanager
def fake_gcs(root: str | os.PathLike) -> Iterator[FakeGCSServer]:
    """Serves the buckets under ``root`` and points this process's gs:// clients at them."""
    from orbax.checkpoint._src.path import gcs_utils

    os.makedirs(root, exist_ok=True)
    with FakeGCSServer(ObjectStore(root)) as server:
        saved = {key: os.environ.get(key) for key in environment(root, server.url)}
        hns = gcs_utils.is_hierarchical_namespace_enabled
        os.environ.update(environment(root, server.url))
        register()
        try:
            yield server
        finally:
            gcs_utils.is_hierarchical_namespace_enabled = hns
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
