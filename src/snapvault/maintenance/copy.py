"""Copying snapshots between repositories: the replication primitive for 3-2-1 setups.

Only blobs the destination lacks are uploaded. When both repositories share their content
parameters (``Repository.init(..., copy_params_from=src)``) blob IDs are equal, trees are copied
as they are, and the destination deduplicates the copied data against its own backups. Otherwise
every blob is decrypted, verified, given its destination ID and re-encrypted, and trees are
rewritten to the new IDs. A copied manifest records ``copied_from`` (the original's ID, also for
a copy of a copy); a snapshot already copied (or the original of a copy present) is
skipped, so a second run after a complete one transfers nothing, and a run after an interruption
uploads only what is missing (packs that landed were indexed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from snapvault.archiver.progress import Meter
from snapvault.archiver.sink import BlobSink, SinkRepository
from snapvault.errors import JobCancelled
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import Index
from snapvault.pipeline.tree import Node, encode_tree
from snapvault.repository.lifecycle import CommitRepository, WriterSession, check_before_commit
from snapvault.repository.manifest import Manifest

__all__ = ["CopyDestination", "CopyResult", "CopySource", "copy_snapshots"]


class CopySource(Protocol):
    """What a copy reads from the source repository."""

    @property
    def content_id_fingerprint(self) -> bytes:
        """Equal in two repositories exactly when they give data the same blob IDs."""
        ...

    def snapshots(self) -> list[Manifest]:
        """Every snapshot's manifest, oldest first."""
        ...

    def resolve(self, ref: str) -> Manifest:
        """Find a snapshot by ID, prefix or ``latest``."""
        ...

    def read_blob(self, bid: bytes, btype: BlobType | None = None) -> bytes:
        """Fetch, decrypt and verify one blob."""
        ...

    def read_tree(self, tree_id: str) -> list[Node]:
        """Fetch and parse a tree blob."""
        ...

    def refresh_index(self) -> Index:
        """Load the index files written since the index was loaded."""
        ...


class CopyDestination(SinkRepository, CommitRepository, Protocol):
    """What a copy writes into the destination: blobs through the archiver's sink, then
    manifests, as a writer prunes of the destination can see."""

    def writer_session(
        self, *, writer_id: str | None = None, host: str = "", clock: Callable[[], datetime] | None = None
    ) -> WriterSession:
        """Announce this writer and load the index as it stands."""
        ...

    @property
    def content_id_fingerprint(self) -> bytes:
        """Equal in two repositories exactly when they give data the same blob IDs."""
        ...

    def snapshots(self) -> list[Manifest]:
        """Every snapshot's manifest, oldest first."""
        ...

    def snapshot_ids(self) -> list[str]:
        """IDs of every snapshot."""
        ...

    def save_manifest(self, manifest: Manifest) -> Manifest:
        """Write a manifest and return it with its ID."""
        ...


@dataclass
class CopyResult:
    """What a copy did."""

    copied: list[tuple[str, str]] = field(default_factory=list)  # (source ID, destination ID)
    skipped: list[str] = field(default_factory=list)  # source IDs already in the destination
    blobs_uploaded: int = 0
    bytes_uploaded: int = 0


