"""Storage: one narrow interface over fsspec, with errors mapped at its boundary.

Nouns
-----
Store
    What the repository needs of a backend: ``get``, ``get_range``, ``size``,
    ``put_if_absent``, ``list``, ``delete``, ``exists`` and ``capabilities``. Keys are
    ``/``-separated paths relative to the repository root.
FsspecStore
    The store over any fsspec filesystem (local folder, memory, S3, GCS, Azure).
Wrappers
    Stores that wrap a store: :class:`RetryingStore` (backoff with jitter on transient errors;
    object stores get it by default), :class:`ReadOnlyStore`, and :class:`FaultyStore` for
    tests that inject failures through the interface instead of patching internals.
"""

from snapvault.storage.base import Capabilities, Store, StoreEntry
from snapvault.storage.fsspec_store import FsspecStore, open_store
from snapvault.storage.wrappers import FaultyStore, ReadOnlyStore, RetryingStore

__all__ = [
    "Capabilities",
    "FaultyStore",
    "FsspecStore",
    "ReadOnlyStore",
    "RetryingStore",
    "Store",
    "StoreEntry",
    "open_store",
]
