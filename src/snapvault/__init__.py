"""snapvault: deduplicated, compressed, encrypted, versioned backups into any fsspec store.

Quick start::

    import snapvault as sv
    repo = sv.Repository.init("backups/vault", password="pw")
    manifest = sv.Engine(repo).backup(["/home/me/docs"], exclude=["*.tmp"], tags=["docs"])
    sv.Restorer(repo).restore(manifest.id, target="restored", include=["*.md"])
    repo.check(read_data=True)
"""

from typing import TYPE_CHECKING, Any

from snapvault._version import __version__

if TYPE_CHECKING:
    from snapvault import cron, retention
    from snapvault.engine import (
        Engine,
    )
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
    from snapvault.jobs import (
        BackupJob,
        JobStatus,
        Progress,
        RestoreJob,
    )
    from snapvault.maintenance.check import (
        CheckReport,
        Problem,
    )
    from snapvault.pipeline.chunker import (
        ChunkerParams,
    )
    from snapvault.pipeline.codecs import (
        NoCompression,
        Zstd,
    )
    from snapvault.policy.hooks import (
        HookError,
    )
    from snapvault.policy.model import (
        Policy,
    )
    from snapvault.policy.retention import (
        UnknownStrategy,
        register_strategy,
    )
    from snapvault.policy.run import (
        ForgetResult,
        PolicyStats,
        forget,
    )
    from snapvault.repository import (
        KdfParams,
        Repository,
    )
    from snapvault.repository.manifest import (
        FileError,
        Manifest,
        SnapshotStats,
        Verification,
    )
    from snapvault.restore.restorer import (
        Restorer,
        RestoreResult,
    )

# Names are imported on first use (PEP 562), so `import snapvault` and the CLI start fast.
_LAZY: dict[str, str] = {
    "AccessDenied": "snapvault.errors",
    "AmbiguousSnapshot": "snapvault.errors",
    "BackendUnavailable": "snapvault.errors",
    "BackupJob": "snapvault.jobs",
    "BucketNotFound": "snapvault.errors",
    "CheckReport": "snapvault.maintenance.check",
    "ChunkerParams": "snapvault.pipeline.chunker",
    "ConfigError": "snapvault.errors",
    "Engine": "snapvault.engine",
    "FileError": "snapvault.repository.manifest",
    "ForgetResult": "snapvault.policy.run",
    "HookError": "snapvault.policy.hooks",
    "IntegrityError": "snapvault.errors",
    "JobCancelled": "snapvault.errors",
    "JobStatus": "snapvault.jobs",
    "KdfParams": "snapvault.repository",
    "Manifest": "snapvault.repository.manifest",
    "NoCompression": "snapvault.pipeline.codecs",
    "ObjectExists": "snapvault.errors",
    "ObjectNotFound": "snapvault.errors",
    "Policy": "snapvault.policy.model",
    "PolicyNotFound": "snapvault.errors",
    "PolicyStats": "snapvault.policy.run",
    "Problem": "snapvault.maintenance.check",
    "Progress": "snapvault.jobs",
    "Repository": "snapvault.repository",
    "RepositoryError": "snapvault.errors",
    "RepositoryExists": "snapvault.errors",
    "RepositoryNotFound": "snapvault.errors",
    "RestoreJob": "snapvault.jobs",
    "RestoreResult": "snapvault.restore.restorer",
    "Restorer": "snapvault.restore.restorer",
    "SnapshotNotFound": "snapvault.errors",
    "SnapshotStats": "snapvault.repository.manifest",
    "SnapvaultError": "snapvault.errors",
    "SourceError": "snapvault.errors",
    "StorageError": "snapvault.errors",
    "TransientStorageError": "snapvault.errors",
    "UnknownStrategy": "snapvault.policy.retention",
    "UnsafePathError": "snapvault.errors",
    "UnsupportedFormat": "snapvault.errors",
    "Verification": "snapvault.repository.manifest",
    "WrongPassword": "snapvault.errors",
    "Zstd": "snapvault.pipeline.codecs",
    "forget": "snapvault.policy.run",
    "register_strategy": "snapvault.policy.retention",
}
_SUBMODULES = {"cron", "retention"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"snapvault.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'snapvault' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
    "UnknownStrategy",
    "UnsafePathError",
    "UnsupportedFormat",
    "Verification",
    "WrongPassword",
    "Zstd",
    "__version__",
    "cron",
    "forget",
    "register_strategy",
    "retention",
]
