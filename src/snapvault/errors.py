"""The exceptions snapvault raises.

Every error is a :class:`SnapvaultError`; most also subclass the builtin a caller would
already catch, so ``except FileNotFoundError`` keeps working around library calls::

    SnapvaultError
    ├── StorageError                      (OSError)   the store failed or refused
    │   ├── ObjectNotFound                (FileNotFoundError)
    │   ├── ObjectExists                  (FileExistsError)
    │   ├── AccessDenied                  (PermissionError)
    │   ├── BucketNotFound                (FileNotFoundError)
    │   ├── BackendUnavailable            (ConnectionError)   unreachable endpoint
    │   └── TransientStorageError                             worth a retry
    ├── RepositoryError                                       not a usable repository
    │   ├── RepositoryNotFound            (FileNotFoundError)
    │   ├── RepositoryExists              (FileExistsError)
    │   ├── WrongPassword                 (PermissionError)
    │   ├── UnsupportedFormat
    │   ├── AppendOnlyError               (PermissionError)   nothing may be deleted
    │   ├── PruneError                                        prune cannot run safely
    │   ├── ConcurrentPruneError                              a frozen writer lost a race
    │   └── StalePrimaryError             (PermissionError)   a DR failover moved writes away
    ├── IntegrityError                    (ValueError)  stored bytes fail verification
    │   ├── UnsafePathError                             a hostile name in a tree
    │   └── DrillFailed                                 a DR drill found a copy unusable
    ├── SnapshotNotFound                  (LookupError)
    │   └── AmbiguousSnapshot                           an ID prefix matches several
    ├── PolicyNotFound                    (LookupError)
    ├── PlanNotFound                      (LookupError)   no DR plan of that name
    ├── FailoverError                                   a DR failover was refused
    ├── JobCancelled                                    a job was cancelled
    ├── HookError                                       a pre- or post-hook failed
    ├── SourceError                       (OSError)     a backup source is missing
    └── ConfigError                       (ValueError)  a bad option or value
        └── UnknownStrategy                             a retention strategy not installed

Errors carry structured context as attributes (``key``, ``snapshot_id``, ``pack_id``,
``blob_id``, ``path``) next to a plain message. The library never chooses exit codes; the
CLI maps these classes to exit codes in one place.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AmbiguousSnapshot",
    "AppendOnlyError",
    "BackendUnavailable",
    "BucketNotFound",
    "ConcurrentPruneError",
    "ConfigError",
    "DrillFailed",
    "FailoverError",
    "HookError",
    "IntegrityError",
    "JobCancelled",
    "ObjectExists",
    "ObjectNotFound",
    "PlanNotFound",
    "PolicyNotFound",
    "PruneError",
    "RepositoryError",
    "RepositoryExists",
    "RepositoryNotFound",
    "SnapshotNotFound",
    "SnapvaultError",
    "SourceError",
    "StalePrimaryError",
    "StorageError",
    "TransientStorageError",
    "UnknownStrategy",
    "UnsafePathError",
    "UnsupportedFormat",
    "WrongPassword",
]


class SnapvaultError(Exception):
    """Base class of every error snapvault raises."""


class StorageError(SnapvaultError, OSError):
    """The storage backend failed or refused an operation.

    Attributes
    ----------
    key : str or None
        The repository-relative object key the operation was about.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        # OSError's own __init__ would reinterpret (errno, strerror); keep the message plain.
        SnapvaultError.__init__(self, message)
        self.key = key

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ObjectNotFound(StorageError, FileNotFoundError):
    """The object does not exist in the store."""


class ObjectExists(StorageError, FileExistsError):
    """A create-only write found the object already present."""


class AccessDenied(StorageError, PermissionError):
    """The backend refused the credentials or the operation."""


class BucketNotFound(StorageError, FileNotFoundError):
    """The bucket or container named in the URL does not exist."""


class BackendUnavailable(StorageError, ConnectionError):
    """The endpoint could not be reached."""


class TransientStorageError(StorageError):
    """A failure that may succeed when tried again (throttling, reset, timeout)."""


class RepositoryError(SnapvaultError):
    """The location is not a usable snapvault repository."""


class RepositoryNotFound(RepositoryError, FileNotFoundError):
    """No repository exists at the location."""


class RepositoryExists(RepositoryError, FileExistsError):
    """``init`` found a repository already at the location."""


class WrongPassword(RepositoryError, PermissionError):
    """No key file of the repository opens with the password given."""


class UnsupportedFormat(RepositoryError):
    """The repository uses a format version or algorithm this release cannot read."""


class AppendOnlyError(RepositoryError, PermissionError):
    """The repository was opened append-only (or its store refuses deletes): nothing may be deleted."""


class PruneError(RepositoryError):
    """A prune cannot run safely (a snapshot it cannot read might reference any blob)."""


class ConcurrentPruneError(RepositoryError):
    """A prune deleted data this writer reused while it was frozen past the prune's writer
    timeout; the writer committed nothing and can simply run again."""


class StalePrimaryError(RepositoryError, PermissionError):
    """This repository is not its DR plan's primary any more: a failover moved the writes of
    the policy to another site, so a backup here would fork the history (until a failback)."""


class IntegrityError(SnapvaultError, ValueError):
    """Stored bytes failed authentication or their content ID does not match.

    Attributes
    ----------
    key, pack_id, blob_id, snapshot_id, path : str or None
        Whatever is known about where the damage is.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        pack_id: str | None = None,
        blob_id: str | None = None,
        snapshot_id: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.pack_id = pack_id
        self.blob_id = blob_id
        self.snapshot_id = snapshot_id
        self.path = path


class UnsafePathError(IntegrityError):
    """A tree entry would make a restore write outside its target."""


class DrillFailed(IntegrityError):
    """A DR drill could not restore and verify a site's copy; the message (and the attributes)
    name the site's snapshot, the path and the pack where known."""


class SnapshotNotFound(SnapvaultError, LookupError):
    """No snapshot matches the ID, prefix or name given."""

    def __init__(self, message: str, *, snapshot_id: str | None = None) -> None:
        super().__init__(message)
        self.snapshot_id = snapshot_id


class AmbiguousSnapshot(SnapshotNotFound):
    """An ID prefix matches more than one snapshot."""


class PolicyNotFound(SnapvaultError, LookupError):
    """No stored policy has this name."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class PlanNotFound(SnapvaultError, LookupError):
    """No stored DR plan has this name."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class FailoverError(SnapvaultError):
    """A DR failover was refused: the target site is unknown, unreachable, or failed its drill."""


class JobCancelled(SnapvaultError):
    """The job was cancelled before it finished; it wrote no snapshot."""


class SourceError(SnapvaultError, OSError):
    """A backup source path does not exist or cannot be read at all."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        SnapvaultError.__init__(self, message)
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(SnapvaultError, ValueError):
    """An option or configuration value is invalid."""


class HookError(SnapvaultError):
    """A pre- or post-backup hook failed (non-zero exit, an exception, or not allowed)."""


class UnknownStrategy(ConfigError):
    """No retention strategy with this wire ID is available in this process.

    Raised when reading a strategy (or a stored policy holding one) whose package is not
    installed or whose class is not registered, and when storing a strategy that could not be
    read back for that reason. The message names the strategy and how to provide it.

    Attributes
    ----------
    wire_id : str or None
        The wire ID that could not be resolved.
    """

    def __init__(self, message: str, *, wire_id: str | None = None) -> None:
        super().__init__(message)
        self.wire_id = wire_id
