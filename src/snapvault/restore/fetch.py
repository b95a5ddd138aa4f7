"""Reading packs from object stores a window at a time, shared by the threads of a restore.

A restore from a local folder reads exactly the ranges it needs: a read costs a system call. On
an object store every read is a request, and a request's latency, not its size, is what a
restore of many small files pays for: files of neighbouring directories sit side by side in one
pack, but are read one directory at a time. :class:`PackWindows` turns those reads into a few
large ones: the first read inside a ``span``-aligned window of a pack fetches the whole window
(or up to the pack's end), and later reads inside it, from any thread, are served from it.
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
