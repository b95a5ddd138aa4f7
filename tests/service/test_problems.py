"""Errors are RFC 9457 problem documents with stable types; no traceback reaches a client."""

from __future__ import annotations

import logging

import pytest
from examples.service.problems import PROBLEM_TYPES, URN, library_problem

import snapvault as sv
from tests.service.conftest import World, in_process

pytestmark = pytest.mark.anyio


async def test_an_unexpected_error_is_a_bare_500_problem_and_is_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "token-like secret in an exception"

    def explode() -> None:
        raise RuntimeError(secret)

    def library_breaks() -> None:
        raise sv.SnapvaultError(secret)

    world.app.add_api_route("/explode", explode)
    world.app.add_api_route("/library", library_breaks)
    client = in_process(world.app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="examples.service"):
        for url in ("/explode", "/library"):
            r = await client.get(url)
            assert r.status_code == 500
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json() == {
                "type": URN + "internal-error",
                "title": "Internal error",
                "status": 500,
                "detail": "internal error",
                "instance": url,
            }
            assert secret not in r.text
            assert "Traceback" not in r.text
    assert secret in caplog.text  # the operator sees it in the log


async def test_unknown_routes_and_methods_are_problems_too(world: World) -> None:
    r = await world.client.get("/nowhere", headers=world.auth("viewer"))
    assert (r.status_code, r.json()["type"]) == (404, URN + "not-found")
    r = await world.client.patch("/stats", headers=world.auth("viewer"))
    assert (r.status_code, r.json()["type"]) == (405, URN + "method-not-allowed")
    r = await world.client.post(
        "/jobs/backup", content=b"{not json", headers={**world.auth("operator"), "Content-Type": "application/json"}
    )
    assert (r.status_code, r.json()["type"]) == (422, URN + "invalid-request")
    assert "{not json" not in r.text


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (sv.SnapshotNotFound("x"), 404, "snapshot-not-found"),
        (sv.AmbiguousSnapshot("x"), 400, "ambiguous-snapshot"),
        (sv.PolicyNotFound("x"), 404, "policy-not-found"),
        (sv.PlanNotFound("x"), 404, "plan-not-found"),
        (sv.ConfigError("x"), 422, "invalid-value"),
        (sv.UnknownStrategy("x", wire_id="w"), 422, "invalid-value"),
        (sv.AppendOnlyError("x"), 409, "append-only"),
        (sv.StalePrimaryError("x"), 409, "stale-primary"),
        (sv.FailoverError("x"), 409, "failover-refused"),
        (sv.HookError("x"), 409, "hook-refused"),
        (sv.WrongPassword("x"), 503, "repository-unavailable"),
        (sv.BackendUnavailable("x"), 503, "storage-unavailable"),
        (sv.AccessDenied("x"), 502, "storage-error"),
        (sv.IntegrityError("x"), 500, "integrity-error"),
        (sv.JobCancelled("x"), 409, "job-finished"),
    ],
)
def test_library_errors_map_to_stable_types_and_statuses(error: Exception, status: int, slug: str) -> None:
    problem = library_problem(error)
    assert problem is not None
    assert (problem.status, problem.slug) == (status, slug)
    assert slug in PROBLEM_TYPES
    assert problem.detail == "x"
    if status == 503:
        assert problem.headers == {"Retry-After": "5"}


def test_only_library_errors_are_mapped() -> None:
    assert library_problem(RuntimeError("x")) is None
    assert library_problem(ValueError("x")) is None


async def test_every_response_carries_the_security_headers(world: World) -> None:
    for r in (
        await world.client.get("/health"),
        await world.client.get("/stats", headers=world.auth("viewer")),
        await world.client.get("/stats"),
    ):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
