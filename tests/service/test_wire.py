"""Over the wire: the app served by a real uvicorn on 127.0.0.1 (a free port), called by httpx."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from examples.service.server import serve_in_thread

from tests.conftest import write
from tests.service.conftest import BIG, World, tree_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def base_url(world: World) -> Iterator[str]:
    with serve_in_thread(world.app) as url:
        yield url


def test_a_backup_is_followed_live_over_server_sent_events(world: World, base_url: str) -> None:
    write(world.source / "wire.txt", "over the wire\n")
    with httpx.Client(base_url=base_url, timeout=30) as c:
        assert c.get("/health").json() == {"status": "ok"}
        job = c.post("/jobs/backup", json={"policy": "docs"}, headers=world.auth("operator")).json()
        kinds: list[str] = []
        last: dict[str, object] = {}
        with c.stream("GET", f"/jobs/{job['id']}/events", headers=world.auth("viewer")) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kinds.append(line.removeprefix("event: "))
                elif line.startswith("data: "):
                    last = json.loads(line.removeprefix("data: "))
        assert kinds[0] == "started"
        assert kinds[-1] == "completed"
        assert last["status"] == "completed"
        result = last["result"]
        assert isinstance(result, dict)
        assert world.repo.resolve(str(result["snapshot_id"])).stats.total_files == 5


def test_a_restore_over_the_wire_and_the_traversals_it_refuses(world: World, base_url: str) -> None:
    h = world.auth("operator")
    with httpx.Client(base_url=base_url, timeout=30) as c:
        for path in ("../../etc", "/etc", "x/../../y"):
            r = c.post(
                "/jobs/restore", json={"snapshot": "latest", "target_root": "restores", "target_path": path}, headers=h
            )
            assert r.status_code == 403, path
            assert r.headers["content-type"] == "application/problem+json"
        r = c.post(
            "/jobs/restore", json={"snapshot": "latest", "target_root": "restores", "target_path": "w"}, headers=h
        )
        job_id = r.json()["id"]
        deadline = time.monotonic() + 30
        while (status := c.get(f"/jobs/{job_id}", headers=h).json())["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert status["status"] == "completed"
        assert status["progress"]["bytes_done"] == status["progress"]["bytes_total"]
    assert tree_files(world.restores / "w" / str(world.source).lstrip("/")) == tree_files(world.source)


def test_a_ranged_download_and_a_refused_token_over_the_wire(world: World, base_url: str) -> None:
    url = f"/snapshots/latest/download?path={world.source}/big.bin"
    with httpx.Client(base_url=base_url, timeout=30) as c:
        r = c.get(url, headers={**world.auth("viewer"), "Range": "bytes=123456-234567"})
        assert r.status_code == 206
        assert r.content == BIG[123456:234568]
        assert r.headers["content-range"] == f"bytes 123456-234567/{len(BIG)}"
        with c.stream("GET", url, headers=world.auth("viewer")) as whole:
            assert b"".join(whole.iter_bytes()) == BIG
        bad = c.get("/stats", headers={"Authorization": "Bearer svt_wrong"})
        assert bad.status_code == 401
        assert bad.headers["www-authenticate"] == "Bearer"
        assert "server" not in bad.headers


@pytest.mark.parametrize("command", [["-m", "examples.service"], ["-m", "uvicorn", "examples.service.app:app"]])
def test_the_documented_commands_serve_with_the_settings_from_the_environment(
    world: World, tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "service.toml"
    token_hash = world.settings.auth.tokens[0].hash
    config.write_text(
        f'[repository]\nurl = "{world.settings.repository.url}"\npassword_file = "password"\n'
        f'[restore_roots]\nrestores = "restores"\n'
        f'[[auth.tokens]]\nname = "v"\nrole = "viewer"\nhash = "{token_hash}"\n'
    )
    env = {"SNAPVAULT_SERVICE_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    with serve_subprocess(command, env) as url:
        r = httpx.get(f"{url}/snapshots", headers=world.auth("viewer"), timeout=30)
        assert [s["id"] for s in r.json()] == [world.first.id, world.second.id]


def test_python_m_examples_service_without_its_configuration_is_one_line() -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "examples.service"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: set SNAPVAULT_SERVICE_CONFIG")
    assert "Traceback" not in missing.stderr


class serve_subprocess:  # noqa: N801 - used as a context manager, like a function
    """``python -m examples.service`` on a free loopback port, stopped on exit."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.env = env
        self.command = command

    def __enter__(self) -> str:
        cmd = [sys.executable, *self.command, "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                return url
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.proc.stderr.read() if self.proc.stderr else "did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        if self.proc.stderr:
            self.proc.stderr.close()
