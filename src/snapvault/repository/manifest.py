"""Snapshot manifests: the record of one backup, and its single commit point."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "MAX_LISTED",
    "MAX_MANIFEST",
    "FileError",
    "Manifest",
    "SnapshotStats",
    "Verification",
    "cap_errors",
    "cap_paths",
]


class SnapshotStats(BaseModel):
    """Counts of one backup run."""

    model_config = ConfigDict(frozen=True, extra="allow")

    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    dirs: int = 0
    other: int = 0
    total_files: int = 0
    total_bytes: int = 0
    bytes_read: int = 0
    data_blobs_added: int = 0
    tree_blobs_added: int = 0
    bytes_added: int = 0
    bytes_stored: int = 0
    packs_written: int = 0
    duration_s: float = 0.0


#: Most bytes a stored snapshot manifest may take; a reader refuses a longer one unread.
MAX_MANIFEST = 16 << 20
#: Most entries a manifest lists in ``errors`` (and in ``inconsistent``); the rest are counted
#: in one last entry, so a backup of a tree full of unreadable files still fits MAX_MANIFEST.
MAX_LISTED = 10_000


class FileError(BaseModel):
    """A path the backup could not read, and why."""

    model_config = ConfigDict(frozen=True)

    path: str
    error: str


def cap_errors(errors: list[FileError]) -> list[FileError]:
    """``errors`` as a manifest lists them: the first :data:`MAX_LISTED`, then one entry that
    counts the rest."""
    if len(errors) <= MAX_LISTED:
        return errors
    rest = len(errors) - MAX_LISTED + 1
    return [*errors[: MAX_LISTED - 1], FileError(path="", error=f"{rest} more errors, not listed")]


def cap_paths(paths: list[str]) -> list[str]:
    """``paths`` as a manifest lists them: the first :data:`MAX_LISTED`, then a count of the rest."""
    if len(paths) <= MAX_LISTED:
        return paths
    return [*paths[: MAX_LISTED - 1], f"({len(paths) - MAX_LISTED + 1} more, not listed)"]


class Verification(BaseModel):
    """The result of reading back the blobs a backup added."""

    model_config = ConfigDict(frozen=True)

    mode: str
    blobs_added: int
    blobs_checked: int
    ok: bool
    errors: list[str] = Field(default_factory=list)


class Manifest(BaseModel):
    """One snapshot: what was backed up, when, from where, and its root tree.

    Snapshots made by a policy record its name, the ``backup_type``, the ``parent`` the
    change counts are relative to (for ``differential`` the last full snapshot, also recorded as
    ``base``), files that changed while read (``inconsistent``, ``snapshot`` type), and the
    read-back ``verification``.

    The manifest is stored encrypted under ``snapshots/<id>`` where the ID is the BLAKE3 hash
    of the stored bytes; ``id`` is filled in from that name and is not part of the content.
    Unknown fields written by later releases are kept (``extra="allow"``).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(default="", exclude=True)
    version: int = 1
    time: AwareDatetime
    hostname: str
    username: str = ""
    uid: int = 0
    gid: int = 0
    paths: list[str]
    tags: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)
    parent: str | None = None
    tree: str
    stats: SnapshotStats = Field(default_factory=SnapshotStats)
    errors: list[FileError] = Field(default_factory=list)
    program_version: str = ""
    policy: str | None = None
    backup_type: str | None = None
    base: str | None = None
    inconsistent: list[str] = Field(default_factory=list)
    rereads: int = 0
    verification: Verification | None = None
    copied_from: str | None = None

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the ID."""
        return self.id[:8]
