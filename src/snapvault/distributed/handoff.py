"""How an open repository moves to another process: its store and master keys as bytes.

Used by the Dask worker plugin (:mod:`snapvault.distributed.transport`) and by the local
process pool (:mod:`snapvault.distributed.pool`); imports nothing of Dask. What travels:

- the store, pickled (for an object store that includes its storage options, credentials
  among them, as the sending process was given them);
- the master keys (their JSON, as a key file seals it), never the password: deriving it again
  in every process would cost Argon2 each time, and the password may open other things.

The receiving process reads the repository's config and checks the keys against it before
anything is written, as ``Repository.open`` does.
"""

from __future__ import annotations

import pickle
from typing import Any

from snapvault.repository import layout
from snapvault.repository.config import MasterKeys, RepoConfig
from snapvault.repository.repo import Repository, get_limited
from snapvault.storage.base import Store
from snapvault.storage.wrappers import RetryingStore

__all__ = ["handle_bytes", "open_handle", "shared_between_processes"]


def shared_between_processes(repo: Repository) -> bool:
    """Whether another process that opens ``repo``'s store sees the same objects: not for
    fsspec's memory filesystem, which lives inside each process."""
    store: Any = repo.store
    while hasattr(store, "inner"):
        store = store.inner
    fs = getattr(store, "fs", None)
    protocols = getattr(fs, "protocol", ())
    return "memory" not in ((protocols,) if isinstance(protocols, str) else tuple(protocols))


def handle_bytes(repo: Repository) -> tuple[bytes, bytes]:
    """The pickled store and the master keys' JSON of ``repo``: what :func:`open_handle` takes.

    Both are secrets (the keys open every object; the store may hold credentials).
    """
    # Parts of the format's handle, read here because this module is what moves a handle to
    # another process; nothing else outside the repository layer touches them.
    return pickle.dumps(_portable(repo.store)), repo.master_keys.to_json()


def open_handle(store_bytes: bytes, keys_json: bytes) -> Repository:
    """Open the repository that :func:`handle_bytes` described, in this process.

    Raises
    ------
    RepositoryError
        The keys do not belong to the config found there (another repository at that place).
    """
    store = _rebuilt(pickle.loads(store_bytes))  # bytes this program pickled for the handoff
    config_bytes = get_limited(store, layout.CONFIG)
    keys = MasterKeys.from_json(keys_json)
    # The same check Repository.open makes: keys that do not belong to this config are
    # refused before anything is written.
    keys.check_config(config_bytes)
    return Repository(store, RepoConfig.from_bytes(config_bytes), keys)


def _portable(store: Store) -> Any:
    """What rebuilds ``store`` in another process: the store itself, or for a retrying
    wrapper (which holds a lock) its settings and what it wraps."""
    if isinstance(store, RetryingStore):
        settings = {"attempts": store.attempts, "base_delay": store.base_delay, "max_delay": store.max_delay}
        return ("retrying", settings, _portable(store.inner))
    return ("store", store)


def _rebuilt(portable: Any) -> Store:
    kind, *rest = portable
    if kind == "retrying":
        settings, inner = rest
        return RetryingStore(_rebuilt(inner), **settings)
    store: Store = rest[0]
    return store
