"""Reading packs from object stores a window at a time, shared by the threads of a restore.

A restore from a local folder reads exactly the ranges it needs: a read costs a system call. On
an object store every read is a request, and a request's latency, not its size, is what a
restore of many small files pays for: files of neighbouring directories sit side by side in one
pack, but are read one directory at a time. :class:`PackWindows` turns those reads into a few
large ones: the first read of a pack fetches a window of ``span`` bytes from its offset (or up
to the pack's end), and later reads inside that window are served from it.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from snapvault.pipeline.restore_plan import ReadRun

__all__ = ["PackWindows", "read_ahead"]


def read_ahead(
    runs: Iterator[ReadRun],
    fetch: Callable[[bytes, int, int], bytes | memoryview],
    pool: ThreadPoolExecutor,
    ahead: int,
) -> Iterator[tuple[ReadRun, bytes | memoryview]]:
    """Each run with its bytes, in order, with up to ``ahead`` later runs being fetched on
    ``pool`` while one is waited for (one stream from an object store is bound by request
    latency)."""
    pending: deque[tuple[ReadRun, Future[bytes | memoryview]]] = deque()
    for run in itertools.islice(runs, ahead):
        pending.append((run, pool.submit(fetch, run.pack_id, run.offset, run.length)))
    while pending:
        run, future = pending.popleft()
        following = next(runs, None)
        if following is not None:
            pending.append((following, pool.submit(fetch, following.pack_id, following.offset, following.length)))
        yield run, future.result()


class PackWindows:
    """The last few windows fetched from packs, with concurrent readers of one window sharing a
    single request.

    Parameters
    ----------
    get : callable
        ``get(pack_id, offset, length)``: the store's ranged read, short only at the end of the
        pack.
    span : int
        Bytes fetched for a window.
    slots : int
        Windows kept; memory is at most ``slots * span`` plus the reads being served.
    """

    def __init__(self, get: Callable[[bytes, int, int], bytes], *, span: int, slots: int) -> None:
        self._get = get
        self._span = span
        self._slots = slots
        self._lock = threading.Lock()
        self._windows: OrderedDict[bytes, _Window] = OrderedDict()

    def read(self, pack_id: bytes, offset: int, length: int) -> bytes | memoryview:
        """``length`` bytes of the pack from ``offset``: fewer only where the pack ends."""
        with self._lock:
            window = self._windows.get(pack_id)
            fresh = window is None or offset < window.start or window.ends_before(offset + length)
            if fresh:
                window = _Window(offset, max(length, self._span))
                self._windows[pack_id] = window
                while len(self._windows) > self._slots:
                    self._windows.popitem(last=False)
            else:
                self._windows.move_to_end(pack_id)
        assert window is not None
        if fresh:
            try:
                window.data.set_result(self._get(pack_id, offset, window.size))
            except BaseException as e:
                window.data.set_exception(e)
                with self._lock:
                    if self._windows.get(pack_id) is window:
                        del self._windows[pack_id]
                raise
        data = window.data.result()
        lo = offset - window.start
        if lo + length <= len(data) or len(data) < window.size:
            # Inside the window, or the window reaches the pack's end (then this is a short
            # read, exactly what a direct read would give).
            return memoryview(data)[lo : lo + length]
        # This reader waited on a window that was in flight and ends before its range.
        return self._get(pack_id, offset, length)


class _Window:
    """``size`` bytes of one pack from ``start``, once fetched."""

    __slots__ = ("data", "size", "start")

    def __init__(self, start: int, size: int) -> None:
        self.start = start
        self.size = size
        self.data: Future[bytes] = Future()

    def ends_before(self, end: int) -> bool:
        """Whether this finished window stops short of ``end``; a window in flight may not."""
        if not self.data.done():
            return False
        if self.data.exception() is not None:
            return True
        fetched = self.data.result()
        return self.start + len(fetched) < end and len(fetched) == self.size
