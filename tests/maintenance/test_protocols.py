"""Check, verify, copy and browse use a repository only through the Protocols they declare."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.maintenance.browse import TreeReader, walk_snapshot
from snapvault.maintenance.check import CheckRepository, check_repository
from snapvault.maintenance.copy import CopyDestination, CopySource, copy_snapshots
from snapvault.maintenance.verify import BlobReader, verify_blobs
from snapvault.pipeline.tree import Node
from tests.conftest import FAST_KDF, PASSWORD, write
from tests.narrow import narrow, protocol_members


@pytest.fixture
def backed_up(local_repo: sv.Repository, tmp_path: Path) -> tuple[sv.Repository, sv.Manifest, Path]:
    src = tmp_path / "src"
    write(src / "a.txt", "alpha\n")
    write(src / "d" / "b.bin", os.urandom(200_000))
    write(src / "d" / "e" / "c.txt", "gamma\n")
    return local_repo, sv.Engine(local_repo, workers=2).backup([src]), src


def test_check_reads_through_check_repository(backed_up: tuple[sv.Repository, sv.Manifest, Path]) -> None:
    repo, _, _ = backed_up
    report = check_repository(narrow(repo, CheckRepository), read_data=True)
    assert report.ok, report.problems
    assert report == repo.check(read_data=True)
    assert report.blobs_read > 0


def test_verify_needs_one_method(backed_up: tuple[sv.Repository, sv.Manifest, Path]) -> None:
    repo, m, _ = backed_up
    assert protocol_members(BlobReader) == {"read_blob"}
    ids = [bytes.fromhex(m.tree)]
    v = verify_blobs(narrow(repo, BlobReader), ids, fraction=1.0, mode="full", rng=random.Random(1))
    assert v.ok
    assert v.blobs_checked == 1


def test_browse_walks_any_tree_reader(backed_up: tuple[sv.Repository, sv.Manifest, Path]) -> None:
    repo, m, src = backed_up
    listed = [p for p, _ in walk_snapshot(narrow(repo, TreeReader), m)]
    assert str(src / "d" / "e" / "c.txt").lstrip("/") in listed

    class Trees:
        """Trees from a dict: a repository is not needed to browse."""

        def iter_tree(self, tree_id: str) -> Iterator[Node]:
            tree = {"root": [Node(name="x", type="dir", subtree="sub")], "sub": [Node(name="y", type="file")]}
            return iter(tree[tree_id])

    fake = m.model_copy(update={"tree": "root"})
    assert [p for p, _ in walk_snapshot(Trees(), fake)] == ["x", "x/y"]


@pytest.mark.parametrize("shared", [True, False])
def test_copy_reads_a_copy_source_and_writes_a_copy_destination(
    backed_up: tuple[sv.Repository, sv.Manifest, Path], tmp_path: Path, shared: bool
) -> None:
    repo, m, _ = backed_up
    dst = sv.Repository.init(str(tmp_path / "dst"), PASSWORD, kdf=FAST_KDF, copy_params_from=repo if shared else None)
    assert (dst.content_id_fingerprint == repo.content_id_fingerprint) is shared
    result = copy_snapshots(narrow(repo, CopySource), narrow(dst, CopyDestination))
    assert [s for s, _ in result.copied] == [m.id]
    assert dst.check(read_data=True).ok
    again = copy_snapshots(narrow(repo, CopySource), narrow(dst, CopyDestination))
    assert again.skipped == [m.id]
    assert again.blobs_uploaded == 0


def test_the_content_id_fingerprint_is_not_the_key(local_repo: sv.Repository) -> None:
    assert local_repo.master_keys.id_key not in local_repo.content_id_fingerprint
    assert len(local_repo.content_id_fingerprint) == 32
