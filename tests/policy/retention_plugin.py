"""A retention strategy defined outside snapvault, as a user's package would define one.

Tests register it programmatically or point an entry point of the group ``snapvault.retention``
at it; nothing in snapvault knows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from snapvault.policy.retention import KeepLast, SnapshotLike, Strategy

WIRE_ID = "example.keep-oldest"


@dataclass(frozen=True)
class KeepOldest(Strategy):
    """Keep the ``n`` oldest snapshots (the opposite of KeepLast)."""

    n: int
    wire_id: ClassVar[str] = WIRE_ID

    def _select(self, snapshots: Sequence[SnapshotLike], now: datetime) -> dict[str, list[str]]:
        # ``snapshots`` are newest first.
        return {s.id: [f"oldest {self.n}"] for s in list(snapshots)[::-1][: self.n]}


@dataclass(frozen=True)
class KeepLastButQuieter(KeepLast):
    """A subclass that inherits KeepLast's wire ID: stored, it would read back as KeepLast."""
