"""snapvault: deduplicated, compressed, encrypted, versioned backups into any fsspec store.

Quick start::

    import snapvault as sv
    repo = sv.Repository.init("backups/vault", password="pw")
    manifest = sv.Engine(repo).backup(["/home/me/docs"], exclude=["*.tmp"], tags=["docs"])
    sv.Restorer(repo).restore(manifest.id, target="restored", include=["*.md"])
    repo.check(read_data=True)
"""

from typing import TYPE_CHECKING, Any

from snapvault._version import __version__ as __version__

# The public surface has one source: _PUBLIC, each public name and the module that defines it.
# __all__ and the lazy loader read it; the block below repeats it only for type checkers, and
# tests/test_public_api.py fails if the two ever disagree. Everything else in the package is
# internal: import from `snapvault` (and the public submodules `snapvault.retention` and
# `snapvault.cron`), not from the modules that implement it.
if TYPE_CHECKING:
    from snapvault import cron as cron, retention as retention
    from snapvault.dr.model import (
        DrillRecord as DrillRecord,
        DrillSettings as DrillSettings,
        FailoverRecord as FailoverRecord,
        HookRun as HookRun,
        ReplicationRecord as ReplicationRecord,
        Site as Site,
    )
    from snapvault.dr.plan import (
        DRPlan as DRPlan,
    )
    from snapvault.dr.status import (
        ObjectiveState as ObjectiveState,
        PlanStatus as PlanStatus,
        ReplicateResult as ReplicateResult,
        SiteStatus as SiteStatus,
    )
    from snapvault.engine import (
        Engine as Engine,
    )
    from snapvault.snapfs import (
        SnapshotFileSystem as SnapshotFileSystem,
    )
    from snapvault.errors import (
        AccessDenied as AccessDenied,
        AmbiguousSnapshot as AmbiguousSnapshot,
        AppendOnlyError as AppendOnlyError,
        BackendUnavailable as BackendUnavailable,
        BucketNotFound as BucketNotFound,
        ConcurrentPruneError as ConcurrentPruneError,
        ConfigError as ConfigError,
        DrillFailed as DrillFailed,
        FailoverError as FailoverError,
        HookError as HookError,
        IntegrityError as IntegrityError,
        JobCancelled as JobCancelled,
        ObjectExists as ObjectExists,
        ObjectNotFound as ObjectNotFound,
        PlanNotFound as PlanNotFound,
        PolicyNotFound as PolicyNotFound,
        PruneError as PruneError,
        RepositoryError as RepositoryError,
        RepositoryExists as RepositoryExists,
        RepositoryNotFound as RepositoryNotFound,
        SnapshotNotFound as SnapshotNotFound,
        SnapvaultError as SnapvaultError,
        SourceError as SourceError,
        StalePrimaryError as StalePrimaryError,
        StorageError as StorageError,
        TransientStorageError as TransientStorageError,
        UnknownStrategy as UnknownStrategy,
        UnsafePathError as UnsafePathError,
        UnsupportedFormat as UnsupportedFormat,
        WrongPassword as WrongPassword,
    )
    from snapvault.handle import (
        Repository as Repository,
    )
    from snapvault.jobs import (
        BackupJob as BackupJob,
        JobEvent as JobEvent,
        JobStatus as JobStatus,
        Progress as Progress,
        RestoreJob as RestoreJob,
    )
    from snapvault.maintenance.check import (
        CheckReport as CheckReport,
        Problem as Problem,
    )
    from snapvault.maintenance.catalog import (
        Catalog as Catalog,
        CatalogRow as CatalogRow,
    )
    from snapvault.maintenance.diff import (
        DiffChange as DiffChange,
        DiffStats as DiffStats,
        SnapshotDiff as SnapshotDiff,
    )
    from snapvault.maintenance.find import (
        FindMatch as FindMatch,
    )
    from snapvault.maintenance.repair import (
        RepairedPath as RepairedPath,
        RepairIndexResult as RepairIndexResult,
        RepairSnapshotsResult as RepairSnapshotsResult,
        SnapshotRepair as SnapshotRepair,
    )
    from snapvault.maintenance.rekey import (
        RekeyResult as RekeyResult,
    )
    from snapvault.maintenance.prune import (
        PruneResult as PruneResult,
        ReasonStats as ReasonStats,
    )
    from snapvault.pipeline.chunker import (
        ChunkerParams as ChunkerParams,
    )
    from snapvault.policy.selection import (
        ForgetGroup as ForgetGroup,
        SnapshotFilter as SnapshotFilter,
        SnapshotGroup as SnapshotGroup,
    )
    from snapvault.repository.keys import (
        AmbiguousKey as AmbiguousKey,
        KeyInfo as KeyInfo,
        KeyNotFound as KeyNotFound,
        KeyRemovalRefused as KeyRemovalRefused,
    )
    from snapvault.pipeline.codecs import (
        NoCompression as NoCompression,
        Zstd as Zstd,
    )
    from snapvault.policy.model import (
        Policy as Policy,
    )
    from snapvault.policy.records import (
        BrokenPolicy as BrokenPolicy,
    )
    from snapvault.policy.retention import (
        register_strategy as register_strategy,
    )
    from snapvault.policy.run import (
        ForgetResult as ForgetResult,
        PolicyStats as PolicyStats,
        forget as forget,
    )
    from snapvault.repository import (
        KdfParams as KdfParams,
    )
    from snapvault.repository.manifest import (
        FileError as FileError,
        Manifest as Manifest,
        SnapshotStats as SnapshotStats,
        Verification as Verification,
    )
    from snapvault.restore.restorer import (
        RestoreFileError as RestoreFileError,
        Restorer as Restorer,
        RestoreResult as RestoreResult,
    )

