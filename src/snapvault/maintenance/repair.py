"""Repair: rebuild the index from the packs, and write snapshots that leave lost data out.

Nouns
-----
Index repair
    :func:`repair_index` reads the header of every stored pack and writes index files that
    list exactly the packs whose headers authenticate; packs it cannot read (truncated,
    garbage, failing authentication) are listed in the result and left out. It then deletes
    the index files that existed when it started, and only those, so index files a backup
    writes meanwhile stay.
Snapshot repair
    :func:`repair_snapshots` finds the snapshots whose trees reference a blob that is *missing*
    (the index does not list it, or the pack it names is no longer stored) and writes a new
    snapshot for each: a file is truncated after its last chunk before the first missing one
    (removed if that is its first), a directory whose tree is missing or unreadable is
    removed, and every such path is listed in the new manifest's ``errors``. The new manifest
    copies the original's fields, adds the tag ``repaired`` and names the original as its
    ``parent``; the original stays unless ``forget_broken``.

Both take the smallest interface they use (:class:`RepairIndexRepository`,
:class:`RepairSnapshotsRepository`), like the rest of maintenance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from snapvault.errors import AppendOnlyError, ConfigError, IntegrityError, ObjectNotFound, SnapshotNotFound
from snapvault.pipeline.codecs import Codec
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import MAX_INDEX_ENTRIES, Index
from snapvault.pipeline.pack import MAX_PACK_BLOBS, PackEntry, PackWriter
from snapvault.pipeline.tree import Node, encode_tree
from snapvault.repository.lifecycle import CommitRepository, WriterSession, check_before_commit
from snapvault.repository.manifest import FileError, Manifest, cap_errors
from snapvault.repository.repo import PackBuilder

__all__ = [
    "REPAIRED_TAG",
    "RepairIndexRepository",
    "RepairIndexResult",
    "RepairSnapshotsRepository",
    "RepairSnapshotsResult",
    "RepairedPath",
    "SnapshotRepair",
    "repair_index",
    "repair_snapshots",
]

#: The tag every snapshot written by :func:`repair_snapshots` carries.
REPAIRED_TAG = "repaired"

_HEX = frozenset("0123456789abcdef")


# -- interfaces ------------------------------------------------------------------------------


class RepairIndexRepository(Protocol):
    """What rebuilding the index needs of a repository: its packs' headers, its index files,
    and the quarantine records that keep damaged packs out."""

    @property
    def append_only(self) -> bool:
        """Whether deleting is refused."""
        ...

    def index_files(self) -> list[str]:
        """Keys of every index file."""
        ...

    def packs(self) -> Iterator[tuple[str, int]]:
        """(hex pack ID, size) of every stored pack."""
        ...

    def stray_objects(self) -> list[str]:
        """Keys under ``data/`` not named like packs."""
        ...

    def read_pack_header(self, pack_id: bytes, size: int) -> list[PackEntry]:
        """Read, open and parse the header of a pack of ``size`` bytes."""
        ...

    def quarantined_packs(self) -> frozenset[bytes]:
        """Packs recorded as damaged."""
        ...

    def write_index(self, packs: Iterable[tuple[bytes, list[PackEntry]]]) -> str:
        """Write index files for ``packs``; return the last file's key."""
        ...

    def delete_key(self, key: str) -> None:
        """Delete one object (a missing one is fine)."""
        ...

    def refresh_index(self) -> Index:
        """Load the index files written since the index was loaded."""
        ...


