"""Disaster recovery: the DR plans stored in the repository, their status and report, and a
failover (admin).

A plan names its sites' credentials by reference (environment variables, files); the service
resolves them in the environment its entry point hands to ``create_app`` (``env=``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from examples.service.auth import Principal
from examples.service.deps import Service, get_service, require
from examples.service.problems import Problem
from examples.service.schemas import FailoverRequest
from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

import snapvault as sv

__all__ = ["refuse_stale_primary", "router"]

router = APIRouter(tags=["dr"])
Svc = Annotated[Service, Depends(get_service)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
Admin = Annotated[Principal, Depends(require("admin"))]
PlanName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


def _plan(service: Service, name: str) -> sv.DRPlan:
    """The stored plan ``name``, bound to the service's environment and open repository."""
    return _bind(service, sv.DRPlan.load(service.repo, name))


def _bind(service: Service, plan: sv.DRPlan) -> sv.DRPlan:
    # The site whose URL is the service's repository is reached through the open handle.
    mine = {s.name: service.repo for s in [plan.primary, *plan.replicas] if s.url == service.settings.repository.url}
    return plan.bind(env=service.env, repositories=mine, allowed_hooks=service.settings.jobs.allowed_hooks)


def refuse_stale_primary(service: Service, policy: sv.Policy) -> None:
    """Refuse (409 ``stale-primary``) a backup of ``policy`` when a DR plan stored here covers
    it and its primary in force is another site.

    ``Engine.run_policy`` refuses such a run itself; ``Engine.submit_policy``, which the
    service's jobs use, does not check, so the service checks before it submits.
    """
    now = service.clock()
    for plan in sv.DRPlan.stored(service.repo).values():
        everything = not plan.policies and not plan.tags
        if not (everything or policy.name in plan.policies or set(policy.tags) & set(plan.tags)):
            continue
        site = _bind(service, plan).primary_for(now)
        if site.url != service.settings.repository.url:
            raise Problem(
                409,
                "stale-primary",
                f"DR plan {plan.name!r} has failed over to site {site.name!r}: back up there, or fail back",
            )


@router.get("/dr/plans", summary="The DR plans stored in the repository")
def list_plans(service: Svc, _: Viewer) -> list[dict[str, Any]]:
    """Each plan as ``dr plan show`` prints it (site credentials are references, never secrets)."""
    plans = sv.DRPlan.stored(service.repo)
    return [json.loads(plans[name].model_dump_json()) for name in sorted(plans)]


@router.get("/dr/plans/{name}/status", summary="A plan's status: sites, objectives, verdicts")
def plan_status(name: PlanName, service: Svc, _: Viewer) -> dict[str, Any]:
    """As ``dr status --json``; read-only (a stale site is reported, not repaired)."""
    status: dict[str, Any] = _plan(service, name).status(now=service.clock(), repair=False).to_json()
    return status


@router.get(
    "/dr/plans/{name}/report",
    summary="A plan's report as JSON, Markdown or HTML",
    responses={200: {"content": {"application/json": {}, "text/markdown": {}, "text/html": {}}}},
)
async def plan_report(
    name: PlanName, service: Svc, _: Viewer, format: Literal["json", "markdown", "html"] = "json"
) -> Response:
    plan = await run_in_threadpool(_plan, service, name)
    text = await plan.areport(now=service.clock(), format=format)
    if format == "json":
        return JSONResponse(json.loads(text))
    if format == "html":
        return HTMLResponse(text, headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


@router.post("/dr/plans/{name}/failover", summary="Fail the plan over to another site")
async def failover(name: PlanName, body: FailoverRequest, service: Svc, who: Admin) -> dict[str, Any]:
    """Runs the plan's allowed hooks, drills the target (it must pass) and records the new
    primary on every reachable site (``dr failover``)."""
    plan = await run_in_threadpool(_plan, service, name)
    record = await plan.afailover(to=body.to, reason=f"{body.reason} (by {who.name})", now=service.clock())
    out: dict[str, Any] = json.loads(record.model_dump_json())
    return out
