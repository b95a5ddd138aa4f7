"""The service's jobs: snapvault ``BackupJob``/``RestoreJob`` objects with who asked for what.

The library runs each job on its own thread (``Engine.submit_policy``, ``Restorer.submit``),
so nothing here blocks the event loop: a status poll reads the job's fields, and the event
stream follows ``job.events()``, which the job thread wakes through the loop.

At most ``max_running`` jobs run at once; the others wait in a queue (status ``pending``) and
start, oldest first, as running ones end. Twenty backups started together on two CPUs would
otherwise hold the interpreter's lock in turns with the event loop, and every request would
wait for it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from examples.service.problems import Problem
from examples.service.schemas import JobOut, JobProgress

import snapvault as sv

__all__ = ["JobRecord", "JobRegistry", "job_events"]

Job = sv.BackupJob | sv.RestoreJob
_ZERO = sv.Progress()


@dataclass
class JobRecord:
    """One job request: what was asked, and the library's job once it started.

    ``launch`` submits the work (``Engine.submit_policy`` or ``Restorer.submit``); until the
    registry calls it, ``job`` is None and the request is queued.
    """

    launch: Callable[[], Job]
    kind: Literal["backup", "restore"]
    created: datetime
    requested_by: str
    policy: str | None = None
    snapshot: str | None = None
    restore_type: str | None = None
    target: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    job: Job | None = None
    #: Cancelled while queued (it never started), and when.
    dropped: datetime | None = None

    @property
    def done(self) -> bool:
        return self.dropped is not None or (self.job is not None and self.job.done)

    def status(self) -> sv.JobStatus:
        job = self.job
        if job is None:
            return sv.JobStatus.CANCELLED if self.dropped is not None else sv.JobStatus.PENDING
        # The library sets a finished status a moment before the job is done (and its result
        # readable): until then the job is still running.
        return job.status if job.done or not job.status.finished else sv.JobStatus.RUNNING

    def to_out(self) -> JobOut:
        job = self.job
        status = self.status()
        p = job.progress if job is not None else _ZERO
        error = None
        if job is not None and job.done and job.error is not None and status is not sv.JobStatus.COMPLETED:
            error = {"type": type(job.error).__name__, "detail": str(job.error)}
        return JobOut(
            id=self.id,
            kind=self.kind,
            status=status.value,
            policy=self.policy,
            snapshot=self.snapshot,
            restore_type=self.restore_type,
            target=self.target,
            requested_by=self.requested_by,
            created=self.created,
            started=job.started if job is not None else None,
            ended=job.ended if job is not None else self.dropped,
            progress=JobProgress(
                files_done=p.files_done,
                bytes_done=p.bytes_done,
                files_total=p.files_total,
                bytes_total=p.bytes_total,
                current_path=p.current_path,
            ),
            result=_result(job) if job is not None else None,
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
    """Jobs by ID: queued, running, and the ``history`` most recent finished ones.

    Parameters
    ----------
    max_active : int
        Queued and running jobs at most; another request is refused (503).
    max_running : int
        Jobs running at once.
    history : int
        Finished jobs kept.
    clock : callable
        The time recorded when a queued job is cancelled.
    """

    def __init__(self, *, max_active: int, max_running: int, history: int, clock: Callable[[], datetime]) -> None:
        self.max_active = max_active
        self.max_running = max_running
        self.history = history
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, JobRecord] = OrderedDict()
        self._queue: deque[JobRecord] = deque()
        self._running = 0

    def active(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return sum(1 for r in self._jobs.values() if not r.done)

    def start(self, record: JobRecord) -> JobRecord:
        """Queue ``record`` and start it if a slot is free.

        Raises
        ------
        Problem
            ``too-many-jobs`` (503) when ``max_active`` jobs are queued or running.
        """
        with self._lock:
            active = sum(1 for r in self._jobs.values() if not r.done)
            if active >= self.max_active:
                raise Problem(
                    503,
                    "too-many-jobs",
                    f"{active} jobs are queued or running; try again later",
                    headers={"Retry-After": "5"},
                )
            self._jobs[record.id] = record
            self._queue.append(record)
            finished = [k for k, r in self._jobs.items() if r.done]
            for key in finished[: max(0, len(finished) - self.history)]:
                del self._jobs[key]
        self._dispatch()
        return record

    def _dispatch(self) -> None:
        """Start queued jobs while fewer than ``max_running`` run."""
        while True:
            with self._lock:
                if self._running >= self.max_running or not self._queue:
                    return
                record = self._queue.popleft()
                self._running += 1
                try:
                    record.job = record.launch()
                except BaseException:
                    self._running -= 1
                    record.dropped = self._clock()
                    raise
            # The library's jobs have no completion callback: a thread waits for each.
            threading.Thread(target=self._wait, args=(record.job,), name="service-job-wait", daemon=True).start()

    def _wait(self, job: Job) -> None:
        job.wait()
        with self._lock:
            self._running -= 1
        self._dispatch()

    def cancel(self, record: JobRecord) -> None:
        """Cancel a queued job (it never starts) or ask a running one to stop.

        Raises
        ------
        Problem
            ``job-finished`` (409) if it has ended.
        """
        with self._lock:
            if record.done:
                raise Problem(409, "job-finished", f"job {record.id} has already ended ({record.status().value})")
            if record.job is None:
                self._queue.remove(record)
                record.dropped = self._clock()
                return
        record.job.cancel()

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
        out = [r for r in records if (kind is None or r.kind == kind) and (status is None or r.status() == status)]
        return out[:limit]

    def shutdown(self, timeout: float = 60.0) -> None:
        """Cancel every queued and running job and wait for the running ones to end."""
        with self._lock:
            queued = list(self._queue)
        for record in queued:
            if not record.done:
                self.cancel(record)
        with self._lock:
            jobs = [r.job for r in self._jobs.values() if r.job is not None]
        for job in jobs:
            job.cancel()
        for job in jobs:
            job.wait(timeout)


async def job_events(record: JobRecord, min_interval: float, *, poll: float = 0.05) -> AsyncIterator[str]:
    """The job's events as server-sent events: ``event: <kind>`` and the job's JSON as data.

    A queued job first gets a ``queued`` event; then come the library's events (``started``,
    ``progress``, one end event). Progress is coalesced by the library; here at most one
    progress event is sent per ``min_interval`` seconds, so a fast job cannot flood a slow
    client.
    """

    def sse(kind: str) -> str:
        data = record.to_out().model_dump(mode="json")
        data["event"] = kind
        return f"event: {kind}\nid: {record.id}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"

    if record.job is None and record.dropped is None:
        yield sse("queued")
        while record.job is None and record.dropped is None:
            await asyncio.sleep(poll)
    if record.job is None:
        yield sse("cancelled")
        return
    async for event in record.job.events():
        yield sse(event.kind)
        if event.kind == "progress" and min_interval > 0:
            await asyncio.sleep(min_interval)
