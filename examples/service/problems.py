"""Errors as RFC 9457 problem details (``application/problem+json``), never a traceback.

Every error a client sees has a stable ``type`` URI (``urn:snapvault:problem:<slug>``), a
``title`` per type, the HTTP ``status`` and a ``detail``. Library errors (``snapvault``'s
typed exceptions) map to a status by their class, most specific first; anything else is
logged here with its traceback and answered with a bare ``internal-error``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import snapvault as sv

__all__ = ["PROBLEM_TYPES", "Problem", "install_handlers", "problem_response"]

log = logging.getLogger("examples.service")
MEDIA_TYPE = "application/problem+json"
URN = "urn:snapvault:problem:"

#: Every problem type the API answers with: slug -> title.
PROBLEM_TYPES: dict[str, str] = {
    "unauthorized": "Authentication required",
    "forbidden": "Not allowed for this role",
    "too-many-failures": "Too many failed authentications",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "invalid-request": "The request does not validate",
    "invalid-value": "A value is invalid",
    "target-refused": "The restore target is not allowed",
    "source-refused": "A policy source is outside the allowed folders",
    "snapshot-not-found": "No such snapshot",
    "ambiguous-snapshot": "The snapshot prefix matches several snapshots",
    "policy-not-found": "No such policy",
    "plan-not-found": "No such DR plan",
    "job-not-found": "No such job",
    "job-finished": "The job has already ended",
    "too-many-jobs": "Too many jobs running",
    "not-a-file": "Not a regular file",
    "range-not-satisfiable": "Range not satisfiable",
    "append-only": "The repository is append-only",
    "stale-primary": "This repository is no longer the DR primary",
    "failover-refused": "The DR failover was refused",
    "hook-refused": "A hook failed or is not allowed",
    "source-error": "A backup source cannot be read",
    "repository-unavailable": "The repository cannot be used",
    "storage-unavailable": "The storage backend is unavailable",
    "storage-error": "The storage backend failed",
    "integrity-error": "Stored data failed verification",
    "conflict": "The operation conflicts with the repository's state",
    "internal-error": "Internal error",
}

# Library errors, most specific first: (class, status, slug).
_LIBRARY_ERRORS: list[tuple[type[BaseException], int, str]] = [
    (sv.AmbiguousSnapshot, 400, "ambiguous-snapshot"),
    (sv.SnapshotNotFound, 404, "snapshot-not-found"),
    (sv.PolicyNotFound, 404, "policy-not-found"),
    (sv.PlanNotFound, 404, "plan-not-found"),
    (sv.ConfigError, 422, "invalid-value"),
    (sv.SourceError, 422, "source-error"),
    (sv.AppendOnlyError, 409, "append-only"),
    (sv.StalePrimaryError, 409, "stale-primary"),
    (sv.FailoverError, 409, "failover-refused"),
    (sv.DrillFailed, 409, "failover-refused"),
    (sv.HookError, 409, "hook-refused"),
    (sv.PruneError, 409, "conflict"),
    (sv.ConcurrentPruneError, 409, "conflict"),
    (sv.JobCancelled, 409, "job-finished"),
    (sv.RepositoryError, 503, "repository-unavailable"),
    (sv.BackendUnavailable, 503, "storage-unavailable"),
    (sv.TransientStorageError, 503, "storage-unavailable"),
    (sv.StorageError, 502, "storage-error"),
    (sv.IntegrityError, 500, "integrity-error"),
]


class Problem(Exception):
    """An error the service raises on purpose: answered as a problem document.

    Parameters
    ----------
    status : int
    slug : str
        A key of :data:`PROBLEM_TYPES`.
    detail : str
    headers : mapping, optional
    extra : mapping, optional
        Extension members of the problem document.
    """

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        assert slug in PROBLEM_TYPES, slug
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def problem_response(
    status: int,
    slug: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """The problem document as a response."""
    body: dict[str, Any] = {"type": URN + slug, "title": PROBLEM_TYPES[slug], "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=MEDIA_TYPE)


def library_problem(e: BaseException) -> Problem | None:
    """The problem a snapvault error maps to, or None for any other exception."""
    for cls, status, slug in _LIBRARY_ERRORS:
        if isinstance(e, cls):
            headers = {"Retry-After": "5"} if status == 503 else None
            return Problem(status, slug, str(e) or PROBLEM_TYPES[slug], headers=headers)
    if isinstance(e, sv.SnapvaultError):
        return Problem(500, "internal-error", "the operation failed")
    return None


_HTTP_SLUGS = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}


def install_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem document."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            exc.status, exc.slug, exc.detail, instance=request.url.path, headers=exc.headers, extra=exc.extra
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = _HTTP_SLUGS.get(exc.status_code, "invalid-request")
        detail = exc.detail if isinstance(exc.detail, str) else PROBLEM_TYPES[slug]
        return problem_response(
            exc.status_code, slug, detail, instance=request.url.path, headers=getattr(exc, "headers", None)
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Locations and messages only: never echo the input (it may hold anything).
        errors = [{"loc": list(err.get("loc", ())), "msg": str(err.get("msg", ""))} for err in exc.errors()]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem_response(422, "invalid-request", detail, instance=request.url.path, extra={"errors": errors})

    async def on_any(request: Request, exc: Exception) -> JSONResponse:
        mapped = library_problem(exc)
        if mapped is not None and mapped.slug != "internal-error":
            return await on_problem(request, mapped)
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "internal-error", "internal error", instance=request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(sv.SnapvaultError, on_any)
    app.add_exception_handler(Exception, on_any)
