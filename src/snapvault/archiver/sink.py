"""Deduplicate, encode, pack and upload blobs on worker threads with bounded memory."""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import blake3

from snapvault.pipeline.codecs import Codec
from snapvault.pipeline.crypto import AEADSealer, PlainSealer
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.index import MAX_INDEX_ENTRIES, Index
from snapvault.pipeline.pack import MAX_PACK_BLOBS, PackEntry, PackWriter, pack_tail
from snapvault.repository.repo import PackBuilder
from snapvault.storage.local_store import TMP_PREFIX

__all__ = ["BlobSink", "SinkRepository", "SinkStats"]

_T = TypeVar("_T")

#: Blobs smaller than this are sealed on the thread that adds them (see BlobSink.add).
INLINE_BELOW = 16 << 10


class SinkRepository(Protocol):
    """What a :class:`BlobSink` needs of a repository: its index, its keys (through the blob
    and pack methods, never directly) and somewhere to put packs and index files."""

    @property
    def codec(self) -> Codec:
        """The default compression codec."""
        ...

    @property
    def pack_size(self) -> int:
        """Target size of a pack in bytes."""
        ...

    @property
    def spool_dir(self) -> str | None:
        """A local folder to build packs in, if the store has one."""
        ...

    def refresh_index(self) -> Index:
        """The blob index, with what other writers added since it was loaded."""
        ...

    def blob_id(self, data: bytes | memoryview) -> bytes:
        """The ID of a blob with plaintext ``data``."""
        ...

    def seal_blob(self, btype: BlobType, bid: bytes, data: bytes | memoryview, codec: Codec | None = None) -> bytearray:
        """Compress and seal one blob."""
        ...

    def finish_pack(self, packer: PackBuilder[_T]) -> tuple[bytes, _T, list[PackEntry]]:
        """Seal a pack's header; return its ID, its bytes (or spool file) and its entries."""
        ...

    def write_pack(self, pack_id: bytes, data: bytes | bytearray) -> None:
        """Store a finished pack."""
        ...

    def write_pack_file(self, pack_id: bytes, path: str) -> None:
        """Store a finished pack built in the spool folder."""
        ...

    def write_index(self, packs: Iterable[tuple[bytes, list[PackEntry]]]) -> str:
        """Write an index file for packs that landed."""
        ...


# Write an index file after this many packs, so an interrupted backup leaves its uploaded
# data findable by the next one.
_INDEX_EVERY = 16


@dataclass
class SinkStats:
    """What the sink added to the repository (named as in :class:`SnapshotStats`)."""

    data_blobs_added: int = 0
    tree_blobs_added: int = 0
    bytes_added: int = 0
    bytes_stored: int = 0
    packs_written: int = 0


