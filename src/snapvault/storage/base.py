"""The storage protocol every backend and wrapper implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = ["Capabilities", "Store", "StoreEntry"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend guarantees.

    Attributes
    ----------
    atomic_create : bool
        ``put_if_absent`` is atomic: of two concurrent writers of one key exactly one wins, and a
        reader never sees a partly written object. Where False, the store checks and then writes;
        that is safe for content-addressed objects (both writers hold the same bytes) but not
        for anything else.
    ranged_reads : bool
        ``get_range`` reads only the requested bytes.
    read_only : bool
        Writes are refused.
    spool_dir : str or None
        A local folder on the same filesystem as the objects, where a writer may build a large
        object in a file and hand it over with ``put_file_if_absent`` (no copy, no memory).
    """

    atomic_create: bool
    ranged_reads: bool = True
    read_only: bool = False
    spool_dir: str | None = None


class StoreEntry(NamedTuple):
    """A listed object: its key and size in bytes."""

    key: str
    size: int


@runtime_checkable
class Store(Protocol):
    """The narrow interface the repository uses. Raises only :mod:`snapvault.errors` types."""

    @property
    def capabilities(self) -> Capabilities:
        """What this store guarantees."""

    @property
    def url(self) -> str:
        """A human-readable location, without credentials."""

    def get(self, key: str) -> bytes:
        """Return the whole object."""

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset``; fewer only at the end of the object."""

    def size(self, key: str) -> int:
        """Return the object's size in bytes."""

    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        """Create the object; return False (and write nothing) if it already exists."""

    def put_file_if_absent(self, key: str, path: str) -> bool:
        """Create the object from the local file ``path`` (which is consumed: moved or deleted);
        return False if the object already exists."""

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        """Every object whose key starts with the folder ``prefix``, in no set order."""

    def delete(self, key: str) -> None:
        """Remove the object; a missing object raises ObjectNotFound."""