class RepairSnapshotsRepository(CommitRepository, Protocol):
    """What repairing snapshots needs of a repository: its snapshots and trees, where each
    blob is, and somewhere to put new trees and manifests, as a writer a prune can see."""

    @property
    def append_only(self) -> bool:
        """Whether deleting is refused."""
        ...

    @property
    def pack_size(self) -> int:
        """Target size of a pack in bytes."""
        ...

    def writer_session(
        self, *, writer_id: str | None = None, host: str = "", clock: Callable[[], datetime] | None = None
    ) -> WriterSession:
        """Announce this writer and load the index as it stands."""
        ...

    def snapshot_ids(self) -> list[str]:
        """IDs of every snapshot."""
        ...

    def load_manifest(self, snapshot_id: str) -> Manifest:
        """Load one manifest."""
        ...

    def read_tree(self, tree_id: str) -> list[Node]:
        """Fetch and parse a tree blob."""
        ...

    def blob_id(self, data: bytes | memoryview) -> bytes:
        """The ID of a blob with plaintext ``data``."""
        ...

    def seal_blob(self, btype: BlobType, bid: bytes, data: bytes | memoryview, codec: Codec | None = None) -> bytearray:
        """Compress and seal one blob."""
        ...

    def finish_pack(self, packer: PackBuilder[bytearray]) -> tuple[bytes, bytearray, list[PackEntry]]:
        """Seal a pack's header; return its ID, bytes and entries."""
        ...

    def write_pack(self, pack_id: bytes, data: bytes | bytearray) -> None:
        """Store a finished pack."""
        ...

    def write_index(self, packs: Iterable[tuple[bytes, list[PackEntry]]]) -> str:
        """Write index files for ``packs``."""
        ...

    def save_manifest(self, manifest: Manifest) -> Manifest:
        """Write a manifest and return it with its ID."""
        ...

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot manifest."""
        ...


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairIndexResult:
    """What :meth:`Repository.repair_index` did.

    Attributes
    ----------
    packs_indexed, blobs_indexed : int
        Packs written into the new index files, and their blob entries (a blob stored in two
        packs counts twice).
    index_files_written, index_files_removed : tuple of str
        Keys of the new index files, and of those deleted (all listed at the start).
    unreadable : tuple of (str, str)
        ``(name, reason)`` of each object under ``data/`` left out: its trailer or header is
        missing, truncated or fails authentication, or its name is not a pack ID.
    packs_quarantined : int
        Packs left out because a quarantine record names them.
    """

    packs_indexed: int
    blobs_indexed: int
    index_files_written: tuple[str, ...]
    index_files_removed: tuple[str, ...]
    unreadable: tuple[tuple[str, str], ...]
    packs_quarantined: int = 0


@dataclass(frozen=True)
class RepairedPath:
    """One path a snapshot repair changed.

    Attributes
    ----------
    path : str
        The absolute path in the snapshot (``/`` for a lost root tree).
    action : {"truncated", "removed"}
        A file cut after its last chunk before the first missing one, or an entry left out.
    size : int
        The bytes a truncated file keeps (0 when removed).
    error : str
        Why, as the new manifest's ``errors`` lists it.
    """

    path: str
    action: str
    size: int
    error: str


@dataclass(frozen=True)
class SnapshotRepair:
    """One snapshot that references missing blobs, and what became of it.

    Attributes
    ----------
    original_id : str
        The damaged snapshot.
    new_id : str or None
        Its repaired snapshot, written by this run or (``already_repaired``) an earlier one;
        None in a dry run and when the root tree is lost.
    paths : tuple of RepairedPath
        What the repaired snapshot truncates or leaves out, in tree order.
    root_lost : bool
        The root tree is missing or unreadable: nothing restores, no snapshot is written.
    already_repaired : bool
        A snapshot tagged ``repaired`` names this one as its ``parent``; no other is written.
    forgotten : bool
        The original was deleted (``forget_broken``).
    """

    original_id: str
    new_id: str | None
    paths: tuple[RepairedPath, ...]
    root_lost: bool = False
    already_repaired: bool = False
    forgotten: bool = False


@dataclass(frozen=True)
class RepairSnapshotsResult:
    """What :meth:`Repository.repair_snapshots` did (or, in a dry run, would do).

    Attributes
    ----------
    snapshots : tuple of SnapshotRepair
        Every snapshot that references a missing blob, oldest first (intact ones are not listed).
    unreadable : tuple of (str, str)
        ``(snapshot ID, reason)`` of each manifest that cannot be read at all (left as it is).
    snapshots_checked : int
        Readable snapshots whose trees were walked.
    trees_written, packs_written : int
        New tree blobs stored, and the new packs holding them.
    dry_run : bool
        Nothing was written.
    time : datetime
        When the repair ran (the ``now`` it was given).
    """

    snapshots: tuple[SnapshotRepair, ...]
    unreadable: tuple[tuple[str, str], ...]
    snapshots_checked: int
    trees_written: int
    packs_written: int
    dry_run: bool
    time: datetime


# -- repair index ------------------------------------------------------------------------------


def repair_index(repo: RepairIndexRepository) -> RepairIndexResult:
    """Rebuild the index from the pack headers.

    The index files that exist are listed first, then the packs. Every pack's header is read
    (two ranged reads, authenticated); a pack whose trailer or header is missing, truncated
    or fails authentication is listed in the result and left out, as are quarantined packs.
    New index files (split as every writer splits them) list every other pack; then the
    index files listed at the start are deleted, and only those: an index file a concurrent
    backup writes meanwhile stays. Works with ``index/`` deleted entirely; running it again
    gives an equivalent index.

    The handle then reloads its index from the files that remain, so it holds exactly the
    index as rebuilt.

    Packs a prune has marked for deletion are listed like any other while they are stored
    (a writer avoids them through the marks, not the index); the prune replaces every index
    file that lists a pack it deletes.

    Parameters
    ----------
    repo : RepairIndexRepository
        The repository (``snapvault.Repository`` has these methods).

    Returns
    -------
    RepairIndexResult

    Raises
    ------
    AppendOnlyError
        If the handle is append-only (replaced index files must be deleted); nothing is written.
    IntegrityError
        If a quarantine record cannot be read.
    """
    if repo.append_only:
        raise AppendOnlyError("repair index deletes the index files it replaces; the handle is append-only")
    # Listed first: whatever index file appears after this point was written by someone else
    # and is never deleted here.
    initial = repo.index_files()
    quarantined = repo.quarantined_packs()

    writer = _IndexWriter(repo)
    unreadable: list[tuple[str, str]] = []
    n_quarantined = 0
    for key in repo.stray_objects():
        unreadable.append((key.rsplit("/", 1)[-1], "not a pack: its name is not a 64-digit hex ID"))
    for name, size in sorted(repo.packs()):
        pid = _pack_id(name)
        if pid is None:
            unreadable.append((name, "not a pack: its name is not a 64-digit hex ID"))
            continue
        if pid in quarantined:
            n_quarantined += 1
            continue
        try:
            entries = repo.read_pack_header(pid, size)
        except ObjectNotFound:
            unreadable.append((name, "deleted while the index was being repaired"))
            continue
        except IntegrityError as e:
            unreadable.append((name, f"header unreadable: {e}"))
            continue
        writer.add(pid, entries)
    writer.flush()

    # Index files are content-named with a random nonce: none written here has an old name.
    removed = [key for key in initial if key not in writer.written]
    for key in removed:
        repo.delete_key(key)
    repo.refresh_index()
    return RepairIndexResult(
        packs_indexed=writer.packs,
        blobs_indexed=writer.blobs,
        index_files_written=tuple(writer.written),
        index_files_removed=tuple(removed),
        unreadable=tuple(unreadable),
        packs_quarantined=n_quarantined,
    )


def _pack_id(name: str) -> bytes | None:
    if len(name) != 64 or not _HEX.issuperset(name):
        return None
    return bytes.fromhex(name)


class _IndexWriter:
    """Writes (pack, entries) pairs into index files as they come, one file at a time."""

    def __init__(self, repo: RepairIndexRepository) -> None:
        self.repo = repo
        self.written: list[str] = []
        self.packs = 0
        self.blobs = 0
        self._batch: list[tuple[bytes, list[PackEntry]]] = []
        self._ids: set[bytes] = set()

    def add(self, pid: bytes, entries: list[PackEntry]) -> None:
        # A reader refuses an index file that lists one blob twice, and a blob can be in two
        # packs (two backups stored it at once): such a pack starts the next file. A header
        # that lists one blob twice (no writer does) keeps its first entry.
        unique: dict[bytes, PackEntry] = {}
        for e in entries:
            unique.setdefault(e.id, e)
        kept = list(unique.values())
        if self._batch and (len(self._ids) + len(kept) > MAX_INDEX_ENTRIES or any(e.id in self._ids for e in kept)):
            self.flush()
        self._batch.append((pid, kept))
        self._ids.update(unique)
        self.packs += 1
        self.blobs += len(kept)

    def flush(self) -> None:
        if self._batch:
            self.written.append(self.repo.write_index(self._batch))
            self._batch, self._ids = [], set()


# -- repair snapshots --------------------------------------------------------------------------


def repair_snapshots(
    repo: RepairSnapshotsRepository,
    *,
    forget_broken: bool = False,
    dry_run: bool = False,
    now: datetime,
) -> RepairSnapshotsResult:
    """Write new snapshots for those that reference missing blobs.

    A blob is missing when the index does not list it or the pack the index names is not
    stored (``data/`` is listed once). For each readable snapshot whose trees reference one,
    new trees are built bottom-up: a file is truncated after its last chunk before the first
    missing one (its size set to those chunks' total) or removed if its first chunk is
    missing; a directory whose tree is missing or unreadable is removed. The new trees go
    into new packs (and an index file), then a new manifest: the original's fields with the
    tag ``repaired`` added, ``parent`` set to the original's ID, and each repaired path in
    ``errors`` (up to the manifest's cap). Intact snapshots are left alone; a snapshot that
    already has a repaired copy gets no second one.

    Run :func:`repair_index` first when index files may be damaged or stale.

    Parameters
    ----------
    repo : RepairSnapshotsRepository
        The repository (``snapvault.Repository`` has these methods).
    forget_broken : bool
        Delete each damaged original once its repaired snapshot is committed (also one that
        already had a repaired copy, and one whose root tree is lost: nothing of it restores).
    dry_run : bool
        Work out and report the repair; write and delete nothing.
    now : datetime
        The time of the repair (timezone-aware), reported in the result. The repaired
        snapshots keep their originals' times, so retention treats them as it did those.

    Returns
    -------
    RepairSnapshotsResult

    Raises
    ------
    ConfigError
        If ``now`` has no timezone.
    AppendOnlyError
        With ``forget_broken`` (not a dry run) on an append-only handle; nothing is written.
    IntegrityError
        If an index file cannot be read (run :func:`repair_index` first).
    """
    if now.tzinfo is None:
        raise ConfigError("now must be a timezone-aware datetime")
    if forget_broken and not dry_run and repo.append_only:
        raise AppendOnlyError("repair snapshots --forget-broken deletes snapshots; the handle is append-only")
    # A dry run writes nothing, not even a writer record.
    session_cm = contextlib.nullcontext(None) if dry_run else repo.writer_session()
    with session_cm as session:
        stored = {pid for pid in (_pack_id(name) for name, _ in repo.packs()) if pid is not None}
        index = repo.refresh_index()
        manifests, unreadable = _load_manifests(repo)
        copies = _copies(manifests)
        blobs = _Blobs(index, stored)
        writer = None if dry_run else _TreeWriter(repo, blobs)
        # Snapshots that already have a repaired copy are walked without writing (only to
        # learn whether they are still damaged): their new trees would be garbage.
        fixers = {True: _TreeFixer(repo, blobs, None), False: _TreeFixer(repo, blobs, writer)}
        planned: list[tuple[Manifest, _Fix]] = []
        for m in manifests:
            fix = fixers[m.id in copies].fix(m.tree)
            if fix.tree != m.tree:
                planned.append((m, fix))
        if writer is not None:
            writer.flush()
        out = []
        for m, fix in planned:
            out.append(_commit(repo, session, m, fix, copies.get(m.id), dry_run))
        if forget_broken and not dry_run:
            out = [_forget(repo, r) for r in out]
    return RepairSnapshotsResult(
        snapshots=tuple(out),
        unreadable=tuple(unreadable),
        snapshots_checked=len(manifests),
        trees_written=writer.trees if writer else 0,
        packs_written=writer.packs_written if writer else 0,
        dry_run=dry_run,
        time=now,
    )


def _copies(manifests: list[Manifest]) -> dict[str, str]:
    """Original ID -> the repaired snapshot an earlier run wrote for it. A repaired snapshot
    keeps its original's time; a backup someone tagged ``repaired`` names as its parent an
    earlier snapshot, never one of its own time."""
    by_id = {m.id: m for m in manifests}
    out = {}
    for m in manifests:
        original = by_id.get(m.parent or "")
        if REPAIRED_TAG in m.tags and original is not None and original.time == m.time:
            out[original.id] = m.id
    return out


def _load_manifests(repo: RepairSnapshotsRepository) -> tuple[list[Manifest], list[tuple[str, str]]]:
    readable, unreadable = [], []
    for sid in repo.snapshot_ids():
        try:
            readable.append(repo.load_manifest(sid))
        except SnapshotNotFound:
            continue  # forgotten since it was listed
        except IntegrityError as e:
            unreadable.append((sid, str(e)))
    return sorted(readable, key=lambda m: (m.time, m.id)), unreadable


def _commit(
    repo: RepairSnapshotsRepository,
    session: WriterSession | None,
    m: Manifest,
    fix: _Fix,
    copy: str | None,
    dry_run: bool,
) -> SnapshotRepair:
    if fix.tree is None:
        why = f"repaired: removed, root tree {m.tree[:16]} {fix.lost}"
        lost = RepairedPath(path="/", action="removed", size=0, error=why)
        return SnapshotRepair(original_id=m.id, new_id=None, paths=(lost,), root_lost=True)
    paths = tuple(replace(p, path="/" + p.path) for p in fix.paths)
    if copy is not None:
        return SnapshotRepair(original_id=m.id, new_id=copy, paths=paths, already_repaired=True)
    if dry_run or session is None:
        return SnapshotRepair(original_id=m.id, new_id=None, paths=paths)
    errors = cap_errors([*(FileError(path=p.path, error=p.error) for p in paths), *m.errors])
    repaired = m.model_copy(
        update={
            "id": "",
            "tree": fix.tree,
            "tags": sorted({*m.tags, REPAIRED_TAG}),
            "parent": m.id,
            "errors": errors,
        }
    )
    check_before_commit(repo, session, fix.tree)
    new = repo.save_manifest(repaired)
    return SnapshotRepair(original_id=m.id, new_id=new.id, paths=paths)


def _forget(repo: RepairSnapshotsRepository, r: SnapshotRepair) -> SnapshotRepair:
    if r.new_id is None and not r.root_lost:
        return r
    with contextlib.suppress(ObjectNotFound, SnapshotNotFound):
        repo.delete_snapshot(r.original_id)
    return replace(r, forgotten=True)


class _Blobs:
    """Which blobs are there: indexed, of the right type, in a pack that is stored."""

    def __init__(self, index: Index, stored: set[bytes]) -> None:
        self.index = index
        self.stored = stored

    def missing(self, hex_id: str, btype: BlobType) -> str | None:
        """Why blob ``hex_id`` cannot be used as a ``btype`` blob, or None if it can."""
        try:
            loc = self.index.get(bytes.fromhex(hex_id))
        except ValueError:
            return "is not a blob ID"  # only a manifest's root can be: trees are checked as read
        if loc is None:
            return "missing (not in the index)"
        if loc.pack_id not in self.stored:
            return f"missing (pack {loc.pack_id.hex()[:16]} is gone)"
        if loc.type != btype:
            return "is not a tree" if btype is BlobType.TREE else "is not file data"
        return None

    def raw_length(self, hex_id: str) -> int:
        loc = self.index.get(bytes.fromhex(hex_id))
        assert loc is not None  # only asked of blobs missing() accepted
        return loc.raw_length

    def reusable(self, bid: bytes) -> bool:
        """Whether a new tree may reference this tree blob instead of storing it again (not
        if it is found only in a pack a prune has marked for deletion)."""
        return self.missing(bid.hex(), BlobType.TREE) is None and self.index.reusable(bid)


@dataclass(frozen=True)
class _Fix:
    """A tree after repair: its new ID (the old one if intact; None if the tree itself is
    lost, with why) and the paths repaired below it."""

    tree: str | None
    paths: tuple[RepairedPath, ...] = ()
    lost: str = ""


@dataclass
class _Frame:
    tree: str
    nodes: list[Node]
    i: int = 0
    out: list[Node] = field(default_factory=list)
    paths: list[RepairedPath] = field(default_factory=list)
    changed: bool = False


class _TreeFixer:
    """Builds repaired trees bottom-up, each distinct tree once (snapshots share most)."""

    def __init__(self, repo: RepairSnapshotsRepository, blobs: _Blobs, writer: _TreeWriter | None) -> None:
        self.repo = repo
        self.blobs = blobs
        self.writer = writer
        self.memo: dict[str, _Fix] = {}

    def fix(self, root: str) -> _Fix:
        """The repair of the tree ``root`` (walked without recursion: depth is data)."""
        opened = self._open(root)
        if isinstance(opened, _Fix):
            return opened
        stack = [opened]
        on_stack = {root}
        while stack:
            f = stack[-1]
            if f.i == len(f.nodes):
                stack.pop()
                on_stack.discard(f.tree)
                self.memo[f.tree] = self._close(f)
                continue
            n = f.nodes[f.i]
            if n.type == "dir" and n.subtree is not None:
                sub = self.memo.get(n.subtree)
                if sub is None:
                    if n.subtree in on_stack:
                        sub = _Fix(None, lost="contains itself")
                    else:
                        child = self._open(n.subtree)
                        if isinstance(child, _Frame):
                            stack.append(child)
                            on_stack.add(child.tree)
                            continue  # this node again once the child is done
                        sub = child
                self._dir(f, n, sub)
            elif n.type == "file" and n.content:
                self._file(f, n)
            else:
                f.out.append(n)
            f.i += 1
        return self.memo[root]

    def _open(self, tid: str) -> _Fix | _Frame:
        known = self.memo.get(tid)
        if known is not None:
            return known
        why = self.blobs.missing(tid, BlobType.TREE)
        if why is None:
            try:
                return _Frame(tid, self.repo.read_tree(tid))
            except (IntegrityError, ObjectNotFound) as e:
                why = f"unreadable: {' '.join(str(e).split())}"
        fix = _Fix(None, lost=why)
        self.memo[tid] = fix
        return fix

    def _dir(self, f: _Frame, n: Node, sub: _Fix) -> None:
        if sub.tree is None:
            assert n.subtree is not None
            f.paths.append(RepairedPath(n.name, "removed", 0, f"repaired: removed, tree {n.subtree[:16]} {sub.lost}"))
            f.changed = True
            return
        if sub.tree != n.subtree:
            f.changed = True
            n = n._replace(subtree=sub.tree)
            f.paths.extend(replace(p, path=f"{n.name}/{p.path}") for p in sub.paths)
        f.out.append(n)

    def _file(self, f: _Frame, n: Node) -> None:
        first = next(((i, c, w) for i, c in enumerate(n.content) if (w := self.blobs.missing(c, BlobType.DATA))), None)
        if first is None:
            f.out.append(n)
            return
        i, chunk, why = first
        f.changed = True
        if i == 0:
            f.paths.append(RepairedPath(n.name, "removed", 0, f"repaired: removed, chunk {chunk[:16]} {why}"))
            return
        kept = n.content[:i]
        size = sum(self.blobs.raw_length(c) for c in kept)
        f.out.append(n._replace(content=kept, size=size))
        f.paths.append(
            RepairedPath(n.name, "truncated", size, f"repaired: truncated at byte {size}, chunk {chunk[:16]} {why}")
        )

    def _close(self, f: _Frame) -> _Fix:
        if not f.changed:
            return _Fix(f.tree)
        data = encode_tree(f.out)
        new = self.writer.add(data) if self.writer is not None else self.repo.blob_id(data).hex()
        return _Fix(new, tuple(f.paths))


class _TreeWriter:
    """Packs new tree blobs (in memory, a pack at a time) and indexes them at :meth:`flush`."""

    def __init__(self, repo: RepairSnapshotsRepository, blobs: _Blobs) -> None:
        self.repo = repo
        self.blobs = blobs
        self.trees = 0
        self.packs_written = 0
        self._added: set[bytes] = set()
        self._packer: PackWriter | None = None
        self._shipped: list[tuple[bytes, list[PackEntry]]] = []

    def add(self, data: bytes) -> str:
        bid = self.repo.blob_id(data)
        if bid in self._added or self.blobs.reusable(bid):
            return bid.hex()
        sealed = self.repo.seal_blob(BlobType.TREE, bid, data)
        if self._packer is None:
            self._packer = PackWriter()
        self._packer.add(BlobType.TREE, bid, sealed, len(data))
        self._added.add(bid)
        self.trees += 1
        if len(self._packer) >= self.repo.pack_size or self._packer.count >= MAX_PACK_BLOBS:
            self._ship()
        return bid.hex()

    def _ship(self) -> None:
        packer, self._packer = self._packer, None
        if packer is None or not packer.count:
            return
        pid, data, entries = self.repo.finish_pack(packer)
        self.repo.write_pack(pid, data)
        self._shipped.append((pid, entries))
        self.packs_written += 1

    def flush(self) -> None:
        """Store the open pack and index every pack written (before any manifest names them)."""
        self._ship()
        if self._shipped:
            self.repo.write_index(self._shipped)
            self._shipped = []
