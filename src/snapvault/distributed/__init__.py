"""Backups by many machines: a Dask cluster reads and uploads, the driver commits one snapshot.

Nouns
-----
distributed_backup
    Back up sources with the workers of a ``dask.distributed.Client``.
distributed_restore
    Restore a snapshot with them, into a shared local directory or an fsspec URL.
RepositoryPlugin
    The worker plugin that plants the repository (store and master keys) on each worker,
    outside the task graph.

Needs the ``dask`` extra (``dask[distributed]``). Nothing imports this package when snapvault
starts: it is loaded when a distributed run is asked for. See docs/howto/dask.md.
"""

from snapvault.distributed.backup import DEFAULT_TASK_BYTES, DEFAULT_TASK_FILES, distributed_backup
from snapvault.distributed.restore import distributed_restore
from snapvault.distributed.transport import RepositoryPlugin

__all__ = ["DEFAULT_TASK_BYTES", "DEFAULT_TASK_FILES", "RepositoryPlugin", "distributed_backup", "distributed_restore"]
