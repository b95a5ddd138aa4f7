"""What a restore reads from a repository: the small interface the restorer takes.

Any object with these members will do; ``snapvault.Repository`` has them. A restore reads
nothing else: not the store, the keys nor the key layout directly.
"""

from __future__ import annotations

from typing import Protocol

from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import BlobLocation, Index
from snapvault.pipeline.tree import Node
from snapvault.repository.manifest import Manifest

__all__ = ["PackSource", "RestoreSource", "SnapshotSource"]


class SnapshotSource(Protocol):
    """Snapshots and their trees: what picking and planning a restore read."""

    def resolve(self, ref: str) -> Manifest:
        """The snapshot a full ID, unique prefix or ``latest`` names."""
        ...

    def snapshots(self) -> list[Manifest]:
        """Every snapshot's manifest, oldest first."""
        ...

    def read_tree(self, tree_id: str) -> list[Node]:
        """The verified entries of a tree blob (hex ID)."""
        ...

    def refresh_index(self) -> Index:
        """Load the index files written since the index was loaded."""
        ...


class PackSource(Protocol):
    """Blobs in packs: what reading a file's data uses."""

    @property
    def pack_size(self) -> int:
        """Target size of a pack in bytes."""
        ...

    @property
    def spool_dir(self) -> str | None:
        """Set when the packs are local files (reads are cheap); None on an object store."""
        ...

    def locate(self, bid: bytes) -> BlobLocation:
        """Where a blob is stored; :class:`~snapvault.errors.IntegrityError` if not indexed."""
        ...

    def read_pack_range(self, pack_id: bytes, offset: int, length: int) -> bytes:
        """``length`` bytes of a pack from ``offset`` (fewer at its end)."""
        ...

    def open_blob(
        self, btype: BlobType, bid: bytes, sealed: bytes | memoryview, raw_length: int | None = None
    ) -> bytes:
        """Unseal, decompress and verify a sealed blob; IntegrityError if it fails."""
        ...

    def blob_id(self, data: bytes | memoryview) -> bytes:
        """The repository's keyed content ID of ``data`` (a resumed restore compares with it)."""
        ...


class RestoreSource(SnapshotSource, PackSource, Protocol):
    """Everything a :class:`~snapvault.restore.restorer.Restorer` reads from a repository."""
