"""Stores that wrap a store: read-only access and fault injection for tests."""

from __future__ import annotations

import contextlib
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
    """Injects failures for tests.

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
    latency : float
        Seconds added to every operation.
    seed : int
        Seed of the failure draws, so a test is repeatable.
    """

    def __init__(
        self,
        inner: Store,
        *,
        fail_writes_after: int | None = None,
        transient_rate: float = 0.0,
        short_read_rate: float = 0.0,
        fail_after_write_rate: float = 0.0,
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int = 0,
    ) -> None:
        super().__init__(inner)
        self.fail_writes_after = fail_writes_after
        self.transient_rate = transient_rate
        self.short_read_rate = short_read_rate
        self.fail_after_write_rate = fail_after_write_rate
        self.latency = latency
        self.sleep = sleep
        self.writes = 0
        self.injected = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _draw(self, rate: float) -> bool:
        with self._lock:
            hit = rate > 0 and self._rng.random() < rate
            if hit:
                self.injected += 1
            return hit

    def _maybe_fail(self, key: str) -> None:
        if self.latency:
            self.sleep(self.latency)
        if self._draw(self.transient_rate):
            raise TransientStorageError(f"injected transient failure: {key}", key=key)

    def get(self, key: str) -> bytes:
        self._maybe_fail(key)
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self._maybe_fail(key)
        data = self.inner.get_range(key, offset, length)
        if len(data) > 1 and self._draw(self.short_read_rate):
            return data[: len(data) // 2]
        return data

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        with self._lock:
            if self.fail_writes_after is not None and self.writes >= self.fail_writes_after:
                raise TransientStorageError(f"injected write failure: {key}", key=key)
        self._maybe_fail(key)
        result = self.inner.put_if_absent(key, data)
        with self._lock:
            self.writes += 1
        if self._draw(self.fail_after_write_rate):
            # The bytes landed but the caller hears of a failure (a lost response).
            raise TransientStorageError(f"injected failure after writing {key}", key=key)
        return result


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