class _Copier:
    def __init__(
        self,
        src: CopySource,
        dst: CopyDestination,
        sink: BlobSink,
        should_stop: Callable[[], bool] | None,
        meter: Meter,
    ) -> None:
        self.src = src
        self.dst = dst
        self.sink = sink
        self.same_ids = src.content_id_fingerprint == dst.content_id_fingerprint
        self.trees: dict[str, str] = {}
        # The file bytes below each tree copied, counted again when a later snapshot of the
        # same run shares the tree (its recorded total counts them too).
        self.tree_bytes: dict[str, int] = {}
        self.blobs: dict[str, str] = {}
        self.should_stop = should_stop
        self.meter = meter

    def blob(self, hex_id: str) -> str:
        known = self.blobs.get(hex_id)
        if known is not None:
            return known
        bid = bytes.fromhex(hex_id)
        if self.same_ids and self.sink.has(bid):
            out = hex_id
        else:
            if self.should_stop is not None and self.should_stop():
                raise JobCancelled("copy cancelled; copied data is indexed for the next run")
            plain = self.src.read_blob(bid, BlobType.DATA)
            out = self.sink.add(BlobType.DATA, plain, bid if self.same_ids else None)[0].hex()
        self.blobs[hex_id] = out
        return out

    def tree(self, hex_id: str) -> str:
        known = self.trees.get(hex_id)
        if known is not None:
            self.meter.add(self.tree_bytes[hex_id])
            return known
        # Every tree is walked even when the destination has it: an interrupted run may have
        # landed a tree's pack before the packs of what it references.
        nodes = self.src.read_tree(hex_id)
        new_nodes = []
        nbytes = 0
        for n in nodes:
            if n.type == "dir" and n.subtree is not None:
                sub = n.subtree
                n = n._replace(subtree=self.tree(sub))
                nbytes += self.tree_bytes[sub]
            elif n.content:
                n = n._replace(content=tuple(self.blob(c) for c in n.content))
            if n.type == "file":
                self.meter.add(n.size)
                nbytes += n.size
            new_nodes.append(n)
        out = self.sink.add(BlobType.TREE, encode_tree(new_nodes))[0].hex()
        self.trees[hex_id] = out
        self.tree_bytes[hex_id] = nbytes
        return out


def copy_snapshots(
    src: CopySource,
    dst: CopyDestination,
    snapshots: Iterable[str | Manifest] | None = None,
    *,
    workers: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    callback: Any = None,
) -> CopyResult:
    """Copy snapshots (default: all) from ``src`` into ``dst``; see the module docstring.

    ``callback`` (an fsspec ``Callback``) counts the file bytes of the snapshots copied:
    ``set_size`` with the totals their manifests record (those already in ``dst`` are not
    counted) before the first is copied, ``relative_update`` as each file's data is in
    ``dst``; a size the manifests got wrong is set right when the copy completes, so then
    ``value == size``.

    Raises
    ------
    JobCancelled
        If ``should_stop`` asked to stop; what was uploaded is indexed and reused next time.
    """
    chosen = (
        src.snapshots() if snapshots is None else [s if isinstance(s, Manifest) else src.resolve(s) for s in snapshots]
    )
    # The source handle may have loaded its index before these snapshots were written.
    src.refresh_index()
    present = {m.copied_from for m in dst.snapshots() if m.copied_from} | set(dst.snapshot_ids())

    def there(m: Manifest) -> bool:
        # Present as itself, as a copy of it, or as the original it is a copy of: copies
        # between several repositories (a DR plan's sites, after a failover) never loop.
        return m.id in present or (m.copied_from is not None and m.copied_from in present)

    ordered = sorted(chosen, key=lambda x: (x.time, x.id))
    meter = Meter(callback)
    meter.size(sum(max(0, m.stats.total_bytes) for m in ordered if not there(m)))
    mapping: dict[str, str] = {}
    result = CopyResult()
    with dst.writer_session() as session, BlobSink(dst, workers=workers or os.cpu_count() or 2) as sink:
        copier = _Copier(src, dst, sink, should_stop, meter)
        for m in ordered:
            if there(m):
                result.skipped.append(m.id)
                continue
            try:
                tree = copier.tree(m.tree)
                sink.flush()
            except BaseException as e:
                sink.abandon(keep=isinstance(e, JobCancelled))
                raise
            parent = mapping.get(m.parent) if m.parent else None
            # A copy of a copy names the original, so that every repository recognises it.
            copy = m.model_copy(update={"tree": tree, "parent": parent, "copied_from": m.copied_from or m.id})
            check_before_commit(dst, session, tree)
            new = dst.save_manifest(copy)
            mapping[m.id] = new.id
            result.copied.append((m.id, new.id))
        result.blobs_uploaded = sink.stats.data_blobs_added + sink.stats.tree_blobs_added
        result.bytes_uploaded = sink.stats.bytes_stored
    meter.finish()
    return result
