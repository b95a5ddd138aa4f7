"""snapvault: deduplicated, compressed, encrypted, versioned backups into any fsspec store.

Quick start::

    import snapvault as sv
    repo = sv.Repository.init("backups/vault", password="pw")
    manifest = sv.Engine(repo).backup(["/home/me/docs"], exclude=["*.tmp"], tags=["docs"])
    sv.Restorer(repo).restore(manifest.id, target="restored", include=["*.md"])
    repo.check(read_data=True)
"""

from snapvault._version import __version__
from snapvault.check import CheckReport, Problem
from snapvault.engine import Engine
from snapvault.errors import (
    AccessDenied,
    AmbiguousSnapshot,
    BackendUnavailable,
    BucketNotFound,
    ConfigError,
    IntegrityError,
    ObjectExists,
    ObjectNotFound,
    RepositoryError,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    SnapvaultError,
    SourceError,
    StorageError,
    TransientStorageError,
    UnsafePathError,
    UnsupportedFormat,
    WrongPassword,
)
from snapvault.manifest import FileError, Manifest, SnapshotStats
from snapvault.pipeline.chunker import ChunkerParams
from snapvault.pipeline.codecs import NoCompression, Zstd
from snapvault.repository import KdfParams, Repository
from snapvault.restorer import Restorer, RestoreResult

__all__ = [
    "AccessDenied",
    "AmbiguousSnapshot",
    "BackendUnavailable",
    "BucketNotFound",
    "CheckReport",
    "ChunkerParams",
    "ConfigError",
    "Engine",
    "FileError",
    "IntegrityError",
    "KdfParams",
    "Manifest",
    "NoCompression",
    "ObjectExists",
    "ObjectNotFound",
    "Problem",
    "Repository",
    "RepositoryError",
    "RepositoryExists",
    "RepositoryNotFound",
    "RestoreResult",
    "Restorer",
    "SnapshotNotFound",
    "SnapshotStats",
    "SnapvaultError",
    "SourceError",
    "StorageError",
    "TransientStorageError",
    "UnsafePathError",
    "UnsupportedFormat",
    "WrongPassword",
    "Zstd",
    "__version__",
]
