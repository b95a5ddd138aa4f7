"""The repository: packs, indexes, keys, snapshots and the config, over one store.

Nouns
-----
Config
    The repository's plain JSON description: format version, encryption, chunker parameters
    (not the seed), compression and pack size. Create-only, written once by ``init``.
Key file
    The master keys sealed with a key derived from a password (Argon2id).
MasterKeys
    The secrets: encryption key, content-ID key, chunker seed; plus a hash of the config so
    a tampered config is detected.
Layout
    Where each object lives in the store (``config``, ``keys/``, ``data/<hh>/``, ``index/``,
    ``snapshots/``, ``quarantine/``, ``policies/``, ``runs/``): :mod:`snapvault.repository.layout`,
    the one module that spells keys.
Repository
    Reads and writes all of the above, and nothing more: it never calls up into the layers
    that use it. Those declare the few methods they use as a ``Protocol``; the public
    ``snapvault.Repository`` (:mod:`snapvault.handle`) subclasses it with conveniences that
    do call them (``check``, ``copy_snapshots``, the policy methods).
"""

from snapvault.repository.config import KdfParams, RepoConfig
from snapvault.repository.repo import Repository

__all__ = ["KdfParams", "RepoConfig", "Repository"]
