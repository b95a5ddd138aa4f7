"""The store over an fsspec filesystem (memory, S3, GCS, Azure and any other)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import fsspec

from snapvault.errors import BucketNotFound, ConfigError, ObjectNotFound, StorageError
from snapvault.storage.base import Capabilities, Store, StoreEntry
from snapvault.storage.errors import classify, map_errors
from snapvault.storage.local_store import TMP_PREFIX, LocalStore, check_key
from snapvault.storage.wrappers import RetryingStore

__all__ = ["FsspecStore", "classify", "map_errors", "open_fsspec_store"]

_MEMORY_LOCK = threading.Lock()


class FsspecStore:
    """A :class:`~snapvault.storage.Store` over an fsspec filesystem rooted at ``root``.

    Local folders get :class:`~snapvault.storage.LocalStore` from :func:`open_store`; over
    fsspec's local filesystem this class works too, but without atomic creation.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        The filesystem; its listing cache should be off (``use_listings_cache=False``).
    root : str
        The repository's folder within ``fs``.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, *, protocol: str | None = None) -> None:
        self.fs = fs
        self.root = root.rstrip("/") if root not in ("/", "") else root
        proto = protocol or (fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0])
        self._url = f"{proto}://{self.root.lstrip('/')}"
        self._memory = proto == "memory"
        # Object stores whose fsspec driver sends a server-side precondition for
        # mode="create" (S3 If-None-Match, GCS ifGenerationMatch=0, Azure If-None-Match: *).
        # An S3-compatible server that ignores the header degrades to check-then-write, which
        # is still safe for content-addressed objects (both writers hold the same bytes).
        conditional = proto in ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
        self._caps = Capabilities(atomic_create=self._memory or conditional)

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def url(self) -> str:
        return self._url

    def _path(self, key: str) -> str:
        check_key(key)
        return f"{self.root}/{key}" if self.root else key

    def get(self, key: str) -> bytes:
        with map_errors(key, self._url):
            data: bytes = self.fs.cat_file(self._path(key))
            return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        with map_errors(key, self._url):
            if length == 0:
                return b""
            path = self._path(key)
            try:
                data: bytes = self.fs.cat_file(path, start=offset, end=offset + length)
            except FileNotFoundError:
                raise
            except Exception:
                # Object stores answer a range that starts at or past the end with 416 (or
                # EINVAL); the store contract is a short (empty) read there.
                if offset >= self.fs.size(path):
                    return b""
                raise
            return data

    def size(self, key: str) -> int:
        with map_errors(key, self._url):
            return int(self.fs.size(self._path(key)))

    def exists(self, key: str) -> bool:
        with map_errors(key, self._url):
            return bool(self.fs.exists(self._path(key)))

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        with map_errors(key, self._url):
            path = self._path(key)
            try:
                # Remote clients and the memory filesystem may keep or inspect the buffer; give
                # them an immutable one.
                blob = bytes(data)
                if self._memory:
                    # fsspec's memory "create" checks then writes; the memory filesystem lives
                    # in this process, so one lock makes it atomic.
                    with _MEMORY_LOCK:
                        self.fs.pipe_file(path, blob, mode="create")
                else:
                    self.fs.pipe_file(path, blob, mode="create")
            except FileExistsError:
                # Only an existing object counts as "already there"; a parent that is an object
                # (or anything else) is an error, else a caller might believe data was stored.
                if self.fs.isfile(path):
                    return False
                raise StorageError(
                    f"cannot create {self._url}/{key}: a path component is in the way", key=key
                ) from None
            return True

    def put_file_if_absent(self, key: str, path: str) -> bool:
        try:
            with map_errors(key, self._url), open(path, "rb") as f:
                data = f.read()
            return self.put_if_absent(key, data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        prefix = prefix.strip("/")
        base = self._path(prefix) if prefix else self.root
        with map_errors(prefix, self._url):
            # A caller's filesystem instance may have listing caching on; never trust it.
            self.fs.invalidate_cache(base)
            try:
                found = self.fs.find(base, withdirs=False, detail=True)
            except FileNotFoundError:
                return
        root = self.root.strip("/")
        for path, info in found.items():
            name = path.rsplit("/", 1)[-1]
            if info.get("type") == "directory" or name.startswith(TMP_PREFIX):
                continue
            rel = path.strip("/")
            yield StoreEntry(rel[len(root) + 1 :] if root else rel, int(info.get("size") or 0))

    def temporaries(self, prefix: str) -> Iterator[tuple[str, float]]:
        """``(key, mtime)`` of each ``.tmp-*`` object under ``prefix`` (the backend's own time
        of the object: ``mtime``, ``LastModified``, ``last_modified``, ``updated``)."""
        prefix = prefix.strip("/")
        base = self._path(prefix) if prefix else self.root
        with map_errors(prefix, self._url):
            self.fs.invalidate_cache(base)
            try:
                found = self.fs.find(base, withdirs=False, detail=True)
            except FileNotFoundError:
                return
        root = self.root.strip("/")
        for path, info in found.items():
            name = path.rsplit("/", 1)[-1]
            if info.get("type") == "directory" or not name.startswith(TMP_PREFIX):
                continue
            when = _mtime(info)
            if when is not None:
                rel = path.strip("/")
                yield rel[len(root) + 1 :] if root else rel, when

    def check_bucket(self) -> None:
        """Raise BucketNotFound if the bucket (container) the root lives in does not exist."""
        bucket = self.root.strip("/").split("/", 1)[0]
        if not bucket:
            return
        try:
            with map_errors(None, self._url):
                # info, not exists: exists() answers False for a refused credential or an
                # unreachable endpoint too, which would then be reported as a missing bucket.
                self.fs.info(bucket)
        except ObjectNotFound:
            raise BucketNotFound(f"bucket or container {bucket!r} does not exist ({self._url})") from None

    def delete(self, key: str) -> None:
        with map_errors(key, self._url):
            if not self.fs.exists(self._path(key)):
                raise FileNotFoundError(key)
            self.fs.rm_file(self._path(key))


def open_fsspec_store(
    location: str,
    *,
    fs: fsspec.AbstractFileSystem | None = None,
    storage_options: dict[str, Any] | None = None,
    retries: int = 6,
) -> Store:
    """The fsspec half of :func:`snapvault.storage.open_store` (see there)."""
    from fsspec.implementations.local import LocalFileSystem

    if fs is not None:
        if storage_options:
            raise ConfigError("pass storage_options or a filesystem instance, not both")
        if isinstance(fs, LocalFileSystem):
            return LocalStore(location)
        return FsspecStore(fs, location)
    opts = dict(storage_options or {})
    # A stale listing would hide objects another writer just created.
    opts.setdefault("use_listings_cache", False)
    with map_errors(None, location):
        try:
            filesystem, root = fsspec.core.url_to_fs(location, **opts)
        except ImportError as e:
            proto = location.split("://", 1)[0]
            extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure"}.get(proto)
            hint = f"; install it with: pip install 'snapvault[{extra}]'" if extra else ""
            raise ConfigError(f"no filesystem for {proto}:// is installed{hint}") from e
        except (ValueError, TypeError) as e:
            raise ConfigError(f"cannot open {location}: {e}") from e
    if isinstance(filesystem, LocalFileSystem):
        return LocalStore(root)
    scheme = location.split("://", 1)[0] if "://" in location else None
    store = FsspecStore(filesystem, root, protocol=scheme)
    if scheme in (None, "memory", "file"):
        return store
    # Object stores: a missing bucket is its own error, found before anything is written;
    # transient failures (throttling, resets) are retried with backoff.
    store.check_bucket()
    return RetryingStore(store, attempts=retries) if retries > 1 else store


def _mtime(info: dict[str, Any]) -> float | None:
    """An object's modification time from an fsspec ``info`` dict, as a POSIX timestamp."""
    for field_name in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(field_name)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                t = datetime.fromisoformat(value.replace("Z", "+00:00"))
                return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
    return None
