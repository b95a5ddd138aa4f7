"""A restore uses a repository only through the Protocols of restore/source.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import snapvault as sv
from snapvault.pipeline.tree import Node
from snapvault.restore.fetch import PackReader
from snapvault.restore.source import PackSource, RestoreSource, SnapshotSource
from tests.narrow import narrow, protocol_members
from tests.restore.test_restorer import make_tricky_tree
from tests.treecompare import assert_same_tree


def test_the_interface_is_small() -> None:
    assert protocol_members(SnapshotSource) == {"resolve", "snapshots", "read_tree", "refresh_index"}
    assert protocol_members(PackSource) == {
        "pack_size",
        "spool_dir",
        "locate",
        "read_pack_range",
        "open_blob",
        "blob_id",
    }
    assert protocol_members(RestoreSource) == protocol_members(SnapshotSource) | protocol_members(PackSource)


def test_a_restore_reads_only_through_restore_source(any_repo: sv.Repository, tmp_path: Path) -> None:
    # Every kind of entry, on a local folder and an object store (pack windows, read-ahead).
    src = make_tricky_tree(tmp_path)
    m = sv.Engine(any_repo).backup([src])
    source = narrow(any_repo, RestoreSource)
    result = sv.Restorer(source).restore(m.id[:8], tmp_path / "out")
    assert result.errors == []
    assert_same_tree(src, tmp_path / "out" / os.path.relpath(src, "/"))
    assert source.used >= {"resolve", "read_tree", "locate", "read_pack_range", "open_blob", "spool_dir"}


def test_a_policy_restore_looks_for_its_snapshot_through_restore_source(
    local_repo: sv.Repository, tmp_path: Path
) -> None:
    sv.Engine(local_repo).backup([make_tricky_tree(tmp_path)])
    source = narrow(local_repo, RestoreSource)
    with pytest.raises(sv.SnapshotNotFound, match="no snapshot of policy"):
        sv.Restorer(source).restore(None, tmp_path / "out", policy="none-such")
    assert "snapshots" in source.used
    assert not (tmp_path / "out").exists()


def test_the_pack_reader_needs_only_pack_source(small_pack_memory_repo: sv.Repository, tmp_path: Path) -> None:
    big = tmp_path / "src" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(3 << 20))
    m = sv.Engine(small_pack_memory_repo).backup([big.parent])
    node = next(n for n in _walk(small_pack_memory_repo, m.tree) if n.name == "big.bin")
    reader = PackReader(narrow(small_pack_memory_repo, PackSource), workers=2, total_bytes=node.size)
    try:
        data = b"".join(
            plain
            for run, sealed in reader.file_runs([bytes.fromhex(c) for c in node.content])
            for plain in reader.blobs(run, sealed)
        )
    finally:
        reader.close()
    assert data == big.read_bytes()


def _walk(repo: sv.Repository, tree: str) -> list[Node]:
    out = []
    for n in repo.read_tree(tree):
        out.append(n)
        if n.subtree is not None:
            out += _walk(repo, n.subtree)
    return out
