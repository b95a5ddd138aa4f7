"""Bearer tokens with roles, hashed at rest, and a limit on failed attempts.

A token is 32 random bytes (``svt_`` + URL-safe base64). The configuration stores only
``sha256:<hex>`` of it: with 256 bits of entropy no dictionary or brute-force attack applies,
so a slow password hash would add per-request cost (this API is polled) and no protection.
A presented token is hashed and compared with every stored hash by
:func:`hmac.compare_digest`, without stopping at a match, so timing tells nothing about which
(or whether a) stored hash is near.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from examples.service.config import ROLES, Role, TokenEntry

__all__ = ["FailureLimiter", "Principal", "TokenStore", "allows", "hash_token", "new_token"]

TOKEN_PREFIX = "svt_"


def new_token() -> str:
    """A fresh random token (store only :func:`hash_token` of it)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """``sha256:<hex>`` of the token's UTF-8 bytes: the form the configuration stores."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def allows(role: Role, needed: Role) -> bool:
    """Whether ``role`` may do what ``needed`` may (roles are ordered, see ``ROLES``)."""
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as."""

    name: str
    role: Role


class TokenStore:
    """Looks presented tokens up among the configured hashes, in constant time per entry."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._entries = [(e.hash.encode("ascii"), Principal(e.name, e.role)) for e in entries]

    def lookup(self, token: str) -> Principal | None:
        """The principal of ``token``, or None if it matches no stored hash."""
        presented = hash_token(token).encode("ascii")
        found = None
        for stored, principal in self._entries:
            # No early exit: every entry is compared, whatever matched before.
            if hmac.compare_digest(stored, presented):
                found = principal
        return found


class FailureLimiter:
    """Counts failed authentications per client and refuses a client that failed too often.

    Parameters
    ----------
    max_failures : int
        Failures within ``window_s`` after which the client is refused.
    window_s : float
        The sliding window, in seconds of ``monotonic``.
    monotonic : callable
        The clock (seconds); a parameter so tests can move time.
    max_clients : int
        Clients tracked at most (the oldest entries are dropped first), bounding memory
        whatever the number of addresses an attacker uses.
    """

    def __init__(
        self, max_failures: int, window_s: float, monotonic: Callable[[], float], *, max_clients: int = 10_000
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._now = monotonic
        self._max_clients = max_clients
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None if it is not refused."""
        with self._lock:
            now = self._now()
            times = self._recent(client, now)
            if times is None or len(times) < self.max_failures:
                return None
            return max(0.0, times[-self.max_failures] + self.window_s - now)

    def failed(self, client: str) -> None:
        """Record one failed attempt by ``client``."""
        with self._lock:
            now = self._now()
            times = self._recent(client, now)
            if times is None:
                if len(self._failures) >= self._max_clients:
                    del self._failures[next(iter(self._failures))]
                times = self._failures[client] = deque(maxlen=self.max_failures)
            times.append(now)
