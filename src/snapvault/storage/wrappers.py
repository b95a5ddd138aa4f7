"""Stores that wrap a store: read-only access and fault injection for tests."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import replace

from snapvault.errors import AccessDenied, TransientStorageError
from snapvault.storage.base import Capabilities, Store, StoreEntry

__all__ = ["FaultyStore", "ReadOnlyStore"]


class _Wrapper:
    def __init__(self, inner: Store) -> None:
        self.inner = inner

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

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

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


class ReadOnlyStore(_Wrapper):
    """Refuses every write with :class:`AccessDenied`."""

    @property
    def capabilities(self) -> Capabilities:
        return replace(self.inner.capabilities, read_only=True)

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
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
    seed : int
        Seed of the failure draws, so a test is repeatable.
    """

    def __init__(
        self,
        inner: Store,
        *,
        fail_writes_after: int | None = None,
        transient_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(inner)
        self.fail_writes_after = fail_writes_after
        self.transient_rate = transient_rate
        self.writes = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _maybe_fail(self, key: str) -> None:
        with self._lock:
            hit = self._rng.random() < self.transient_rate
        if hit:
            raise TransientStorageError(f"injected transient failure: {key}", key=key)

    def get(self, key: str) -> bytes:
        self._maybe_fail(key)
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self._maybe_fail(key)
        return self.inner.get_range(key, offset, length)

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        with self._lock:
            if self.fail_writes_after is not None and self.writes >= self.fail_writes_after:
                raise TransientStorageError(f"injected write failure: {key}", key=key)
        self._maybe_fail(key)
        result = self.inner.put_if_absent(key, data)
        with self._lock:
            self.writes += 1
        return result
