"""The store over an fsspec filesystem, and the mapping of backend errors into ours."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from snapvault.errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigError,
    ObjectNotFound,
    StorageError,
    TransientStorageError,
)
from snapvault.storage.base import Capabilities, StoreEntry

__all__ = ["FsspecStore", "map_errors", "open_store"]

_MEMORY_LOCK = threading.Lock()

#: Prefix of temporary files in a local repository; never a repository object.
TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def map_errors(key: str | None, url: str) -> Iterator[None]:
    """Translate whatever a backend raises into a :class:`StorageError` subclass."""
    where = f"{url}/{key}" if key else url
    try:
        yield
    except StorageError:
        raise
    except (FileNotFoundError, NotADirectoryError) as e:
        # A path component that is a file means the object cannot exist either.
        raise ObjectNotFound(f"not found: {where}", key=key) from e
    except PermissionError as e:
        raise AccessDenied(f"access denied: {where}", key=key) from e
    except ConnectionRefusedError as e:
        raise BackendUnavailable(f"cannot reach {where}: {e}", key=key) from e
    except (ConnectionError, TimeoutError) as e:
        raise TransientStorageError(f"connection problem at {where}: {e}", key=key) from e
    except OSError as e:
        if e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
            raise BackendUnavailable(f"cannot reach {where}: {e}", key=key) from e
        raise StorageError(f"storage error at {where}: {e}", key=key) from e


class FsspecStore:
    """A :class:`~snapvault.storage.Store` over an fsspec filesystem rooted at ``root``.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        The filesystem; its listing cache should be off (``use_listings_cache=False``).
    root : str
        The repository's folder within ``fs``.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/") if root not in ("/", "") else root
        self._local = isinstance(fs, LocalFileSystem)
        proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._url = self.root if self._local else f"{proto}://{self.root.lstrip('/')}"
        self._memory = proto == "memory"
        self._caps = Capabilities(atomic_create=self._local or self._memory)
        self._made_dirs: set[str] = set()

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def url(self) -> str:
        return self._url

    def _path(self, key: str) -> str:
        # Keys come from the repository layer, but a bad one must fail here, typed, rather
        # than reach a backend that might interpret it (NUL, "..", absolute).
        if not key or "\0" in key or key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"invalid object key {key!r}", key=key)
        return f"{self.root}/{key}" if self.root else key

    def get(self, key: str) -> bytes:
        with map_errors(key, self._url):
            data: bytes = self.fs.cat_file(self._path(key))
            return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        with map_errors(key, self._url):
            if self._local:
                with open(self._path(key), "rb") as f:
                    f.seek(offset)
                    return f.read(length)
            data: bytes = self.fs.cat_file(self._path(key), start=offset, end=offset + length)
            return data

    def size(self, key: str) -> int:
        with map_errors(key, self._url):
            return int(self.fs.size(self._path(key)))

    def exists(self, key: str) -> bool:
        with map_errors(key, self._url):
            return bool(self.fs.exists(self._path(key)))

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        with map_errors(key, self._url):
            if self._local:
                return self._put_local(self._path(key), data)
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

    def _put_local(self, path: str, data: bytes | bytearray) -> bool:
        # fsspec's local "create" checks then writes; a crash could leave a torn object under
        # its final name. Write a temporary file, fsync it, then link it into place: link fails
        # if the name exists, so exactly one writer wins and readers see whole objects only.
        folder = os.path.dirname(path)
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        tmp = os.path.join(folder, TMP_PREFIX + secrets.token_hex(8))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            # The folder was removed since we made it (a prune, another process); make it again.
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        prefix = prefix.strip("/")
        base = self._path(prefix) if prefix else self.root
        with map_errors(prefix, self._url):
            if self._local:
                yield from self._list_local(base)
                return
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

    def _list_local(self, base: str) -> Iterator[StoreEntry]:
        # os.scandir avoids fsspec's per-file info dicts; repositories hold many packs.
        cut = len(self.root) + 1
        stack = [base]
        while stack:
            d = stack.pop()
            try:
                it = os.scandir(d)
            except FileNotFoundError:
                continue
            with it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif not e.name.startswith(TMP_PREFIX):
                        yield StoreEntry(e.path[cut:], e.stat(follow_symlinks=False).st_size)

    def delete(self, key: str) -> None:
        with map_errors(key, self._url):
            if not self.fs.exists(self._path(key)):
                raise FileNotFoundError(key)
            self.fs.rm_file(self._path(key))


def open_store(
    location: str,
    *,
    fs: fsspec.AbstractFileSystem | None = None,
    storage_options: dict[str, Any] | None = None,
) -> FsspecStore:
    """Open the store at a URL (with ``storage_options``) or at a path within ``fs``.

    Raises
    ------
    ConfigError
        If both ``fs`` and ``storage_options`` are given.
    """
    if fs is not None:
        if storage_options:
            raise ConfigError("pass storage_options or a filesystem instance, not both")
        root = location
        if isinstance(fs, LocalFileSystem):
            root = os.path.abspath(location)
        return FsspecStore(fs, root)
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
        root = os.path.abspath(root)
    return FsspecStore(filesystem, root)
