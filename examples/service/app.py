"""The FastAPI application: :func:`create_app` builds it from :class:`Settings`.

Start it with ``uvicorn examples.service.app:app`` (the ``app`` attribute is built on first
access from the environment, see :func:`examples.service.config.settings_from_env`) or
``python -m examples.service``. Tests and embedders call :func:`create_app` with their own
settings, clock and environment; nothing here reads the environment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from examples.service import routes_dr, routes_jobs, routes_policies, routes_snapshots
from examples.service.auth import FailureLimiter, TokenStore
from examples.service.config import Settings, settings_from_env
from examples.service.deps import Service
from examples.service.jobs import JobRegistry
from examples.service.problems import MEDIA_TYPE, install_handlers
from examples.service.schemas import Health, ProblemDoc
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import snapvault as sv

__all__ = ["API_VERSION", "create_app", "default_max_running", "open_repository"]

#: The API's own version (the OpenAPI document's ``info.version``), not the library's.
API_VERSION = "1.0.0"


def open_repository(settings: Settings) -> sv.Repository:
    """Open the configured repository, with the password from its password file."""
    cfg = settings.repository
    password = None
    if cfg.password_file is not None:
        with open(cfg.password_file, encoding="utf-8") as f:
            password = f.readline().rstrip("\r\n")
    return sv.Repository.open(cfg.url, password, storage_options=cfg.options or None, append_only=cfg.append_only)


def default_max_running() -> int:
    """Half as many running jobs as CPUs (at least one).

    Each backup already runs one encoder thread per CPU; more jobs at once only contend for
    the CPUs and the interpreter's lock with the event loop. On two CPUs, one job at a time
    got through ``bench/service_load.py``'s twenty backups no later than two at a time did,
    with a lower 99th percentile of status latency.
    """
    return max(1, (os.cpu_count() or 2) // 2)


def create_app(
    settings: Settings,
    *,
    repository: sv.Repository | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] | None = None,
    monotonic: Callable[[], float] | None = None,
) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings : Settings
    repository : snapvault.Repository, optional
        An open repository to serve (default: open ``settings.repository``).
    env : mapping, optional
        Where DR plans' credential references (``password_env``, ``options_env``) are
        resolved; the entry points pass ``os.environ``. Default: empty.
    clock : callable, optional
        Aware current time for snapshots, records and retention (default: UTC now).
    monotonic : callable, optional
        Seconds for the authentication-failure window (default: ``time.monotonic``).
    """
    clock = clock or (lambda: datetime.now(UTC))
    repo = repository if repository is not None else open_repository(settings)
    jobs = settings.jobs
    service = Service(
        settings=settings,
        repo=repo,
        engine=sv.Engine(repo, workers=jobs.workers, clock=clock, allowed_hooks=jobs.allowed_hooks),
        restorer=sv.Restorer(repo),
        jobs=JobRegistry(
            max_active=jobs.max_active,
            max_running=jobs.max_running or default_max_running(),
            history=jobs.history,
            clock=clock,
        ),
        tokens=TokenStore(settings.auth.tokens),
        limiter=FailureLimiter(settings.auth.max_failures, settings.auth.window_s, monotonic or time.monotonic),
        clock=clock,
        env=dict(env or {}),
    )
    app = FastAPI(
        title="snapvault service",
        version=API_VERSION,
        description=(
            "Policies, backup and restore jobs, snapshots, retention and disaster recovery of one "
            "snapvault repository. Every route but /health takes a bearer token; roles: viewer "
            "(read), operator (run backups and restores), admin (policies, deletion, failover). "
            "Errors are RFC 9457 problem documents."
        ),
    )
    app.state.service = service
    install_handlers(app)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # The problem document's schema, which PROBLEM_RESPONSES refer to.
        doc = generate()
        doc.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "ProblemDoc", ProblemDoc.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        return doc

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/health", tags=["service"], summary="The service answers (no authentication)")
    async def health() -> Health:
        return Health()

    for module in (routes_policies, routes_jobs, routes_snapshots, routes_dr):
        app.include_router(module.router, responses=PROBLEM_RESPONSES)
    app.add_middleware(SecurityHeaders)
    return app


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDoc"}}},
    }


#: The errors every authenticated route may answer, documented as problem documents.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem("No valid bearer token"),
    403: _problem("The token's role may not do this"),
    422: _problem("The request does not validate"),
    429: _problem("Too many failed authentications from this address"),
}


class SecurityHeaders:
    """Headers every response carries: no sniffing, no framing, no caching of API data."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.HEADERS if k not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    # `uvicorn examples.service.app:app` reads this attribute: only then is the environment
    # read and the repository opened, so importing the module (tests, create_app) does neither.
    global _app
    if name == "app":
        if _app is None:
            _app = create_app(settings_from_env(os.environ), env=os.environ)
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
