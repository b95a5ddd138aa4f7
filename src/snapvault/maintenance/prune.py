"""Prune: free the space of forgotten snapshots, lock-free, while other machines back up.

One run does, in order:

1. **Carry out ripe marks.** Earlier runs (or this one, below) wrote *deletion marks*
   (``deletions/<hex>``, :mod:`snapvault.repository.lifecycle`). A mark is ripe once every
   live writer has recorded seeing it. For each pack of a ripe mark, a blob that a snapshot now
   references and that has no copy outside marked packs *rescues* the pack (an index file
   lists it again; it is not deleted); every other pack is deleted, then the mark's index
   files, then the mark.
2. **Mark.** Packs no snapshot uses, quarantined packs, packs no index lists (left by crashed
   writers), and the packs with the most unused space (up to ``max_repack`` of the repository
   copied per run, until no more than ``max_unused`` is unused) are named in a new mark, with
   the index files that will then be redundant. Live blobs of the packs being repacked are
   copied into new packs *after* the mark exists, so a writer never dedups against a pack
   about to go, and a crash before the copies leaves a mark whose packs are rescued.
3. Index files are merged into one set listing every pack that stays.
4. The new mark is carried out at once if it is already ripe (no writer ran across it).

Superseded policy records and writer records older than ``writer_timeout`` are removed too.
docs/design.md ("Prune") argues why no snapshot committed before, during or after a prune can
reference a blob it deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from snapvault.archiver.progress import Meter
from snapvault.archiver.sink import SinkRepository
from snapvault.errors import AppendOnlyError, ConfigError, IntegrityError, PruneError, SnapvaultError
from snapvault.maintenance.repack import repack_packs
from snapvault.pipeline.crypto import AEADSealer, PlainSealer
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import Index
from snapvault.pipeline.pack import PackEntry
from snapvault.pipeline.tree import Node
from snapvault.repository import layout
from snapvault.repository.lifecycle import (
    DELETION_AD,
    DeletionMark,
    RecordStore,
    WriterRecord,
    encode_mark,
    read_writers,
)
from snapvault.repository.manifest import Manifest

QUARANTINE_AD = b"snapvault quarantine"
POLICY_AD = b"snapvault policy"

__all__ = ["PruneRepository", "PruneResult", "ReasonStats", "prune"]

#: The shortest writer timeout a prune accepts: a running writer refreshes its record every
#: 10 minutes, and the rest is the clock skew tolerated between machines.
MIN_WRITER_TIMEOUT = timedelta(minutes=30)
#: ``.tmp-*`` files older than this are leftovers of killed writers, and a prune removes them.
TEMPORARY_AGE = timedelta(hours=24)


class PruneRepository(SinkRepository, RecordStore, Protocol):
    """What a prune needs of a repository."""

    #: Seals with the current key, opens with the retired ones too.
    sealer: AEADSealer | PlainSealer
    #: Source of the random bytes sealing needs.
    random: Callable[[int], bytes]

    def read_pack_range(self, pack_id: bytes, offset: int, length: int) -> bytes:
        """``length`` bytes of a pack from ``offset`` (fewer at its end)."""
        ...

    def pack_header(self, data: bytes | memoryview) -> list[PackEntry]:
        """Open and parse the header of a whole pack held in memory."""
        ...

    @property
    def append_only(self) -> bool:
        """Whether deleting is refused."""
        ...

    @property
    def url(self) -> str:
        """Where the repository is."""
        ...

    @property
    def index(self) -> Index:
        """The loaded index."""
        ...

    def deletion_marks(self) -> dict[str, DeletionMark]:
        """Every pending deletion mark, by name."""
        ...

    def scan_snapshots(self) -> tuple[list[Manifest], list[tuple[str, IntegrityError]]]:
        """Every snapshot, read once: the readable ones and the unreadable ones with why."""
        ...

    def iter_tree(self, tree_id: str) -> Iterator[Node]:
        """Walk one tree's nodes."""
        ...

    def index_files(self) -> list[str]:
        """Keys of every index file."""
        ...

    def index_file_cache(self) -> AbstractContextManager[None]:
        """Keep decoded index files for reuse inside the block (a prune reads each several times)."""
        ...

    def read_index_file(self, key: str) -> list[tuple[bytes, list[PackEntry]]]:
        """Decode one index file."""
        ...

    def packs(self) -> Iterator[tuple[str, int]]:
        """(hex pack ID, size) of every stored pack."""
        ...

    def read_pack_header(self, pack_id: bytes, size: int) -> list[PackEntry]:
        """Read and open a pack's header."""
        ...

    def read_blob(self, bid: bytes, btype: BlobType | None = None) -> bytes:
        """Fetch, open and verify one blob."""
        ...

    def quarantined_packs(self) -> frozenset[bytes]:
        """Packs quarantined as damaged."""
        ...

    def temporaries(self) -> list[tuple[str, float]]:
        """``(key, mtime)`` of leftover ``.tmp-*`` files."""
        ...


