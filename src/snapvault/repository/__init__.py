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
Repository
    The handle that reads and writes all of the above.
"""

from snapvault.repository.config import KdfParams, RepoConfig
from snapvault.repository.repo import Repository

__all__ = ["KdfParams", "RepoConfig", "Repository"]
