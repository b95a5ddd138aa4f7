"""``diff`` of the benchmark's v1 and v2 snapshots lists exactly the changes make_datasets.py
made: the files it added, removed and edited, found independently by comparing the two trees
on disk (at the CI scale of tests/test_prune_acceptance.py: the same kinds of files and the
same changes, smaller)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.test_prune_acceptance import MAKE_DATASETS, SCALE, _build_datasets, _sync


def _files(root: Path) -> dict[str, str]:
    """Relative path -> content hash of every regular file (symlinks by their target)."""
    out = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _dirs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir() and not p.is_symlink()}


def test_diff_of_v1_and_v2_lists_exactly_what_make_datasets_changed(tmp_path: Path) -> None:
    if not MAKE_DATASETS.exists():
        pytest.skip("make_datasets.py is not there")
    _build_datasets(tmp_path / "data")
    v1, v2 = tmp_path / "data" / "v1", tmp_path / "data" / "v2"
    src = tmp_path / "src"
    shutil.copytree(v1, src, symlinks=True)
    repo = sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF, chunker=SCALE.chunker)
    engine = sv.Engine(repo)
    first = engine.backup([src])
    _sync(v2, src)
    second = engine.backup([src])

    diff = repo.diff(first, second)
    root = os.path.relpath(src, "/")
    files = {
        c.path.removeprefix("/").removeprefix(root + "/"): c.kind
        for c in diff.changes
        if c.type in ("file", "symlink") and c.path.removeprefix("/").startswith(root + "/")
    }
    before, after = _files(v1), _files(v2)
    expected = dict.fromkeys(after.keys() - before.keys(), "added")
    expected |= dict.fromkeys(before.keys() - after.keys(), "removed")
    expected |= {p: "modified" for p in before.keys() & after.keys() if before[p] != after[p]}
    assert expected  # the datasets did change
    assert {k: v for k, v in files.items() if v != "metadata"} == expected
    # Files whose content did not change are at most "metadata" (never reported as content).
    assert all(p in before and before[p] == after[p] for p, kind in files.items() if kind == "metadata")
    added_dirs = {
        c.path.removeprefix("/").removeprefix(root + "/") for c in diff.changes if c.type == "dir" and c.kind == "added"
    }
    assert added_dirs == _dirs(v2) - _dirs(v1)
    assert {"big/random.bin", "big/app.log", "big/pages.db"} <= {p for p, k in expected.items() if k == "modified"}
    assert expected["big/new.bin"] == "added"
    assert diff.stats.files_added == sum(1 for k in expected.values() if k == "added")
    assert diff.stats.files_removed == sum(1 for k in expected.values() if k == "removed")