@dataclass(frozen=True)
class ReasonStats:
    """Packs and bytes for one reason."""

    packs: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class PruneResult:
    """What a prune did (or, with ``dry_run``, would do).

    ``marked`` counts, per reason (``unused``, ``repack``, ``unindexed``, ``quarantined``),
    the packs this run marked for deletion; ``deleted`` what was deleted (this run's mark
    and earlier ripe ones); ``deferred`` packs of marks still waiting for writers that ran
    across them; ``rescued`` packs a newer snapshot turned out to need.
    """

    dry_run: bool
    snapshots: int
    size_before: int
    size_after: int
    marked: dict[str, ReasonStats]
    repacked_blobs: int
    repacked_bytes: int
    deleted: ReasonStats
    deferred: ReasonStats
    rescued: int
    index_files_written: int
    index_files_deleted: int
    marks_written: int
    marks_carried_out: int
    policy_records_removed: int
    writer_records_removed: int
    live_writers: int
    temporaries_removed: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Packs:
    """What one pass over the index files learnt about every pack (aggregates only, so memory
    is a few numbers a pack plus the IDs of the blobs in packs that may go)."""

    size: dict[bytes, int]
    indexed: set[bytes] = field(default_factory=set)
    blob_bytes: dict[bytes, int] = field(default_factory=dict)
    live_bytes: dict[bytes, int] = field(default_factory=dict)
    live_count: dict[bytes, int] = field(default_factory=dict)
    files: dict[str, set[bytes]] = field(default_factory=dict)


#: Repacking stops a fiftieth short of ``max_unused`` (4.9% of the live data at 5%): besides
#: dead blobs, a pruned repository holds what a fresh one would not (the index entries of the
#: dead blobs, policy and run records), and a run that stopped right at 5.0% in pack bytes was
#: 5.01% over a fresh repository in total.
_UNUSED_MARGIN = 0.98


def _unused_bytes(packs: _Packs, pid: bytes, size: int) -> float:
    """The bytes of pack ``pid`` that serve no live blob: its dead blobs, and their share of
    its header (prorated by bytes). Counting the header too is what keeps a pruned repository
    within ``max_unused`` of a fresh one in total size, not only in blob bytes (a run that
    stopped at 4.99% in blob bytes was 5.01% over in total)."""
    blob, live = packs.blob_bytes[pid], packs.live_bytes[pid]
    if blob <= 0:
        return float(size)
    return (blob - live) + (size - blob) * (1 - live / blob)


def _write_all(repo: PruneRepository, packs: Iterator[tuple[bytes, list[PackEntry]]]) -> int:
    """Write ``packs`` into index files unless there are none; return whether any was written."""
    first = next(packs, None)
    if first is None:
        return 0
    repo.write_index(_chain(first, packs))
    return 1


def _chain(
    first: tuple[bytes, list[PackEntry]], rest: Iterator[tuple[bytes, list[PackEntry]]]
) -> Iterator[tuple[bytes, list[PackEntry]]]:
    yield first
    yield from rest


