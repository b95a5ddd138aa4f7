"""Repository verification: structure, and optionally every stored byte."""

from __future__ import annotations

import os
import random as _random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from snapvault.archiver.progress import Meter
from snapvault.errors import IntegrityError, SnapvaultError
from snapvault.pipeline.blob import blob_size_error
from snapvault.pipeline.ids import BlobType, object_hasher
from snapvault.pipeline.index import BlobLocation, Index
from snapvault.pipeline.pack import TRAILER_SIZE, PackEntry
from snapvault.pipeline.tree import MAX_DEPTH, Node, depth_error
from snapvault.repository import layout
from snapvault.repository.lifecycle import DeletionMark
from snapvault.repository.manifest import Manifest

# Bytes of a pack read at once by check --read-data, and packs read at once (memory is about
# two windows a reader).
_WINDOW = 4 << 20
_READERS = max(1, min(4, os.cpu_count() or 1))

__all__ = ["CheckReport", "CheckRepository", "Problem", "check_repository", "check_snapshot"]


class CheckRepository(Protocol):
    """What a check reads of a repository: every kind of object, each through the format's
    own reader, and (with ``read_data``) whole packs opened blob by blob."""

    def list_keys(self, folder: str) -> list[str]:
        """Keys of every object in a folder of the layout, sorted."""
        ...

    def read_named(self, key: str) -> bytes:
        """An object's bytes, checked against its name."""
        ...

    def quarantined_packs(self) -> frozenset[bytes]:
        """Packs recorded as damaged."""
        ...

    def index_files(self) -> list[str]:
        """Keys of every index file."""
        ...

    def read_index_file(self, key: str) -> list[tuple[bytes, list[PackEntry]]]:
        """Decode one index file."""
        ...

    def packs(self) -> Iterable[tuple[str, int]]:
        """(hex name, size) of every stored pack."""
        ...

    def snapshot_ids(self) -> list[str]:
        """IDs of every snapshot."""
        ...

    def load_manifest(self, snapshot_id: str) -> Manifest:
        """Load one manifest."""
        ...

    def iter_tree(self, tree_id: str) -> Iterator[Node]:
        """Fetch a tree blob and walk its nodes (a damaged node raises from the iteration)."""
        ...

    def deletion_marks(self, unreadable: list[IntegrityError] | None = None) -> dict[str, DeletionMark]:
        """Every pending deletion mark of a prune, by name (unreadable ones into ``unreadable``)."""
        ...

    def stray_objects(self) -> list[str]:
        """Keys under ``data/`` not named like packs."""
        ...

    def read_pack_range(self, pack_id: bytes, offset: int, length: int) -> bytes:
        """``length`` bytes of a pack from ``offset`` (fewer at its end)."""
        ...

    def read_pack_header(self, pack_id: bytes, size: int) -> list[PackEntry]:
        """Read, open and parse the header of a pack of ``size`` bytes."""
        ...

    def open_blob(
        self, btype: BlobType, bid: bytes, sealed: bytes | memoryview, raw_length: int | None = None
    ) -> bytes:
        """Unseal and verify one blob read from a pack."""
        ...


@dataclass(frozen=True)
class Problem:
    """One thing found wrong, with whatever names where it is."""

    kind: str
    message: str
    pack: str | None = None
    blob: str | None = None
    snapshot: str | None = None
    path: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("snapshot", self.snapshot),
                ("path", self.path),
                ("pack", self.pack),
                ("blob", self.blob),
                ("object", self.key),
            )
            if v
        )
        return f"{self.kind}: {self.message}" + (f" ({where})" if where else "")


