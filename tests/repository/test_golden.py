"""Every release must still read the golden repositories written by earlier releases."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

import snapvault as sv

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GOLDEN = sorted(p.name for p in FIXTURES.glob("repo-v*") if p.is_dir())


def test_there_is_a_golden_repository_for_every_format_version() -> None:
    from snapvault.repository.config import FORMAT_VERSION

    versions = {name.split("-")[1] for name in GOLDEN}
    assert {f"v{v}" for v in range(1, FORMAT_VERSION + 1)} <= versions


@pytest.fixture(params=GOLDEN)
def golden(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[sv.Repository, dict[str, object]]:
    # Work on a copy: opening must never need to write, but a failing test must not damage the fixture.
    copy = tmp_path / request.param
    shutil.copytree(FIXTURES / request.param, copy)
    expected = json.loads((FIXTURES / f"{request.param}.expected.json").read_text())
    return sv.Repository.open(str(copy), expected["password"]), expected


def test_golden_repository_checks_clean(golden: tuple[sv.Repository, dict[str, object]]) -> None:
    repo, expected = golden
    report = repo.check(read_data=True)
    assert report.ok, report.problems
    assert report.warnings == []
    assert sorted(repo.snapshot_ids()) == sorted(expected["snapshots"])  # type: ignore[arg-type]


def test_golden_snapshots_restore_exactly(golden: tuple[sv.Repository, dict[str, object]], tmp_path: Path) -> None:
    repo, expected = golden
    source = str(expected["source"])
    for sid, label in expected["snapshots"].items():  # type: ignore[attr-defined]
        m = repo.load_manifest(sid)
        assert m.tags == ["golden"]
        assert m.hostname == "golden"
        out = tmp_path / label
        sv.Restorer(repo).restore(sid, out)
        root = out / os.path.relpath(source, "/")
        seen = {}
        for p in sorted(root.rglob("*")):
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                seen[rel] = {"type": "symlink", "target": os.readlink(p)}
                continue
            entry: dict[str, object] = {"mode": stat.S_IMODE(st.st_mode), "mtime_ns": st.st_mtime_ns}
            if p.is_dir():
                entry["type"] = "dir"
            else:
                entry["type"] = "file"
                entry["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
            seen[rel] = entry
        assert seen == expected[label]


def test_golden_repository_accepts_new_backups(golden: tuple[sv.Repository, dict[str, object]], tmp_path: Path) -> None:
    repo, _ = golden
    src = tmp_path / "new"
    src.mkdir()
    (src / "f").write_text("written by this release")
    m = sv.Engine(repo).backup([src])
    assert repo.check(read_data=True).ok
    sv.Restorer(repo).restore(m.id, tmp_path / "out")
    assert (tmp_path / "out" / os.path.relpath(src, "/") / "f").read_text() == "written by this release"
