"""Opening a plan's sites from their references, and running a plan's hooks.

A site names where its storage options and password are (an environment variable, a file), not
the secrets. The library reads no environment variable of its own accord: a caller passes the
mapping to resolve them in (``DRPlan.bind(env=os.environ)``; the CLI does), or opened
repositories by site name.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from snapvault.dr.model import HookRun, PlanSpec, Site
from snapvault.errors import ConfigError, HookError
from snapvault.handle import Repository
from snapvault.policy.hooks import hook_hash

__all__ = ["Access", "open_site", "run_stage"]

#: Output kept per hook in its record.
_OUTPUT_LIMIT = 64 << 10


@dataclass(frozen=True)
class Access:
    """How a plan reaches its sites and runs its hooks in this process.

    Attributes
    ----------
    env : mapping
        Where ``options_env`` and ``password_env`` are looked up (the CLI passes its
        environment; the library's default is empty).
    repositories : mapping of site name to Repository
        Sites already open (a notebook's, a test's); used instead of opening them.
    hooks : mapping of stage to callables
        Library hooks, run before the stored shell commands of the same stage; each gets the
        plan name, the stage and the site concerned (keyword arguments).
    allowed_hooks : collection of str
        SHA-256 hashes (:func:`snapvault.policy.hooks.hook_hash`) of the stored shell commands
        this machine allows; a stored command not among them fails the step before it runs.
    max_kdf_memory_kib : int
        As for :meth:`Repository.open`.
    """

    env: Mapping[str, str] = field(default_factory=dict)
    repositories: Mapping[str, Repository] = field(default_factory=dict)
    hooks: Mapping[str, Sequence[Callable[..., object]]] = field(default_factory=dict)
    allowed_hooks: Collection[str] = frozenset()
    max_kdf_memory_kib: int = 128 << 10


def _lookup(env: Mapping[str, str], name: str, site: Site, what: str) -> str:
    if name not in env:
        raise ConfigError(f"site {site.name!r}: the {what} variable {name} is not set")
    return env[name]


def site_options(site: Site, access: Access) -> dict[str, Any]:
    """The storage options a site's references point to (file first, then the variable)."""
    return referenced_options(f"site {site.name!r}", site.options_file, site.options_env, access)


def referenced_options(who: str, file: str | None, variable: str | None, access: Access) -> dict[str, Any]:
    """Storage options from a JSON file and a variable holding JSON (the variable's win)."""
    options: dict[str, Any] = {}
    sources: list[tuple[str, str]] = []
    if file:
        try:
            with open(file, encoding="utf-8") as f:
                sources.append((f"options file {file}", f.read()))
        except OSError as e:
            raise ConfigError(f"{who}: cannot read options file {file}: {e}") from None
    if variable:
        if variable not in access.env:
            raise ConfigError(f"{who}: the options variable {variable} is not set")
        sources.append((f"variable {variable}", access.env[variable]))
    for where, text in sources:
        try:
            loaded = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"{who}: {where} is not JSON: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{who}: {where} must hold a JSON object")
        options.update(loaded)
    return options


def site_password(site: Site, access: Access) -> str | None:
    """The password a site's references point to; None for an unencrypted site."""
    if site.no_password:
        return None
    if site.password_file:
        try:
            with open(site.password_file, encoding="utf-8") as f:
                return f.read().rstrip("\r\n")
        except OSError as e:
            raise ConfigError(f"site {site.name!r}: cannot read password file {site.password_file}: {e}") from None
    if site.password_env:
        return _lookup(access.env, site.password_env, site, "password")
    raise ConfigError(f"site {site.name!r} names no password source (password_env or password_file)")


def open_site(site: Site, access: Access) -> Repository:
    """The site's repository, opened with its own credentials.

    Raises
    ------
    ConfigError
        If a reference cannot be resolved.
    RepositoryError, StorageError
        If the site cannot be reached or opened (the typed error of its store).
    """
    if site.name in access.repositories:
        return access.repositories[site.name]
    return Repository.open(
        site.url,
        site_password(site, access),
        storage_options=site_options(site, access),
        max_kdf_memory_kib=access.max_kdf_memory_kib,
    )


def run_stage(plan: PlanSpec, stage: str, access: Access, *, site: str, timeout: float = 3600) -> list[HookRun]:
    """Run the library hooks, then the stored shell commands, of one stage; their runs.

    Raises
    ------
    HookError
        At the first hook that fails or is not allowed (nothing after it runs); the runs so far
        are in its ``runs`` attribute.
    """
    runs: list[HookRun] = []
    for hook in access.hooks.get(stage, ()):
        name = getattr(hook, "__qualname__", repr(hook))
        try:
            out = hook(plan=plan.name, stage=stage, site=site)
        except Exception as e:
            runs.append(HookRun(stage=stage, command=name, exit_code=1, output=f"{type(e).__name__}: {e}"))
            raise _failed(f"DR plan {plan.name!r}: {stage} hook {name} failed: {e}", runs) from e
        runs.append(HookRun(stage=stage, command=name, exit_code=0, output="" if out is None else str(out)))
    for command in plan.hooks.get(stage, []):
        digest = hook_hash(command)
        if digest not in access.allowed_hooks:
            raise _failed(
                f"DR plan {plan.name!r}: {stage} hook {command!r} is not allowed on this machine (sha256 {digest})",
                runs,
            )
        env = {"SNAPVAULT_DR_PLAN": plan.name, "SNAPVAULT_DR_STAGE": stage, "SNAPVAULT_DR_SITE": site}
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", command],
                capture_output=True,
                timeout=timeout,
                env={**_inherited(), **env},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise _failed(f"DR plan {plan.name!r}: {stage} hook {command!r} could not run: {e}", runs) from e
        output = (proc.stdout + proc.stderr)[-_OUTPUT_LIMIT:].decode("utf-8", "replace")
        runs.append(HookRun(stage=stage, command=command, exit_code=proc.returncode, output=output))
        if proc.returncode != 0:
            tail = output.strip().splitlines()[-1:] or [""]
            raise _failed(f"DR plan {plan.name!r}: {stage} hook {command!r} exited {proc.returncode}: {tail[0]}", runs)
    return runs


def _inherited() -> dict[str, str]:
    # A hook inherits the process environment, as policy hooks do: it is the caller's own
    # command (allowed by hash), run where the caller runs.
    import os

    return dict(os.environ)


def _failed(message: str, runs: list[HookRun]) -> HookError:
    e = HookError(message)
    e.runs = list(runs)  # type: ignore[attr-defined]
    return e
