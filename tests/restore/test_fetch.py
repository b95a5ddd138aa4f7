"""PackWindows: few large reads instead of many small ones, always the bytes a direct read gives."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapvault.errors import ObjectNotFound
from snapvault.pipeline.restore_plan import ReadRun
from snapvault.restore.fetch import PackWindows, read_ahead

PACKS = {bytes([i]) * 32: os.urandom(100_000 + 7 * i) for i in range(4)}


class CountingReader:
    """A store's ranged read over in-memory packs, counting requests."""

    def __init__(self, packs: dict[bytes, bytes], delay: threading.Event | None = None) -> None:
        self.packs = packs
        self.calls: list[tuple[bytes, int, int]] = []
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, pack_id: bytes, offset: int, length: int) -> bytes:
        with self._lock:
            self.calls.append((pack_id, offset, length))
        if self.delay is not None:
            self.delay.wait(5)
        if pack_id not in self.packs:
            raise ObjectNotFound("no such pack", key=pack_id.hex())
        return self.packs[pack_id][offset : offset + length]


reads = st.lists(
    st.tuples(st.sampled_from(sorted(PACKS)), st.integers(0, 110_000), st.integers(0, 40_000)), max_size=40
)


@settings(max_examples=200)
@given(reads=reads, span=st.sampled_from([1, 1000, 30_000, 200_000]), slots=st.integers(1, 3))
def test_every_read_equals_a_direct_read(reads: list[tuple[bytes, int, int]], span: int, slots: int) -> None:
    get = CountingReader(PACKS)
    windows = PackWindows(get, span=span, slots=slots)
    for pid, off, n in reads:
        assert bytes(windows.read(pid, off, n)) == PACKS[pid][off : off + n]
    assert len(get.calls) <= len(reads)


def test_ascending_reads_of_one_pack_cost_one_request_per_window() -> None:
    pid = sorted(PACKS)[0]
    get = CountingReader(PACKS)
    windows = PackWindows(get, span=50_000, slots=2)
    for off in range(0, 100_000, 1_000):
        assert bytes(windows.read(pid, off, 1_000)) == PACKS[pid][off : off + 1_000]
    assert len(get.calls) == 2


def test_a_read_past_the_end_is_short_like_a_direct_read() -> None:
    pid = sorted(PACKS)[0]
    windows = PackWindows(CountingReader(PACKS), span=50_000, slots=2)
    assert bytes(windows.read(pid, 90_000, 1_000)) == PACKS[pid][90_000:91_000]
    assert bytes(windows.read(pid, 99_990, 100)) == PACKS[pid][99_990:]
    assert bytes(windows.read(pid, 100_000, 10)) == b""


def test_a_failed_read_is_raised_and_not_remembered() -> None:
    packs = dict(PACKS)
    get = CountingReader(packs)
    windows = PackWindows(get, span=50_000, slots=2)
    missing = b"\xee" * 32
    with pytest.raises(ObjectNotFound):
        windows.read(missing, 0, 10)
    packs[missing] = b"now it exists"
    assert bytes(windows.read(missing, 0, 3)) == b"now"


def test_the_oldest_window_is_dropped_beyond_the_slots() -> None:
    a, b, c = sorted(PACKS)[:3]
    get = CountingReader(PACKS)
    windows = PackWindows(get, span=200_000, slots=2)
    for pid in (a, b, c, a):
        windows.read(pid, 0, 10)
    # a was evicted by c, so its second read is a new request; b and c stayed.
    assert [call[0] for call in get.calls] == [a, b, c, a]
    windows.read(c, 5, 10)
    assert len(get.calls) == 4


def test_concurrent_readers_of_one_window_share_one_request() -> None:
    pid = sorted(PACKS)[1]
    release = threading.Event()
    get = CountingReader(PACKS, delay=release)
    windows = PackWindows(get, span=100_000, slots=2)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(windows.read, pid, 0, 500)
        while not get.calls:  # the first reader's request is in flight
            threading.Event().wait(0.001)
        others = [pool.submit(windows.read, pid, 1_000 * i, 500) for i in range(1, 4)]
        release.set()
        results = [bytes(f.result()) for f in [first, *others]]
    assert results == [PACKS[pid][1_000 * i : 1_000 * i + 500] for i in range(4)]
    assert len(get.calls) == 1


def test_read_ahead_yields_runs_in_order_with_a_bounded_number_in_flight() -> None:
    pid = sorted(PACKS)[2]
    runs = [ReadRun(pid, off, 1_000, ()) for off in range(0, 50_000, 1_000)]
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most

    def fetch(pack_id: bytes, offset: int, length: int) -> bytes:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
        threading.Event().wait(0.001)
        with lock:
            in_flight[0] -= 1
        return PACKS[pack_id][offset : offset + length]

    with ThreadPoolExecutor(8) as pool:
        got = list(read_ahead(iter(runs), fetch, pool, 3))
    assert [run for run, _ in got] == runs
    assert [bytes(data) for _, data in got] == [PACKS[pid][r.offset : r.offset + 1_000] for r in runs]
    # The run being waited for plus `ahead` more.
    assert 1 <= in_flight[1] <= 3 + 1
