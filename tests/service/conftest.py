"""A real repository with a stored policy and two snapshots of it, served by the example app."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import httpx
from examples.service.app import create_app
from examples.service.auth import hash_token, new_token
from examples.service.config import (
    AuthSettings,
    JobSettings,
    RepositorySettings,
    Settings,
    TokenEntry,
)
from fastapi import FastAPI

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD, write

ROLES = ("viewer", "operator", "admin")
#: Bytes of the file the download tests read (several chunks, not a multiple of anything).
BIG = bytes((i * 7 + i // 251) % 256 for i in range(700_001))


@dataclass
class World:
    """What a test works with."""

    app: FastAPI
    client: httpx.AsyncClient
    repo: sv.Repository
    settings: Settings
    source: Path
    restores: Path
    tokens: dict[str, str]
    first: sv.Manifest
    second: sv.Manifest

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_settings(tmp_path: Path, url: str, tokens: dict[str, str], **jobs: object) -> Settings:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    return Settings(
        repository=RepositorySettings(url=url, password_file=password_file),
        auth=AuthSettings(
            tokens=[TokenEntry(name=f"{r}-1", role=r, hash=hash_token(t)) for r, t in tokens.items()],  # type: ignore[arg-type]
            max_failures=5,
            window_s=60,
        ),
        jobs=JobSettings(workers=2, progress_interval_s=0, **jobs),  # type: ignore[arg-type]
        restore_roots={"restores": tmp_path / "restores"},
        backup_roots=[tmp_path / "data"],
    )


def in_process(app: FastAPI, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    """An httpx client that calls ``app`` in this process (from 127.0.0.1)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions, client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://service.test")


def build_world(tmp_path: Path, **jobs: object) -> World:
    source = tmp_path / "data" / "docs"
    write(source / "a.txt", "alpha\n")
    write(source / "sub" / "b.md", "# bravo\n")
    write(source / "big.bin", BIG)
    restores = tmp_path / "restores"
    restores.mkdir()
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    policy = sv.Policy(name="docs", sources=[str(source)], retention={"strategy": "keep-last", "n": 1})
    repo.save_policy(policy)
    engine = sv.Engine(repo, workers=2)
    first = engine.run_policy(policy)
    write(source / "a.txt", "alpha, changed\n")
    write(source / "c.txt", "charlie\n")
    second = engine.run_policy(policy)
    tokens = {r: new_token() for r in ROLES}
    settings = make_settings(tmp_path, str(tmp_path / "repo"), tokens, **jobs)
    app = create_app(settings, repository=repo, env={"DR_PASSWORD": PASSWORD})
    return World(app, in_process(app), repo, settings, source, restores, tokens, first, second)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def wait_done(w: World, job_id: str, timeout: float = 60) -> None:
    """Wait until the job ``job_id`` has ended (queued jobs included)."""
    record = w.app.state.service.jobs.get(job_id)
    deadline = time.monotonic() + timeout
    while not record.done:
        assert time.monotonic() < deadline, f"job {job_id} still running"
        time.sleep(0.01)


def finish(w: World) -> None:
    """Stop what a test left running (a failed test may leave a job behind)."""
    w.app.state.service.jobs.shutdown(30)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path)
    yield w
    finish(w)


def tree_files(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root``, by relative path."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = p.read_bytes()
    return out