def prune(
    repo: PruneRepository,
    *,
    now: datetime,
    dry_run: bool = False,
    max_repack: float = 0.1,
    max_unused: float = 0.05,
    writer_timeout: timedelta = timedelta(hours=1),
    rekey: frozenset[bytes] = frozenset(),
    callback: Any = None,
) -> PruneResult:
    """Free the space no snapshot uses; see the module docstring.

    Parameters
    ----------
    now : datetime
        The time to compare writer records with (timezone-aware).
    dry_run : bool
        Compute and report, write and delete nothing.
    max_repack : float
        At most this fraction of the repository's size is copied into new packs per run.
    max_unused : float
        Repack until the unused space is at most this fraction of the live data.
    writer_timeout : timedelta
        A writer whose newest record is older than this is taken for crashed (at least 30
        minutes: records are refreshed every 10).
    rekey : frozenset of bytes
        Packs to repack whatever their use (reason ``rekey``; not bounded by ``max_repack``):
        a key rotation's rewrite passes the packs a retired key sealed.
    callback : fsspec.callbacks.Callback, optional
        Counts the bytes of the packs dealt with: each pack of a ripe mark once it is deleted
        (or rescued), each pack repacked once it is read. ``set_size`` comes after the
        snapshots are walked (the ripe marks' packs), again once the packs to repack are
        chosen, and again when this run's own mark is carried out; ``value == size`` once
        the prune completes (both 0 for a dry run, which deals with nothing).

    Raises
    ------
    AppendOnlyError
        If the repository is append-only (a dry run is allowed).
    PruneError
        If a snapshot cannot be read: it might reference any blob, so nothing is deleted.
    ConfigError
        If an option is out of range.
    """
    if now.tzinfo is None:
        raise ConfigError("prune needs a timezone-aware now")
    if not 0 <= max_repack <= 1 or not 0 <= max_unused <= 1:
        raise ConfigError("max_repack and max_unused are fractions in [0, 1]")
    if writer_timeout < MIN_WRITER_TIMEOUT:
        raise ConfigError(f"writer_timeout must be at least {MIN_WRITER_TIMEOUT} (writers refresh every 10 minutes)")
    if repo.append_only and not dry_run:
        raise AppendOnlyError(f"the repository at {repo.url} is opened append-only: prune deletes, so it is refused")
    run = _Run(repo, now, dry_run, writer_timeout, Meter(callback))
    with repo.index_file_cache():
        result = run.go(max_repack, max_unused, rekey)
    run.meter.finish()
    return result


