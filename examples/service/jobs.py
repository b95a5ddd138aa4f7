"""The service's jobs: snapvault ``BackupJob``/``RestoreJob`` objects with who asked for what.

The library runs each job on its own thread (``Engine.submit_policy``, ``Restorer.submit``),
so nothing here blocks the event loop: a status poll reads the job's fields, and the event
stream follows ``job.events()``, which the job thread wakes through the loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from examples.service.problems import Problem
from examples.service.schemas import JobOut, JobProgress

import snapvault as sv

__all__ = ["JobRecord", "JobRegistry", "job_events"]

Job = sv.BackupJob | sv.RestoreJob


@dataclass
class JobRecord:
    """One job and what the request asked for."""

    job: Job
    kind: Literal["backup", "restore"]
    created: datetime
    requested_by: str
    policy: str | None = None
    snapshot: str | None = None
    restore_type: str | None = None
    target: str | None = None

    @property
    def id(self) -> str:
        return self.job.id

    def to_out(self) -> JobOut:
        job = self.job
        p = job.progress
        # The library sets a finished status a moment before the job is done (and its result
        # readable): until then the job is still running.
        status = job.status if job.done or not job.status.finished else sv.JobStatus.RUNNING
        error = None
        if job.done and job.error is not None and status is not sv.JobStatus.COMPLETED:
            error = {"type": type(job.error).__name__, "detail": str(job.error)}
        return JobOut(
            id=job.id,
            kind=self.kind,
            status=status.value,
            policy=self.policy,
            snapshot=self.snapshot,
            restore_type=self.restore_type,
            target=self.target,
            requested_by=self.requested_by,
            created=self.created,
            started=job.started,
            ended=job.ended,
            progress=JobProgress(
                files_done=p.files_done,
                bytes_done=p.bytes_done,
                files_total=p.files_total,
                bytes_total=p.bytes_total,
                current_path=p.current_path,
            ),
            result=_result(job),
            error=error,
        )


def _result(job: Job) -> dict[str, Any] | None:
    if not job.done or job.status is not sv.JobStatus.COMPLETED:
        return None
    value = job.result(timeout=0)
    if isinstance(value, sv.Manifest):
        s = value.stats
        return {
            "snapshot_id": value.id,
            "short_id": value.short_id,
            "time": value.time.isoformat(),
            "files": s.total_files,
            "bytes": s.total_bytes,
            "bytes_stored": s.bytes_stored,
            "errors": len(value.errors),
        }
    if isinstance(value, sv.RestoreResult):
        return {
            "snapshot_id": value.snapshot_id,
            "files": value.files,
            "dirs": value.dirs,
            "bytes_written": value.bytes_written,
            "files_skipped": value.files_skipped,
            "ok": value.ok,
            "errors": [{"path": e.path, "kind": e.kind, "error": e.error} for e in value.errors],
        }
    return None


class JobRegistry:
    """Jobs by ID: every running one, and the ``history`` most recent finished ones."""

    def __init__(self, *, max_active: int, history: int) -> None:
        self.max_active = max_active
        self.history = history
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, JobRecord] = OrderedDict()

    def active(self) -> int:
        """Jobs not finished yet."""
        with self._lock:
            return sum(1 for r in self._jobs.values() if not r.job.done)

    def start(self, make: Callable[[], JobRecord]) -> JobRecord:
        """Start a job (``make`` submits it) if fewer than ``max_active`` run, and keep it.

        Raises
        ------
        Problem
            ``too-many-jobs`` (503) when ``max_active`` jobs are running.
        """
        with self._lock:
            running = sum(1 for r in self._jobs.values() if not r.job.done)
            if running >= self.max_active:
                raise Problem(
                    503, "too-many-jobs", f"{running} jobs are running; try again later", headers={"Retry-After": "5"}
                )
            record = make()
            self._jobs[record.id] = record
            finished = [k for k, r in self._jobs.items() if r.job.done]
            for key in finished[: max(0, len(finished) - self.history)]:
                del self._jobs[key]
            return record

    def get(self, job_id: str) -> JobRecord:
        """The job ``job_id``, or a 404 problem."""
        with self._lock:
            record = self._jobs.get(job_id)
        if record is None:
            raise Problem(404, "job-not-found", f"no job {job_id!r} (finished jobs are kept for a while only)")
        return record

    def recent(self, limit: int, *, kind: str | None = None, status: str | None = None) -> list[JobRecord]:
        """The newest ``limit`` jobs, newest first, optionally of one kind or status."""
        with self._lock:
            records = list(reversed(self._jobs.values()))
        out = [r for r in records if (kind is None or r.kind == kind) and (status is None or r.job.status == status)]
        return out[:limit]

    def all_jobs(self) -> list[Job]:
        with self._lock:
            return [r.job for r in self._jobs.values()]


async def job_events(record: JobRecord, min_interval: float) -> AsyncIterator[str]:
    """The job's events as server-sent events: ``event: <kind>`` and the job's JSON as data.

    Progress is coalesced by the library; here at most one progress event is sent per
    ``min_interval`` seconds, so a fast job cannot flood a slow client.
    """
    async for event in record.job.events():
        data = record.to_out().model_dump(mode="json")
        data["event"] = event.kind
        yield f"event: {event.kind}\nid: {record.id}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        if event.kind == "progress" and min_interval > 0:
            await asyncio.sleep(min_interval)
