"""A manifest the repository's keys cannot open, met through the command line (issue #17): it
hides no other snapshot, and each is named on stderr."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.cli.test_main import run
from tests.conftest import write


@pytest.fixture
def encrypted(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    assert run("-r", str(root), "init").returncode == 0
    return root


# -- a manifest the keys cannot open --------------------------------------------------------


def _backup(url: str, tmp_path: Path, name: str) -> str:
    src = write(tmp_path / name / "f.txt", name).parent
    proc = run("-r", url, "backup", str(src), "--json")
    assert proc.returncode == 0, proc.stderr
    sid: str = json.loads(proc.stdout)["id"]
    return sid


def _plant_foreign_manifest(encrypted: Path, tmp_path: Path) -> str:
    """A snapshot object copied from another repository (valid there, unreadable here)."""
    other = tmp_path / "other"
    assert run("-r", str(other), "init").returncode == 0
    sid = _backup(str(other), tmp_path, "elsewhere")
    found = [p for p in (other / "snapshots").rglob("*") if p.is_file() and p.name.startswith(sid)]
    assert len(found) == 1
    dest = encrypted / found[0].relative_to(other)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found[0], dest)
    return sid


def test_one_foreign_manifest_does_not_hide_the_others(encrypted: Path, tmp_path: Path) -> None:
    url = str(encrypted)
    good = _backup(url, tmp_path, "mine")
    foreign = _plant_foreign_manifest(encrypted, tmp_path)

    proc = run("-r", url, "snapshots", "--json")
    assert proc.returncode == 1
    assert [m["id"] for m in json.loads(proc.stdout)] == [good]
    # With --json: a JSON line naming the snapshot, then one giving the exit code.
    named, last = (json.loads(line) for line in proc.stderr.strip().splitlines())
    assert named["subject"] == f"snapshot {foreign}"
    assert (last["type"], last["exit_code"]) == ("SNAPSHOTS_UNREADABLE", 1)
    assert "Traceback" not in proc.stderr

    proc = run("-r", url, "snapshots")
    assert proc.returncode == 1
    assert good[:8] in proc.stdout

    proc = run("-r", url, "ls", "latest")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1].endswith("/mine/f.txt")
    assert run("-r", url, "ls", good[:8]).returncode == 0

    # check still reports it as a problem
    proc = run("-r", url, "check", "--json")
    assert proc.returncode == 1
    assert any(foreign in json.dumps(p) for p in json.loads(proc.stdout)["problems"])


def test_random_bytes_under_snapshots_are_named(encrypted: Path, tmp_path: Path) -> None:
    url = str(encrypted)
    good = _backup(url, tmp_path, "mine")
    junk = os.urandom(200)
    name = hashlib.sha256(junk).hexdigest()
    existing = next(p for p in (encrypted / "snapshots").rglob("*") if p.is_file())
    # Beside the real one, laid out as the real one is (a prefix folder or not).
    rel = existing.relative_to(encrypted / "snapshots")
    target = encrypted / "snapshots" / (rel.parent / name if rel.parent != Path(".") else name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(junk)
    proc = run("-r", url, "snapshots", "--json")
    assert proc.returncode == 1
    assert [m["id"] for m in json.loads(proc.stdout)] == [good]
    assert name[:8] in proc.stderr