class _Run:
    def __init__(
        self, repo: PruneRepository, now: datetime, dry_run: bool, writer_timeout: timedelta, meter: Meter
    ) -> None:
        self.repo = repo
        self.meter = meter
        # The bytes ``meter`` was told it will count, grown as more work is known.
        self.planned = 0
        self.now = now
        self.dry_run = dry_run
        self.writer_timeout = writer_timeout
        self.deleted_packs = 0
        self.deleted_bytes = 0
        self.rescued = 0
        self.index_written = 0
        self.index_deleted = 0
        self.carried_out = 0
        self.notes: list[str] = []

    # -- what is live ----------------------------------------------------------------------

    def _writers(self) -> tuple[dict[str, frozenset[str] | None], list[WriterRecord]]:
        """Live writers (the union of the marks their records say they saw; None while none
        says so) and the records older than the timeout."""
        live: dict[str, frozenset[str] | None] = {}
        stale = []
        cutoff = self.now - self.writer_timeout
        for r in read_writers(self.repo):
            if r.time < cutoff:
                stale.append(r)
            elif r.seen is not None:
                live[r.writer] = (live.get(r.writer) or frozenset()) | r.seen
            else:
                live.setdefault(r.writer, None)
        return live, stale

    @staticmethod
    def _ripe(name: str, live: dict[str, frozenset[str] | None]) -> bool:
        return all(seen is not None and name in seen for seen in live.values())

    def _live_blobs(self, known: set[str] | None = None, live: set[bytes] | None = None) -> tuple[set[bytes], set[str]]:
        """Every blob (trees and data) the readable snapshots reference, walking each shared
        tree once; ``known`` snapshots are skipped (their blobs are in ``live`` already)."""
        # Snapshots first, then the index: every listed snapshot committed after its index
        # files were written, so the index loaded next holds its trees.
        manifests, unreadable = self.repo.scan_snapshots()
        if unreadable:
            sid, err = unreadable[0]
            raise PruneError(
                f"snapshot {sid[:16]} cannot be read ({err}); it might reference any blob, so nothing is "
                f"pruned: repair or forget it first ({len(unreadable)} unreadable)"
            )
        self.repo.refresh_index()
        out = live if live is not None else set()
        ids = set(known or ())
        trees_seen: set[str] = set()
        for m in manifests:
            if m.id in ids:
                continue
            ids.add(m.id)
            stack = [m.tree]
            while stack:
                tid = stack.pop()
                if tid in trees_seen:
                    continue
                trees_seen.add(tid)
                out.add(bytes.fromhex(tid))
                try:
                    nodes = self.repo.iter_tree(tid)
                    for n in nodes:
                        if n.subtree is not None:
                            stack.append(n.subtree)
                        for c in n.content:
                            out.add(bytes.fromhex(c))
                except SnapvaultError as e:
                    raise PruneError(
                        f"snapshot {m.id[:16]}: tree {tid[:16]} cannot be read ({e}); nothing is pruned: "
                        "run check, then repair"
                    ) from None
        return out, ids

    def _survey(self, live: set[bytes]) -> _Packs:
        packs = _Packs(size={bytes.fromhex(name): size for name, size in self.repo.packs()})
        for key in self.repo.index_files():
            listed: set[bytes] = set()
            for pid, entries in self.repo.read_index_file(key):
                listed.add(pid)
                if pid in packs.indexed:
                    continue  # the same pack in two index files: count it once
                packs.indexed.add(pid)
                total = lb = lc = 0
                for e in entries:
                    total += e.length
                    if e.id in live:
                        lb += e.length
                        lc += 1
                packs.blob_bytes[pid] = total
                packs.live_bytes[pid] = lb
                packs.live_count[pid] = lc
            packs.files[key] = listed
        return packs

    # -- the run ---------------------------------------------------------------------------

    def go(self, max_repack: float, max_unused: float, rekey: frozenset[bytes] = frozenset()) -> PruneResult:
        repo = self.repo
        live_writers, stale = self._writers()
        marks = repo.deletion_marks()
        ripe = [m for name, m in sorted(marks.items()) if self._ripe(name, live_writers)]
        # Snapshots are listed after the writers: a writer not seen live has committed by now.
        live, snapshot_ids = self._live_blobs()
        repo.refresh_index()
        listed = dict(repo.packs())
        size_before = sum(listed.values())
        if not self.dry_run:
            self._plan({name for m in ripe for p in m.packs if (name := p.hex()) in listed}, listed)
        for m in ripe:
            if not self.dry_run:
                self._carry_out(m, live)
        pending = repo.deletion_marks() if not self.dry_run else {n: m for n, m in marks.items() if m not in ripe}
        doomed = frozenset().union(*(m.packs for m in pending.values()))
        packs = self._survey(live)
        if self.dry_run:
            # What a real run would delete now: the ripe marks (less any rescue).
            ripe_packs = {p for m in ripe for p in m.packs if p in packs.size}
            self.deleted_packs = len(ripe_packs)
            self.deleted_bytes = sum(packs.size[p] for p in ripe_packs)
        marked, repack = self._choose(packs, doomed, max_repack, max_unused, rekey)
        deferred = ReasonStats(len(doomed), sum(packs.size.get(p, 0) for p in doomed))
        result_marks = 0
        repacked = (0, 0)
        if not self.dry_run and (marked or repack):
            to_delete = frozenset(p for ps in marked.values() for p in ps) | repack
            files = self._redundant_files(packs, doomed, to_delete)
            reason = {k: len(v) for k, v in marked.items()}
            name = repo.write_sealed(layout.DELETIONS, encode_mark(self.now, to_delete, files, reason), DELETION_AD)
            result_marks = 1
            # The mark exists before any copy: from now on no writer dedups against these packs.
            repo.refresh_index()
            self._grow(sum(packs.size[p] for p in repack))
            repacked = self._repack(repack, packs, live)
            # Ripe already unless a writer ran across it: then a later prune carries it out.
            live_writers, _ = self._writers()
            if self._ripe(name, live_writers):
                live, _ = self._live_blobs(snapshot_ids, live)
                mark = repo.deletion_marks()[name]
                self._plan({p.hex() for p in mark.packs}, dict(repo.packs()))
                self._carry_out(mark, live)
            else:
                self.notes.append(f"{len(live_writers)} writer(s) running: {len(to_delete)} pack(s) wait for them")
        policies = self._old_policy_records()
        temporaries = self._old_temporaries()
        for r in stale if not self.dry_run else []:
            repo.delete_key(f"{layout.WRITERS}/{r.name}")
        if self.dry_run:
            # And this run's mark too, carried out at once unless a writer is running.
            going = {p for ps in marked.values() for p in ps}
            size_after = (
                size_before
                - self.deleted_bytes
                - sum(packs.size[p] for p in going)
                + sum(packs.live_bytes[p] for p in repack)
            )
            if not live_writers:
                self.deleted_packs += len(going)
                self.deleted_bytes += sum(packs.size[p] for p in going)
        else:
            size_after = sum(s for _, s in repo.packs())
        return PruneResult(
            dry_run=self.dry_run,
            snapshots=len(snapshot_ids),
            size_before=size_before,
            size_after=size_after,
            marked={k: ReasonStats(len(v), sum(packs.size.get(p, 0) for p in v)) for k, v in marked.items()},
            repacked_blobs=repacked[0],
            repacked_bytes=repacked[1],
            deleted=ReasonStats(self.deleted_packs, self.deleted_bytes),
            deferred=deferred,
            rescued=self.rescued,
            index_files_written=self.index_written,
            index_files_deleted=self.index_deleted,
            marks_written=result_marks,
            marks_carried_out=self.carried_out,
            policy_records_removed=policies,
            writer_records_removed=0 if self.dry_run else len(stale),
            temporaries_removed=temporaries,
            live_writers=len(live_writers),
            notes=self.notes,
        )

    def _plan(self, names: set[str], listed: dict[str, int]) -> None:
        """Tell the meter of the packs ``names`` (hex) a carry-out will deal with, by their
        listed sizes (a pack no longer listed is skipped by the carry-out too)."""
        self._grow(sum(listed[n] for n in names if n in listed))

    def _grow(self, nbytes: int) -> None:
        """``nbytes`` more to deal with: the meter's size grows."""
        self.planned += nbytes
        self.meter.size(self.planned)

    def _choose(
        self,
        packs: _Packs,
        doomed: frozenset[bytes],
        max_repack: float,
        max_unused: float,
        rekey: frozenset[bytes] = frozenset(),
    ) -> tuple[dict[str, set[bytes]], frozenset[bytes]]:
        """Packs to mark, by reason, and the packs whose live blobs are copied first."""
        quarantined = self.repo.quarantined_packs()
        marked: dict[str, set[bytes]] = {
            "unused": set(),
            "unindexed": set(),
            "quarantined": set(),
            "repack": set(),
            "rekey": set(),
        }
        partial: list[tuple[float, bytes]] = []
        for pid, size in packs.size.items():
            if pid in doomed:
                continue
            if pid in quarantined:
                marked["quarantined"].add(pid)
            elif pid not in packs.indexed:
                marked["unindexed"].add(pid)
            elif packs.live_count[pid] == 0:
                marked["unused"].add(pid)
            elif pid in rekey:
                marked["rekey"].add(pid)
            elif packs.live_bytes[pid] < packs.blob_bytes[pid]:
                partial.append((_unused_bytes(packs, pid, size) / max(1, size), pid))
        total = sum(packs.size.values())
        gone = sum(packs.size[p] for ps in marked.values() for p in ps) + sum(packs.size.get(p, 0) for p in doomed)
        unused = sum(_unused_bytes(packs, p, packs.size[p]) for _, p in partial)
        # Against the live data, not what stays: "5% unused" then means within 5% of a
        # repository holding only the live data (restic counts it against what stays, which
        # allows 5.3%).
        live = sum(packs.live_bytes[p] for p in packs.indexed if p in packs.size and p not in doomed)
        budget = max_repack * total
        copied = 0
        for _, pid in sorted(partial, reverse=True):
            if unused <= max_unused * live * _UNUSED_MARGIN:
                break
            if copied + packs.live_bytes[pid] > budget:
                continue
            marked["repack"].add(pid)
            copied += packs.live_bytes[pid]
            gone += packs.size[pid] - packs.live_bytes[pid]
            unused -= _unused_bytes(packs, pid, packs.size[pid])
        return {k: v for k, v in marked.items() if v}, frozenset(marked["repack"] | marked["rekey"])

    def _redundant_files(self, packs: _Packs, doomed: frozenset[bytes], to_delete: frozenset[bytes]) -> list[str]:
        """Index files that may go with this mark: those listing no pack of an earlier mark
        (that mark deletes them itself, and its packs must stay listed until then)."""
        return sorted(key for key, listed in packs.files.items() if not listed & doomed)

    def _repack(self, repack: frozenset[bytes], packs: _Packs, live: set[bytes]) -> tuple[int, int]:
        """Move the live blobs of ``repack`` into new packs (:func:`repack_packs`); blobs with
        a copy outside marked packs (``reusable``) are not copied."""
        idx = self.repo.refresh_index()
        return repack_packs(
            self.repo,
            {pid: packs.size[pid] for pid in repack},
            keep=lambda e: e.id in live and not idx.reusable(e.id),
            progress=lambda pid: self.meter.add(packs.size[pid]),
        )

    def _carry_out(self, mark: DeletionMark, live: set[bytes]) -> None:
        """Phase two of one ripe mark. Each step can be interrupted and done again:

        1. delete each pack of the mark unless a live blob has no copy outside marked packs
           (then it is rescued: kept);
        2. list in a new index file every pack that stays and that only the mark's index
           files list (the merge: many small index files become one);
        3. delete the mark's index files, then the mark.
        """
        repo = self.repo
        idx = repo.refresh_index()
        stored = {bytes.fromhex(name): size for name, size in repo.packs()}
        kept_unindexed: list[tuple[bytes, list[PackEntry]]] = []
        for pid in sorted(mark.packs):
            size = stored.get(pid)
            if size is None:
                continue  # deleted by an earlier, interrupted run
            needed = self._needed(pid, size, idx, live)
            if needed is None:
                repo.delete_key(layout.pack_key(pid))
                del stored[pid]
                self.deleted_packs += 1
                self.deleted_bytes += size
                self.meter.add(size)
                continue
            self.rescued += 1
            self.meter.add(size)
            if pid not in idx.packs:
                kept_unindexed.append((pid, needed))
        # Every index file listing a pack of the mark that is gone goes too (the mark's own,
        # and any written since that still lists one, such as an earlier carry-out's merge),
        # once what else it lists is written anew. "Gone" is recomputed from the store, so
        # a run interrupted between deleting packs and this step is finished by the next.
        gone = mark.packs - stored.keys()
        listed_by: dict[str, set[bytes]] = {}
        for key in repo.index_files():
            listed_by[key] = {pid for pid, _ in repo.read_index_file(key)}
        going = {k for k, packs in listed_by.items() if k in mark.index_files or packs & gone}
        elsewhere: set[bytes] = set().union(*(p for k, p in listed_by.items() if k not in going))

        def staying() -> Iterator[tuple[bytes, list[PackEntry]]]:
            yield from kept_unindexed
            done = elsewhere | {p for p, _ in kept_unindexed}
            for key in sorted(going):
                for pid, entries in repo.read_index_file(key):
                    if pid in stored and pid not in done:
                        done.add(pid)
                        yield pid, entries

        self.index_written += _write_all(repo, staying())
        for key in sorted(going | set(mark.index_files)):
            repo.delete_key(key)
            self.index_deleted += 1
        self._drop_quarantine_records(mark.packs)
        repo.delete_key(f"{layout.DELETIONS}/{mark.name}")
        self.carried_out += 1
        repo.refresh_index()

    def _needed(self, pid: bytes, size: int, idx: Index, live: set[bytes]) -> list[PackEntry] | None:
        """The pack's entries if it holds a live blob with no copy outside marked packs, else None."""
        try:
            entries = self.repo.read_pack_header(pid, size)
        except IntegrityError:
            return None  # unreadable: it can serve no snapshot
        if any(e.id in live and not idx.reusable(e.id) for e in entries):
            return entries
        return None

    def _drop_quarantine_records(self, gone: frozenset[bytes]) -> None:
        """Remove quarantine records none of whose packs is stored any more."""
        if not self.repo.quarantined_packs() & gone:
            return
        left = {bytes.fromhex(n) for n, _ in self.repo.packs()}
        for key in self.repo.list_keys(layout.QUARANTINE):
            record = json.loads(self.repo.read_sealed(key, QUARANTINE_AD))
            if not {bytes.fromhex(p) for p in record["packs"]} & left:
                self.repo.delete_key(key)

    def _old_temporaries(self) -> int:
        """Remove ``.tmp-*`` files older than :data:`TEMPORARY_AGE` (by the store's clock,
        against ``now``): no writer takes a day between creating one and linking it."""
        cutoff = self.now.timestamp() - TEMPORARY_AGE.total_seconds()
        old = [key for key, mtime in self.repo.temporaries() if mtime < cutoff]
        if not self.dry_run:
            for key in old:
                self.repo.delete_key(key)
        return len(old)

    def _old_policy_records(self) -> int:
        """Remove policy records that a newer one of the same name supersedes."""
        newest: dict[str, tuple[str, str]] = {}
        records: list[tuple[str, str, str, bool]] = []
        for key in self.repo.list_keys(layout.POLICIES):
            try:
                doc = json.loads(self.repo.read_sealed(key, POLICY_AD))
                name, saved = str(doc["name"]), str(doc["saved_at"])
            except (SnapvaultError, ValueError, KeyError, TypeError):
                continue  # unreadable records are left for a person to look at
            records.append((name, saved, key, doc.get("policy") is None))
            if (saved, key) > newest.get(name, ("", "")):
                newest[name] = (saved, key)
        removed = 0
        for name, _saved, key, _null in records:
            if newest[name][1] != key:
                if not self.dry_run:
                    self.repo.delete_key(key)
                removed += 1
        return removed
