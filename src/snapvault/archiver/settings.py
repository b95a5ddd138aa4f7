"""How backups run on this machine: one frozen value shared by backups of paths and policy runs."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from snapvault.errors import ConfigError

__all__ = ["BackupSettings"]


def _system_clock() -> datetime:
    return datetime.now(UTC)


def _cpus() -> int:
    return os.cpu_count() or 2


@dataclass(frozen=True)
class BackupSettings:
    """Threads, memory, time and randomness for backups; the same for every backup it serves.

    ``snapvault.Engine`` builds one from its arguments and hands it to both of its entry points
    (a backup of paths, and :func:`snapvault.policy.run.run_policy`).

    Attributes
    ----------
    workers : int
        Threads for compression and encryption; default the number of CPUs. A policy's
        ``max_concurrency`` overrides it for that policy's runs.
    max_pending_bytes : int
        Upper bound on plaintext bytes waiting to be encoded, so memory stays bounded whatever
        the file sizes.
    clock : callable
        Returns the current time (aware): snapshot times, job and run times, when no ``now=``
        is given. Default: the system clock in UTC.
    rng : random.Random
        Draws the blobs a policy's verification reads back; a seeded one makes runs repeatable.
    """

    workers: int = field(default_factory=_cpus)
    max_pending_bytes: int = 24 << 20
    clock: Callable[[], datetime] = _system_clock
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be 1 or more, not {self.workers}")
        if self.max_pending_bytes < 1:
            raise ConfigError(f"max_pending_bytes must be positive, not {self.max_pending_bytes}")
