"""Storage: one narrow interface over local folders and fsspec, with errors mapped at its boundary.

Nouns
-----
Store
    What the repository needs of a backend: ``get``, ``get_range``, ``size``,
    ``put_if_absent``, ``list``, ``delete``, ``exists`` and ``capabilities``. Keys are
    ``/``-separated paths relative to the repository root.
LocalStore
    The store in a local folder, on ``os`` calls (fsspec is not imported for it).
FsspecStore
    The store over any other fsspec filesystem (memory, S3, GCS, Azure).
Wrappers
    Stores that wrap a store: :class:`RetryingStore` (backoff with jitter on transient errors;
    object stores get it by default), :class:`ReadOnlyStore`, and :class:`FaultyStore` for
    tests that inject failures through the interface instead of patching internals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snapvault.storage.base import Capabilities, Store, StoreEntry
from snapvault.storage.local_store import LocalStore
from snapvault.storage.wrappers import FaultyStore, ReadOnlyStore, RetryingStore

if TYPE_CHECKING:
    import fsspec

    from snapvault.storage.fsspec_store import FsspecStore

__all__ = [
    "Capabilities",
    "FaultyStore",
    "FsspecStore",
    "LocalStore",
    "ReadOnlyStore",
    "RetryingStore",
    "Store",
    "StoreEntry",
    "open_store",
]


def open_store(
    location: str,
    *,
    fs: fsspec.AbstractFileSystem | None = None,
    storage_options: dict[str, Any] | None = None,
    retries: int = 6,
) -> Store:
    """Open the store at a URL (with ``storage_options``) or at a path within ``fs``.

    A plain path or a ``file://`` URL without storage options is a :class:`LocalStore`; every
    other location goes through fsspec. For object stores (``s3://``, ``gs://``, ``az://``,
    ``abfs://``) the bucket must exist: BucketNotFound otherwise. They are wrapped in a
    :class:`RetryingStore` with ``retries`` attempts (1 turns retries off).

    Raises
    ------
    ConfigError
        If both ``fs`` and ``storage_options`` are given, or no fsspec filesystem serves the
        location's protocol.
    """
    if fs is None and not storage_options:
        path = location[len("file://") :] if location.startswith("file://") else location
        if "://" not in path and "::" not in path:
            return LocalStore(path)
    from snapvault.storage.fsspec_store import open_fsspec_store

    return open_fsspec_store(location, fs=fs, storage_options=storage_options, retries=retries)


def __getattr__(name: str) -> Any:
    # FsspecStore imports fsspec (tens of milliseconds); local repositories never need it.
    if name == "FsspecStore":
        from snapvault.storage.fsspec_store import FsspecStore

        return FsspecStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
