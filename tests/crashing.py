"""A store that stands for a process killed at its n-th write: for sweeping every crash point
of a multi-step operation (prune, a key rotation's rewrite) deterministically, in process."""

from __future__ import annotations

from snapvault.storage import Store
from snapvault.storage.wrappers import _Wrapper


class Crash(Exception):
    """Stands for the process dying at this write."""


class CrashAt(_Wrapper):
    """Lets ``n`` writes and deletes through, then fails every one: a process killed there.
    ``left`` counts down, so a run with a huge ``n`` counts the writes an operation makes."""

    def __init__(self, inner: Store, n: int) -> None:
        super().__init__(inner)
        self.left = n

    def _step(self) -> None:
        if self.left <= 0:
            raise Crash
        self.left -= 1

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        self._step()
        return self.inner.put_if_absent(key, data)

    def delete(self, key: str) -> None:
        self._step()
        self.inner.delete(key)