@dataclass
class CheckReport:
    """The outcome of :meth:`Repository.check`. ``ok`` is False if any problem was found."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    snapshots: int = 0
    trees: int = 0
    packs: int = 0
    packs_read: int = 0
    blobs_read: int = 0

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def check_repository(
    repo: CheckRepository,
    *,
    read_data: bool = False,
    read_data_subset: float | None = None,
    seed: int | None = None,
    callback: Any = None,
) -> CheckReport:
    """Check a repository.

    Structure: every index decodes; every indexed pack exists with the indexed size or more;
    every snapshot decodes; every tree reachable from a snapshot decodes; every blob a tree
    references is indexed. With ``read_data`` every pack is downloaded, its hash compared
    with its name, its header parsed, and every blob decrypted and verified against its ID;
    ``read_data_subset`` (a fraction in (0, 1]) does that for a random sample of packs.

    Packs that no index lists are reported as warnings: an interrupted backup leaves them,
    and a later backup or prune deals with them.

    ``callback`` (an fsspec ``Callback``) counts bytes of packs when packs are read
    (``set_size`` with the bytes of the packs chosen, before the snapshots are walked; a pack
    that cannot be read whole counts as done when it is given up on), and otherwise
    snapshots (``set_size`` with their number, one ``relative_update`` each). Once the check
    completes ``value == size``.
    """
    if read_data_subset and not read_data and not 0 < read_data_subset <= 1:
        raise ValueError("read_data_subset must be a fraction in (0, 1]")
    meter = Meter(callback)
    report = CheckReport()
    _check_keys(repo, report)
    quarantined = repo.quarantined_packs()
    index = _stored_index(repo, quarantined, report)
    stored = dict(repo.packs())
    report.packs = len(stored)
    needed: dict[bytes, int] = {}
    for bid, loc in index.items():
        needed[loc.pack_id] = max(needed.get(loc.pack_id, 0), loc.offset + loc.length + TRAILER_SIZE)
        error = blob_size_error(loc.type, loc.length, loc.raw_length)
        if error is not None:
            report.problems.append(Problem("blob", error, pack=loc.pack_id.hex(), blob=bid.hex()))
    for pid in sorted(index.packs):
        size = stored.get(pid.hex())
        if size is None:
            report.problems.append(Problem("pack", "indexed pack is missing", pack=pid.hex()))
        elif size < needed.get(pid, 0):
            report.problems.append(
                Problem("pack", f"pack is truncated: {size} bytes, the index needs {needed[pid]}", pack=pid.hex())
            )
    for key in repo.stray_objects():
        report.warnings.append(f"{key} is a stray object under data/, not a pack (nothing reads it)")
    for name in sorted(set(stored) - {p.hex() for p in index.packs}):
        if bytes.fromhex(name) in quarantined:
            report.warnings.append(f"pack {name} is quarantined (failed a read-back; a prune removes it)")
        else:
            report.warnings.append(f"pack {name} is not in any index (left by an interrupted backup)")

    names: list[str] = []
    if read_data or read_data_subset:
        # Chosen before the walk (the choice depends on the index and the seed only), so the
        # callback knows the bytes to read from the start.
        names = sorted(p.hex() for p in index.packs if p.hex() in stored)
        if read_data_subset and not read_data:
            rng = _random.Random(seed)
            k = max(1, round(len(names) * read_data_subset)) if names else 0
            names = sorted(rng.sample(names, k))
        meter.size(sum(stored[name] for name in names))
    blob_paths = _check_snapshots(repo, index, report, None if names or read_data else meter)

    if names:
        by_pack: dict[bytes, list[tuple[bytes, BlobLocation]]] = {}
        for bid, loc in index.items():
            by_pack.setdefault(loc.pack_id, []).append((bid, loc))

        stop = threading.Event()

        def read(name: str) -> CheckReport:
            part = CheckReport()
            blobs = by_pack.get(bytes.fromhex(name), [])
            _read_pack(repo, blobs, name, stored[name], part, blob_paths, meter, stop.is_set)
            return part

        def merge(part: CheckReport) -> None:
            report.problems += part.problems
            report.packs_read += part.packs_read
            report.blobs_read += part.blobs_read

        # Several packs at once: reading, hashing, decrypting and decompressing all release
        # the GIL, so one reader per CPU keeps every core busy (and a remote store's requests
        # overlap). Each pack reports into its own part, merged in pack order, so the report
        # reads the same whatever finished first; at most two packs a reader are queued, so
        # memory does not grow with the number of packs.
        readers = min(_READERS, len(names))
        if readers > 1:
            with ThreadPoolExecutor(readers, thread_name_prefix="sv-check") as pool:
                queued: deque[Future[CheckReport]] = deque()
                try:
                    for name in names:
                        queued.append(pool.submit(read, name))
                        if len(queued) >= 2 * readers:
                            merge(queued.popleft().result())
                    while queued:
                        merge(queued.popleft().result())
                except BaseException:
                    # An interrupt or a bug: the readers stop at their next window, and what
                    # is queued never starts.
                    stop.set()
                    for f in queued:
                        f.cancel()
                    raise
        else:
            for name in names:
                merge(read(name))
    meter.finish()
    return report


def check_snapshot(repo: CheckRepository, snapshot_id: str, *, read_data: bool = False) -> CheckReport:
    """Check that one committed snapshot can be read back whole.

    Its manifest decodes, every tree reachable from it decodes, and every blob those trees
    name is in the index as stored (not as this process remembers it). With ``read_data``
    every pack holding one of its blobs must exist and is read whole: hashed against its name
    and every indexed blob in it opened (a DR drill's proof that the copy is intact); each
    problem names the pack, and the snapshot and path that use the blob.
    """
    report = CheckReport()
    index = _stored_index(repo, repo.quarantined_packs(), report)
    try:
        m = repo.load_manifest(snapshot_id)
    except SnapvaultError as e:
        report.problems.append(Problem("snapshot", str(e), snapshot=snapshot_id, key=layout.snapshot_key(snapshot_id)))
        return report
    report.snapshots = 1
    seen: dict[str, int] = {}
    where: dict[bytes, tuple[str, str]] = {}
    report.problems.extend(_walk(repo, index, m.tree, "", snapshot_id, seen, where))
    report.trees = len(seen)
    if not read_data:
        return report
    by_pack: dict[bytes, list[tuple[bytes, BlobLocation]]] = {}
    for bid in where:
        loc = index.get(bid)
        if loc is not None:
            by_pack.setdefault(loc.pack_id, []).append((bid, loc))
    stored = dict(repo.packs())
    report.packs = len(by_pack)
    for pid, blobs in sorted(by_pack.items()):
        name = pid.hex()
        if name not in stored:
            snap, path = where[blobs[0][0]]
            report.problems.append(
                Problem("pack", "indexed pack is missing", pack=name, blob=blobs[0][0].hex(), snapshot=snap, path=path)
            )
            continue
        _read_pack(repo, blobs, name, stored[name], report, where)
    return report


def _check_keys(repo: CheckRepository, report: CheckReport) -> None:
    for key in repo.list_keys(layout.KEYS):
        try:
            repo.read_named(key)
        except IntegrityError as e:
            report.problems.append(Problem("key", str(e), key=key))
        except SnapvaultError as e:
            report.problems.append(Problem("key", f"cannot read: {e}", key=key))


def _stored_index(repo: CheckRepository, quarantined: frozenset[bytes], report: CheckReport) -> Index:
    """The index as the stored index files describe it; unreadable files become problems.

    Packs a prune has marked are avoided as readers avoid them, and a marked pack that is no
    longer stored is left out with a warning: a prune was interrupted between deleting it and
    rewriting the index files that list it, and the next prune finishes. A snapshot that needs
    a blob only that pack held still shows up, as a blob that is not indexed.
    """
    unreadable: list[IntegrityError] = []
    try:
        marks = repo.deletion_marks(unreadable)
    except SnapvaultError as e:
        report.problems.append(Problem("index", f"deletion marks: {e}", key=layout.DELETIONS))
        marks = {}
    for err in unreadable:
        report.problems.append(Problem("index", f"deletion mark cannot be read: {err}", key=err.key))
    marked = frozenset().union(*(m.packs for m in marks.values()))
    stored = {bytes.fromhex(name) for name, _ in repo.packs()} if marked else set()
    gone = frozenset(p for p in marked if p not in stored)
    for pid in sorted(gone):
        report.warnings.append(f"pack {pid.hex()} was deleted by a prune that has not finished (the next one does)")
    index = Index(quarantined | gone, marked)
    for key in repo.index_files():
        try:
            for pid, entries in repo.read_index_file(key):
                index.add_pack(pid, entries)
        except SnapvaultError as e:
            report.problems.append(Problem("index", str(e), key=key))
    return index


def _check_snapshots(
    repo: CheckRepository, index: Index, report: CheckReport, meter: Meter | None = None
) -> dict[bytes, tuple[str, str]]:
    """Walk every snapshot's trees; return blob -> (snapshot, path) for naming damage.
    ``meter``, if given, counts the snapshots."""
    seen_trees: dict[str, int] = {}
    where: dict[bytes, tuple[str, str]] = {}
    sids = repo.snapshot_ids()
    if meter is not None:
        meter.size(len(sids))
    for sid in sids:
        try:
            m = repo.load_manifest(sid)
        except SnapvaultError as e:
            report.problems.append(Problem("snapshot", str(e), snapshot=sid, key=layout.snapshot_key(sid)))
            continue
        finally:
            if meter is not None:
                meter.add(1)
        report.snapshots += 1
        for problem in _walk(repo, index, m.tree, "", sid, seen_trees, where):
            report.problems.append(problem)
    report.trees = len(seen_trees)
    return where


def _walk(
    repo: CheckRepository,
    index: Index,
    tree: str,
    path: str,
    sid: str,
    seen: dict[str, int],
    where: dict[bytes, tuple[str, str]],
) -> Iterator[Problem]:
    # Iterative, with each tree's level: a snapshot's depth is data, not a bound on our stack.
    stack = [(tree, path, 1)]
    while stack:
        tid, p, level = stack.pop()
        # A tree met again deeper than before is walked again: its own subtrees may pass the
        # depth limit only there.
        if seen.get(tid, 0) >= level:
            continue
        seen[tid] = level
        if level > MAX_DEPTH:
            yield Problem("tree", str(depth_error(p)), blob=tid, snapshot=sid, path=p)
            continue
        try:
            bid = bytes.fromhex(tid)
        except ValueError:
            yield Problem("tree", f"bad tree ID {tid!r}", snapshot=sid, path=p or "/")
            continue
        where.setdefault(bid, (sid, p or "/"))
        loc = index.get(bid)
        if loc is None:
            yield Problem("tree", "tree blob is not indexed", blob=tid, snapshot=sid, path=p or "/")
            continue
        if loc.type != BlobType.TREE:
            # Read as a tree, a data blob fails to unseal (the type is bound into its sealing),
            # so a restore would call the directory damaged: say why, at the directory.
            yield Problem("tree", "subtree names a data blob", blob=tid, snapshot=sid, path=p or "/")
            continue
        try:
            nodes: Iterator[Node] = repo.iter_tree(tid)
        except SnapvaultError as e:
            yield Problem("tree", str(e), blob=tid, snapshot=sid, path=p or "/", pack=loc.pack_id.hex())
            continue
        # One node at a time: a directory of 780,000 entries costs its blob's text, not 780,000
        # nodes. A damaged node ends the tree's walk with one problem; the nodes before it
        # are checked like any others.
        while True:
            try:
                n = next(nodes, None)
            except SnapvaultError as e:
                yield Problem("tree", str(e), blob=tid, snapshot=sid, path=p or "/", pack=loc.pack_id.hex())
                break
            if n is None:
                break
            np = f"{p}/{n.name}" if p else n.name
            if n.type == "dir" and n.subtree:
                stack.append((n.subtree, np, level + 1))
            for c in n.content:
                cb = bytes.fromhex(c)
                where.setdefault(cb, (sid, np))
                cloc = index.get(cb)
                if cloc is None:
                    yield Problem("data", "data blob is not indexed", blob=c, snapshot=sid, path=np)
                elif cloc.type != BlobType.DATA:
                    yield Problem("data", "file content names a tree blob", blob=c, snapshot=sid, path=np)


def _read_pack(
    repo: CheckRepository,
    blobs: list[tuple[bytes, BlobLocation]],
    name: str,
    size: int,
    report: CheckReport,
    where: dict[bytes, tuple[str, str]],
    meter: Meter | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    """Read one pack in windows: hash it against its name and open every indexed blob in it.

    Memory stays at a window plus the largest blob, whatever the pack's size: the bytes kept
    from one window to the next are only those of a blob that straddles them. ``meter``
    counts the bytes read, and the rest of the pack's ``size`` once it is done with, read
    whole or not.
    """
    told = [0]

    def count(n: int) -> None:
        told[0] += n
        if meter is not None:
            meter.add(n)

    try:
        _read_pack_windows(repo, blobs, name, size, report, where, count, stopped)
    finally:
        count(max(0, size - told[0]))


def _read_pack_windows(
    repo: CheckRepository,
    blobs: list[tuple[bytes, BlobLocation]],
    name: str,
    size: int,
    report: CheckReport,
    where: dict[bytes, tuple[str, str]],
    count: Callable[[int], None],
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    """The body of :func:`_read_pack`; tells ``count`` of each window read, and gives up
    (reporting nothing more) once ``stopped`` says the check is over."""
    pid = bytes.fromhex(name)
    try:
        header = {e.id: e for e in repo.read_pack_header(pid, size)}
    except IntegrityError as e:
        report.problems.append(Problem("pack", f"header: {e}", pack=name))
        header = {}
    except SnapvaultError as e:
        report.problems.append(Problem("pack", f"cannot read: {e}", pack=name))
        return
    # Blobs whose sizes are over the format's limits were reported from the index already.
    pending = sorted(
        ((bid, loc) for bid, loc in blobs if blob_size_error(loc.type, loc.length, loc.raw_length) is None),
        key=lambda b: b[1].offset,
    )
    hasher = object_hasher()
    buf, buf_start, pos, i = b"", 0, 0, 0
    try:
        while pos < size:
            if stopped():
                return
            chunk = repo.read_pack_range(pid, pos, min(_WINDOW, size - pos))
            if not chunk:
                break
            hasher.update(chunk)
            pos += len(chunk)
            count(len(chunk))
            keep = pending[i][1].offset if i < len(pending) else pos
            keep = min(max(keep, buf_start), pos)
            buf = buf[keep - buf_start :] + chunk if keep < pos - len(chunk) else chunk[keep - (pos - len(chunk)) :]
            buf_start = keep
            while i < len(pending) and pending[i][1].offset + pending[i][1].length <= pos:
                bid, loc = pending[i]
                i += 1
                lo = loc.offset - buf_start
                _check_blob(repo, bid, loc, memoryview(buf)[lo : lo + loc.length], header, name, report, where)
    except SnapvaultError as e:
        report.problems.append(Problem("pack", f"cannot read: {e}", pack=name))
        return
    report.packs_read += 1
    if pos != size or hasher.digest().hex() != name:
        report.problems.append(Problem("pack", "pack content does not match its name", pack=name))
    for bid, _loc in pending[i:]:
        snap, path = where.get(bid, (None, None))
        report.blobs_read += 1
        report.problems.append(
            Problem("blob", "blob lies past the end of its pack", pack=name, blob=bid.hex(), snapshot=snap, path=path)
        )


def _check_blob(
    repo: CheckRepository,
    bid: bytes,
    loc: BlobLocation,
    sealed: memoryview,
    header: dict[bytes, PackEntry],
    name: str,
    report: CheckReport,
    where: dict[bytes, tuple[str, str]],
) -> None:
    report.blobs_read += 1
    snap, path = where.get(bid, (None, None))
    h = header.get(bid)
    if header and (h is None or (h.offset, h.length, h.type) != (loc.offset, loc.length, loc.type)):
        report.problems.append(
            Problem("blob", "index and pack header disagree", pack=name, blob=bid.hex(), snapshot=snap, path=path)
        )
    try:
        repo.open_blob(BlobType(loc.type), bid, sealed, loc.raw_length)
    except IntegrityError as e:
        report.problems.append(Problem("blob", str(e), pack=name, blob=bid.hex(), snapshot=snap, path=path))
