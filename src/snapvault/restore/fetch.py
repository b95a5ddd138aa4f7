"""Reading a restore's data: pack ranges, fetched as the store is best read, and the blobs in them.

:class:`PackReader` is what the restorer reads through. A restore from a local folder reads
exactly the ranges it needs, in order: a read costs a system call. On
an object store every read is a request, and a request's latency, not its size, is what a
restore of many small files pays for: files of neighbouring directories sit side by side in one
pack, but are read one directory at a time. :class:`PackWindows` turns those reads into a few
large ones: the first read inside a ``span``-aligned window of a pack fetches the whole window
(or up to the pack's end), and later reads inside it, from any thread, are served from it;
:func:`read_ahead` keeps a few of a large file's ranges in flight.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from snapvault.errors import IntegrityError, ObjectNotFound
from snapvault.pipeline.ids import BlobType
from snapvault.pipeline.restore_plan import ReadRun, plan_reads
from snapvault.restore.source import PackSource

__all__ = ["PackReader", "PackWindows", "read_ahead"]

# Object stores: ranges of a large file fetched at once, and their size; the window of a pack
# read at once for small files.
_AHEAD = 2
_REMOTE_RUN = 8 << 20
_WINDOW = 16 << 20


class PackReader:
    """A restore's reads of pack ranges, and the verified blobs in them; shared by its threads.

    A missing, short or altered pack is damage: :class:`IntegrityError` naming the pack (and
    the blob). A pack found missing is not asked for again, file after file.

    Parameters
    ----------
    packs : PackSource
        Where the packs are.
    workers : int
        Files restored at once (the fetch threads and windows kept scale with it).
    total_bytes : int
        Bytes the restore writes: a restore smaller than a window reads no windows.
    """

    def __init__(self, packs: PackSource, *, workers: int, total_bytes: int) -> None:
        self._packs = packs
        self._missing: set[bytes] = set()
        # On an object store a large file's ranges are fetched a few at a time (request
        # latency, not bandwidth, bounds one stream); a local store reads them in order.
        self._pool: ThreadPoolExecutor | None = None
        self._windows: PackWindows | None = None
        if packs.spool_dir is None:
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="sv-fetch")
            # Files of neighbouring directories share packs: read each stretch of a pack once.
            # Not for a restore smaller than a window (a few files picked out of a snapshot),
            # which would download far more than it writes.
            span = min(packs.pack_size, _WINDOW)
            if total_bytes >= span:
                self._windows = PackWindows(packs.read_pack_range, span=span, slots=workers + 1)

    def close(self) -> None:
        """Stop the fetches not yet started and wait for the others."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def fetch(self, pack_id: bytes, offset: int, length: int) -> bytes | memoryview:
        """A range of a pack; a missing or short pack is damage (IntegrityError)."""
        if pack_id in self._missing:
            raise IntegrityError(f"pack {pack_id.hex()[:16]} is missing", pack_id=pack_id.hex())
        try:
            if self._windows is not None:
                data = self._windows.read(pack_id, offset, length)
            else:
                data = self._packs.read_pack_range(pack_id, offset, length)
        except ObjectNotFound:
            self._missing.add(pack_id)
            raise IntegrityError(f"pack {pack_id.hex()[:16]} is missing", pack_id=pack_id.hex()) from None
        if len(data) != length:
            raise IntegrityError(f"pack {pack_id.hex()[:16]} is truncated", pack_id=pack_id.hex())
        return data

    def read(self, runs: Iterable[ReadRun]) -> Iterator[tuple[ReadRun, bytes | memoryview]]:
        """Each run with its bytes, fetched when it is reached."""
        for run in runs:
            yield run, self.fetch(run.pack_id, run.offset, run.length)

    def file_runs(self, content: Sequence[bytes]) -> Iterator[tuple[ReadRun, bytes | memoryview]]:
        """The read runs of a file with these chunks, in order, each with its bytes; chunks are
        located as they are reached (IntegrityError for one the index does not hold)."""
        if self._pool is None or len(content) < 2:
            return self.read(plan_reads(content, self._packs.locate))
        # Smaller runs, _AHEAD of them in flight: at most (_AHEAD + 1) * _REMOTE_RUN bytes per
        # file being restored.
        runs = plan_reads(content, self._packs.locate, max_run=_REMOTE_RUN)
        return read_ahead(runs, self.fetch, self._pool, _AHEAD)

    def blobs(self, run: ReadRun, data: bytes | memoryview) -> Iterator[bytes]:
        """The plaintext of each blob of ``run``, verified as file data, from the run's bytes
        ``data``.

        A blob the index records as another type (a tree named as a file's chunk) is damage,
        and every blob is opened as ``DATA``: the type is bound in its associated data, so a
        blob sealed as anything else fails to open whatever the index says.
        """
        view = memoryview(data)
        for bid, loc in run.blobs:
            start = loc.offset - run.offset
            try:
                if loc.type != BlobType.DATA:
                    kind = "tree" if loc.type == BlobType.TREE else f"type {int(loc.type)}"
                    raise IntegrityError(f"wrong type: a {kind} blob named as file data")
                plain = self._packs.open_blob(BlobType.DATA, bid, view[start : start + loc.length], loc.raw_length)
            except IntegrityError as e:
                raise IntegrityError(
                    f"blob {bid.hex()[:16]} in pack {run.pack_id.hex()[:16]}: {e}",
                    pack_id=run.pack_id.hex(),
                    blob_id=bid.hex(),
                ) from None
            yield plain


