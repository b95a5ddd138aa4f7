"""Deletion marks and writer records: what lets a prune delete while others back up, lock-free.

A prune never deletes in the run that decides to (unless no writer could be using what it
deletes): it first writes a *deletion mark* (``deletions/<hex>``) naming the packs and index
files it means to delete. Every writer (a backup, a copy, a repair) announces itself with a
*writer record* (``writers/<hex>``) before it loads the index, and then records which marks it
saw when it did. A writer never reuses a blob found only in marked packs. A mark is *ripe*
(its packs may go) once every live writer has recorded seeing it: a writer that loaded its
index before the mark existed could hold a reference into a marked pack, so the mark waits for
it to finish. A writer is live while its newest record is younger than the prune's
``writer_timeout``; records are refreshed every :data:`REFRESH_EVERY` while the writer runs
and deleted when it ends, so only a crashed (or frozen) writer ages out.

docs/design.md ("Prune") gives the argument that no committed snapshot loses a blob; this
module only reads and writes the two kinds of record.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from snapvault.errors import AppendOnlyError, ConcurrentPruneError, IntegrityError, ObjectNotFound
from snapvault.repository import layout

if TYPE_CHECKING:
    from types import TracebackType

    from snapvault.pipeline.index import Index
    from snapvault.pipeline.tree import Node

__all__ = [
    "DELETION_AD",
    "REFRESH_EVERY",
    "STALE_AFTER",
    "WRITER_AD",
    "CommitRepository",
    "DeletionMark",
    "RecordStore",
    "WriterRecord",
    "WriterSession",
    "check_before_commit",
    "decode_mark",
    "decode_writer",
    "encode_mark",
    "encode_writer",
    "read_marks",
    "read_writers",
]

DELETION_AD = b"snapvault deletion"
WRITER_AD = b"snapvault writer"
DELETIONS = layout.DELETIONS
WRITERS = layout.WRITERS

#: How often a running writer rewrites its record. A prune's ``writer_timeout`` must be longer
#: than this plus the clock skew between machines (docs/design.md, "Clocks").
REFRESH_EVERY = timedelta(minutes=10)


class RecordStore(Protocol):
    """What reading and writing the records needs of a repository."""

    def list_keys(self, folder: str) -> list[str]:
        """Keys of every object in ``folder``, sorted."""
        ...

    def read_sealed(self, key: str, ad: bytes) -> bytes:
        """Read and open a sealed, content-named object."""
        ...

    def write_sealed(self, folder: str, data: bytes, ad: bytes) -> str:
        """Seal and store an object; return its name."""
        ...

    def delete_key(self, key: str) -> None:
        """Delete one object (missing is fine)."""
        ...


def _time(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError("time is not text")
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError("time has no UTC offset")
    return t


def _iso(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("times in records must be timezone-aware")
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class DeletionMark:
    """Phase one of a prune: packs and index files it will delete once the mark is ripe."""

    name: str
    time: datetime
    packs: frozenset[bytes]
    index_files: tuple[str, ...]
    reason: dict[str, int]


def encode_mark(time: datetime, packs: Iterable[bytes], index_files: Iterable[str], reason: dict[str, int]) -> bytes:
    """The JSON of a deletion mark (sealed by the caller)."""
    doc = {
        "index": sorted(index_files),
        "packs": sorted(p.hex() for p in packs),
        "reason": dict(sorted(reason.items())),
        "time": _iso(time),
        "version": 1,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_mark(name: str, data: bytes) -> DeletionMark:
    """Parse a deletion mark; IntegrityError naming it if malformed."""
    try:
        doc = json.loads(data)
        if doc.get("version") != 1:
            raise ValueError(f"unknown version {doc.get('version')!r}")
        packs = frozenset(bytes.fromhex(h) for h in doc["packs"] if _hex64(h))
        if len(packs) != len(doc["packs"]):
            raise ValueError("a pack ID is not 64 hex digits")
        index = tuple(doc["index"])
        if not all(isinstance(k, str) and k.startswith("index/") and _hex64(k[6:]) for k in index):
            raise ValueError("an index file key is malformed")
        reason = {str(k): int(v) for k, v in dict(doc.get("reason", {})).items()}
        return DeletionMark(name, _time(doc["time"]), packs, index, reason)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        key = f"{DELETIONS}/{name}"
        raise IntegrityError(f"{key}: deletion mark is malformed: {e}", key=key) from None


def _hex64(h: object) -> bool:
    return isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)


@dataclass(frozen=True)
class WriterRecord:
    """One record of a running writer: who, when written, and the marks it had seen (None
    while it has not yet listed them)."""

    name: str
    writer: str
    time: datetime
    seen: frozenset[str] | None
    host: str


def encode_writer(writer: str, time: datetime, seen: Iterable[str] | None, host: str) -> bytes:
    """The JSON of a writer record (sealed by the caller)."""
    doc: dict[str, Any] = {
        "host": host,
        "seen": None if seen is None else sorted(seen),
        "time": _iso(time),
        "version": 1,
        "writer": writer,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_writer(name: str, data: bytes) -> WriterRecord:
    """Parse a writer record; IntegrityError naming it if malformed."""
    try:
        doc = json.loads(data)
        if doc.get("version") != 1:
            raise ValueError(f"unknown version {doc.get('version')!r}")
        seen = doc["seen"]
        if seen is not None and not all(_hex64(s) for s in seen):
            raise ValueError("a seen mark is not 64 hex digits")
        writer = doc["writer"]
        if not isinstance(writer, str) or not writer:
            raise ValueError("no writer ID")
        return WriterRecord(
            name, writer, _time(doc["time"]), None if seen is None else frozenset(seen), str(doc.get("host", ""))
        )
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        raise IntegrityError(f"{WRITERS}/{name}: writer record is malformed: {e}", key=f"{WRITERS}/{name}") from None


def read_marks(
    repo: RecordStore, cache: dict[str, DeletionMark] | None = None, unreadable: list[IntegrityError] | None = None
) -> dict[str, DeletionMark]:
    """Every deletion mark, by name (``cache`` saves re-reading marks read before).

    A mark that cannot be read (damaged, foreign) is left out, and added to ``unreadable``:
    no prune can carry it out either, so its packs are never deleted on its account, and
    readers have no reason to stop (``check`` reports it).
    """
    out: dict[str, DeletionMark] = {}
    for key in repo.list_keys(DELETIONS):
        name = key.rsplit("/", 1)[1]
        known = cache.get(name) if cache is not None else None
        if known is not None:
            out[name] = known
            continue
        try:
            out[name] = decode_mark(name, repo.read_sealed(key, DELETION_AD))
        except ObjectNotFound:
            continue  # carried out since it was listed
        except IntegrityError as e:
            if unreadable is not None:
                unreadable.append(e)
    return out


def read_writers(repo: RecordStore) -> list[WriterRecord]:
    """Every writer record; one that vanished while listed (its writer ended) is left out."""
    out = []
    for key in repo.list_keys(WRITERS):
        try:
            out.append(decode_writer(key.rsplit("/", 1)[1], repo.read_sealed(key, WRITER_AD)))
        except (ObjectNotFound, IntegrityError):
            # Ended meanwhile; or damaged or foreign, which no writer of ours wrote.
            continue
    return out


class WriterSession:
    """A writer's presence in the repository, from before it loads the index until it ends.

    Use as a context manager around everything a writer does from loading the index to
    committing. ``clock`` gives the wall-clock time written into records (the machine's clock
    by default; a prune compares it with its own ``now``).
    """

    def __init__(
        self,
        repo: RecordStore,
        *,
        writer_id: str,
        host: str,
        clock: Callable[[], datetime],
        refresh_every: timedelta = REFRESH_EVERY,
    ) -> None:
        self.repo = repo
        self.writer_id = writer_id
        self.host = host
        self.clock = clock
        self.refresh_every = refresh_every
        #: Names of the marks this writer had seen when it (last) loaded the index.
        self.seen: frozenset[str] | None = None
        self._keys: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: time.monotonic() of the last record written: a writer frozen past a prune's
        #: timeout finds out from it at commit (see :meth:`stale_for`).
        self.refreshed_at = 0.0

    def _write(self, seen: frozenset[str] | None) -> None:
        data = encode_writer(self.writer_id, self.clock(), seen, self.host)
        key = f"{WRITERS}/{self.repo.write_sealed(WRITERS, data, WRITER_AD)}"
        with self._lock:
            old, self._keys = self._keys, [key]
            self.refreshed_at = time.monotonic()
        # The new record first, then the old ones: never a moment with none.
        for k in old:
            if k != key:
                self._delete(k)

    def _delete(self, key: str) -> None:
        # An append-only writer leaves its records; a prune elsewhere removes them once they
        # are older than its writer timeout.
        with contextlib.suppress(AppendOnlyError):
            self.repo.delete_key(key)

    def start(self) -> None:
        """Announce this writer (before it lists marks or loads the index)."""
        self._write(None)

    def saw(self, marks: Iterable[str]) -> None:
        """Record the marks this writer saw when it loaded the index, and keep refreshing."""
        self.seen = frozenset(marks)
        self._write(self.seen)
        if self._thread is None:
            self._thread = threading.Thread(target=self._refresh, name="sv-writer-record", daemon=True)
            self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(self.refresh_every.total_seconds()):
            # A failed refresh is tried again next time; a writer that stays unrefreshed too
            # long finds out at its commit (check_before_commit).
            with contextlib.suppress(Exception):
                self._write(self.seen)

    def refresh(self) -> None:
        """Rewrite this writer's record now."""
        self._write(self.seen)

    def stale_for(self) -> float:
        """Seconds since this writer's record was last rewritten."""
        return time.monotonic() - self.refreshed_at

    def close(self) -> None:
        """Stop refreshing and remove this writer's records."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            keys, self._keys = self._keys, []
        for k in keys:
            self._delete(k)

    def __enter__(self) -> WriterSession:
        # Started already (Repository.writer_session starts it and records the marks seen).
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


#: A writer whose record went unrefreshed this long (it was frozen, or its store unreachable)
#: may have been taken for crashed by a prune; it checks its references before committing.
STALE_AFTER = REFRESH_EVERY * 1.5


class CommitRepository(RecordStore, Protocol):
    """What the check before a frozen writer's commit needs of a repository."""

    def deletion_marks(self) -> dict[str, DeletionMark]:
        """Every pending deletion mark, by name."""
        ...

    def refresh_index(self) -> Index:
        """The index with what others added since it was loaded."""
        ...

    def packs(self) -> Iterator[tuple[str, int]]:
        """(hex pack ID, size) of every stored pack."""
        ...

    def iter_tree(self, tree_id: str) -> Iterator[Node]:
        """Walk one tree's nodes."""
        ...


