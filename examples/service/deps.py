"""What every route depends on: the service's state and the caller's authenticated role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from examples.service.auth import FailureLimiter, Principal, TokenStore, allows
from examples.service.config import Role, Settings
from examples.service.jobs import JobRegistry
from examples.service.problems import Problem
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

import snapvault as sv

__all__ = ["Service", "get_service", "require"]


@dataclass
class Service:
    """The state of one running service (``app.state.service``)."""

    settings: Settings
    repo: sv.Repository
    engine: sv.Engine
    restorer: sv.Restorer
    jobs: JobRegistry
    tokens: TokenStore
    limiter: FailureLimiter
    clock: Callable[[], datetime]
    env: Mapping[str, str]

    def snapfs(self) -> sv.SnapshotFileSystem:
        """A snapshot filesystem over the open repository, with a fresh snapshot list."""
        return sv.SnapshotFileSystem(repository=self.repo, skip_instance_cache=True)

    def snapshot(self, ref: str) -> sv.Manifest:
        """The snapshot ``ref`` names: an ID, a unique prefix, ``latest``, ``latest@POLICY`` or
        ``POLICY@TIME`` (the newest the policy made at or before TIME; UTC without an offset)."""
        return self.snapfs().snapshot(ref)


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def get_service(request: Request) -> Service:
    # async: FastAPI would run a plain function in its thread pool, a hop per request.
    return service_of(request)


# auto_error=False: a missing header is answered by `require`, as a problem document.
_bearer = HTTPBearer(auto_error=False, description="A token minted by `python -m examples.service.tokens new`")


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and admits ``role`` or a more trusted one.

    A missing or unknown token counts as a failure of the client's address; a client with too
    many recent failures is refused (429) before its token is looked at.
    """

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        service = service_of(request)
        client = _client(request)
        wait = service.limiter.retry_after(client)
        if wait is not None:
            raise Problem(
                429,
                "too-many-failures",
                "too many failed authentications from this address; try again later",
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            )
        principal = None
        if credentials is not None and credentials.scheme.lower() == "bearer":
            principal = service.tokens.lookup(credentials.credentials)
        if principal is None:
            service.limiter.failed(client)
            raise Problem(
                401, "unauthorized", "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        if not allows(principal.role, role):
            raise Problem(403, "forbidden", f"this needs the role {role!r} (the token has {principal.role!r})")
        return principal

    return dependency
