"""Stored shell hooks run only when this machine allows them (issue #17): anyone with the
repository password can store a policy, so its commands are repository content, not config."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.cli.test_main import run
from tests.conftest import write


@pytest.fixture
def encrypted(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    assert run("-r", str(root), "init").returncode == 0
    return root


# -- stored hooks --------------------------------------------------------------------------


def _hash(command: str) -> str:
    return hashlib.sha256(command.encode()).hexdigest()


def test_a_stored_hook_runs_only_when_this_machine_allows_it(encrypted: Path, tmp_path: Path) -> None:
    url = str(encrypted)
    src = write(tmp_path / "src" / "f", "x").parent
    marker = tmp_path / "hook-ran"
    hook = f"touch '{marker}'"
    add = ["policy", "add", "p", "--source", str(src), "--schedule", "* * * * *"]
    assert run("-r", url, *add, "--pre-hook", hook).returncode == 0
    allow = tmp_path / "hooks.allow"
    env = {"SNAPVAULT_HOOKS_ALLOW": str(allow)}

    for args in (["run", "p"], ["due", "--run"]):
        proc = run("-r", url, *args, env=env)
        assert proc.returncode == 1, proc.stderr
        assert _hash(hook) in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not marker.exists()
    assert json.loads(run("-r", url, "snapshots", "--json").stdout) == []

    # allow-hooks prints the hashes and appends them to the local file.
    proc = run("-r", url, "policy", "allow-hooks", "p", env=env)
    assert proc.returncode == 0, proc.stderr
    assert _hash(hook) in allow.read_text().split()
    assert _hash(hook) in proc.stdout

    proc = run("-r", url, "run", "p", env=env)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()

    # A newer record with another command is refused again.
    evil = f"rm -f '{marker}'"
    assert run("-r", url, *add, "--pre-hook", evil, "--replace").returncode == 0
    proc = run("-r", url, "run", "p", env=env)
    assert proc.returncode == 1
    assert _hash(evil) in proc.stderr
    assert marker.exists()


def test_the_allow_file_takes_comments_and_blank_lines(encrypted: Path, tmp_path: Path) -> None:
    url = str(encrypted)
    src = write(tmp_path / "src" / "f", "x").parent
    hook = "true"
    assert run("-r", url, "policy", "add", "p", "--source", str(src), "--post-hook", hook).returncode == 0
    allow = tmp_path / "hooks.allow"
    allow.write_text(f"# reviewed\n\n  {_hash(hook).upper()}  # the post-hook\n")
    proc = run("-r", url, "run", "p", env={"SNAPVAULT_HOOKS_ALLOW": str(allow)})
    assert proc.returncode == 0, proc.stderr
