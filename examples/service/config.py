"""The service's settings: one validated value, built from a TOML file and a few variables.

:func:`create_app <examples.service.app.create_app>` takes a :class:`Settings`; only the entry
points (``python -m examples.service``, ``uvicorn examples.service.app:app``) read the
environment, through :func:`settings_from_env`. The file holds no secret: the repository
password is read from ``repository.password_file``, and API tokens are stored as hashes
(``python -m examples.service.tokens new --role operator`` mints one).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "ROLES",
    "AuthSettings",
    "ConfigFileError",
    "JobSettings",
    "RepositorySettings",
    "Role",
    "Settings",
    "TokenEntry",
    "load_settings",
    "settings_from_env",
]

Role = Literal["viewer", "operator", "admin"]
#: Roles from least to most trusted: each may do what the ones before it may.
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")

#: Environment variables the entry points read (nothing else reads the environment).
ENV_CONFIG = "SNAPVAULT_SERVICE_CONFIG"
ENV_REPOSITORY = "SNAPVAULT_SERVICE_REPOSITORY"
ENV_PASSWORD_FILE = "SNAPVAULT_SERVICE_PASSWORD_FILE"


class ConfigFileError(ValueError):
    """The configuration file cannot be read or does not validate."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RepositorySettings(_Frozen):
    """Where the repository is and how to open it.

    Attributes
    ----------
    url : str
        fsspec URL or local path of the repository.
    options : dict
        fsspec storage options (``endpoint_url``, ...); prefer the backend's own environment
        variables for credentials.
    password_file : Path, optional
        File holding the repository password (first line); None for an unencrypted one.
    append_only : bool
        Open the repository append-only: snapshot deletion is then refused.
    """

    url: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    password_file: Path | None = None
    append_only: bool = False


class TokenEntry(_Frozen):
    """One API credential: a name (for logs), a role, and the token's hash, never the token."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    role: Role
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class AuthSettings(_Frozen):
    """Credentials and the limit on failed authentication.

    A client (by address) that fails ``max_failures`` times within ``window_s`` seconds is
    refused (429) until the window has passed, even with a valid token.
    """

    tokens: list[TokenEntry] = Field(default_factory=list)
    max_failures: int = Field(default=10, ge=1)
    window_s: float = Field(default=60.0, gt=0)

    @field_validator("tokens")
    @classmethod
    def _unique(cls, v: list[TokenEntry]) -> list[TokenEntry]:
        names = [t.name for t in v]
        hashes = [t.hash for t in v]
        if len(set(names)) != len(names) or len(set(hashes)) != len(hashes):
            raise ValueError("token names and hashes must be unique")
        return v


class JobSettings(_Frozen):
    """Background jobs.

    Attributes
    ----------
    max_active : int
        Jobs queued or running; another request is refused (503) until one ends.
    max_running : int, optional
        Jobs running at once (default: half the CPUs, at least one); the others wait in a
        queue.
    history : int
        Finished jobs kept for ``GET /jobs``.
    workers : int, optional
        Encoder threads per backup (default: the engine's).
    allowed_hooks : list of str
        SHA-256 (hex) of the policy shell hooks this service may run; default none.
    progress_interval_s : float
        Least time between two progress events of one event stream.
    """

    max_active: int = Field(default=32, ge=1)
    max_running: int | None = Field(default=None, ge=1)
    history: int = Field(default=200, ge=1)
    workers: int | None = Field(default=None, ge=1)
    allowed_hooks: list[str] = Field(default_factory=list)
    progress_interval_s: float = Field(default=0.1, ge=0)


class Settings(_Frozen):
    """Everything the service is configured with.

    Attributes
    ----------
    repository : RepositorySettings
    auth : AuthSettings
    jobs : JobSettings
    restore_roots : dict of str to Path
        Named folders a restore may write into (``{"restores": "/srv/restores"}``); a request
        names a root and a relative path below it, and nothing can leave the root.
    backup_roots : list of Path
        When not empty, every source of a stored policy must lie below one of them.
    """

    repository: RepositorySettings
    auth: AuthSettings = Field(default_factory=AuthSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    restore_roots: dict[str, Path] = Field(default_factory=dict)
    backup_roots: list[Path] = Field(default_factory=list)

    @field_validator("restore_roots")
    @classmethod
    def _absolute_roots(cls, v: dict[str, Path]) -> dict[str, Path]:
        for name, path in v.items():
            if not name or "/" in name or not path.is_absolute():
                raise ValueError(f"restore root {name!r}: a plain name and an absolute folder are required")
        return v

    @field_validator("backup_roots")
    @classmethod
    def _absolute_backup_roots(cls, v: list[Path]) -> list[Path]:
        if any(not p.is_absolute() for p in v):
            raise ValueError("backup roots must be absolute folders")
        return v


def load_settings(path: str | os.PathLike[str], *, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read and validate a TOML configuration file (see ``config.example.toml``).

    Relative paths in the file (a local repository, the password file, the roots) are taken
    relative to the file's folder.

    Parameters
    ----------
    path : path-like
    overrides : mapping, optional
        ``{"url": ..., "password_file": ...}`` replacing the ``[repository]`` values.

    Raises
    ------
    ConfigFileError
        If the file cannot be read, is not TOML, or does not validate.
    """
    base = Path(path).resolve().parent
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigFileError(f"cannot read configuration {os.fspath(path)}: {e}") from None
    repo = dict(data.get("repository", {}))
    repo.update({k: v for k, v in (overrides or {}).items() if v is not None})
    data["repository"] = repo

    def absolute(p: Any) -> Any:
        return str(base / p) if isinstance(p, str) and not os.path.isabs(p) else p

    if "password_file" in repo:
        repo["password_file"] = absolute(repo["password_file"])
    if isinstance(repo.get("url"), str) and repo["url"] and "://" not in repo["url"]:
        repo["url"] = absolute(repo["url"])  # a local folder
    if isinstance(data.get("restore_roots"), dict):
        data["restore_roots"] = {k: absolute(v) for k, v in data["restore_roots"].items()}
    if isinstance(data.get("backup_roots"), list):
        data["backup_roots"] = [absolute(p) for p in data["backup_roots"]]
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        lines = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ConfigFileError(f"invalid configuration {os.fspath(path)}: {lines}") from None


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The settings the entry points use: the file ``SNAPVAULT_SERVICE_CONFIG`` names, with
    ``SNAPVAULT_SERVICE_REPOSITORY`` and ``SNAPVAULT_SERVICE_PASSWORD_FILE`` overriding its
    repository URL and password file.

    Raises
    ------
    ConfigFileError
        If ``SNAPVAULT_SERVICE_CONFIG`` is not set, or as :func:`load_settings`.
    """
    path = env.get(ENV_CONFIG)
    if not path:
        raise ConfigFileError(f"set {ENV_CONFIG} to the service's configuration file")
    return load_settings(path, overrides={"url": env.get(ENV_REPOSITORY), "password_file": env.get(ENV_PASSWORD_FILE)})
