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
    BucketNotFound,
    ConfigError,
    ObjectNotFound,
    SnapvaultError,
    StorageError,
    TransientStorageError,
)
from snapvault.storage.base import Capabilities, Store, StoreEntry
from snapvault.storage.wrappers import RetryingStore

__all__ = ["FsspecStore", "map_errors", "open_store"]

_MEMORY_LOCK = threading.Lock()

#: Prefix of temporary files in a local repository; never a repository object.
TMP_PREFIX = ".tmp-"


# HTTP statuses worth another try: throttling and server-side hiccups.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
# Error codes (S3 and friends) worth another try; S3's 409 ConditionalRequestConflict is a
# conditional write racing another one and succeeds when repeated.
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "ConditionalRequestConflict",
    "OperationAborted",
}
# Client-library exception class names meaning "the endpoint did not answer at all". Matched by
# name so that this module imports none of the optional cloud libraries.
_UNREACHABLE = {"EndpointConnectionError", "ServiceRequestError", "ClientConnectorError", "ConnectTimeoutError"}
_TIMEOUTS = {"ReadTimeoutError", "ServiceResponseError", "ServerTimeoutError", "ClientPayloadError"}
_AUTH = {"ClientAuthenticationError", "NoCredentialsError", "PartialCredentialsError", "RefreshError"}


def _status_and_code(e: BaseException) -> tuple[int | None, str]:
    status = getattr(e, "status_code", None) or getattr(e, "code", None) or getattr(e, "status", None)
    code = str(getattr(e, "error_code", "") or "")
    response = getattr(e, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        err = response.get("Error", {})
        code = code or str(err.get("Code", ""))
        status = status or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return (status if isinstance(status, int) else None), code


def classify(e: BaseException, key: str | None, where: str) -> StorageError:
    """The snapvault error for a backend exception (used by :func:`map_errors`)."""
    if isinstance(e, StorageError):
        return e
    name = type(e).__name__
    status, code = _status_and_code(e)
    if isinstance(e, ConnectionRefusedError) or name in _UNREACHABLE:
        return BackendUnavailable(f"cannot reach {where}: {_short(e)}", key=key)
    if isinstance(e, OSError) and e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return BackendUnavailable(f"cannot reach {where}: {_short(e)}", key=key)
    if code in ("NoSuchBucket", "ContainerNotFound") or "bucket does not exist" in str(e).lower():
        return BucketNotFound(f"bucket or container not found: {where}", key=key)
    if isinstance(e, (FileNotFoundError, NotADirectoryError)) or status == 404 or name == "ResourceNotFoundError":
        # A path component that is a file means the object cannot exist either.
        return ObjectNotFound(f"not found: {where}", key=key)
    if isinstance(e, PermissionError) or status in (401, 403) or name in _AUTH or code in ("AccessDenied",):
        return AccessDenied(f"access denied: {where}", key=key)
    if (
        isinstance(e, (ConnectionError, TimeoutError))
        or status in _TRANSIENT_STATUS
        or code in _TRANSIENT_CODES
        or name in _TIMEOUTS
    ):
        return TransientStorageError(f"transient failure at {where}: {_short(e)}", key=key)
    return StorageError(f"storage error at {where}: {_short(e)}", key=key)


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def map_errors(key: str | None, url: str) -> Iterator[None]:
    """Translate whatever a backend raises into a :class:`StorageError` subclass.

    Every exception except :class:`BaseException`-only ones (KeyboardInterrupt, SystemExit) is
    mapped: an unknown one becomes a plain :class:`StorageError`, so no backend error escapes
    the storage layer with a type the caller cannot know.
    """
    where = f"{url}/{key}" if key else url
    try:
        yield
    except SnapvaultError:
        raise
    except Exception as e:  # the boundary: everything below is the backend's
        raise classify(e, key, where) from e


class FsspecStore:
    """A :class:`~snapvault.storage.Store` over an fsspec filesystem rooted at ``root``.

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
        self._local = isinstance(fs, LocalFileSystem)
        proto = protocol or (fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0])
        self._url = self.root if self._local else f"{proto}://{self.root.lstrip('/')}"
        self._memory = proto == "memory"
        # Object stores whose fsspec driver sends a server-side precondition for
        # mode="create" (S3 If-None-Match, GCS ifGenerationMatch=0, Azure If-None-Match: *).
        # An S3-compatible server that ignores the header degrades to check-then-write, which
        # is still safe for content-addressed objects (both writers hold the same bytes).
        conditional = proto in ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
        self._caps = Capabilities(
            atomic_create=self._local or self._memory or conditional,
            spool_dir=os.path.join(self.root, "data") if self._local else None,
        )
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

    def put_file_if_absent(self, key: str, path: str) -> bool:
        try:
            with map_errors(key, self._url):
                if not self._local:
                    with open(path, "rb") as f:
                        return self.put_if_absent(key, f.read())
                final = self._path(key)
                os.makedirs(os.path.dirname(final), exist_ok=True)
                return _link_into_place(path, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _put_local(self, path: str, data: bytes | bytearray) -> bool:
        # fsspec's local "create" checks then writes; a crash could leave a torn object under
        # its final name. Write a temporary file, fsync it, then link it into place.
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
            return _link_into_place(tmp, path)
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


def _link_into_place(tmp: str, final: str) -> bool:
    """Hard-link a complete, fsynced file to its final name; False if the name exists.

    ``link`` fails on an existing name, so of two writers exactly one wins and no reader ever
    sees a partly written object. The folder is fsynced so the new name survives a crash.
    """
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    dfd = os.open(os.path.dirname(final), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return True


def open_store(
    location: str,
    *,
    fs: fsspec.AbstractFileSystem | None = None,
    storage_options: dict[str, Any] | None = None,
    retries: int = 6,
) -> Store:
    """Open the store at a URL (with ``storage_options``) or at a path within ``fs``.

    For object stores (``s3://``, ``gs://``, ``az://``, ``abfs://``) the bucket must exist:
    BucketNotFound otherwise. They are wrapped in a :class:`RetryingStore` with ``retries``
    attempts (1 turns retries off).

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
        return FsspecStore(filesystem, os.path.abspath(root))
    scheme = location.split("://", 1)[0] if "://" in location else None
    store = FsspecStore(filesystem, root, protocol=scheme)
    if scheme in (None, "memory", "file"):
        return store
    # Object stores: a missing bucket is its own error, found before anything is written;
    # transient failures (throttling, resets) are retried with backoff.
    store.check_bucket()
    return RetryingStore(store, attempts=retries) if retries > 1 else store