class SpoolPackWriter:
    """A pack built in a file in the store's spool folder instead of in memory.

    Same interface as :class:`~snapvault.pipeline.pack.PackWriter`; ``finish`` returns the
    path of the finished file instead of its bytes. The pack's hash is computed as it is
    written, so the file is never read back.
    """

    def __init__(self, spool_dir: str) -> None:
        os.makedirs(spool_dir, exist_ok=True)
        self.path = os.path.join(spool_dir, f"{TMP_PREFIX}pack-{secrets.token_hex(8)}")
        self._f = open(self.path, "xb")  # noqa: SIM115 - closed in finish() or discard()
        self._hash = blake3.blake3()
        self._size = 0
        self._entries: list[PackEntry] = []

    def __len__(self) -> int:
        return self._size

    @property
    def count(self) -> int:
        return len(self._entries)

    def add(self, btype: BlobType, bid: bytes, sealed: bytes | bytearray | memoryview, raw_length: int) -> None:
        self._entries.append(PackEntry(btype, bid, self._size, len(sealed), raw_length))
        self._write(sealed)

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._f.write(data)
        self._hash.update(data)
        self._size += len(data)

    def finish(
        self, sealer: AEADSealer | PlainSealer, random: Callable[[int], bytes]
    ) -> tuple[bytes, str, list[PackEntry]]:
        self._write(pack_tail(sealer, self._entries, random))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        return self._hash.digest(), self.path, self._entries

    def discard(self) -> None:
        """Close and delete an unfinished pack."""
        self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _Budget:
    """Blocks producers while too many bytes are in flight."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._cond = threading.Condition()

    def acquire(self, n: int) -> None:
        with self._cond:
            # A single item larger than the limit still goes through once the queue drains.
            while self._used and self._used + n > self._limit:
                self._cond.wait()
            self._used += n

    def release(self, n: int) -> None:
        with self._cond:
            self._used -= n
            self._cond.notify_all()


class BlobSink:
    """Accepts blobs, writes the new ones to the repository.

    Use as a context manager or call :meth:`close`; :meth:`flush` finishes all packs and
    indexes (call it before writing a manifest). Errors raised on worker threads surface on
    the next :meth:`add` or on :meth:`flush`.
    """

    def __init__(
        self,
        repo: SinkRepository,
        *,
        workers: int,
        max_pending: int = 24 << 20,
        codec: Codec | None = None,
        inline_below: int = INLINE_BELOW,
    ) -> None:
        self.repo = repo
        self._inline_below = inline_below
        self.codec = codec or repo.codec
        #: IDs of the blobs this session stored, in the order they were added.
        self.added: list[bytes] = []
        #: IDs of the packs this session uploaded.
        self.packs_written: list[bytes] = []
        self.index = repo.refresh_index()
        self.stats = SinkStats()
        self._seen: set[bytes] = set()
        # One lock for the bookkeeping below, never held across I/O or encoding: the walker
        # takes it for every blob, so anything slow under it stalls reading.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        # Local stores offer a spool folder: packs are built in files there (page cache, not
        # this process's memory) and linked into place; elsewhere they are built in memory.
        self._spool = repo.spool_dir
        # Open data packs are taken from a queue by the encode thread that appends to one, so
        # appending (a file write the kernel may throttle) never holds a lock another thread
        # needs. Two packs serve any number of workers (more would cost memory on object
        # stores and leave more small packs at every flush); None stands for a pack not yet
        # begun. Tree blobs are few and small and share one pack under their own lock.
        self._data_slots = min(2, max(1, workers))
        self._data_packers: queue.SimpleQueue[PackWriter | SpoolPackWriter | None] = queue.SimpleQueue()
        for _ in range(self._data_slots):
            self._data_packers.put(None)
        self._tree_lock = threading.Lock()
        self._tree_packer: PackWriter | SpoolPackWriter | None = None
        self._encode = ThreadPoolExecutor(max(1, workers), thread_name_prefix="sv-encode")
        self._upload = ThreadPoolExecutor(2, thread_name_prefix="sv-upload")
        self._budget = _Budget(max_pending)
        # Separate from the byte budget: a worker waiting here waits only on uploads, which
        # always make progress, so the two limits cannot deadlock each other.
        self._pack_slots = threading.BoundedSemaphore(2)
        self._uploaded: list[tuple[bytes, list[PackEntry]]] = []
        self._uploaded_entries = 0
        self._error: BaseException | None = None
        self._cancelled = threading.Event()

    def __enter__(self) -> BlobSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def id_of(self, data: bytes | memoryview) -> bytes:
        """The blob ID of ``data`` in this repository."""
        return self.repo.blob_id(data)

    def has(self, bid: bytes) -> bool:
        """Whether the repository has, or this session is adding, blob ``bid``.

        A blob found only in packs a prune has marked for deletion counts as absent: it is
        stored again rather than referenced where it is about to go.
        """
        return bid in self._seen or self.index.reusable(bid)

    def add(self, btype: BlobType, data: bytes | memoryview, bid: bytes | None = None) -> tuple[bytes, bool]:
        """Store ``data`` unless present; return ``(blob_id, added)``."""
        self.raise_error()
        if bid is None:
            bid = self.id_of(data)
        with self._lock:
            if bid in self._seen or self.index.reusable(bid):
                return bid, False
            self._seen.add(bid)
            self.added.append(bid)
        n = len(data)
        self._budget.acquire(n)
        if n < self._inline_below:
            # A small blob is sealed and packed on the caller's thread: handing it to an
            # encode thread (a queue put, a futex wake, the GIL passed back and forth around
            # every system call of the next file) cost more than the work itself, about 40%
            # of a first backup of many small files on two cores.
            with self._lock:
                self._pending += 1
            self._encode_one(btype, bid, data)
            self.raise_error()
        else:
            self._submit(self._encode, self._encode_one, (btype, bid, data), lambda: self._budget.release(n))
        return bid, True

    def _submit(
        self, pool: ThreadPoolExecutor, fn: Callable[..., None], args: tuple[Any, ...], undo: Callable[[], None]
    ) -> None:
        """Run ``fn(*args)`` on ``pool``; ``undo`` stands in for it if it never runs (refused or
        cancelled by :meth:`close`), so budgets and the pending count are always settled."""
        # Counted before submitting, so flush() cannot see zero while work is still queued.
        with self._lock:
            self._pending += 1
        try:
            future = pool.submit(fn, *args)
        except BaseException:
            undo()
            self._finished(None)
            raise

        def settle_if_cancelled(f: Future[None]) -> None:
            if f.cancelled():
                undo()
                self._finished(None)

        future.add_done_callback(settle_if_cancelled)

    def _finished(self, exc: BaseException | None) -> None:
        with self._lock:
            if exc is not None and self._error is None:
                self._error = exc
            self._pending -= 1
            if not self._pending:
                self._idle.notify_all()

    def raise_error(self) -> None:
        """Re-raise the first error from a worker thread, if any."""
        if self._error is not None:
            raise self._error

    def _encode_one(self, btype: BlobType, bid: bytes, data: bytes | memoryview) -> None:
        n = len(data)
        error: BaseException | None = None
        try:
            if not self._cancelled.is_set():
                self._pack_one(btype, bid, data)
        except BaseException as e:  # noqa: BLE001 - surfaced by raise_error()
            error = e
        finally:
            self._budget.release(n)
            self._finished(error)

    def _pack_one(self, btype: BlobType, bid: bytes, data: bytes | memoryview) -> None:
        repo = self.repo
        n = len(data)
        sealed = repo.seal_blob(btype, bid, data, self.codec)
        limit = repo.pack_size
        full: PackWriter | SpoolPackWriter | None = None
        if btype is BlobType.DATA:
            taken = self._data_packers.get()
            try:
                packer = self._new_packer() if taken is None else taken
            except BaseException:
                self._data_packers.put(None)
                raise
            try:
                packer.add(btype, bid, sealed, n)
            finally:
                if len(packer) >= limit or packer.count >= MAX_PACK_BLOBS:
                    full = packer
                    self._data_packers.put(None)
                else:
                    self._data_packers.put(packer)
        else:
            with self._tree_lock:
                if self._tree_packer is None:
                    # Not `or`: an empty pack has len() 0 and would be dropped, file and all.
                    self._tree_packer = self._new_packer()
                tree_packer = self._tree_packer
                tree_packer.add(btype, bid, sealed, n)
                if len(tree_packer) >= limit or tree_packer.count >= MAX_PACK_BLOBS:
                    full, self._tree_packer = tree_packer, None
        with self._lock:
            if btype is BlobType.DATA:
                self.stats.data_blobs_added += 1
            else:
                self.stats.tree_blobs_added += 1
            self.stats.bytes_added += n
            self.stats.bytes_stored += len(sealed)
        if full is not None:
            self._ship(full)

    def _new_packer(self) -> PackWriter | SpoolPackWriter:
        return SpoolPackWriter(self._spool) if self._spool else PackWriter()

    def _ship(self, packer: PackWriter | SpoolPackWriter) -> None:
        try:
            pack_id, data, entries = self.repo.finish_pack(packer)
        except BaseException:
            if isinstance(packer, SpoolPackWriter):
                packer.discard()
            raise
        self._pack_slots.acquire()

        def undo() -> None:
            self._pack_slots.release()
            if isinstance(data, str):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(data)

        self._submit(self._upload, self._upload_one, (pack_id, data, entries), undo)

    def _upload_one(self, pack_id: bytes, data: bytes | bytearray | str, entries: list[PackEntry]) -> None:
        error: BaseException | None = None
        try:
            if isinstance(data, str):
                self.repo.write_pack_file(pack_id, data)
            else:
                self.repo.write_pack(pack_id, data)
            batch = None
            with self._lock:
                self.stats.packs_written += 1
                self.packs_written.append(pack_id)
                self._uploaded.append((pack_id, entries))
                self._uploaded_entries += len(entries)
                if len(self._uploaded) >= _INDEX_EVERY or self._uploaded_entries >= MAX_INDEX_ENTRIES:
                    batch, self._uploaded, self._uploaded_entries = self._uploaded, [], 0
            if batch:
                self.repo.write_index(batch)
        except BaseException as e:  # noqa: BLE001 - surfaced by raise_error()
            error = e
        finally:
            self._pack_slots.release()
            self._finished(error)

    def _wait(self) -> None:
        with self._idle:
            while self._pending:
                self._idle.wait()

    def _take_open_packers(self) -> list[PackWriter | SpoolPackWriter]:
        """Detach every open pack (only while no encode is running)."""
        packers = []
        for _ in range(self._data_slots):
            packer = self._data_packers.get()
            self._data_packers.put(None)
            if packer is not None:
                packers.append(packer)
        if self._tree_packer is not None:
            packers.append(self._tree_packer)
            self._tree_packer = None
        return packers

    def flush(self) -> None:
        """Upload every pending blob and write the remaining index entries."""
        self._wait()
        self.raise_error()
        packers = self._take_open_packers()
        try:
            while packers:
                packer = packers.pop()
                if packer.count:
                    self._ship(packer)
                elif isinstance(packer, SpoolPackWriter):
                    packer.discard()
        finally:
            # A pack that failed to finish leaves the rest unshipped: drop their files.
            for packer in packers:
                if isinstance(packer, SpoolPackWriter):
                    packer.discard()
        self._wait()
        self.raise_error()
        with self._lock:
            batch, self._uploaded, self._uploaded_entries = self._uploaded, [], 0
        if batch:
            self.repo.write_index(batch)

    def abandon(self, *, keep: bool = False) -> None:
        """Give up the session without a snapshot, leaving the repository consistent.

        With ``keep`` (a cancel) the blobs already queued are still packed and uploaded, so the
        next run reuses them; without it (a failure) queued blobs are dropped and only uploads
        under way finish. Either way the packs that landed are indexed, and the next backup
        reuses them instead of waiting for a prune.
        """
        if keep:
            try:
                self.flush()
                return
            except Exception:  # noqa: BLE001 - fall back to keeping only what already landed
                pass
        self._cancelled.set()
        self._wait()
        with self._lock:
            batch, self._uploaded, self._uploaded_entries = self._uploaded, [], 0
        if batch:
            self.repo.write_index(batch)

    def close(self) -> None:
        """Stop the worker threads (after :meth:`flush`, or to abandon the session)."""
        self._encode.shutdown(wait=True, cancel_futures=True)
        self._upload.shutdown(wait=True, cancel_futures=True)
        for packer in self._take_open_packers():
            if isinstance(packer, SpoolPackWriter):
                packer.discard()
