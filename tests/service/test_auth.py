"""Authentication and authorisation: every endpoint refuses the roles below its own, admits its
own and the ones above, and answers a missing or unknown token with 401; failures are limited."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from examples.service.app import create_app
from examples.service.auth import FailureLimiter, TokenStore, allows, hash_token, new_token
from examples.service.config import TokenEntry

from tests.service.conftest import ROLES, World, build_world, finish, in_process, wait_done

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]

# (method, the app's route, the URL asked (with {first}, {second}, {src}, {job}), JSON body, least role)
ENDPOINTS: list[tuple[str, str, str, Any, str]] = [
    ("GET", "/policies", "/policies", None, "viewer"),
    ("GET", "/policies/{name}", "/policies/docs", None, "viewer"),
    ("PUT", "/policies/{name}", "/policies/new", {"name": "new", "sources": ["{src}"]}, "admin"),
    ("DELETE", "/policies/{name}", "/policies/docs", None, "admin"),
    ("GET", "/retention/preview", "/retention/preview", None, "viewer"),
    ("GET", "/stats", "/stats", None, "viewer"),
    ("POST", "/jobs/backup", "/jobs/backup", {"policy": "docs"}, "operator"),
    (
        "POST",
        "/jobs/restore",
        "/jobs/restore",
        {"snapshot": "latest", "target_root": "restores", "target_path": "r"},
        "operator",
    ),
    ("GET", "/jobs", "/jobs", None, "viewer"),
    ("GET", "/jobs/{job_id}", "/jobs/{job}", None, "viewer"),
    ("POST", "/jobs/{job_id}/cancel", "/jobs/{job}/cancel", None, "operator"),
    ("GET", "/jobs/{job_id}/events", "/jobs/{job}/events", None, "viewer"),
    ("GET", "/snapshots", "/snapshots", None, "viewer"),
    ("GET", "/snapshots/{ref}", "/snapshots/{first}", None, "viewer"),
    ("DELETE", "/snapshots/{ref}", "/snapshots/{first}", None, "admin"),
    ("GET", "/snapshots/{ref}/files", "/snapshots/{first}/files?path={src}", None, "viewer"),
    ("GET", "/snapshots/{before}/diff/{after}", "/snapshots/{first}/diff/{second}", None, "viewer"),
    ("GET", "/snapshots/{ref}/download", "/snapshots/{first}/download?path={src}/a.txt", None, "viewer"),
    ("GET", "/dr/plans", "/dr/plans", None, "viewer"),
    ("GET", "/dr/plans/{name}/status", "/dr/plans/none/status", None, "viewer"),
    ("GET", "/dr/plans/{name}/report", "/dr/plans/none/report", None, "viewer"),
    ("POST", "/dr/plans/{name}/failover", "/dr/plans/none/failover", {"to": "x", "reason": "test"}, "admin"),
]


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


async def _finished_job(w: World) -> str:
    r = await w.client.post("/jobs/backup", json={"policy": "docs"}, headers=w.auth("operator"))
    assert r.status_code == 202
    job_id: str = r.json()["id"]
    wait_done(w, job_id)
    return job_id


def test_every_route_but_health_is_in_the_table(world: World) -> None:
    paths = world.app.openapi()["paths"]
    routes = {(m.upper(), path) for path, ops in paths.items() for m in ops}
    assert routes - {("GET", "/health")} == {(m, route) for m, route, _, _, _ in ENDPOINTS}


@pytest.mark.parametrize(
    ("method", "route", "path", "body", "least"), ENDPOINTS, ids=[f"{m} {r}" for m, r, _, _, _ in ENDPOINTS]
)
async def test_each_role_is_refused_below_and_allowed_from_the_least_role(
    tmp_path: Path, method: str, route: str, path: str, body: Any, least: str
) -> None:
    w = build_world(tmp_path)
    try:
        job = await _finished_job(w) if "{job}" in path else ""
        names = {"first": w.first.id, "second": w.second.id[:10], "src": str(w.source), "job": job}
        url, payload = _fill(path, names), _fill(body, names)
        anonymous = await w.client.request(method, url, json=payload)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["type"] == "urn:snapvault:problem:unauthorized"
        allowed = ROLES[ROLES.index(least) :]
        for role in ROLES:
            r = await w.client.request(method, url, json=payload, headers=w.auth(role))
            if role in allowed:
                assert r.status_code not in (401, 403), (role, r.status_code, r.text)
                assert r.status_code < 500, r.text
            else:
                assert r.status_code == 403, (role, r.text)
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json()["type"] == "urn:snapvault:problem:forbidden"
    finally:
        finish(w)


async def test_a_wrong_scheme_or_unknown_token_is_401_and_health_needs_none(world: World) -> None:
    c = world.client
    assert (await c.get("/health")).json() == {"status": "ok"}
    for header in (f"Basic {world.tokens['admin']}", "Bearer " + new_token(), "Bearer", f"Bearer {hash_token('x')}"):
        r = await c.get("/stats", headers={"Authorization": header})
        assert r.status_code == 401, header


async def test_too_many_failures_lock_the_client_out_until_the_window_passes(world: World) -> None:
    now = [1000.0]
    settings = world.settings
    app = create_app(settings, repository=world.repo, monotonic=lambda: now[0])
    c = in_process(app)
    bad = {"Authorization": "Bearer " + new_token()}
    for _ in range(settings.auth.max_failures):
        assert (await c.get("/stats", headers=bad)).status_code == 401
    # Locked out: even the right token is refused, with a Retry-After.
    r = await c.get("/stats", headers=world.auth("viewer"))
    assert r.status_code == 429
    assert r.json()["type"] == "urn:snapvault:problem:too-many-failures"
    assert 1 <= int(r.headers["retry-after"]) <= settings.auth.window_s + 1
    # Another address is not affected.
    other = httpx_client_from(app, "10.0.0.9")
    assert (await other.get("/stats", headers=world.auth("viewer"))).status_code == 200
    now[0] += settings.auth.window_s + 1
    assert (await c.get("/stats", headers=world.auth("viewer"))).status_code == 200


def httpx_client_from(app: Any, host: str) -> Any:
    import httpx

    transport = httpx.ASGITransport(app=app, client=(host, 40001))
    return httpx.AsyncClient(transport=transport, base_url="http://service.test")


def test_token_store_matches_only_the_exact_token_and_roles_are_ordered() -> None:
    tokens = [new_token() for _ in range(3)]
    store = TokenStore(
        [
            TokenEntry(name=f"t{i}", role=r, hash=hash_token(t))
            for i, (r, t) in enumerate(zip(ROLES, tokens, strict=True))
        ]  # type: ignore[arg-type]
    )
    for role, token in zip(ROLES, tokens, strict=True):
        found = store.lookup(token)
        assert found is not None
        assert found.role == role
        assert store.lookup(token[:-1]) is None
        assert store.lookup(token + "x") is None
    assert hash_token(tokens[0]) == "sha256:" + hashlib.sha256(tokens[0].encode()).hexdigest()
    assert len({new_token() for _ in range(100)}) == 100
    assert allows("admin", "viewer")
    assert allows("operator", "operator")
    assert not allows("operator", "admin")
    assert not allows("viewer", "operator")


def test_the_limiter_forgets_failures_older_than_the_window_and_bounds_its_memory() -> None:
    now = [0.0]
    lim = FailureLimiter(3, 10.0, lambda: now[0], max_clients=2)
    lim.failed("a")
    now[0] = 5
    lim.failed("a")
    assert lim.retry_after("a") is None
    now[0] = 11  # the first failure left the window
    lim.failed("a")
    assert lim.retry_after("a") is None
    lim.failed("a")
    assert lim.retry_after("a") == pytest.approx(4.0)
    lim.failed("b")
    lim.failed("c")  # a third client: the oldest entry ("a") is dropped
    assert lim.retry_after("a") is None


def test_the_token_cli_prints_a_config_entry_whose_hash_is_the_token_s() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "examples.service.tokens", "new", "--role", "operator", "--name", "ci"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    token = run.stderr.split("token (shown once): ", 1)[1].strip()
    assert token.startswith("svt_")
    assert run.stdout.splitlines() == [
        "[[auth.tokens]]",
        'name = "ci"',
        'role = "operator"',
        f'hash = "{hash_token(token)}"',
    ]
    again = subprocess.run(
        [sys.executable, "-m", "examples.service.tokens", "hash"],
        input=token + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert again.stdout.strip() == hash_token(token)