_PUBLIC: dict[str, str] = {
    "AccessDenied": "snapvault.errors",
    "AmbiguousKey": "snapvault.repository.keys",
    "AmbiguousSnapshot": "snapvault.errors",
    "AppendOnlyError": "snapvault.errors",
    "BackendUnavailable": "snapvault.errors",
    "BackupJob": "snapvault.jobs",
    "BrokenPolicy": "snapvault.policy.records",
    "BucketNotFound": "snapvault.errors",
    "Catalog": "snapvault.maintenance.catalog",
    "CatalogRow": "snapvault.maintenance.catalog",
    "CheckReport": "snapvault.maintenance.check",
    "ChunkerParams": "snapvault.pipeline.chunker",
    "ConcurrentPruneError": "snapvault.errors",
    "ConfigError": "snapvault.errors",
    "DRPlan": "snapvault.dr.plan",
    "DiffChange": "snapvault.maintenance.diff",
    "DiffStats": "snapvault.maintenance.diff",
    "DrillFailed": "snapvault.errors",
    "DrillRecord": "snapvault.dr.model",
    "DrillSettings": "snapvault.dr.model",
    "Engine": "snapvault.engine",
    "FailoverError": "snapvault.errors",
    "FailoverRecord": "snapvault.dr.model",
    "FileError": "snapvault.repository.manifest",
    "FindMatch": "snapvault.maintenance.find",
    "ForgetGroup": "snapvault.policy.selection",
    "ForgetResult": "snapvault.policy.run",
    "HookError": "snapvault.errors",
    "HookRun": "snapvault.dr.model",
    "IntegrityError": "snapvault.errors",
    "JobCancelled": "snapvault.errors",
    "JobEvent": "snapvault.jobs",
    "JobStatus": "snapvault.jobs",
    "KdfParams": "snapvault.repository",
    "KeyInfo": "snapvault.repository.keys",
    "KeyNotFound": "snapvault.repository.keys",
    "KeyRemovalRefused": "snapvault.repository.keys",
    "Manifest": "snapvault.repository.manifest",
    "NoCompression": "snapvault.pipeline.codecs",
    "ObjectExists": "snapvault.errors",
    "ObjectNotFound": "snapvault.errors",
    "ObjectiveState": "snapvault.dr.status",
    "PlanNotFound": "snapvault.errors",
    "PlanStatus": "snapvault.dr.status",
    "Policy": "snapvault.policy.model",
    "PolicyNotFound": "snapvault.errors",
    "PolicyStats": "snapvault.policy.run",
    "Problem": "snapvault.maintenance.check",
    "Progress": "snapvault.jobs",
    "PruneError": "snapvault.errors",
    "PruneResult": "snapvault.maintenance.prune",
    "ReasonStats": "snapvault.maintenance.prune",
    "RekeyResult": "snapvault.maintenance.rekey",
    "RepairIndexResult": "snapvault.maintenance.repair",
    "RepairSnapshotsResult": "snapvault.maintenance.repair",
    "RepairedPath": "snapvault.maintenance.repair",
    "ReplicateResult": "snapvault.dr.status",
    "ReplicationRecord": "snapvault.dr.model",
    "Repository": "snapvault.handle",
    "RepositoryError": "snapvault.errors",
    "RepositoryExists": "snapvault.errors",
    "RepositoryNotFound": "snapvault.errors",
    "RestoreFileError": "snapvault.restore.restorer",
    "RestoreJob": "snapvault.jobs",
    "RestoreResult": "snapvault.restore.restorer",
    "Restorer": "snapvault.restore.restorer",
    "Site": "snapvault.dr.model",
    "SiteStatus": "snapvault.dr.status",
    "SnapshotDiff": "snapvault.maintenance.diff",
    "SnapshotFileSystem": "snapvault.snapfs",
    "SnapshotFilter": "snapvault.policy.selection",
    "SnapshotGroup": "snapvault.policy.selection",
    "SnapshotNotFound": "snapvault.errors",
    "SnapshotRepair": "snapvault.maintenance.repair",
    "SnapshotStats": "snapvault.repository.manifest",
    "SnapvaultError": "snapvault.errors",
    "SourceError": "snapvault.errors",
    "StalePrimaryError": "snapvault.errors",
    "StorageError": "snapvault.errors",
    "TransientStorageError": "snapvault.errors",
    "UnknownStrategy": "snapvault.errors",
    "UnsafePathError": "snapvault.errors",
    "UnsupportedFormat": "snapvault.errors",
    "Verification": "snapvault.repository.manifest",
    "WrongPassword": "snapvault.errors",
    "Zstd": "snapvault.pipeline.codecs",
    "forget": "snapvault.policy.run",
    "register_strategy": "snapvault.policy.retention",
}
_SUBMODULES = ("cron", "retention")

__all__ = sorted([*_PUBLIC, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    # Names are imported on first use (PEP 562), so `import snapvault` and the CLI start fast.
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"snapvault.{name}")
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'snapvault' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    if isinstance(value, type):
        # Public classes show (and pickle) under the name users import them by.
        value.__module__ = "snapvault"
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
