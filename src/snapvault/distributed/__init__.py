"""Backups by many processes: a Dask cluster, or a pool of processes on this machine, reads
and stores, the driver commits one snapshot.

Nouns
-----
distributed_backup
    Back up sources with the workers of a ``dask.distributed.Client``.
distributed_restore
    Restore a snapshot with them, into a shared local directory or an fsspec URL.
RepositoryPlugin
    The worker plugin that plants the repository (store and master keys) on each worker,
    outside the task graph.
pool_backup
    Back up local sources with a pool of processes on this machine (no Dask):
    :mod:`snapvault.distributed.pool`.

The Dask names need the ``dask`` extra (``dask[distributed]``) and are imported when first
used, so the process pool works without Dask. Nothing imports this package when snapvault
starts. See docs/howto/dask.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snapvault.distributed.backup import DEFAULT_TASK_BYTES, DEFAULT_TASK_FILES, distributed_backup
    from snapvault.distributed.pool import pool_backup
    from snapvault.distributed.restore import distributed_restore
    from snapvault.distributed.transport import RepositoryPlugin

__all__ = [
    "DEFAULT_TASK_BYTES",
    "DEFAULT_TASK_FILES",
    "RepositoryPlugin",
    "distributed_backup",
    "distributed_restore",
    "pool_backup",
]

# Where each name lives: loading a Dask one imports Dask.
_HOME = {
    "DEFAULT_TASK_BYTES": "backup",
    "DEFAULT_TASK_FILES": "backup",
    "distributed_backup": "backup",
    "distributed_restore": "restore",
    "RepositoryPlugin": "transport",
    "pool_backup": "pool",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