def check_before_commit(repo: CommitRepository, session: WriterSession, root_tree: str) -> None:
    """Before a writer frozen past :data:`STALE_AFTER` commits: make sure no prune deleted (or
    is deleting) a blob its snapshot references.

    A prune takes a writer whose record is older than its ``writer_timeout`` for crashed and
    may carry out marks that writer never saw. So the writer first rewrites its record (from
    now on every new mark waits for it again), then follows every reference of its snapshot:
    each blob must be indexed in a pack that is stored and not named by a mark. Otherwise it
    raises ConcurrentPruneError and commits nothing; its packs are collected by a later prune.
    """
    if session.stale_for() < STALE_AFTER.total_seconds():
        return
    session.refresh()
    marks = repo.deletion_marks()
    doomed: set[bytes] = set().union(*(m.packs for m in marks.values()))
    stored = {bytes.fromhex(name) for name, _ in repo.packs()}
    idx = repo.refresh_index()
    missing = 0
    seen_trees: set[str] = set()
    stack = [root_tree]
    while stack:
        tid = stack.pop()
        if tid in seen_trees:
            continue
        seen_trees.add(tid)
        refs = [tid]
        nodes = list(repo.iter_tree(tid)) if _present(idx, bytes.fromhex(tid), stored, doomed) else []
        for n in nodes:
            if n.subtree is not None:
                stack.append(n.subtree)
            refs.extend(n.content)
        missing += sum(1 for r in refs if not _present(idx, bytes.fromhex(r), stored, doomed))
    if missing:
        raise ConcurrentPruneError(
            f"{missing} blob(s) this writer references were deleted, or are being deleted, by a prune "
            f"while the writer was frozen for {session.stale_for():.0f} s; nothing was committed: run it again"
        )


def _present(idx: Index, bid: bytes, stored: set[bytes], doomed: set[bytes]) -> bool:
    loc = idx.get(bid)
    return loc is not None and loc.pack_id in stored and loc.pack_id not in doomed
