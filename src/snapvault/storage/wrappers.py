"""Stores that wrap a store: read-only access and fault injection for tests."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TypeVar

from snapvault.errors import AccessDenied, TransientStorageError
from snapvault.storage.base import Capabilities, Store, StoreEntry

__all__ = ["FaultyStore", "ReadOnlyStore", "RetryingStore"]

T = TypeVar("T")


class _Wrapper:
    def __init__(self, inner: Store) -> None:
        self.inner = inner

    @property
    def capabilities(self) -> Capabilities:
        # No spool folder through a wrapper: a wrapper sees and may transform object bytes,
        # which a file handed straight to the inner store would bypass.
        return replace(self.inner.capabilities, spool_dir=None)

    @property
    def url(self) -> str:
        return self.inner.url

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        return self.inner.put_if_absent(key, data)

    def put_file_if_absent(self, key: str, path: str) -> bool:
        try:
            with open(path, "rb") as f:
                data = f.read()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return self.put_if_absent(key, data)

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def temporaries(self, prefix: str) -> Iterator[tuple[str, float]]:
        lister = getattr(self.inner, "temporaries", None)
        return iter(()) if lister is None else lister(prefix)


class ReadOnlyStore(_Wrapper):
    """Refuses every write with :class:`AccessDenied`."""

    @property
    def capabilities(self) -> Capabilities:
        return replace(self.inner.capabilities, read_only=True, spool_dir=None)

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        raise AccessDenied(f"store is read-only: {key}", key=key)

    def put_file_if_absent(self, key: str, path: str) -> bool:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise AccessDenied(f"store is read-only: {key}", key=key)

    def delete(self, key: str) -> None:
        raise AccessDenied(f"store is read-only: {key}", key=key)


class FaultyStore(_Wrapper):
    """Injects failures for tests, each decided by a seeded draw.

    The faults, each at its own rate:

    - *transient*: any operation (``get``, ``get_range``, ``size``, ``exists``, a write,
      ``list``, ``delete``) raises :class:`TransientStorageError` before it reaches the
      inner store, so nothing happened.
    - *short read*: ``get_range`` returns the first half of the bytes it was asked for,
      which the store contract allows only at the object's end. :class:`RetryingStore`
      notices and reads again; without it the reader sees damage (IntegrityError).
    - *lost response*: a write lands, then reports a transient failure; a create-only write
      tried again finds the object there.
    - *torn listing*: ``list`` yields part of the listing, then raises
      :class:`TransientStorageError`, as a paged listing does when a connection breaks
      between pages. What was yielded before the error is not the listing: a caller must
      start over (:class:`RetryingStore` does) or fail.
    - *stale listing*: ``list`` silently leaves out some of the objects written through this
      wrapper lately (each of the last ``stale_window`` written, with probability one
      half), as an eventually consistent object store may. No error is raised, so a caller
      must treat a listing as possibly incomplete: an object missing from it may still
      exist (a snapshot not shown, an index file not loaded, a pack reported missing by a
      check), but nothing may ever be read back wrong because of it. Objects that were
      there before the wrapper was made are always listed, and deleted objects are never
      listed.

    Every draw is a function of ``seed``, the kind of fault, the key (or listed prefix) and
    how many times that operation has been asked of that key through this wrapper, not of
    the order in which threads make their calls: the same calls meet the same faults.

    Parameters
    ----------
    inner : Store
        The store to wrap.
    fail_writes_after : int or None
        Raise on every write after this many successful ones (a crash stand-in).
    transient_rate : float
        Probability that an operation raises :class:`TransientStorageError` first.
    short_read_rate : float
        Probability that a ranged read returns only half of the bytes.
    fail_after_write_rate : float
        Probability that a write lands and then reports a transient failure.
    torn_list_rate : float
        Probability that a listing breaks off with :class:`TransientStorageError` after
        yielding some (possibly none) of its entries.
    stale_list_rate : float
        Probability that a listing leaves out recently written objects, silently.
    stale_window : int
        How many of the latest objects written through this wrapper a stale listing may
        leave out.
    latency : float
        Seconds added to every operation.
    sleep : callable
        Waits out ``latency``.
    seed : int
        Seed of the failure draws, so a test is repeatable.

    Attributes
    ----------
    writes : int
        Writes that reached the inner store.
    injected : int
        Faults injected so far, of every kind (a stale listing counts once, whether or not
        anything recent fell under its prefix).
    """

    def __init__(
        self,
        inner: Store,
        *,
        fail_writes_after: int | None = None,
        transient_rate: float = 0.0,
        short_read_rate: float = 0.0,
        fail_after_write_rate: float = 0.0,
        torn_list_rate: float = 0.0,
        stale_list_rate: float = 0.0,
        stale_window: int = 8,
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
    ) -> None:
        super().__init__(inner)
        self.fail_writes_after = fail_writes_after
        self.transient_rate = transient_rate
        self.short_read_rate = short_read_rate
        self.fail_after_write_rate = fail_after_write_rate
        self.torn_list_rate = torn_list_rate
        self.stale_list_rate = stale_list_rate
        self.latency = latency
        self.sleep = sleep
        self.seed = seed
        self.writes = 0
        self.injected = 0
        self._calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self._recent: collections.deque[str] = collections.deque(maxlen=stale_window)
        self._lock = threading.Lock()

    def _uniform(self, kind: str, key: str) -> float:
        """A draw in [0, 1) for the next ``kind`` operation on ``key``."""
        with self._lock:
            n = self._calls[kind, key]
            self._calls[kind, key] = n + 1
        return self._hash(kind, key, n)

    def _hash(self, *parts: object) -> float:
        text = "\0".join(str(p) for p in (self.seed, *parts)).encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") / 2.0**64

    def _draw(self, rate: float, kind: str, key: str) -> bool:
        hit = self._uniform(kind, key) < rate
        if hit:
            with self._lock:
                self.injected += 1
        return hit

    def _maybe_fail(self, op: str, key: str) -> None:
        if self.latency:
            self.sleep(self.latency)
        if self._draw(self.transient_rate, op, key):
            raise TransientStorageError(f"injected transient failure: {op} {key}", key=key)

    def get(self, key: str) -> bytes:
        self._maybe_fail("get", key)
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self._maybe_fail("get_range", key)
        data = self.inner.get_range(key, offset, length)
        if self._draw(self.short_read_rate, "short", key) and len(data) > 1:
            return data[: len(data) // 2]
        return data

    def size(self, key: str) -> int:
        self._maybe_fail("size", key)
        return self.inner.size(key)

    def exists(self, key: str) -> bool:
        self._maybe_fail("exists", key)
        return self.inner.exists(key)

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        with self._lock:
            if self.fail_writes_after is not None and self.writes >= self.fail_writes_after:
                raise TransientStorageError(f"injected write failure: {key}", key=key)
        self._maybe_fail("put", key)
        result = self.inner.put_if_absent(key, data)
        with self._lock:
            self.writes += 1
            if result:
                self._recent.append(key)
        if self._draw(self.fail_after_write_rate, "lost", key):
            # The bytes landed but the caller hears of a failure (a lost response).
            raise TransientStorageError(f"injected failure after writing {key}", key=key)
        return result

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        # A generator, as a paged listing is: the failures surface while it is consumed.
        self._maybe_fail("list", prefix)
        torn = self._draw(self.torn_list_rate, "torn", prefix)
        stale = self._draw(self.stale_list_rate, "stale", prefix)
        with self._lock:
            n = self._calls["list", prefix]
            recent = set(self._recent) if stale else set()
        entries = list(self.inner.list(prefix))
        if recent:
            entries = [e for e in entries if e.key not in recent or self._hash("omit", prefix, n, e.key) >= 0.5]
        cut = int(self._hash("cut", prefix, n) * len(entries)) if torn else len(entries)
        yield from entries[:cut]
        if torn:
            raise TransientStorageError(f"injected torn listing of {prefix!r} after {cut} entries", key=prefix)

    def delete(self, key: str) -> None:
        self._maybe_fail("delete", key)
        self.inner.delete(key)


class RetryingStore(_Wrapper):
    """Retries :class:`TransientStorageError` with exponential backoff and full jitter.

    Permanent errors (not found, access denied, unreachable endpoint, anything else) fail at
    once. A retried ``put_if_absent`` whose first attempt did land reports "already exists",
    which the repository treats as success for content-addressed objects.

    Parameters
    ----------
    inner : Store
        The store to wrap.
    attempts : int
        Tries in all, the first included.
    base_delay, max_delay : float
        Seconds; the n-th retry waits a random time in [0, min(max_delay, base_delay * 2**n)].
    sleep : callable
        Waits; a parameter so tests need not.
    seed : int, optional
        Seed of the jitter.
    """

    def __init__(
        self,
        inner: Store,
        *,
        attempts: int = 6,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        super().__init__(inner)
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.retries = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _call(self, fn: Callable[[], T]) -> T:
        for attempt in range(self.attempts):
            try:
                return fn()
            except TransientStorageError:
                if attempt == self.attempts - 1:
                    raise
                with self._lock:
                    self.retries += 1
                    delay = self._rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, key: str) -> bytes:
        return self._call(lambda: self.inner.get(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._call(lambda: self._full_range(key, offset, length))

    def _full_range(self, key: str, offset: int, length: int) -> bytes:
        data = self.inner.get_range(key, offset, length)
        # Fewer bytes than asked is only right at the end of the object; anywhere else it is a
        # connection cut short, worth another try.
        if len(data) < length and offset + len(data) < self.inner.size(key):
            raise TransientStorageError(f"short read of {key}", key=key)
        return data

    def size(self, key: str) -> int:
        return self._call(lambda: self.inner.size(key))

    def exists(self, key: str) -> bool:
        return self._call(lambda: self.inner.exists(key))

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        return self._call(lambda: self.inner.put_if_absent(key, data))

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        # Listings are materialised so a retry starts over instead of repeating entries.
        return iter(self._call(lambda: list(self.inner.list(prefix))))

    def delete(self, key: str) -> None:
        self._call(lambda: self.inner.delete(key))
