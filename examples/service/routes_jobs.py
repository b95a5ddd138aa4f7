"""Jobs: start a backup or a restore, follow it (poll or server-sent events), cancel it."""

from __future__ import annotations

from typing import Annotated, Literal

from examples.service.auth import Principal
from examples.service.deps import Service, get_service, require
from examples.service.jobs import JobRecord, job_events
from examples.service.routes_dr import refuse_stale_primary
from examples.service.schemas import BackupRequest, JobOut, RestoreRequest
from examples.service.targets import restore_target
from fastapi import APIRouter, Depends, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

import snapvault as sv

__all__ = ["router"]

router = APIRouter(tags=["jobs"])
Svc = Annotated[Service, Depends(get_service)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]


@router.post("/jobs/backup", status_code=status.HTTP_202_ACCEPTED, summary="Start a backup of a stored policy")
async def start_backup(body: BackupRequest, service: Svc, who: Operator) -> JobOut:
    """Runs ``Engine.submit_policy`` on the stored policy; follow it at ``/jobs/{id}`` or
    ``/jobs/{id}/events``."""
    policy = await run_in_threadpool(service.repo.load_policy, body.policy)
    await run_in_threadpool(refuse_stale_primary, service, policy)

    record = JobRecord(
        lambda: service.engine.submit_policy(policy), "backup", service.clock(), who.name, policy=policy.name
    )
    return service.jobs.start(record).to_out()


@router.post("/jobs/restore", status_code=status.HTTP_202_ACCEPTED, summary="Start a restore")
async def start_restore(body: RestoreRequest, service: Svc, who: Operator) -> JobOut:
    """Full, selective (``include``/``exclude``) or point in time (``at``, optionally with
    ``policy``), into ``target_path`` below the restore root ``target_root``. The snapshot is
    chosen before the job starts, so a bad reference is a 404 here, not a failed job."""
    target = restore_target(service.settings.restore_roots, body.target_root, body.target_path)

    def resolve() -> sv.Manifest:
        if body.snapshot is not None:
            return service.snapshot(body.snapshot)
        return service.restorer.resolve(None, policy=body.policy, at=body.at, hostname=body.hostname)

    manifest = await run_in_threadpool(resolve)
    kind = "point-in-time" if body.at is not None else "selective" if body.include or body.exclude else "full"

    def launch() -> sv.RestoreJob:
        return service.restorer.submit(manifest, str(target), include=body.include, exclude=body.exclude)

    record = JobRecord(
        launch,
        "restore",
        service.clock(),
        who.name,
        policy=manifest.policy,
        snapshot=manifest.id,
        restore_type=kind,
        target=f"{body.target_root}:{body.target_path}",
    )
    return service.jobs.start(record).to_out()


@router.get("/jobs", summary="Recent jobs, newest first")
async def list_jobs(
    service: Svc,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    kind: Literal["backup", "restore"] | None = None,
    status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = None,
) -> list[JobOut]:
    return [r.to_out() for r in service.jobs.recent(limit, kind=kind, status=status)]


@router.get("/jobs/{job_id}", summary="A job's status and progress")
async def get_job(job_id: str, service: Svc, _: Viewer) -> JobOut:
    # Reads the job's in-memory fields only: cheap enough for the event loop.
    return service.jobs.get(job_id).to_out()


@router.post("/jobs/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, summary="Cancel a job")
async def cancel_job(job_id: str, service: Svc, _: Operator) -> JobOut:
    """A queued job never starts; a running one stops at its next file or chunk boundary: a
    cancelled backup writes no snapshot, a cancelled restore leaves no half-written file.
    409 if it has ended."""
    record = service.jobs.get(job_id)
    service.jobs.cancel(record)
    return record.to_out()


@router.get(
    "/jobs/{job_id}/events",
    summary="Follow a job as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "started, progress..., then the end"}},
)
async def job_event_stream(job_id: str, service: Svc, _: Viewer) -> StreamingResponse:
    """``event: queued`` (a job waiting for a slot), ``started``, ``progress`` events
    (coalesced), then one of ``completed``, ``failed`` or ``cancelled``, and the stream ends.
    Each ``data`` is the job's JSON."""
    record = service.jobs.get(job_id)
    return StreamingResponse(
        job_events(record, service.settings.jobs.progress_interval_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
