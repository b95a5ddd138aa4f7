"""The archiver uses a repository only through its Protocols, and through none of its internals."""

from __future__ import annotations

import os
from pathlib import Path

import snapvault as sv
from snapvault.archiver.session import BackupOptions, BackupRepository, run_backup
from snapvault.archiver.sink import BlobSink, SinkRepository
from snapvault.pipeline.ids import BlobType
from tests.conftest import write
from tests.narrow import narrow, protocol_members


def _tree(root: Path) -> Path:
    write(root / "a.txt", "alpha\n")
    write(root / "sub" / "b.bin", os.urandom(300_000))
    write(root / "sub" / "deeper" / "c.txt", "gamma\n" * 1000)
    return root


def test_a_backup_run_needs_only_backup_repository(any_repo: sv.Repository, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    view = narrow(any_repo, BackupRepository)
    first = run_backup(view, BackupOptions(paths=[str(src)], workers=2)).manifest
    # A second run with a parent reads the parent's trees through the same interface.
    write(src / "a.txt", "alpha, changed\n")
    second = run_backup(view, BackupOptions(paths=[str(src)], parent=first, workers=2)).manifest
    assert second.stats.files_unchanged == 2
    assert any_repo.check(read_data=True).ok
    # The sink's part of the interface is used, and the run's own on top of it.
    assert {"save_manifest", "tree_nodes", "chunker", "write_index", "finish_pack", "seal_blob"} <= view.used


def test_the_sink_needs_only_sink_repository(any_repo: sv.Repository) -> None:
    view = narrow(any_repo, SinkRepository)
    with BlobSink(view, workers=2) as sink:
        bid, added = sink.add(BlobType.DATA, b"some bytes")
        assert added
        assert sink.add(BlobType.DATA, b"some bytes") == (bid, False)
        sink.flush()
    assert any_repo.read_blob(bid) == b"some bytes"
    assert bid == any_repo.blob_id(b"some bytes")


def test_the_backup_protocol_names_no_internals() -> None:
    members = protocol_members(BackupRepository)
    assert members >= protocol_members(SinkRepository)
    assert not members & {"store", "keys", "sealer", "config", "index", "random"}
