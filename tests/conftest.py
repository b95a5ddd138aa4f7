"""Shared fixtures: real repositories on a local folder or fsspec's memory filesystem."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

import snapvault as sv

# Emulator fixtures (S3, Azure, GCS on loopback) for every test folder; importing the module
# first also sets the environment the cloud client libraries read at import time.
pytest_plugins = ("tests.backends.servers",)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "commits_damage: the test commits an unreadable snapshot on purpose")


@pytest.fixture(autouse=True)
def _every_commit_reads_back(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Check every snapshot any test commits, right at its commit.

    A backup that commits a snapshot its own reader refuses is the worst bug a backup tool can
    have, so no test may produce one unnoticed: each manifest written through
    ``Repository.save_manifest`` (backups, policy runs, copies) is read back with every tree
    it reaches, against the index as stored. Tests that commit damage on purpose opt out with
    ``@pytest.mark.commits_damage``.
    """
    if request.node.get_closest_marker("commits_damage"):
        return
    from snapvault.maintenance.check import check_snapshot

    save = sv.Repository.save_manifest

    @functools.wraps(save)
    def save_and_check(self: sv.Repository, manifest: sv.Manifest) -> sv.Manifest:
        saved = save(self, manifest)
        report = check_snapshot(self, saved.id)
        assert report.ok, [str(p) for p in report.problems]
        return saved

    monkeypatch.setattr(sv.Repository, "save_manifest", save_and_check)


# Argon2id at its cheapest: tests open many repositories; the cost parameters are tested apart.
FAST_KDF = sv.KdfParams(memory_kib=64, iterations=1, lanes=1)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def repo_path(tmp_path: Path) -> str:
    """A path for a new local repository."""
    return str(tmp_path / "repo")


@pytest.fixture
def local_repo(repo_path: str) -> sv.Repository:
    """A fresh encrypted repository in a local folder."""
    return sv.Repository.init(repo_path, PASSWORD, kdf=FAST_KDF)


@pytest.fixture
def memory_repo() -> Iterator[sv.Repository]:
    """A fresh encrypted repository on fsspec's memory filesystem."""
    url = f"memory://vault-{uuid.uuid4().hex}"
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    yield repo
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


@pytest.fixture
def small_pack_memory_repo() -> Iterator[sv.Repository]:
    """A memory repository whose packs hold about 1 MiB (many packs from little data)."""
    url = f"memory://vault-{uuid.uuid4().hex}"
    yield sv.Repository.init(url, PASSWORD, kdf=FAST_KDF, pack_size=1 << 20)
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


@pytest.fixture(params=["local", "memory"])
def any_repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sv.Repository]:
    """A fresh repository on each backend that needs no server."""
    if request.param == "local":
        yield sv.Repository.init(str(tmp_path / "repo"), PASSWORD, kdf=FAST_KDF)
    else:
        url = f"memory://vault-{uuid.uuid4().hex}"
        yield sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
        fsspec.filesystem("memory").rm(url, recursive=True)


def write(path: Path, data: bytes | str, mode: int | None = None) -> Path:
    """Create a file (and its folders) with ``data``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        os.chmod(path, mode)
    return path


def tree_at(repo: sv.Repository, manifest: sv.Manifest, directory: Path | str) -> str:
    """The tree ID of one directory of a snapshot.

    Tests compare this rather than ``manifest.tree``: the nodes of a temporary directory's
    parents change whenever a test running beside it adds a directory next to its own.
    """
    tree = manifest.tree
    for part in Path(os.path.relpath(directory, "/")).parts:
        node = next(n for n in repo.read_tree(tree) if n.name == part)
        assert node.subtree is not None, f"{part} is not a directory"
        tree = node.subtree
    return tree