def read_ahead(
    runs: Iterator[ReadRun],
    fetch: Callable[[bytes, int, int], bytes | memoryview],
    pool: ThreadPoolExecutor,
    ahead: int,
) -> Generator[tuple[ReadRun, bytes | memoryview], None, None]:
    """Each run with its bytes, in order, with up to ``ahead`` later runs being fetched on
    ``pool`` while one is waited for (one stream from an object store is bound by request
    latency).

    A failed fetch raises when its run is reached. Closing the iterator early (the caller
    found the file damaged, or was stopped) cancels the fetches not yet started.
    """
    pending: deque[tuple[ReadRun, Future[bytes | memoryview]]] = deque()
    try:
        for run in itertools.islice(runs, ahead):
            pending.append((run, pool.submit(fetch, run.pack_id, run.offset, run.length)))
        while pending:
            run, future = pending.popleft()
            following = next(runs, None)
            if following is not None:
                pending.append((following, pool.submit(fetch, following.pack_id, following.offset, following.length)))
            yield run, future.result()
    finally:
        for _, queued in pending:
            queued.cancel()


class PackWindows:
    """The last few windows fetched from packs, with concurrent readers of one window sharing a
    single request.

    Windows are aligned to multiples of ``span`` within a pack, so the threads of a restore,
    which reach a pack's files in no set order, agree on which window holds a range. A read that
    crosses a window's end is read directly.

    Parameters
    ----------
    get : callable
        ``get(pack_id, offset, length)``: the store's ranged read, short only at the end of the
        pack.
    span : int
        Bytes in a window.
    slots : int
        Windows kept: ``slots * span`` bytes, plus evicted windows that reads still hold.
    """

    def __init__(self, get: Callable[[bytes, int, int], bytes], *, span: int, slots: int) -> None:
        self._get = get
        self._span = span
        self._slots = slots
        self._lock = threading.Lock()
        self._windows: OrderedDict[tuple[bytes, int], _Window] = OrderedDict()

    def read(self, pack_id: bytes, offset: int, length: int) -> bytes | memoryview:
        """``length`` bytes of the pack from ``offset``: fewer only where the pack ends."""
        start = offset - offset % self._span
        if offset + length > start + self._span:
            return self._get(pack_id, offset, length)
        key = (pack_id, start)
        with self._lock:
            window = self._windows.get(key)
            fresh = window is None or window.failed()
            if fresh:
                window = self._windows[key] = _Window()
                while len(self._windows) > self._slots:
                    self._windows.popitem(last=False)
            self._windows.move_to_end(key)
        assert window is not None
        if fresh:
            try:
                window.data.set_result(self._get(pack_id, start, self._span))
            except BaseException as e:
                window.data.set_exception(e)
                with self._lock:
                    if self._windows.get(key) is window:
                        del self._windows[key]
                raise
        # A window ends early only where the pack does: then this is the same short read a
        # direct one would give.
        lo = offset - start
        return memoryview(window.data.result())[lo : lo + length]


class _Window:
    """One aligned stretch of a pack, once fetched."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: Future[bytes] = Future()

    def failed(self) -> bool:
        return self.data.done() and self.data.exception() is not None
