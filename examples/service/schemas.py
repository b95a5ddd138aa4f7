"""Request and response bodies (pydantic models; the OpenAPI document is generated from them).

Policies travel as ``snapvault.Policy`` itself: the API's policy schema is the library's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BackupRequest",
    "FailoverRequest",
    "FileEntry",
    "Health",
    "JobOut",
    "JobProgress",
    "ProblemDoc",
    "RestoreRequest",
    "SnapshotOut",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemDoc(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str = Field(description="urn:snapvault:problem:<slug>, stable per kind of error")
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(default=None, description="invalid-request: each field and why")


class Health(BaseModel):
    """The service answers."""

    status: Literal["ok"] = "ok"


class JobProgress(BaseModel):
    """Progress of a job; totals are null until known."""

    files_done: int
    bytes_done: int
    files_total: int | None
    bytes_total: int | None
    current_path: str


class JobOut(BaseModel):
    """A job: what was asked, where it is, and its result or error once it ended."""

    id: str
    kind: Literal["backup", "restore"]
    status: Literal["pending", "running", "completed", "failed", "cancelled"]
    policy: str | None
    snapshot: str | None
    restore_type: str | None = Field(description="full, selective or point-in-time (restores)")
    target: str | None = Field(description="root:relative path of a restore")
    requested_by: str
    created: datetime
    started: datetime | None
    ended: datetime | None
    progress: JobProgress
    result: dict[str, Any] | None = Field(description="the snapshot made, or the restore's counts")
    error: dict[str, str] | None = Field(description="type and detail of a failed job's error")


class BackupRequest(_Strict):
    """Run one backup of a stored policy."""

    policy: str = Field(min_length=1, max_length=64)


class RestoreRequest(_Strict):
    """Restore a snapshot (full, selective with include/exclude, or point in time with ``at``)
    into ``target_path`` below the configured restore root ``target_root``."""

    snapshot: str | None = Field(
        default=None,
        description="ID, unique prefix, 'latest', 'latest@POLICY' or 'POLICY@TIME'",
        max_length=128,
        pattern=r"^[A-Za-z0-9._:@+-]+$",
    )
    policy: str | None = Field(default=None, description="with or without 'at': that policy's snapshots")
    at: AwareDatetime | None = Field(default=None, description="the newest snapshot taken at or before this time")
    hostname: str | None = Field(default=None, description="with 'at' alone: this host's snapshots")
    include: list[str] = Field(default_factory=list, description="gitignore-style patterns to restore")
    exclude: list[str] = Field(default_factory=list, description="gitignore-style patterns to leave out")
    target_root: str = Field(min_length=1, description="the name of a configured restore root")
    target_path: str = Field(default="", max_length=4096, description="a relative folder below the root")

    @model_validator(mode="after")
    def _one_choice(self) -> RestoreRequest:
        if self.snapshot is not None and (self.policy is not None or self.at is not None or self.hostname):
            raise ValueError("give a snapshot, or a policy and/or at, not both")
        if self.snapshot is None and self.policy is None and self.at is None:
            raise ValueError("give a snapshot, a policy, or a point in time (at)")
        return self


class FailoverRequest(_Strict):
    """Make ``to`` the plan's primary."""

    to: str = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=1000)


class SnapshotOut(BaseModel):
    """One snapshot's manifest (``stats``, ``errors`` and the other fields as stored)."""

    model_config = ConfigDict(extra="allow")

    id: str
    short_id: str
    time: datetime
    hostname: str
    paths: list[str]
    tags: list[str]
    policy: str | None


class FileEntry(BaseModel):
    """One entry of a snapshot's directory."""

    path: str
    name: str
    type: Literal["file", "directory", "link", "other"]
    size: int
    mode: int
    mtime_ns: int
    user: str | None = None
    group: str | None = None
    destination: str | None = None
