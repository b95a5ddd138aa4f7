"""Policies (stored in the repository, encrypted), their retention preview, and statistics.

Routes that touch the repository are plain ``def`` functions: FastAPI runs them in its
thread pool, so the repository's blocking I/O never stalls the event loop.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

from examples.service.auth import Principal
from examples.service.deps import Service, get_service, require
from examples.service.problems import Problem
from examples.service.targets import check_sources
from fastapi import APIRouter, Depends, Path, Response, status

import snapvault as sv

__all__ = ["router"]

router = APIRouter()
PolicyName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Svc = Annotated[Service, Depends(get_service)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def policy_json(policy: sv.Policy) -> dict[str, Any]:
    """A stored policy as its JSON document (the form ``PUT /policies/{name}`` takes)."""
    doc: dict[str, Any] = json.loads(policy.to_json())
    return doc


@router.get("/policies", tags=["policies"], summary="List the stored policies")
def list_policies(service: Svc, _: Viewer) -> dict[str, Any]:
    """Every stored policy, and the records this service cannot read (with why)."""
    policies = service.repo.policies()
    broken = [{"name": b.name, "error": str(b.error)} for b in service.repo.broken_policies()]
    return {"policies": [policy_json(p) for _, p in sorted(policies.items())], "broken": broken}


@router.get("/policies/{name}", tags=["policies"], summary="Get one policy")
def get_policy(name: PolicyName, service: Svc, _: Viewer) -> dict[str, Any]:
    return policy_json(service.repo.load_policy(name))


@router.put(
    "/policies/{name}",
    tags=["policies"],
    summary="Create or replace a policy",
    responses={201: {"description": "Created"}, 200: {"description": "Replaced"}},
)
def put_policy(name: PolicyName, policy: sv.Policy, response: Response, service: Svc, _: Admin) -> dict[str, Any]:
    """Store ``policy`` under ``name`` (the body's ``name`` must be the same). Its shell hooks
    run only if the service's configuration allows their SHA-256."""
    if policy.name != name:
        raise Problem(422, "invalid-value", f"the body names policy {policy.name!r}, the path {name!r}")
    check_sources(policy.sources, service.settings.backup_roots)
    existed = name in service.repo.policies()
    service.repo.save_policy(policy, now=service.clock())
    response.status_code = status.HTTP_200_OK if existed else status.HTTP_201_CREATED
    return policy_json(policy)


@router.delete("/policies/{name}", tags=["policies"], summary="Remove a policy (its snapshots stay)")
def delete_policy(name: PolicyName, service: Svc, _: Admin) -> dict[str, str]:
    service.repo.remove_policy(name, now=service.clock())
    return {"removed": name}


@router.get("/retention/preview", tags=["policies"], summary="What retention would forget now (dry run)")
def retention_preview(service: Svc, _: Viewer, policy: str | None = None) -> list[dict[str, Any]]:
    """For each policy with a retention strategy (or only ``policy``): the snapshots it keeps
    and removes, newest first, with the reasons. Nothing is removed."""
    results = sv.forget(service.repo, policy=policy, now=service.clock(), dry_run=True)
    return [
        {
            "policy": r.policy,
            "keep": list(r.decision.keep),
            "remove": list(r.decision.remove),
            "reasons": {k: list(v) for k, v in r.decision.reasons.items()},
        }
        for r in results
    ]


@router.get("/stats", tags=["policies"], summary="Repository and per-policy figures")
def stats(service: Svc, _: Viewer) -> dict[str, Any]:
    """Snapshot count, and per policy: runs, last success and failure, success rate, bytes
    added per run, snapshots and storage used."""
    policies = service.repo.policies()
    figures = {}
    for name in sorted(policies):
        s = asdict(service.engine.stats(name))
        for key in ("last_success", "last_failure"):
            s[key] = None if s[key] is None else s[key].isoformat()
        figures[name] = s
    return {
        "snapshots": len(service.repo.snapshots()),
        "jobs_active": service.jobs.active(),
        "policies": figures,
    }
