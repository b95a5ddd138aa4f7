"""snapvault: deduplicated, compressed, encrypted, versioned backups into any fsspec store.

Quick start::

    import snapvault as sv
    repo = sv.Repository.init("backups/vault", password="pw")
    manifest = sv.Engine(repo).backup(["/home/me/docs"], exclude=["*.tmp"], tags=["docs"])
    sv.Restorer(repo).restore(manifest.id, target="restored", include=["*.md"])
    repo.check(read_data=True)
"""

from snapvault import cron, retention
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
    JobCancelled,
    ObjectExists,
    ObjectNotFound,
    PolicyNotFound,
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
from snapvault.hooks import HookError
from snapvault.jobs import BackupJob, JobStatus, Progress, RestoreJob
from snapvault.manifest import FileError, Manifest, SnapshotStats, Verification
from snapvault.pipeline.chunker import ChunkerParams
from snapvault.pipeline.codecs import NoCompression, Zstd
from snapvault.policy import Policy
from snapvault.policy_run import ForgetResult, PolicyStats, forget
from snapvault.repository import KdfParams, Repository
from snapvault.restorer import Restorer, RestoreResult

__all__ = [
    "AccessDenied",
    "AmbiguousSnapshot",
    "BackendUnavailable",
    "BackupJob",
    "BucketNotFound",
    "CheckReport",
    "ChunkerParams",
    "ConfigError",
    "Engine",
    "FileError",
    "ForgetResult",
    "HookError",
    "IntegrityError",
    "JobCancelled",
    "JobStatus",
    "KdfParams",
    "Manifest",
    "NoCompression",
    "ObjectExists",
    "ObjectNotFound",
    "Policy",
    "PolicyNotFound",
    "PolicyStats",
    "Problem",
    "Progress",
    "Repository",
    "RepositoryError",
    "RepositoryExists",
    "RepositoryNotFound",
    "RestoreJob",
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
    "Verification",
    "WrongPassword",
    "Zstd",
    "__version__",
    "cron",
    "forget",
    "retention",
]
