"""How workers get the repository: a worker plugin, planted outside the task graph.

The driver holds an open repository. Workers need the same one, with the same keys, to seal
and upload packs. :class:`RepositoryPlugin` carries what opening it takes, and nothing that a
task could print:

- the store (pickled: for an object store that includes its storage options, credentials
  among them, as the driver was given them);
- the master keys (their JSON, as a key file seals it), never the password: the password may
  open other things, and deriving it again on every worker would cost Argon2 each time;
- the fsspec options of the run's URL sources (a backup) or target (a restore).

Registered with ``client.register_plugin``, it reaches every worker, including workers that
join or are restarted later (a retried task lands on one), and is removed when the run ends
(each worker drops its handle in ``teardown``). Tasks take the handle from their worker by
the plugin's name: no task's arguments, key or result holds a secret, so the task graph, the
dashboard and the scheduler's task logs show none.

What this does not hide: the scheduler keeps registered plugins (to hand them to workers that
join), so whoever administers the scheduler, or can run code on it or on a worker, can read
the keys, as they could read the data being backed up. Use TLS between client, scheduler and
workers (``distributed.security.Security``) so the network does not carry them in clear, and
run the cluster only on machines trusted with the repository.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from snapvault.distributed.handoff import handle_bytes, open_handle
from snapvault.repository.repo import Repository

__all__ = ["RepositoryPlugin", "planted", "worker_context"]

_PLUGIN_PREFIX = "snapvault-repository-"


class WorkerContext:
    """What one worker holds for a run: the repository, and the fsspec options of the run's
    URL sources (a backup) or target (a restore)."""

    def __init__(self, repo: Repository, options: dict[str, Any]) -> None:
        self.repo = repo
        self.options = options


class RepositoryPlugin(WorkerPlugin):
    """A worker plugin that opens the run's repository on each worker.

    Parameters
    ----------
    store_bytes : bytes
        The pickled store.
    keys_json : bytes
        The master keys (:meth:`MasterKeys.to_json`).
    options : dict
        fsspec options of the URL sources or target (credentials too: they stay out of the
        graph).
    """

    def __init__(self, store_bytes: bytes, keys_json: bytes, options: dict[str, Any]) -> None:
        self.store_bytes = store_bytes
        self.keys_json = keys_json
        self.options = options
        self.context: WorkerContext | None = None

    def setup(self, worker: Any) -> None:
        """Open the repository on this worker (its config is read and checked against the keys)."""
        self.context = WorkerContext(open_handle(self.store_bytes, self.keys_json), self.options)

    def teardown(self, worker: Any) -> None:
        """Drop the handle and the secrets this worker held."""
        self.context = None
        self.keys_json = b""
        self.store_bytes = b""
        self.options = {}

    def __getstate__(self) -> dict[str, Any]:
        # The opened handle never travels (it holds locks and caches); each worker opens its own.
        return {"store_bytes": self.store_bytes, "keys_json": self.keys_json, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.context = None


@contextmanager
def planted(client: Any, repo: Repository, options: dict[str, Any] | None = None) -> Iterator[str]:
    """Plant ``repo`` on every worker of ``client`` for the duration; yield the plugin's name.

    The name is random per run, so two runs on one cluster never share a handle, and a task
    of a finished run finds nothing.
    """
    name = _PLUGIN_PREFIX + secrets.token_hex(8)
    store_bytes, keys_json = handle_bytes(repo)
    plugin = RepositoryPlugin(store_bytes, keys_json, dict(options or {}))
    client.register_plugin(plugin, name=name)
    try:
        yield name
    finally:
        # A cluster shutting down has dropped it already.
        with contextlib.suppress(Exception):
            client.unregister_worker_plugin(name)


def worker_context(name: str) -> WorkerContext:
    """The repository planted under ``name`` on the worker running the current task."""
    from distributed import get_worker

    plugin = get_worker().plugins.get(name)
    if not isinstance(plugin, RepositoryPlugin) or plugin.context is None:
        raise RuntimeError(f"this worker holds no repository for {name}: the run ended or was never planted here")
    return plugin.context
